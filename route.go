package httpsse

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
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
// Until the Route's first subscriber arrives PublishEvent waits, so that events published
// right after [NewRoute] are not lost; after that, an event goes to the subscribers present
// when it is published.
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
}

// RouteOption configures a [Route] made by [NewRoute].
type RouteOption func(*routeConfig)

// WriteTimeout sets how long one write to a subscriber may take before the subscriber is
// disconnected. On HTTP/1.x the deadline is renewed only once half of it has passed, so a
// write gets between d/2 and d. The default is [DefaultWriteTimeout]. Zero or a negative
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

// NewRoute returns a new, open [Route] with no subscribers.
func NewRoute(opts ...RouteOption) Route {
	cfg := routeConfig{writeTimeout: DefaultWriteTimeout, maxQueuedBytes: DefaultMaxQueuedBytes}
	for _, opt := range opts {
		opt(&cfg)
	}
	if cfg.maxQueuedBytes <= 0 {
		cfg.maxQueuedBytes = DefaultMaxQueuedBytes
	}
	return &broadcaster{
		cfg:        cfg,
		publishing: make(chan struct{}, 1),
		closed:     make(chan struct{}),
		attached:   make(chan struct{}),
		compactAt:  minCompact,
	}
}

// broadcaster is the Route. Published events are appended to one log of bytes shared by all
// subscribers; each subscriber only remembers the offset of the next byte it will send, and
// takes everything from there to the end in one write. Bytes that every subscriber has taken
// are released from time to time (compact).
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
	// log holds the bytes from offset base on. Only a publisher (holding publishing)
	// changes log and base, and only by appending past the end or by moving the live part
	// to a new array, so a subscriber may write a slice of it without holding mu.
	log       []byte
	base      int64
	compactAt int
	subs      []*subscriber
	// waiters are the subscribers that found nothing to take and wait on their wake; the
	// next publish signals each of them and empties the list.
	waiters []*subscriber
	// spare is the array of the list that a publish emptied, reused by the next one. Only
	// a publisher (holding publishing) uses it.
	spare []*subscriber
}

// subscriber is one ServeHTTP call. Its fields, but for wake, gone, cutBy and out, are
// guarded by broadcaster.mu.
type subscriber struct {
	next      int64 // the offset of the next byte to send
	index     int   // position in broadcaster.subs
	waitIndex int   // position in broadcaster.waiters while waiting
	waiting   bool  // in broadcaster.waiters
	dropped   bool
	gone      atomic.Bool // the request's context is done: the client went away
	// wake is signalled when there may be something new for the subscriber: an event
	// published while it waited, its drop, Close, or the client leaving. It is the only
	// thing ServeHTTP waits on, because a goroutine parked on one channel receive has a
	// much shallower stack than one parked in a select (see ServeHTTP). Capacity 1: one
	// pending signal is enough for its one receiver, who takes again after every wake-up,
	// and a sender never blocks (see signal).
	wake chan struct{}
	// stopGone stops the context.AfterFunc that sets gone.
	stopGone func() bool
	out      output
	// rc is the subscriber's response, for cut. It may be used from other goroutines only
	// while the subscriber is attached, which ServeHTTP is until it returns.
	rc *http.ResponseController
	// cutBy is the latest deadline, in Unix nanoseconds, that any write may have from now
	// on; 0 when there is none. It is atomic because cut runs outside ServeHTTP's goroutine.
	cutBy atomic.Int64
}

// cut moves the deadline of the subscriber's write, one under way included, to t, so that a
// write blocked on a client that stopped reading ends by then. The write deadline is the
// only thing that interrupts a blocked write without closing the connection.
func (s *subscriber) cut(t time.Time) {
	if old := s.cutBy.Load(); old != 0 && old < t.UnixNano() {
		return // already cut sooner
	}
	// Store before setting the deadline: a ServeHTTP that sets a fresh deadline for its next
	// write checks cutBy afterwards, so one of the two always leaves the cut in place.
	s.cutBy.Store(t.UnixNano())
	if s.rc != nil {
		_ = s.rc.SetWriteDeadline(t)
	}
}

func (r *broadcaster) Close() error {
	r.closeOnce.Do(func() {
		close(r.closed)
		by := time.Now().Add(closeGrace)
		r.mu.Lock()
		for _, s := range r.subs {
			s.cut(by)
			s.signal()
		}
		r.mu.Unlock()
	})
	return nil
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
	if len(r.subs) == 0 || len(r.log) >= r.compactAt {
		r.compact(r.base + int64(start))
	}
	woken := r.waiters
	r.waiters = r.spare
	for _, s := range woken {
		s.waiting = false
	}
	r.mu.Unlock()
	for i, s := range woken {
		s.signal()
		woken[i] = nil
	}
	r.spare = woken[:0]
	return nil
}

// signal wakes the subscriber up if it waits, or makes its next wait return at once.
func (s *subscriber) signal() {
	select {
	case s.wake <- struct{}{}:
	default: // a signal is already pending
	}
}

// compact drops the subscribers that had more than maxQueuedBytes waiting before the event
// starting at offset event, and releases the bytes that every other subscriber has taken.
// It is called with mu held, by a publisher.
func (r *broadcaster) compact(event int64) {
	head := r.base + int64(len(r.log))
	low := head
	for _, s := range r.subs {
		if s.dropped {
			continue
		}
		if event-s.next > int64(r.cfg.maxQueuedBytes) {
			s.dropped = true
			s.cut(time.Now()) // it is most likely blocked in a write
			s.signal()        // make sure the dropped subscriber wakes up and leaves
			continue
		}
		low = min(low, s.next)
	}
	if low > r.base {
		// A new array: a subscriber may still be writing from the old one.
		live := r.log[low-r.base:]
		if len(live) == 0 {
			r.log = nil
		} else {
			r.log = append(make([]byte, 0, 2*len(live)), live...)
		}
		r.base = low
	}
	r.compactAt = max(2*len(r.log), minCompact)
}

// attach adds s, which will receive the events published from now on, or returns false
// when the Route is closed.
func (r *broadcaster) attach(s *subscriber) bool {
	r.mu.Lock()
	if r.isClosed() {
		r.mu.Unlock()
		return false
	}
	s.next = r.base + int64(len(r.log))
	s.index = len(r.subs)
	r.subs = append(r.subs, s)
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
	if s.waiting {
		last = len(r.waiters) - 1
		r.waiters[s.waitIndex] = r.waiters[last]
		r.waiters[s.waitIndex].waitIndex = s.waitIndex
		r.waiters[last] = nil
		r.waiters = r.waiters[:last]
		s.waiting = false
	}
	r.mu.Unlock()
}

// take returns the bytes published since the subscriber last took; when there are none it
// puts the subscriber on the list of waiters, which the next publish signals. ok is false
// when the subscriber has been dropped.
func (r *broadcaster) take(s *subscriber) (p []byte, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if s.dropped {
		return nil, false
	}
	head := r.base + int64(len(r.log))
	if s.next < head {
		p = r.log[s.next-r.base:]
		s.next = head
		return p, true
	}
	if !s.waiting {
		s.waiting = true
		s.waitIndex = len(r.waiters)
		r.waiters = append(r.waiters, s)
	}
	return nil, true
}

// ServeHTTP keeps its own frame small and leaves the work to open, pump and end: an idle
// subscriber's goroutine is parked below it for as long as the stream lasts, and the
// runtime sizes every new goroutine's first stack from the average depth of the stacks in
// use. Parked in a plain channel receive below a few small frames, the goroutines of idle
// subscribers keep that average low enough for new goroutines (net/http's among them) to
// start with the minimum stack; parked in a select below a large frame, they doubled it.
func (r *broadcaster) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	s := r.open(w, req)
	if s == nil {
		return
	}
	defer r.end(s)
	if err := s.out.sendHeaders(); err != nil {
		return
	}
	for r.pump(s) {
		<-s.wake
	}
}

// open starts a subscriber's response and attaches it, or answers 204 No Content and
// returns nil when the Route is closed.
func (r *broadcaster) open(w http.ResponseWriter, req *http.Request) *subscriber {
	if r.isClosed() {
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")

	// The server's ReadTimeout and WriteTimeout are meant for requests that end; on a
	// stream they would cut a healthy client. Lift them here and bound each write instead.
	// On HTTP/1.1 the read deadline also covers the server's background read, whose
	// timeout would cancel the request's context.
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	s := &subscriber{rc: rc, wake: make(chan struct{}, 1)}
	s.out = output{w: w, rc: rc, timeout: r.cfg.writeTimeout, keep: req.ProtoMajor < 2, sub: s}
	s.out.setDeadline(time.Time{})

	// Attach before the headers go out, so that an event published as soon as the client
	// sees them reaches it.
	if !r.attach(s) {
		w.WriteHeader(http.StatusNoContent)
		s.out.end()
		return nil
	}
	s.stopGone = context.AfterFunc(req.Context(), func() {
		s.gone.Store(true)
		s.signal()
	})
	return s
}

// pump sends the subscriber everything published that it has not taken yet, and reports
// whether it should wait for more: it reports false when the client has gone away, when the
// Route is closed (after sending everything published before Close), or when the
// subscriber has been dropped.
func (r *broadcaster) pump(s *subscriber) bool {
	for {
		p, ok := r.take(s)
		if !ok {
			return false
		}
		if len(p) == 0 {
			return !r.isClosed() && !s.gone.Load()
		}
		if err := s.out.send(p); err != nil {
			return false
		}
	}
}

// end detaches the subscriber when its ServeHTTP returns.
func (r *broadcaster) end(s *subscriber) {
	s.stopGone()
	r.detach(s)
	s.out.end()
}

// output writes to one subscriber's response, each write under its own deadline.
type output struct {
	w         http.ResponseWriter
	rc        *http.ResponseController
	timeout   time.Duration
	noTimeout bool // the ResponseWriter has no deadlines (like httptest.ResponseRecorder)
	cleared   bool // no deadline is set
	// keep is set on HTTP/1.x, where a deadline that passes while no write is under way
	// does no harm (the next write sets its own), so send leaves it in place instead of
	// lifting it after every write; ServeHTTP sets a fresh one when it returns, for the
	// end of the response.
	keep  bool
	sub   *subscriber // set once attached, for its cut
	until time.Time   // the deadline set by the last setDeadline
}

// sendHeaders sends the status 200 and the headers, from a goroutine of its own, and waits
// for it. Writing the headers takes net/http's deepest call path, which grows a goroutine's
// stack to 8 KiB; the goroutine of ServeHTTP, which then waits for events for as long as
// the stream lasts, would keep that stack, and the garbage collector cannot shrink it back
// while it waits (its frames, net/http's included, are too deep). Writing an event takes a
// shallower path that fits in the 4 KiB that the goroutine has by then. This saves 4 KiB
// per idle subscriber for one short-lived goroutine per subscriber.
func (o *output) sendHeaders() error {
	type result struct {
		out      output
		err      error
		panicked any
	}
	// Capacity 1: the goroutine never waits to report. It works on a copy of o, which it
	// hands back, so that nothing else is shared with it.
	done := make(chan result, 1)
	go func(res result) {
		defer func() {
			if p := recover(); p != nil {
				res.panicked = p // to panic with on the handler's goroutine, as net/http expects
			}
			done <- res
		}()
		res.out.w.WriteHeader(http.StatusOK)
		res.err = res.out.send(nil)
	}(result{out: *o})
	res := <-done
	if res.panicked != nil {
		panic(res.panicked)
	}
	*o = res.out
	return res.err
}

// send writes p and flushes it, in pieces of at most maxWrite bytes, each with a fresh
// deadline, then lifts the deadline unless keep is set: on HTTP/2 a deadline left in place
// resets the stream when it passes, even while idle.
func (o *output) send(p []byte) error {
	for {
		n := min(len(p), maxWrite)
		o.setWriteDeadline()
		if n > 0 {
			if _, err := o.w.Write(p[:n]); err != nil {
				return err
			}
		}
		p = p[n:]
		if len(p) == 0 {
			break
		}
	}
	err := o.rc.Flush()
	if !o.keep {
		o.setDeadline(time.Time{})
	}
	return err
}

// end sets the deadline for what is written after ServeHTTP returns. On HTTP/1.x net/http
// writes the end of the response then, so that write gets a deadline too; on HTTP/2 the
// server writes it, and a deadline left behind would only reset the finished stream.
func (o *output) end() {
	if o.keep {
		o.setWriteDeadline()
	} else {
		o.setDeadline(time.Time{})
	}
}

// withCut returns t, or the subscriber's cut if that comes sooner (a zero t is no deadline).
func (o *output) withCut(t time.Time) time.Time {
	if o.sub == nil {
		return t
	}
	if cut := o.sub.cutBy.Load(); cut != 0 && (t.IsZero() || cut < t.UnixNano()) {
		return time.Unix(0, cut)
	}
	return t
}

// setWriteDeadline sets the deadline of the next write, then makes sure that a cut made
// meanwhile is not undone.
func (o *output) setWriteDeadline() {
	// On HTTP/1.x a deadline stays in place between writes, so one with at least half of
	// the timeout left is kept: setting it costs a system call's worth of work per write,
	// a tenth of the server's CPU when events go out one by one. A cut is never skipped,
	// because it is already in place (cut sets it itself).
	if o.keep && o.timeout > 0 && !o.until.IsZero() && time.Until(o.until) >= o.timeout/2 {
		return
	}
	var t time.Time
	if o.timeout > 0 {
		t = time.Now().Add(o.timeout)
	}
	t = o.withCut(t)
	o.setDeadline(t)
	if cut := o.withCut(t); !cut.Equal(t) {
		o.setDeadline(cut)
	}
}

func (o *output) setDeadline(t time.Time) {
	if o.noTimeout || (o.timeout <= 0 && t.IsZero() && o.cleared) {
		return
	}
	o.cleared = t.IsZero()
	o.until = t
	if err := o.rc.SetWriteDeadline(t); errors.Is(err, http.ErrNotSupported) {
		o.noTimeout = true
	}
}
