package httpsse

import (
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

	mu     sync.Mutex
	topics map[string]*topic
	sweep  *time.Timer // runs while there are topics; nil otherwise
	closed bool
}

// topic is one named Route, with what the sweep needs to tell whether it is idle.
type topic struct {
	route Route
	used  bool      // Route was called for it since the last sweep
	seen  uint64    // the events the Route had published at the last sweep
	quiet time.Time // when the sweep last saw it in use
}

// NewTopics returns an empty [Topics] whose topics' Routes are made with opts, and with
// WaitForSubscriber(false).
func NewTopics(opts ...RouteOption) *Topics {
	cfg := config(append(opts[:len(opts):len(opts)], WaitForSubscriber(false)))
	return NewTopicsOf(func(string) Route { return newBroadcaster(cfg) }, cfg.topicIdle)
}

// NewTopicsOf returns an empty [Topics] whose topics' Routes are made by newRoute, called
// with the topic's name: Routes of another kind, such as those of a Route over a shared log
// in another package. A topic is idle, and its Route closed and freed, once for the time idle
// (zero or less means [DefaultTopicIdle]) no call of Route was made for it and [StatsOf] its
// Route showed no subscriber and no new published event. newRoute is called with the Topics'
// lock held, so it must not call the Topics' methods.
func NewTopicsOf(newRoute func(topic string) Route, idle time.Duration) *Topics {
	if idle <= 0 {
		idle = DefaultTopicIdle
	}
	return &Topics{newRoute: newRoute, idle: idle, every: idle / 4, topics: make(map[string]*topic)}
}

// Route returns the Route of the topic, made on first use. After [Topics.Close] it returns
// a closed Route, whose PublishEvent returns [ErrClosed] and whose ServeHTTP answers
// 204 No Content.
func (t *Topics) Route(name string) Route {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		r := t.newRoute(name)
		r.Close()
		return r
	}
	tp, ok := t.topics[name]
	if !ok {
		tp = &topic{route: t.newRoute(name), quiet: time.Now()}
		t.topics[name] = tp
		if t.sweep == nil {
			t.sweep = time.AfterFunc(t.every, t.sweepIdle)
		}
	}
	tp.used = true
	return tp.route
}

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

// Stats adds up the Stats of the topics alive now.
func (t *Topics) Stats() Stats {
	t.mu.Lock()
	routes := make([]Route, 0, len(t.topics))
	for _, tp := range t.topics {
		routes = append(routes, tp.route)
	}
	t.mu.Unlock()
	var sum Stats
	for _, r := range routes {
		st := StatsOf(r)
		sum.Subscribers += st.Subscribers
		sum.Published += st.Published
		sum.DroppedBehind += st.DroppedBehind
		sum.DroppedTimeout += st.DroppedTimeout
		sum.Replays += st.Replays
		sum.Gaps += st.Gaps
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
	var idle []Route
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	for name, tp := range t.topics {
		// A subscriber that came and went between two sweeps came through Route (used); one
		// still there when the sweep ran counts from then.
		st := StatsOf(tp.route)
		switch {
		case st.Subscribers > 0 || tp.used || st.Published != tp.seen:
			tp.used, tp.seen, tp.quiet = false, st.Published, now
		case now.Sub(tp.quiet) >= t.idle:
			delete(t.topics, name)
			idle = append(idle, tp.route)
		}
	}
	if len(t.topics) > 0 {
		t.sweep.Reset(t.every)
	} else {
		t.sweep = nil
		t.topics = make(map[string]*topic) // a map does not shrink: let the old one go
	}
	t.mu.Unlock()
	// Closed after unlocking: another kind of Route may take its time to close (a Route
	// over a remote log talks to it), and Route must not wait for that.
	for _, r := range idle {
		r.Close()
	}
}
