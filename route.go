package httpsse

import (
	"errors"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"
)

// ContentType is the media type of an event stream.
const ContentType = "text/event-stream"

// Route is a fan-out broadcaster of server-sent events. Every call of its ServeHTTP is one
// subscriber, and every event published with PublishEvent goes to every subscriber.
//
// A Route serves either pattern equally well:
//
//   - per request: a handler creates a Route with [NewRoute], starts a goroutine that
//     publishes to it, calls ServeHTTP, and closes the Route when ServeHTTP returns
//     (defer route.Close()); the publishing goroutine stops when PublishEvent returns
//     [ErrClosed];
//   - shared: one Route mounted on a mux serves thousands of subscribers, and a publisher
//     sends each event once to all of them.
//
// ServeHTTP answers 200 with the headers Content-Type: text/event-stream,
// Cache-Control: no-cache and X-Accel-Buffering: no, flushes them at once, then streams each
// event as it is published, through the response's [http.ResponseController] (so it works on
// HTTP/1.1 and HTTP/2, and behind middleware whose ResponseWriter has an Unwrap method). The
// server's ReadTimeout and WriteTimeout would cut a long stream, so ServeHTTP lifts them and
// sets a deadline on each write instead (see [WriteTimeout]): a client that stops reading
// cannot hold a handler for longer than that. ServeHTTP returns when the client goes away,
// when the Route is closed (after sending what was already published), or when the subscriber
// falls more than [MaxQueuedBytes] behind and is dropped. On a closed Route it answers
// 204 No Content, which tells an EventSource not to reconnect.
//
// PublishEvent runs its function with an [EventWriter] and sends the event it writes. Calls
// are serialized, and each event is encoded once and its bytes go to every subscriber in
// publish order. If the function returns an error, or any of its Write calls failed, nothing
// of the event is sent and PublishEvent returns that error. PublishEvent(nil) is an error.
// The function must not call PublishEvent on the same Route: the call would wait for the
// function to return, forever, and so would every later publish on the Route; publish the
// next event after the first call returns.
// Until the Route's first subscriber arrives PublishEvent waits, so that events published
// right after [NewRoute] are not lost (a shared Route mounted at start-up turns that off with
// [WaitForSubscriber]); after that, an event goes to the subscribers present when it is
// published.
//
// Close ends every ServeHTTP (each response ends cleanly, after what was already published;
// a client that has stopped reading gets one second, then its write is cut), makes
// PublishEvent return [ErrClosed] and stops the Route's heartbeats. Close is idempotent and
// always returns nil.
// To let [http.Server.Shutdown] finish with open streams, register it:
// srv.RegisterOnShutdown(func() { route.Close() }).
//
// All methods may be called from several goroutines at once.
type Route interface {
	io.Closer
	http.Handler
	PublishEvent(func(EventWriter) error) error
}

// Defaults of the [RouteOption]s.
const (
	DefaultWriteTimeout   = 10 * time.Second
	DefaultMaxQueuedBytes = 4 << 20
)

// minCompact is the size the event log may reach before the bytes that every subscriber has
// taken are released.
const minCompact = 4 << 10

// closeGrace is how long, after Close, a subscriber has to take what was published before
// Close; a subscriber blocked in a write longer than that is cut off, so Close (and an
// http.Server.Shutdown waiting for the handlers) is never held up by a stalled client.
const closeGrace = time.Second

// maxWrite is the most a subscriber writes under one deadline: a client reading slowly but
// steadily makes progress within each deadline even when it is far behind.
const maxWrite = 64 << 10

var errNilPublish = errors.New("httpsse: PublishEvent called with a nil function")

// routeConfig is what a [RouteOption] sets.
type routeConfig struct {
	writeTimeout   time.Duration
	maxQueuedBytes int
	waitFirst      bool
	replay         int
	replayMaxBytes int
	gapEvent       string
	history        History
	onDrop         func(*http.Request, error)
	topicIdle      time.Duration
	maxTopics      int
	keepAlive      time.Duration
}

// RouteOption configures a [Route] made by [NewRoute].
type RouteOption func(*routeConfig)

// WriteTimeout sets how long one write to a subscriber may take before the subscriber is
// disconnected. On HTTP/1.x the deadline is renewed only once half of it has passed, so a
// write gets between d/2 and d. On HTTP/2, where setting a deadline costs a round trip
// through the connection's goroutine, writes carry none: one timer per Route looks every d/4
// for a write that has gone on for longer than d, so a write gets between d and 1¼ d. The
// default is [DefaultWriteTimeout]. Zero or a negative
// duration sets no deadline, so a client that stops reading holds its handler until the
// connection breaks (or the Route drops it for being too far behind).
func WriteTimeout(d time.Duration) RouteOption {
	return func(c *routeConfig) { c.writeTimeout = d }
}

// MaxQueuedBytes sets how many bytes of published events may wait for one subscriber, not
// counting the event being published and what it is writing at the moment. A subscriber
// further behind is dropped: its ServeHTTP returns, and the others go on. The default is
// [DefaultMaxQueuedBytes]; zero or a negative value means the default. The queue is shared
// by all subscribers, so the bound costs memory only while a subscriber is behind.
func MaxQueuedBytes(n int) RouteOption {
	return func(c *routeConfig) { c.maxQueuedBytes = n }
}

// WaitForSubscriber sets whether [Route.PublishEvent] waits for the Route's first subscriber
// before its first event. It does by default, which the per-request pattern needs: the
// handler starts a goroutine that publishes right away, and its first events must not be
// lost before ServeHTTP has attached the request. A shared Route mounted at start-up, or a
// Route made on demand for a publisher (one per user, say), must not hold its publisher until
// someone connects: WaitForSubscriber(false) makes PublishEvent return at once, and an event
// published while nobody listens goes to nobody (or, with [Replay], is retained).
func WaitForSubscriber(on bool) RouteOption {
	return func(c *routeConfig) { c.waitFirst = on }
}

// config applies opts to the defaults. A nil option is skipped.
func config(opts []RouteOption) routeConfig {
	cfg := routeConfig{
		writeTimeout:   DefaultWriteTimeout,
		maxQueuedBytes: DefaultMaxQueuedBytes,
		waitFirst:      true,
		replayMaxBytes: DefaultReplayMaxBytes,
		gapEvent:       DefaultGapEvent,
		topicIdle:      DefaultTopicIdle,
		maxTopics:      DefaultMaxTopics,
	}
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	if cfg.maxQueuedBytes <= 0 {
		cfg.maxQueuedBytes = DefaultMaxQueuedBytes
	}
	if cfg.replayMaxBytes <= 0 {
		cfg.replayMaxBytes = DefaultReplayMaxBytes
	}
	if cfg.maxTopics <= 0 {
		cfg.maxTopics = DefaultMaxTopics
	}
	if cfg.replay > 0 {
		cfg.maxQueuedBytes = max(cfg.maxQueuedBytes, cfg.replayMaxBytes)
	}
	return cfg
}

// NewRoute returns a new, open [Route] with no subscribers, configured by opts (a nil
// option is skipped).
func NewRoute(opts ...RouteOption) Route {
	return newBroadcaster(config(opts))
}

func newBroadcaster(cfg routeConfig) *broadcaster {
	r := &broadcaster{
		cfg:        cfg,
		publishing: make(chan struct{}, 1),
		closed:     make(chan struct{}),
		attached:   make(chan struct{}),
		headerJobs: make(chan *headerJob),
		compactAt:  minCompact,
	}
	if cfg.replay > 0 {
		r.retain = newRetention(cfg)
	}
	if !cfg.waitFirst {
		r.attachOnce.Do(func() { close(r.attached) })
	}
	return r
}

// broadcaster is the Route. Published events are appended to one log of bytes shared by all
// subscribers; each subscriber only remembers the offset of the next byte it will send, and
// takes everything from there to the end in one write. Bytes that every subscriber has taken
// are released from time to time (compact).
//
// Subscribers take without the lock, through head, view and wake: a publish wakes a thousand
// subscribers at once, and a thousand goroutines queueing for one mutex to learn where the log
// ends would be served one by one, each hand-off waiting for the scheduler.
type broadcaster struct {
	cfg routeConfig

	// publishing holds a token while a PublishEvent runs: a lock that a waiter can give up
	// on when the Route closes. Capacity 1 because one publisher at a time holds it.
	publishing chan struct{}
	closed     chan struct{}
	closeOnce  sync.Once
	attached   chan struct{} // closed when the first subscriber arrives
	attachOnce sync.Once

	mu sync.Mutex
	// log holds the bytes from offset base on. Only a publisher (holding publishing and mu)
	// changes log and base, and only by appending past the end or by moving the live part
	// to a new array, so a subscriber may write a slice of it without holding mu.
	log       []byte
	base      int64
	compactAt int
	subs      []*subscriber

	// head is base+len(log), stored after the bytes it covers are in view.
	head atomic.Int64
	// view is the log's array as of the last publish or compaction.
	view atomic.Pointer[logView]
	// wake is closed by the next publish (or Close), waking every subscriber that found
	// nothing to take: one channel for all of them, so that a waiting subscriber costs no
	// channel, list entry or callback of its own. nil until a subscriber waits.
	wake atomic.Pointer[signal]

	// headerJobs hands a new subscriber's headers to a writeHeaders goroutine waiting for
	// one (see sendHeaders); a nil job ends one. Each waiting writer is kept by one of the
	// subscribers in idleWriters, and ends when that subscriber is detached.
	headerJobs  chan *headerJob
	idleWriters []*subscriber

	// graceTimer cuts the stragglers a second after Close; stopped when the last one leaves.
	graceTimer *time.Timer
	// watchTimer runs watch while watched is above zero: the subscribers attached whose
	// writes carry no deadline of their own (output.watch).
	watchTimer *time.Timer
	watched    int

	retain *retention // nil without Replay
	stats  Stats      // Subscribers is len(subs), filled in by Stats
}

// logView is the log's array for subscribers reading without the lock: the byte at offset o
// is mem[o-base]. Bytes below head are never written again: a publisher appends past head, and
// a compaction copies the live bytes to a new array.
type logView struct {
	base int64
	mem  []byte // the whole array, up to its capacity
}

// signal is one wake-up: closing c wakes every subscriber waiting on it.
type signal struct{ c chan struct{} }

// subscriber is one ServeHTTP call. next is written by its ServeHTTP only and read by a
// publisher's compaction; dropped is set by a compaction; index is guarded by broadcaster.mu.
type subscriber struct {
	next    atomic.Int64 // the offset of the next byte to send
	dropped atomic.Bool
	// busy is set from attach until the subscriber waits, and again from each wake-up, so
	// that Close can tell who may still be writing (see cutStragglers).
	busy  atomic.Bool
	index int32 // position in broadcaster.subs; -1 once detached
	// out is the response it writes to: its own, or, for a subscriber of several topics
	// (Topics.Serve), the one response that its subscribers of each topic share.
	out    *output
	resume resume // how it starts, when it came back with a Last-Event-ID
}

func (r *broadcaster) Close() error {
	r.closeOnce.Do(func() {
		close(r.closed)
		r.wakeWaiters()
		r.mu.Lock()
		if len(r.subs) > 0 {
			r.graceTimer = time.AfterFunc(closeGrace, r.cutStragglers)
		}
		r.mu.Unlock()
	})
	return nil
}

// cutStragglers cuts the writes of the subscribers that, closeGrace after Close, are still
// attached and may still be writing: those behind the head, and those busy. The others have
// sent everything and will return as soon as they run; on HTTP/2 a deadline that passes
// resets the stream even with nothing left to write, so they are left alone. next is read
// before busy: a subscriber sets busy before it takes, so one seen at the head and not
// busy has nothing left to write.
func (r *broadcaster) cutStragglers() {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.graceTimer = nil
	head := r.head.Load()
	for _, s := range r.subs {
		if s.next.Load() < head || s.busy.Load() {
			s.out.cut(now)
		}
	}
}

// watch cuts the watched subscribers whose write has gone on for longer than the write
// timeout, and runs again a quarter of the timeout later while any are attached. It is
// the write deadline of HTTP/2 subscribers (see output.watch): one timer for the Route,
// none per subscriber or write, and a write is cut within 1¼ times the timeout.
func (r *broadcaster) watch() {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.watchTimer == nil {
		return // stopped since
	}
	before := now.UnixNano() - int64(r.cfg.writeTimeout)
	for _, s := range r.subs {
		if since := s.out.since.Load(); s.out.watch && since != 0 && since < before {
			s.out.watchCut.Store(true)
			s.out.cut(now)
		}
	}
	r.watchTimer.Reset(r.watchEvery())
}

func (r *broadcaster) watchEvery() time.Duration {
	return max(r.cfg.writeTimeout/4, time.Millisecond)
}

func (r *broadcaster) isClosed() bool {
	select {
	case <-r.closed:
		return true
	default:
		return false
	}
}

func (r *broadcaster) PublishEvent(fn func(EventWriter) error) error {
	return r.publish(fn, nil)
}

// errHeartBeatStopped ends a heartbeat's publish when the heartbeat is closed.
var errHeartBeatStopped = errors.New("httpsse: heartbeat stopped")

// publish is PublishEvent that also gives up when stop is closed.
func (r *broadcaster) publish(fn func(EventWriter) error, stop <-chan struct{}) error {
	if fn == nil {
		return errNilPublish
	}
	select {
	case <-r.attached:
	case <-r.closed:
		return ErrClosed
	case <-stop:
		return errHeartBeatStopped
	}
	select {
	case r.publishing <- struct{}{}:
	case <-r.closed:
		return ErrClosed
	case <-stop:
		return errHeartBeatStopped
	}
	defer func() { <-r.publishing }()
	if r.isClosed() {
		return ErrClosed
	}

	start := len(r.log)
	enc := &encoder{buf: r.log}
	err := fn(enc)
	var id string
	if enc.err == nil && enc.fields && r.retain != nil {
		if enc.hasID {
			id = enc.id
		} else {
			enc.buf, id = r.retain.appendID(enc.buf)
		}
	}
	log, encErr := enc.finish()
	if err == nil {
		err = encErr
	}
	if err != nil {
		return err
	}
	if len(log) == start+1 { // no field was written: a lone blank line means nothing
		return nil
	}

	r.mu.Lock()
	r.log = log
	begin, end := r.base+int64(start), r.base+int64(len(log))
	if enc.fields {
		r.stats.Published++
		if r.retain != nil {
			r.retain.add(begin, end, id)
		}
	}
	// With nobody to send to and nothing retained the log can go at once; otherwise it is
	// released once it has doubled, so that the bytes kept are copied only now and then.
	if len(r.subs) == 0 && r.retain == nil || len(r.log) >= r.compactAt {
		r.compact(begin)
	}
	r.publishView()
	r.mu.Unlock()
	r.wakeWaiters()
	return nil
}

// publishView shows subscribers the log as it is now: its array, if that has changed, then
// its end. It is called with mu held, by a publisher and by attach. With nobody attached
// nobody reads the view, so it is left as it is until someone is.
func (r *broadcaster) publishView() {
	v := r.view.Load()
	if len(r.subs) > 0 && (v == nil || v.base != r.base || unsafe.SliceData(v.mem) != unsafe.SliceData(r.log)) {
		r.view.Store(&logView{base: r.base, mem: r.log[:cap(r.log)]})
	}
	r.head.Store(r.base + int64(len(r.log)))
}

// wakeWaiters wakes every subscriber waiting for a publish. It is called after head has
// moved (or the Route has closed): a subscriber that got its signal before this sees it
// closed, and one that gets a new signal after this sees the new head.
func (r *broadcaster) wakeWaiters() {
	if w := r.wake.Swap(nil); w != nil {
		close(w.c)
	}
}

// signal returns the signal that the next publish closes, making it if nobody has yet.
func (r *broadcaster) signal() *signal {
	for {
		if w := r.wake.Load(); w != nil {
			return w
		}
		w := &signal{c: make(chan struct{})}
		if r.wake.CompareAndSwap(nil, w) {
			return w
		}
	}
}

// compact drops the subscribers that had more than maxQueuedBytes waiting before the event
// starting at offset event, and releases the bytes that every other subscriber has taken.
// It is called with mu held, by a publisher, which wakes the waiting subscribers afterwards
// (a dropped subscriber is most likely blocked in a write, which the cut ends).
func (r *broadcaster) compact(event int64) {
	head := r.base + int64(len(r.log))
	low := head
	for _, s := range r.subs {
		if s.dropped.Load() {
			continue
		}
		next := s.next.Load()
		if event-next > int64(r.cfg.maxQueuedBytes) {
			s.dropped.Store(true)
			r.stats.DroppedBehind++
			s.out.cut(time.Now())
			continue
		}
		low = min(low, next)
	}
	if r.retain != nil {
		low = min(low, r.retain.start(head))
	}
	if low > r.base {
		live := r.log[low-r.base:]
		switch {
		case len(live) == 0 && len(r.subs) == 0 && cap(r.log) <= minCompact:
			r.log = r.log[:0] // nobody is reading it, and it is small: it serves again
		case len(live) == 0:
			r.log = nil
		default:
			// A new array: a subscriber may still be writing from the old one.
			r.log = append(make([]byte, 0, 2*len(live)), live...)
		}
		r.base = low
	}
	r.compactAt = max(2*len(r.log), minCompact)
}

// attach adds s, which will receive the events published from now on (or, with Replay, from
// where lastEventID says), or returns false when the Route is closed. With Replay, and join
// not nil, it sets *join to the ID of the point s joined the live events at.
func (r *broadcaster) attach(s *subscriber, lastEventID string, join *string) bool {
	r.mu.Lock()
	if r.isClosed() {
		r.mu.Unlock()
		return false
	}
	s.busy.Store(true)
	s.resume = r.place(s, lastEventID)
	if join != nil && r.retain != nil {
		*join = r.retain.joinID()
	}
	s.index = int32(len(r.subs))
	r.subs = append(r.subs, s)
	if s.out.watch {
		r.watched++
		if r.watchTimer == nil {
			r.watchTimer = time.AfterFunc(r.watchEvery(), r.watch)
		}
	}
	if r.cfg.keepAlive > 0 && len(r.subs) == 1 {
		keepAwake(r)
	}
	r.publishView() // a returning subscriber may start before head
	r.mu.Unlock()
	r.attachOnce.Do(func() { close(r.attached) })
	return true
}

func (r *broadcaster) detach(s *subscriber) {
	r.mu.Lock()
	last := len(r.subs) - 1
	r.subs[s.index] = r.subs[last]
	r.subs[s.index].index = s.index
	r.subs[last] = nil
	r.subs = r.subs[:last]
	s.index = -1
	if s.out.watch {
		r.watched--
		if r.watched == 0 && r.watchTimer != nil {
			r.watchTimer.Stop()
			r.watchTimer = nil
		}
	}
	if r.cfg.keepAlive > 0 && len(r.subs) == 0 {
		letSleep(r)
	}
	if r.graceTimer != nil && len(r.subs) == 0 {
		// The last one has gone: nothing to cut, and the timer would hold the Route.
		r.graceTimer.Stop()
		r.graceTimer = nil
	}
	release := r.releaseWriter(s)
	r.mu.Unlock()
	if release {
		r.headerJobs <- nil
	}
}

// take returns the bytes published since the subscriber last took. When there are none it
// returns the channel that the next publish closes instead. ok is false when the subscriber
// has been dropped, or when there is nothing to take and the Route is closed. It takes no
// lock (see broadcaster).
func (r *broadcaster) take(s *subscriber) (p []byte, published <-chan struct{}, ok bool) {
	var w *signal
	for {
		if s.dropped.Load() {
			return nil, nil, false
		}
		head, next := r.head.Load(), s.next.Load()
		if next < head {
			// The view is the one head was stored with, or a newer one, which holds the
			// same bytes from the oldest offset a subscriber still needs; only a dropped
			// subscriber can be behind its base.
			v := r.view.Load()
			if next < v.base {
				return nil, nil, false
			}
			s.next.Store(head)
			return v.mem[next-v.base : head-v.base], nil, true
		}
		if w != nil {
			break
		}
		// Get the signal first, then look at head again: a publish that moved head after
		// the first look has either closed this signal or will.
		w = r.signal()
	}
	if r.isClosed() {
		return nil, nil, false
	}
	return nil, w.c, true
}

// ServeHTTP serves one subscriber (see [Route]). Between writes its goroutine waits on two
// channels that exist anyway: the one that the next publish closes for every waiting
// subscriber at once, and the request's Done, which net/http closes when the client goes
// away. An idle subscriber costs no channel, timer or callback of its own.
func (r *broadcaster) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	s := r.open(w, req)
	if s == nil {
		return
	}
	defer r.end(s, req)
	if err := r.sendHeaders(s, nil); err != nil {
		return
	}
	if s.resume != (resume{}) && !r.catchUp(s, req, s.resume) {
		return
	}
	gone := req.Context().Done()
	for {
		published, ok := r.pump(s)
		if !ok || s.out.due() && !r.keepAlive(s) || !wait(published, gone) {
			return
		}
		// A publish puts every subscriber it wakes on the run queue of the publisher's
		// processor, and a processor serves its own queue before the global one. Without
		// this yield the subscribers that keep up would be woken and write again at each
		// publish while those still waiting from an earlier one wait on; yielding sends each
		// to the back of the global queue, so that they take their turns in order.
		runtime.Gosched()
	}
}

// wait waits until published or gone is closed and reports whether it was published. It
// is a function of its own so that the select's frame is on the stack only while waiting:
// a handler's goroutine has 4 KiB of stack, and an event is written through net/http's
// frames and the middleware's, below ServeHTTP's; when that does not fit, the stack doubles
// and stays doubled while the subscriber waits.
//
//go:noinline
func wait(published, gone <-chan struct{}) bool {
	select {
	case <-published:
		return true
	case <-gone:
		return false
	}
}

// open starts a subscriber's response and attaches it, or answers 204 No Content and
// returns nil when the Route is closed.
func (r *broadcaster) open(w http.ResponseWriter, req *http.Request) *subscriber {
	if r.isClosed() {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	// The subscriber and its output in one allocation.
	one := &struct {
		s subscriber
		o output
	}{}
	s := &one.s
	s.out = &one.o
	s.out.open(w, req, r.cfg.writeTimeout, r.cfg.keepAlive)
	// Attach before the headers go out, so that an event published as soon as the client
	// sees them reaches it.
	if !r.attach(s, req.Header.Get("Last-Event-ID"), nil) {
		w.WriteHeader(http.StatusNoContent)
		s.out.end()
		return nil
	}
	return s
}

// pump sends the subscriber everything published that it has not taken yet, and returns
// the channel that tells when there is more. It reports false when the Route is closed
// (after sending everything published before Close), when the subscriber has been
// dropped, or when a write failed.
func (r *broadcaster) pump(s *subscriber) (published <-chan struct{}, ok bool) {
	for {
		s.busy.Store(true)
		p, published, ok := r.take(s)
		if !ok || len(p) == 0 {
			s.busy.Store(false)
			return published, ok
		}
		if err := s.out.send(p); err != nil {
			return nil, false
		}
	}
}

// keepAlive sends the KeepAlive comment, and reports whether it could.
func (r *broadcaster) keepAlive(s *subscriber) bool {
	s.busy.Store(true)
	defer s.busy.Store(false)
	return s.out.send(keepAliveComment) == nil
}

// end detaches the subscriber when its ServeHTTP returns, and reports its drop, if it was
// dropped.
func (r *broadcaster) end(s *subscriber, req *http.Request) {
	r.detach(s)
	s.out.end()
	if err := r.dropReason(s); err != nil && r.cfg.onDrop != nil {
		r.cfg.onDrop(req, err)
	}
}
