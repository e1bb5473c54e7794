package redisstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	httpsse "github.com/reiver/go-httpsse"
)

// Defaults of the [Option]s.
const (
	DefaultMaxLen         = 10000
	DefaultReplay         = 1000
	DefaultPublishTimeout = 5 * time.Second
	DefaultTopicIdle      = httpsse.DefaultTopicIdle
)

// aheadWait is how long ServeHTTP waits for this process to read the entry named by a
// request's Last-Event-ID, when the client comes from a process that had read further.
const aheadWait = 2 * time.Second

// ErrUnreachable is wrapped by the errors of [Route.PublishEvent] when Redis could not be
// reached (refused, cut, timed out): the event was not appended, and publishing it again
// later may succeed. Test with [errors.Is].
var ErrUnreachable = errors.New("httpsse: redis unreachable")

var errNilPublish = errors.New("httpsse: PublishEvent called with a nil function")

// config is what an [Option] sets.
type config struct {
	maxLen         int64
	replay         int
	publishTimeout time.Duration
	topicIdle      time.Duration
	routeOpts      []httpsse.RouteOption
}

// Option configures a [Route] made by [NewRoute], or the topics of a [Topics].
type Option func(*config)

// MaxLen sets the length that each append trims the Redis stream to, approximately
// (XADD MAXLEN ~ n: Redis trims whole nodes of its radix tree, so the stream may hold
// somewhat more). It bounds both the stream's memory in Redis and how far back a returning
// subscriber can resume. The default is [DefaultMaxLen]; zero or a negative n means the
// default.
func MaxLen(n int64) Option {
	return func(c *config) { c.maxLen = n }
}

// Replay sets how many of the most recent events each process keeps in memory (as
// [httpsse.Replay] does) for subscribers that come back; one that comes back from further
// is served from the Redis stream. The default is [DefaultReplay]; zero or a negative n
// means the default.
func Replay(n int) Option {
	return func(c *config) { c.replay = n }
}

// PublishTimeout bounds how long [Route.PublishEvent] waits for Redis to append an event,
// so that publishing fails fast when Redis is unreachable. It also bounds how long a
// returning subscriber waits for Redis to send the events it missed. The default is
// [DefaultPublishTimeout]; zero or a negative d means the default.
func PublishTimeout(d time.Duration) Option {
	return func(c *config) { c.publishTimeout = d }
}

// TopicIdle sets how long a topic of a [Topics] may go without a subscriber in this
// process, a publish or a call of [Topics.Route] before it is freed in this process (its
// Redis stream is untouched). The default is [DefaultTopicIdle]; zero or a negative d means
// the default. [NewRoute] ignores it.
func TopicIdle(d time.Duration) Option {
	return func(c *config) { c.topicIdle = d }
}

// RouteOptions passes options to the [httpsse.Route] that serves this process's
// subscribers: [httpsse.WriteTimeout], [httpsse.MaxQueuedBytes], [httpsse.ReplayMaxBytes],
// [httpsse.GapEvent], [httpsse.OnDrop]. The Route is always made with [httpsse.Replay] (see
// [Replay]), WaitForSubscriber(false) and a [httpsse.History] that reads the Redis stream,
// which options given here cannot change. Given to [NewTopics], they also configure the
// Topics: [httpsse.MaxTopics] bounds the topics a process holds (see [Topics]).
func RouteOptions(opts ...httpsse.RouteOption) Option {
	return func(c *config) { c.routeOpts = append(c.routeOpts, opts...) }
}

func newConfig(opts []Option) config {
	cfg := config{}
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	if cfg.maxLen <= 0 {
		cfg.maxLen = DefaultMaxLen
	}
	if cfg.replay <= 0 {
		cfg.replay = DefaultReplay
	}
	if cfg.publishTimeout <= 0 {
		cfg.publishTimeout = DefaultPublishTimeout
	}
	if cfg.topicIdle <= 0 {
		cfg.topicIdle = DefaultTopicIdle
	}
	return cfg
}

// Route serves one Redis stream as an event stream: it implements [httpsse.Route].
//
// PublishEvent appends the event to the Redis stream (one XADD, trimming the stream to
// about [MaxLen] entries) and returns; it does not wait for a subscriber. The event reaches
// the subscribers of every process that serves the stream, in the order of the stream, with
// the entry's ID as its ID, so the event's function must not call WriteID: it returns an
// error there, and the event is not sent. An event made of comments alone, such as a
// [httpsse.HeartBeat], is sent to this process's subscribers only and not written to Redis.
// When Redis cannot be reached PublishEvent returns an error that wraps [ErrUnreachable]
// within [PublishTimeout]; nothing is dropped silently.
//
// ServeHTTP serves one subscriber as [httpsse.Route] does. A request whose Last-Event-ID
// names an entry of the stream receives the events after it, from this process's memory
// (see [Replay]) or else from the Redis stream, then the live events, none missing and none
// repeated, whichever process it was connected to before. One whose Last-Event-ID the stream
// no longer holds (trimmed away, or lost in a restart of Redis without persistence) gets
// the gap event of [httpsse.Replay], whose ID is that of the last entry before its live
// events, even in a process that had read nothing of the stream yet. The first subscriber
// of a stream in a process waits, before its response begins, for the reading to learn
// where the stream ends (one round trip to Redis, shared by the streams that start at
// the same time).
//
// Close stops this process's reading of the stream and ends its subscribers cleanly;
// ServeHTTP answers 204 No Content afterwards and PublishEvent returns [httpsse.ErrClosed].
// Other processes and the Redis stream are untouched. Close is idempotent and returns nil.
type Route struct {
	client redis.UniversalClient
	stream string
	cfg    config
	local  httpsse.Route
	feed   *feed

	// publishing serializes the publishers' functions (never two at once, as on any Route).
	publishing sync.Mutex

	mu     sync.Mutex // guards rd and the closing of closed
	rd     *reader    // the reading loop that feeds local; nil until it is started
	closed chan struct{}

	published atomic.Uint64 // events appended to Redis
	served    atomic.Uint64 // ServeHTTP calls begun or ended
	serving   atomic.Int64  // ServeHTTP calls running
}

// NewRoute returns a Route that serves the Redis stream named stream through client. It
// starts reading the stream at once, from its current end, which it asks Redis for: when
// Redis does not answer, NewRoute returns after [PublishTimeout] at most, and the reading
// starts from the stream's end as it is when Redis answers again. It panics if client is
// nil.
func NewRoute(client redis.UniversalClient, stream string, opts ...Option) *Route {
	r := newRoute(client, stream, newConfig(opts))
	r.startFeed()
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.publishTimeout)
	_, _ = r.feed.waitPast(ctx, "")
	cancel()
	return r
}

func newRoute(client redis.UniversalClient, stream string, cfg config) *Route {
	if client == nil {
		panic("httpsse: redisstream.NewRoute called with a nil redis client")
	}
	r := &Route{client: client, stream: stream, cfg: cfg, closed: make(chan struct{})}
	r.feed = &feed{stream: stream}
	opts := append(cfg.routeOpts[:len(cfg.routeOpts):len(cfg.routeOpts)],
		httpsse.Replay(cfg.replay),
		httpsse.WaitForSubscriber(false),
		httpsse.ReplayFrom(&history{client: client, stream: stream, feed: r.feed, timeout: cfg.publishTimeout}),
	)
	r.local = httpsse.NewRoute(opts...)
	r.feed.local = r.local
	return r
}

func (r *Route) isClosed() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}

// startFeed starts the reading of the stream for this Route, unless it is started or the
// Route is closed. It reports whether the Route is open. It does not wait: the reader
// looks up where the stream ends, with those of the other feeds added meanwhile, and the
// callers wait for that with waitPast.
func (r *Route) startFeed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.isClosed() {
		return false
	}
	if r.rd == nil {
		r.rd = addFeed(r.client, r.feed)
	}
	return true
}

// PublishEvent appends the event that fn writes to the Redis stream; see [Route].
func (r *Route) PublishEvent(fn func(httpsse.EventWriter) error) error {
	if fn == nil {
		return errNilPublish
	}
	if r.isClosed() {
		return httpsse.ErrClosed
	}
	r.publishing.Lock()
	fields, err := encodeEvent(fn)
	r.publishing.Unlock()
	if err != nil || len(fields) == 0 {
		return err
	}
	if commentOnly(fields) {
		return r.local.PublishEvent(func(w httpsse.EventWriter) error { return writeFields(w, string(fields)) })
	}
	r.published.Add(1)
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.publishTimeout)
	defer cancel()
	err = r.client.XAdd(ctx, &redis.XAddArgs{
		Stream: r.stream,
		MaxLen: r.cfg.maxLen,
		Approx: true,
		Values: []interface{}{entryField, fields},
	}).Err()
	if err != nil {
		return appendError(r.stream, err)
	}
	return nil
}

// appendError describes a failed XADD, telling a refusal by Redis from Redis out of reach.
func appendError(stream string, err error) error {
	var reply redis.Error
	if errors.As(err, &reply) {
		return fmt.Errorf("httpsse: redis refused to append to stream %q: %w", stream, err)
	}
	return fmt.Errorf("%w: appending to stream %q: %w", ErrUnreachable, stream, err)
}

// ServeHTTP serves one subscriber; see [Route].
func (r *Route) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.served.Add(1)
	r.serving.Add(1)
	defer func() {
		r.serving.Add(-1)
		r.served.Add(1)
	}()
	// If Redis did not answer, the subscriber is attached all the same, and its live
	// events begin where the reading starts; closed, r.local answers 204.
	_ = r.ready(req.Context(), req.Header.Get("Last-Event-ID"))
	r.local.ServeHTTP(w, req)
}

// Local is used by [httpsse.Topics.Serve]; a program has no need to call it. It readies the
// Route for a subscriber resuming from lastEventID ("" when none), as ServeHTTP does before
// it serves a request: it starts this process's reading of the stream and waits until the
// reading knows where the stream ends, and, when lastEventID is an entry ID, until this
// process has read that entry (up to 2 s). It then returns the [httpsse.Route] that serves
// this process's subscribers of the stream, to which Serve attaches its subscriber. It
// returns an error that wraps [httpsse.ErrClosed] after [Route.Close], and one that wraps
// [ErrUnreachable] when Redis did not answer within [PublishTimeout] (Serve answers 503
// Service Unavailable): the point where a subscriber joins a topic is part of the ID that
// Serve gives it, and it is known only once the reading has started.
func (r *Route) Local(ctx context.Context, lastEventID string) (httpsse.Route, error) {
	if err := r.ready(ctx, lastEventID); err != nil {
		return nil, err
	}
	return r.local, nil
}

// ready is what ServeHTTP and Local do before a subscriber is attached to r.local.
func (r *Route) ready(ctx context.Context, lastEventID string) error {
	if !r.startFeed() {
		return httpsse.ErrClosed
	}
	// Attach the subscriber once the feed knows where it starts (at once but for the
	// first subscriber of a stream), so that its live events begin after an entry the
	// stream holds: an event appended after its response's headers reaches it, and a gap
	// event names that entry.
	wait, cancel := context.WithTimeout(ctx, r.cfg.publishTimeout)
	_, err := r.feed.waitPast(wait, "")
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%w: starting to read stream %q: no answer within %v", ErrUnreachable, r.stream, r.cfg.publishTimeout)
	}
	if lastEventID != "" {
		// A client coming from a process that had read further than this one names an
		// entry this one has not published yet; attached now, it would receive again the
		// entries up to it. Wait until this process has read it (briefly: it is in Redis).
		wait, cancel := context.WithTimeout(ctx, aheadWait)
		_, _ = r.feed.waitPast(wait, lastEventID)
		cancel()
	}
	return nil
}

// Close stops this process's reading of the stream and ends its subscribers; see [Route].
func (r *Route) Close() error {
	r.mu.Lock()
	if r.isClosed() {
		r.mu.Unlock()
		return nil
	}
	close(r.closed)
	rd := r.rd
	r.mu.Unlock()
	if rd != nil {
		rd.removeFeed(r.feed)
	}
	return r.local.Close()
}

// Stats returns what this process's Route has done so far, as [httpsse.StatsOf] does for
// any Route: Published counts the events it received from the Redis stream and sent to its
// subscribers, from the last entry the stream held when this process began to read it.
func (r *Route) Stats() httpsse.Stats {
	return httpsse.StatsOf(r.local)
}
