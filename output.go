package httpsse

import (
	"errors"
	"net/http"
	"sync/atomic"
	"time"
)

// output writes to one subscriber's response, each write under its own deadline. Only the
// subscriber's ServeHTTP uses it, but for cut, which may be called from any goroutine while
// the subscriber is attached.
type output struct {
	w       http.ResponseWriter
	rc      http.ResponseController
	timeout time.Duration
	// until is the deadline set by the last setDeadline, in Unix nanoseconds; 0 is none.
	until int64
	// cutBy is the latest deadline, in Unix nanoseconds, that any write may have from now
	// on; 0 when there is none. It is atomic because cut runs outside ServeHTTP's goroutine.
	cutBy     atomic.Int64
	noTimeout bool // the ResponseWriter has no deadlines (like httptest.ResponseRecorder)
	cleared   bool // no deadline is set
	// timedOut is set when a write failed after its deadline had passed.
	timedOut bool
	// keep is set on HTTP/1.x, where a deadline that passes while no write is under way
	// does no harm (the next write sets its own), so send leaves it in place instead of
	// lifting it after every write; ServeHTTP sets a fresh one when it returns, for the
	// end of the response.
	keep bool
	// watch is set on HTTP/2 with a timeout. There setting a write deadline and lifting it
	// again (a deadline left in place resets the stream when it passes, even while idle)
	// are each a round trip through the connection's goroutine, so writes carry no
	// deadline: since tells when the write under way began, and the Route's watchdog cuts
	// one that has gone on for longer than the timeout (see broadcaster.watch).
	watch    bool
	since    atomic.Int64 // Unix nanoseconds; 0 when no write is under way
	watchCut atomic.Bool  // the watchdog cut a write
	// keepAlive is the KeepAlive time (0: none); lastSend is when the last send ended, in
	// Unix nanoseconds, kept only with a keepAlive.
	keepAlive time.Duration
	lastSend  int64
}

// open sets the event-stream headers of the response, which ServeHTTP has not written yet,
// and readies the output for writes that each get the timeout (none when zero or less).
func (o *output) open(w http.ResponseWriter, req *http.Request, timeout, keepAlive time.Duration) {
	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	o.w, o.rc, o.timeout, o.keep = w, *http.NewResponseController(w), timeout, req.ProtoMajor < 2
	// The server's ReadTimeout and WriteTimeout are meant for requests that end; on a
	// stream they would cut a healthy client. Lift them here and bound each write instead.
	// On HTTP/1.1 the read deadline also covers the server's background read, whose
	// timeout would cancel the request's context.
	_ = o.rc.SetReadDeadline(time.Time{})
	o.setDeadline(0)
	o.watch = !o.keep && o.timeout > 0 && !o.noTimeout
	o.keepAlive = keepAlive
}

// cut moves the deadline of the output's writes, one under way included, to t, so that a
// write blocked on a client that stopped reading ends by then. The write deadline is the
// only thing that interrupts a blocked write without closing the connection.
func (o *output) cut(t time.Time) {
	if old := o.cutBy.Load(); old != 0 && old < t.UnixNano() {
		return // already cut sooner
	}
	// Store before setting the deadline: a ServeHTTP that sets a fresh deadline for its next
	// write checks cutBy afterwards, so one of the two always leaves the cut in place.
	o.cutBy.Store(t.UnixNano())
	_ = o.rc.SetWriteDeadline(t)
}

// send writes p and flushes it, in pieces of at most maxWrite bytes, each with a fresh
// deadline, then lifts the deadline unless keep is set: on HTTP/2 a deadline left in place
// resets the stream when it passes, even while idle.
func (o *output) send(p []byte) error {
	return o.sent(o.write(p))
}

// sent ends a send that returned err, telling a write that timed out.
func (o *output) sent(err error) error {
	if o.watch {
		o.since.Store(0)
	}
	if o.keepAlive > 0 {
		o.lastSend = time.Now().UnixNano()
	}
	if err != nil && (o.until != 0 && time.Now().UnixNano() >= o.until || o.watchCut.Load()) {
		o.timedOut = true
	}
	return err
}

func (o *output) write(p []byte) error {
	for {
		n := min(len(p), maxWrite)
		o.startWrite()
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
	return o.flush()
}

// startWrite gives the write about to begin its time limit.
func (o *output) startWrite() {
	if o.watch {
		o.since.Store(time.Now().UnixNano())
	} else {
		o.setWriteDeadline()
	}
}

func (o *output) flush() error {
	err := o.rc.Flush()
	if !o.keep && !o.watch {
		o.setDeadline(0)
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
		o.setDeadline(0)
	}
}

// withCut returns the deadline t, or the cut if that comes sooner (0 is no deadline).
func (o *output) withCut(t int64) int64 {
	if cut := o.cutBy.Load(); cut != 0 && (t == 0 || cut < t) {
		return cut
	}
	return t
}

// setWriteDeadline sets the deadline of the next write, then makes sure that a cut made
// meanwhile is not undone.
func (o *output) setWriteDeadline() {
	var t int64
	if o.timeout > 0 {
		now := time.Now().UnixNano()
		// On HTTP/1.x a deadline stays in place between writes, so one with at least half
		// of the timeout left is kept: setting it costs a system call's worth of work per
		// write, a tenth of the server's CPU when events go out one by one. A cut is never
		// skipped, because it is already in place (cut sets it itself).
		if o.keep && o.until != 0 && o.until-now >= int64(o.timeout/2) {
			return
		}
		t = now + int64(o.timeout)
	}
	t = o.withCut(t)
	o.setDeadline(t)
	if cut := o.withCut(t); cut != t {
		o.setDeadline(cut)
	}
}

// setDeadline sets the write deadline to t, in Unix nanoseconds; 0 lifts it.
func (o *output) setDeadline(t int64) {
	if o.noTimeout || (o.timeout <= 0 && t == 0 && o.cleared) {
		return
	}
	o.cleared = t == 0
	o.until = t
	d := time.Time{}
	if t != 0 {
		d = time.Unix(0, t)
	}
	if err := o.rc.SetWriteDeadline(d); errors.Is(err, http.ErrNotSupported) {
		o.noTimeout = true
	}
}
