package httpsse

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// DefaultTopicIdle is how long a topic of a [Topics] lives without subscribers and
// publishing, unless [TopicIdle] says otherwise.
const DefaultTopicIdle = 30 * time.Second

// TopicIdle sets how long a topic of a [Topics] may go without a subscriber, a publish or a
// call of [Topics.Route] for it before it is freed; the check runs every d/4, so an idle
// topic goes between d and 1.5 d after its last use. The default is [DefaultTopicIdle]; zero
// or a negative d means the default. [NewRoute] ignores it.
func TopicIdle(d time.Duration) RouteOption {
	return func(c *routeConfig) { c.topicIdle = d }
}

// DefaultMaxTopics is how many topics a [Topics] holds at most, unless [MaxTopics] says
// otherwise. A topic costs about 1-2 KiB with nothing retained, so the default bounds what
// requests for ever new names (a client that makes up topic names, an application that
// forgets to check them) can make a server hold to a few tens of MiB.
const DefaultMaxTopics = 10000

// ErrTooManyTopics is wrapped by the error of publishing to a topic that a [Topics] refused
// to make because it holds [MaxTopics] topics, all with subscribers. Test with [errors.Is].
var ErrTooManyTopics = errors.New("httpsse: too many topics")

// MaxTopics sets how many topics a [Topics] holds at most. A new name past n first frees the
// least recently used topic that has no subscriber (with its retained events; its Route is
// closed). When every topic has subscribers the new name is refused: [Topics.Route] returns a
// Route whose PublishEvent returns an error wrapping [ErrTooManyTopics] and whose ServeHTTP,
// like [Topics.Serve], answers 503 Service Unavailable. A topic is used when Route or Serve
// asks for it. The default is [DefaultMaxTopics]; zero or a negative n means the default.
// [NewRoute] ignores it.
func MaxTopics(n int) RouteOption {
	return func(c *routeConfig) { c.maxTopics = n }
}

// Topics holds any number of named streams, each a [Route]: a user's notifications, a chat
// room, a document. Route(name) makes a topic's Route on first use, with the options given
// to [NewTopics], and returns the same Route for the same name for as long as the topic
// lives. Publishing to a topic never waits for a subscriber (its Routes are made with
// WaitForSubscriber(false)): an event goes to the topic's subscribers of the moment, or is
// retained if the options include [Replay], or goes nowhere.
//
// A topic that has had no subscriber, no publish and no call of Route for the time set by
// [TopicIdle] is freed, with its retained events, and its Route is closed; the next
// Route(name) makes a new one. So memory grows with the topics in use, not with every name
// ever seen. A topic with subscribers is never freed. Because an idle topic's Route is
// closed, do not keep a topic's Route for later: call Route(name) each time, which is cheap.
//
// All methods may be called from any number of goroutines at once.
type Topics struct {
	newRoute func(topic string) Route
	idle     time.Duration
	every    time.Duration // how often idle topics are looked for
	max      int

	mu     sync.Mutex
	topics map[string]*topic
	recent topic       // the list of topics, most recently used first: recent.next is the first
	sweep  *time.Timer // runs while there are topics; nil otherwise
	freed  Stats       // what the topics freed so far had done
	closed bool
}

// topic is one named Route, with what the sweep needs to tell whether it is idle.
type topic struct {
	name       string
	route      Route
	used       bool      // Route was called for it since the last sweep
	seen       uint64    // the events the Route had published at the last sweep
	quiet      time.Time // when the sweep last saw it in use
	prev, next *topic    // in Topics.recent
}

// NewTopics returns an empty [Topics] whose topics' Routes are made with opts, and with
// WaitForSubscriber(false).
func NewTopics(opts ...RouteOption) *Topics {
	cfg := config(append(opts[:len(opts):len(opts)], WaitForSubscriber(false)))
	return NewTopicsOf(func(string) Route { return newBroadcaster(cfg) }, cfg.topicIdle, MaxTopics(cfg.maxTopics))
}

// NewTopicsOf returns an empty [Topics] whose topics' Routes are made by newRoute, called
// with the topic's name: Routes of another kind, such as those of a Route over a shared log
// in another package. A topic is idle, and its Route closed and freed, once for the time idle
// (zero or less means [DefaultTopicIdle]) no call of Route was made for it and [StatsOf] its
// Route showed no subscriber and no new published event. newRoute is called with the Topics'
// lock held, so it must not call the Topics' methods. Of opts, only [MaxTopics] applies.
//
// For [Topics.Serve], a Route of another kind has a method
//
//	Local(ctx context.Context, lastEventID string) (Route, error)
//
// that readies it for a subscriber that resumes from lastEventID (an event ID of that Route,
// or "") and returns the Route made by [NewRoute] that serves its subscribers in this
// process, or an error when it cannot (closed: [ErrClosed]).
func NewTopicsOf(newRoute func(topic string) Route, idle time.Duration, opts ...RouteOption) *Topics {
	if idle <= 0 {
		idle = DefaultTopicIdle
	}
	t := &Topics{newRoute: newRoute, idle: idle, every: idle / 4, max: config(opts).maxTopics, topics: make(map[string]*topic)}
	t.recent.next, t.recent.prev = &t.recent, &t.recent
	return t
}

// Route returns the Route of the topic, made on first use. After [Topics.Close] it returns
// a closed Route, whose PublishEvent returns [ErrClosed] and whose ServeHTTP answers
// 204 No Content. When the Topics holds [MaxTopics] topics, all with subscribers, it returns
// a Route that refuses the topic (see MaxTopics).
func (t *Topics) Route(name string) Route {
	t.mu.Lock()
	route, evicted := t.route(name)
	t.mu.Unlock()
	t.free(evicted)
	return route
}

// route is Route with t.mu held. It returns the topic that had to go to make room, if any,
// for the caller to free after unlocking.
func (t *Topics) route(name string) (Route, *topic) {
	if t.closed {
		r := t.newRoute(name)
		r.Close()
		return r, nil
	}
	tp, ok := t.topics[name]
	var evicted *topic
	if !ok {
		if len(t.topics) >= t.max {
			if evicted = t.leastRecentlyUsed(); evicted == nil {
				return refusedTopic{name: name, max: t.max}, nil
			}
			t.remove(evicted)
		}
		tp = &topic{name: name, route: t.newRoute(name), quiet: time.Now()}
		t.topics[name] = tp
		if t.sweep == nil {
			t.sweep = time.AfterFunc(t.every, t.sweepIdle)
		}
	} else {
		tp.prev.next, tp.next.prev = tp.next, tp.prev
	}
	tp.prev, tp.next = &t.recent, t.recent.next
	tp.prev.next, tp.next.prev = tp, tp
	tp.used = true
	return tp.route, evicted
}

// leastRecentlyUsed returns the least recently used topic without subscribers, or nil.
func (t *Topics) leastRecentlyUsed() *topic {
	for tp := t.recent.prev; tp != &t.recent; tp = tp.prev {
		if StatsOf(tp.route).Subscribers == 0 {
			return tp
		}
	}
	return nil
}

// remove takes tp out of the Topics; the caller frees it after unlocking.
func (t *Topics) remove(tp *topic) {
	delete(t.topics, tp.name)
	tp.prev.next, tp.next.prev = tp.next, tp.prev
	tp.prev, tp.next = nil, nil
}

// free closes the Routes of topics that were removed, and keeps what they had done. It is
// called without t.mu: another kind of Route may take its time to close (a Route over a
// remote log talks to it), and Route must not wait for that.
func (t *Topics) free(removed ...*topic) {
	for _, tp := range removed {
		if tp == nil {
			continue
		}
		tp.route.Close()
		st := StatsOf(tp.route)
		t.mu.Lock()
		t.freed.add(st)
		t.mu.Unlock()
	}
}

// refusedTopic is the Route of a topic that a Topics at its MaxTopics could not make.
type refusedTopic struct {
	name string
	max  int
}

func (r refusedTopic) err() error {
	name := r.name
	if len(name) > 64 {
		name = name[:64] + "..."
	}
	return fmt.Errorf("%w: topic %q refused: all %d topics have subscribers", ErrTooManyTopics, name, r.max)
}

func (r refusedTopic) PublishEvent(func(EventWriter) error) error { return r.err() }

func (r refusedTopic) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	http.Error(w, r.err().Error(), http.StatusServiceUnavailable)
}

func (r refusedTopic) Close() error { return nil }

// Close closes every topic's Route and frees them. It is idempotent and returns nil.
func (t *Topics) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	if t.sweep != nil {
		t.sweep.Stop()
		t.sweep = nil
	}
	topics := t.topics
	t.topics = nil
	t.mu.Unlock()
	for _, tp := range topics {
		tp.route.Close()
	}
	return nil
}

// Stats adds up the Stats of the topics alive now, and the counts of those freed so far:
// Subscribers is the sum over the topics alive (a subscriber of several topics, served by
// [Topics.Serve], counts once in each), and Published, DroppedBehind, DroppedTimeout, Replays
// and Gaps only grow, as a metrics system expects of a counter.
func (t *Topics) Stats() Stats {
	t.mu.Lock()
	routes := make([]Route, 0, len(t.topics))
	for _, tp := range t.topics {
		routes = append(routes, tp.route)
	}
	sum := t.freed
	t.mu.Unlock()
	for _, r := range routes {
		st := StatsOf(r)
		sum.Subscribers += st.Subscribers
		sum.add(st)
	}
	return sum
}

// Len returns how many topics are alive now.
func (t *Topics) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.topics)
}

// sweepIdle frees the topics that have been idle for t.idle. One timer per Topics
// runs it, every quarter of that time, while there are topics.
func (t *Topics) sweepIdle() {
	now := time.Now()
	var idle []*topic
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	for _, tp := range t.topics {
		// A subscriber that came and went between two sweeps came through Route (used); one
		// still there when the sweep ran counts from then.
		st := StatsOf(tp.route)
		switch {
		case st.Subscribers > 0 || tp.used || st.Published != tp.seen:
			tp.used, tp.seen, tp.quiet = false, st.Published, now
		case now.Sub(tp.quiet) >= t.idle:
			t.remove(tp)
			idle = append(idle, tp)
		}
	}
	if len(t.topics) > 0 {
		t.sweep.Reset(t.every)
	} else {
		t.sweep = nil
		t.topics = make(map[string]*topic) // a map does not shrink: let the old one go
	}
	t.mu.Unlock()
	t.free(idle...)
}
