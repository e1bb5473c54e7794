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
	cfg   routeConfig
	every time.Duration // how often idle topics are looked for

	mu     sync.Mutex
	topics map[string]*topic
	sweep  *time.Timer // runs while there are topics; nil otherwise
	closed bool
}

// topic is one named Route, with what the sweep needs to tell whether it is idle.
type topic struct {
	route *broadcaster
	used  bool      // Route was called for it since the last sweep
	seen  uint64    // the Route's published and ended counts at the last sweep
	quiet time.Time // when the sweep last saw it in use
}

// NewTopics returns an empty [Topics] whose topics' Routes are made with opts, and with
// WaitForSubscriber(false).
func NewTopics(opts ...RouteOption) *Topics {
	cfg := config(append(opts[:len(opts):len(opts)], WaitForSubscriber(false)))
	if cfg.topicIdle <= 0 {
		cfg.topicIdle = DefaultTopicIdle
	}
	return &Topics{cfg: cfg, every: cfg.topicIdle / 4, topics: make(map[string]*topic)}
}

// Route returns the Route of the topic, made on first use. After [Topics.Close] it returns
// a closed Route, whose PublishEvent returns [ErrClosed] and whose ServeHTTP answers
// 204 No Content.
func (t *Topics) Route(name string) Route {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		r := newBroadcaster(t.cfg)
		r.Close()
		return r
	}
	tp, ok := t.topics[name]
	if !ok {
		tp = &topic{route: newBroadcaster(t.cfg), quiet: time.Now()}
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
	routes := make([]*broadcaster, 0, len(t.topics))
	for _, tp := range t.topics {
		routes = append(routes, tp.route)
	}
	t.mu.Unlock()
	var sum Stats
	for _, r := range routes {
		st := r.Stats()
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

// sweepIdle frees the topics that have been idle for cfg.topicIdle. One timer per Topics
// runs it, every quarter of that time, while there are topics.
func (t *Topics) sweepIdle() {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return
	}
	for name, tp := range t.topics {
		tp.route.mu.Lock()
		subs := len(tp.route.subs)
		seen := tp.route.stats.Published + tp.route.ended
		tp.route.mu.Unlock()
		switch {
		case subs > 0 || tp.used || seen != tp.seen:
			tp.used, tp.seen, tp.quiet = false, seen, now
		case now.Sub(tp.quiet) >= t.cfg.topicIdle:
			// Closed while still locked, so that a topic gone from the map is closed: it has
			// no subscriber, so Close has nobody to cut and returns at once.
			delete(t.topics, name)
			tp.route.Close()
		}
	}
	if len(t.topics) > 0 {
		t.sweep.Reset(t.every)
		return
	}
	t.sweep = nil
	t.topics = make(map[string]*topic) // a map does not shrink: let the old one go
}
