package redisstream

import (
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	httpsse "github.com/reiver/go-httpsse"
)

// Topics is [httpsse.Topics] across processes: any number of named streams (a user's
// notifications, a chat room, a document), topic t being the Redis stream prefix+t, served
// as [NewRoute] would serve it, with the options given to [NewTopics].
//
// All the topics of a process, like all its Routes, are read by one loop over one Redis
// connection per client, so what a process spends grows with the events it receives, not
// with the number of topics. A topic's Route starts reading its stream only at its first
// subscriber in this process: publishing to a topic that has no subscriber here is one XADD
// and costs this process nothing more. A topic that has had no subscriber in this process,
// no publish through it and no call of Route for the time set by [TopicIdle] is freed in
// this process, with the events it kept in memory; its Route is closed, and the next
// Route(t) makes a new one (a returning subscriber then resumes from the Redis stream).
// So do not keep a topic's Route for later: call Route(t) each time, which is cheap. A topic
// with subscribers is never freed.
type Topics struct {
	client redis.UniversalClient
	prefix string
	cfg    config
	every  time.Duration // how often idle topics are looked for

	mu     sync.Mutex
	topics map[string]*topic
	sweep  *time.Timer // runs while there are topics; nil otherwise
	closed bool
}

// topic is one named Route, with what the sweep needs to tell whether it is idle.
type topic struct {
	route *Route
	used  bool      // Route was called for it since the last sweep
	seen  uint64    // the Route's published and served counts at the last sweep
	quiet time.Time // when the sweep last saw it in use
}

// NewTopics returns an empty [Topics] whose topic t is the Redis stream prefix+t, read
// through client, and whose Routes are configured by opts. It panics if client is nil.
func NewTopics(client redis.UniversalClient, prefix string, opts ...Option) *Topics {
	if client == nil {
		panic("httpsse: redisstream.NewTopics called with a nil redis client")
	}
	cfg := newConfig(opts)
	return &Topics{client: client, prefix: prefix, cfg: cfg, every: cfg.topicIdle / 4, topics: make(map[string]*topic)}
}

// Route returns the Route of the topic, made on first use. After [Topics.Close] it returns
// a closed Route, whose PublishEvent returns [httpsse.ErrClosed] and whose ServeHTTP
// answers 204 No Content.
func (t *Topics) Route(name string) httpsse.Route {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		r := newRoute(t.client, t.prefix+name, t.cfg)
		r.Close()
		return r
	}
	tp, ok := t.topics[name]
	if !ok || tp.route.isClosed() { // a Route its user closed is replaced
		tp = &topic{route: newRoute(t.client, t.prefix+name, t.cfg), quiet: time.Now()}
		t.topics[name] = tp
		if t.sweep == nil {
			t.sweep = time.AfterFunc(t.every, t.sweepIdle)
		}
	}
	tp.used = true
	return tp.route
}

// Close closes every topic's Route in this process and frees them; the Redis streams are
// untouched. It is idempotent and returns nil.
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

// Stats adds up the Stats of the topics alive now in this process.
func (t *Topics) Stats() httpsse.Stats {
	t.mu.Lock()
	routes := make([]*Route, 0, len(t.topics))
	for _, tp := range t.topics {
		routes = append(routes, tp.route)
	}
	t.mu.Unlock()
	var sum httpsse.Stats
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

// Len returns how many topics are alive now in this process.
func (t *Topics) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.topics)
}

// sweepIdle frees the topics that have been idle for cfg.topicIdle. One timer per Topics
// runs it, every quarter of that time, while there are topics.
func (t *Topics) sweepIdle() {
	now := time.Now()
	var idle []*Route
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	for name, tp := range t.topics {
		seen := tp.route.published.Load() + tp.route.served.Load()
		switch {
		case tp.route.serving.Load() > 0 || tp.used || seen != tp.seen:
			tp.used, tp.seen, tp.quiet = false, seen, now
		case now.Sub(tp.quiet) >= t.cfg.topicIdle:
			delete(t.topics, name)
			idle = append(idle, tp.route)
		}
	}
	if len(t.topics) > 0 {
		t.sweep.Reset(t.every)
	} else {
		t.sweep = nil
	}
	t.mu.Unlock()
	for _, r := range idle {
		r.Close()
	}
}
