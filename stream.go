package httpsse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"
)

// Stream writes server-sent events straight to one response, for a handler that streams its
// own answer with no fan-out: an LLM's tokens as they arrive, a build log, a long export's
// progress. The handler makes it with [NewStream] and publishes to it from its goroutine
// (or from several), usually until its source is done or PublishEvent returns an error; no Route,
// goroutine or Close is needed, and nothing of the Stream outlives the handler.
//
// PublishEvent follows the rules of [Route.PublishEvent] for the event itself: a value can
// never inject a field or end the event early, and if the function returns an error, or any
// of its Write calls failed, nothing of the event is sent. Each event is written and flushed
// before PublishEvent returns, so the client has it at once.
//
// The server's WriteTimeout and ReadTimeout are meant for requests that end and would cut a
// long stream, so NewStream lifts them; instead each write to the client, of up to 64 KiB of
// an event (a larger event is written in pieces), and the flush after it, must end within
// [DefaultWriteTimeout]. A client that stops reading therefore cannot hold the handler for
// longer than that. When the ResponseWriter has no write deadlines (middleware whose writer
// has no Unwrap method, [net/http/httptest.ResponseRecorder]), the server's timeouts stay as they are
// and writes have no time limit.
//
// Once the client has gone (the request's context is done), or a write failed or took longer
// than its limit, the Stream has ended: PublishEvent returns an error, without calling its
// function, and so does every later call. That error satisfies errors.Is(err, [ErrClosed]),
// as a closed Route's does, and also wraps its cause (the context's error, such as
// [context.Canceled], or the write's error; [os.ErrDeadlineExceeded] for a write that took too
// long). An error from the function or from an invalid field does not end the Stream.
//
// A Stream's PublishEvent may be called from several goroutines at once: the calls are
// serialized, and events are never interleaved. A call waiting for another one's write to end
// returns as soon as the client has gone. A handler that publishes from other goroutines
// must wait for them before it returns, because no ResponseWriter may be used after that (a
// call that starts afterwards fails at once, as net/http has ended the request's context, but
// one under way would race with the end of the response). PublishEvent must not be called
// from within its own function, which would wait for itself until the client goes.
type Stream struct {
	w  http.ResponseWriter
	rc *http.ResponseController
	// done is the request context's Done channel, and ctx that context: a Stream lives exactly
	// as long as its request, so it keeps the request's context instead of making its own.
	ctx  context.Context
	done <-chan struct{}
	// lock serializes PublishEvent. It is a channel of capacity 1 (holding the lock is having
	// sent to it) rather than a sync.Mutex so that a call waiting for it can give up when the
	// client goes away.
	lock chan struct{}

	// The fields below are guarded by lock.
	timeout    time.Duration // each write's time limit; zero or less is none
	noDeadline bool          // the ResponseWriter has no write deadlines
	err        error         // set once the Stream has ended; returned by every later call
	buf        []byte        // the last event's bytes, reused for the next one
}

// maxStreamBuffer is the largest encoding buffer a Stream keeps between events; the buffer of
// a larger event is left to the garbage collector, so that one big event does not hold its
// memory for the rest of the stream.
const maxStreamBuffer = 64 << 10

// maxUnwrap bounds the walk down a ResponseWriter's Unwrap chain, so that a chain that loops
// back on itself is an error and not a hang.
const maxUnwrap = 100

// NewStream starts an event stream on w, the response to r: it answers 200 with the headers
// Content-Type: text/event-stream, Cache-Control: no-cache and X-Accel-Buffering: no, and
// flushes them at once, so the client knows the stream is open before the first event. It
// lifts the server's write and read timeouts for this response; see [Stream] for the time
// limit of each write that takes their place.
//
// It streams through the response's [http.ResponseController], so it works on HTTP/1.1 and
// HTTP/2 and behind middleware whose ResponseWriter has an Unwrap method. When nothing in w's
// chain can flush (no Flush or FlushError method), the response cannot be streamed: NewStream
// writes nothing and returns an error, and the handler may still answer otherwise. It also
// writes nothing and returns an error when w or r is nil, or when the request's context is
// already done. An error while sending the headers does not make NewStream fail: it ends the
// Stream, and the first [Stream.PublishEvent] reports it.
func NewStream(w http.ResponseWriter, r *http.Request) (*Stream, error) {
	if w == nil || r == nil {
		return nil, errors.New("httpsse: NewStream called with a nil ResponseWriter or Request")
	}
	if err := canFlush(w); err != nil {
		return nil, err
	}
	ctx := r.Context()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("httpsse: cannot start a stream, the client has gone: %w", err)
	}
	s := &Stream{
		w:       w,
		rc:      http.NewResponseController(w),
		ctx:     ctx,
		done:    ctx.Done(),
		lock:    make(chan struct{}, 1),
		timeout: DefaultWriteTimeout,
	}
	// The server's ReadTimeout and WriteTimeout would cut a healthy stream. Lift them, and
	// bound each write instead. On HTTP/1.1 the read deadline also covers the server's
	// background read, whose timeout would cancel the request's context. A ResponseWriter
	// without deadlines leaves the server's timeouts in place; nothing can be done about it.
	_ = s.rc.SetReadDeadline(time.Time{})
	if err := s.rc.SetWriteDeadline(time.Time{}); errors.Is(err, http.ErrNotSupported) {
		s.noDeadline = true
	}

	h := w.Header()
	h.Set("Content-Type", ContentType)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if err := s.send(nil); err != nil {
		s.err = err
	}
	return s, nil
}

// canFlush reports, as an error, whether anything in w's chain of ResponseWriters can flush,
// the way [http.ResponseController.Flush] looks for it, but without flushing: a flush would
// send the status and headers, and NewStream must write nothing when it cannot stream.
func canFlush(w http.ResponseWriter) error {
	rw := w
	for range maxUnwrap {
		switch t := rw.(type) {
		case interface{ FlushError() error }, http.Flusher:
			return nil
		case interface{ Unwrap() http.ResponseWriter }:
			rw = t.Unwrap()
		default:
			return fmt.Errorf("httpsse: cannot stream the response: its ResponseWriter (%T) cannot flush: %w", w, http.ErrNotSupported)
		}
	}
	return fmt.Errorf("httpsse: cannot stream the response: its ResponseWriter (%T) unwraps more than %d times", w, maxUnwrap)
}

// PublishEvent runs fn with an [EventWriter] and, unless fn or one of its writes failed,
// writes the event to the client and flushes it, under the time limit described at [Stream].
// It returns once the event has been flushed, with nil, or with the error that kept the event
// from being sent: fn's error, an invalid field's (the Stream goes on), or the error of a
// Stream that has ended, which wraps [ErrClosed] (see [Stream]). PublishEvent(nil) returns an
// error. Calls from several goroutines are serialized: fn never runs twice at once, and its
// EventWriter is valid only until it returns.
func (s *Stream) PublishEvent(fn func(EventWriter) error) error {
	if fn == nil {
		return errNilPublish
	}
	// Take the lock at once if it is free, so that the error of a Stream that has ended is
	// always the one it ended with; only a call that has to wait gives up when the client goes.
	select {
	case s.lock <- struct{}{}:
	default:
		select {
		case s.lock <- struct{}{}:
		case <-s.done:
			// Another call holds the lock, perhaps in a write that the departed client
			// will never read.
			return s.gone()
		}
	}
	defer func() { <-s.lock }()

	if s.err != nil {
		return s.err
	}
	if s.ended() {
		return s.err
	}
	b, err := AppendEvent(s.buf[:0], fn)
	if err != nil {
		return err
	}
	if cap(b) <= maxStreamBuffer {
		s.buf = b[:0]
	}
	// fn may have taken its time: do not write to a client that went away meanwhile.
	if s.ended() {
		return s.err
	}
	if err := s.send(b); err != nil {
		s.err = err
		return err
	}
	return nil
}

// ended reports whether the request's context is done, setting err if so.
func (s *Stream) ended() bool {
	select {
	case <-s.done:
		s.err = s.gone()
		return true
	default:
		return false
	}
}

// gone returns the error of a Stream whose request's context is done.
func (s *Stream) gone() error {
	return &streamEndError{why: "the client has gone", causes: []error{ErrClosed, s.ctx.Err()}}
}

// send writes p in pieces of at most maxWrite bytes and flushes it, each piece and the flush
// under a fresh deadline, then lifts the deadline. It is lifted after every event because on
// HTTP/2 a deadline left in place resets the stream when it passes, even while nothing is
// being written; and on HTTP/1.1 net/http writes the end of the response after the handler
// returns, which an expired deadline would break.
func (s *Stream) send(p []byte) error {
	var until time.Time
	err := func() error {
		for {
			n := min(len(p), maxWrite)
			until = s.setDeadline()
			if n > 0 {
				if _, err := s.w.Write(p[:n]); err != nil {
					return err
				}
			}
			p = p[n:]
			if len(p) == 0 {
				return s.rc.Flush()
			}
		}
	}()
	if !s.noDeadline && s.timeout > 0 {
		_ = s.rc.SetWriteDeadline(time.Time{})
	}
	if err == nil {
		return nil
	}
	if !until.IsZero() && !time.Now().Before(until) {
		return &streamEndError{
			why:    fmt.Sprintf("a write took longer than %v", s.timeout),
			causes: []error{ErrClosed, os.ErrDeadlineExceeded, err},
		}
	}
	if s.ctx.Err() != nil {
		// The write failed because the client went away: say so, rather than how the
		// connection broke.
		return &streamEndError{why: "the client has gone", causes: []error{ErrClosed, err, s.ctx.Err()}}
	}
	return &streamEndError{why: "writing to the client", causes: []error{ErrClosed, err}}
}

// setDeadline sets the deadline of the next write, and returns it (zero when there is none).
func (s *Stream) setDeadline() time.Time {
	if s.noDeadline || s.timeout <= 0 {
		return time.Time{}
	}
	until := time.Now().Add(s.timeout)
	if err := s.rc.SetWriteDeadline(until); err != nil {
		if errors.Is(err, http.ErrNotSupported) {
			s.noDeadline = true
		}
		return time.Time{}
	}
	return until
}

// streamEndError is the error of a Stream that has ended. It wraps [ErrClosed], so that a
// publishing loop written for a Route stops on it too, and the causes of the end.
type streamEndError struct {
	why    string
	causes []error // ErrClosed first, then the causes; the last one's text ends the message
}

func (e *streamEndError) Error() string {
	return "httpsse: stream ended: " + e.why + ": " + e.causes[len(e.causes)-1].Error()
}

func (e *streamEndError) Unwrap() []error { return e.causes }
