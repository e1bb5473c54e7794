package httpsse

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// syncWriter is a ResponseWriter whose body may be read while ServeHTTP writes it.
type syncWriter struct {
	header http.Header
	mu     sync.Mutex
	body   bytes.Buffer
}

func (w *syncWriter) Header() http.Header { return w.header }
func (w *syncWriter) WriteHeader(int)     {}
func (w *syncWriter) Flush()              {}
func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.body.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.body.String()
}

// serveInBubble runs route.ServeHTTP in a goroutine and returns its writer and a function
// that ends the request and waits for ServeHTTP to return.
func serveInBubble(route Route) (*syncWriter, func()) {
	w := &syncWriter{header: http.Header{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		route.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
	}()
	return w, func() { cancel(); <-done }
}

// Rule 9: a comment every wait, stopped by the Closer.
func TestHeartBeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		route := NewRoute()
		w, stop := serveInBubble(route)
		hb := HeartBeat(time.Second, route)
		time.Sleep(3500 * time.Millisecond)
		synctest.Wait()
		if got, want := w.String(), strings.Repeat(": heartbeat\n\n", 3); got != want {
			t.Errorf("after 3.5 s the stream is %q, want %q", got, want)
		}
		if err := hb.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
		hb.Close() // idempotent
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if got := strings.Count(w.String(), "heartbeat"); got != 3 {
			t.Errorf("%d heartbeats after Close, want 3", got)
		}
		stop()
		route.Close()
	})
}

// Rule 9: heartbeats stop when the Route is closed, without closing the heartbeat.
func TestHeartBeatStopsWithRoute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		route := NewRoute()
		_, stop := serveInBubble(route)
		HeartBeat(time.Second, route)
		time.Sleep(1500 * time.Millisecond)
		route.Close()
		stop()
		// synctest.Test fails if the heartbeat's goroutine is still blocked when this returns.
	})
}

// Rule 9: before the first subscriber the heartbeat waits like any event, and Close still
// ends it.
func TestHeartBeatBeforeFirstSubscriber(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		route := NewRoute()
		hb := HeartBeat(time.Millisecond, route)
		time.Sleep(time.Second)
		hb.Close()
		route.Close()
	})
}

// Rule 9: zero and negative waits start nothing and return a working Closer.
func TestHeartBeatZeroAndNegative(t *testing.T) {
	for _, wait := range []time.Duration{0, -time.Second} {
		synctest.Test(t, func(t *testing.T) {
			route := NewRoute()
			w, stop := serveInBubble(route)
			hb := HeartBeat(wait, route)
			if hb == nil {
				t.Fatalf("HeartBeat(%v) = nil", wait)
			}
			time.Sleep(time.Minute)
			synctest.Wait()
			if got := w.String(); got != "" {
				t.Errorf("HeartBeat(%v) sent %q", wait, got)
			}
			if err := hb.Close(); err != nil {
				t.Errorf("Close() = %v", err)
			}
			stop()
			route.Close()
		})
	}
}

// otherRoute is a Route that is not this package's, to check HeartBeat only needs the
// interface.
type otherRoute struct {
	mu     sync.Mutex
	events int
	closed bool
}

func (r *otherRoute) Close() error                                 { r.mu.Lock(); r.closed = true; r.mu.Unlock(); return nil }
func (r *otherRoute) ServeHTTP(http.ResponseWriter, *http.Request) {}
func (r *otherRoute) PublishEvent(fn func(EventWriter) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return ErrClosed
	}
	enc := &encoder{}
	if err := fn(enc); err != nil {
		return err
	}
	r.events++
	return nil
}

func TestHeartBeatOtherRoute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		route := &otherRoute{}
		HeartBeat(time.Second, route)
		time.Sleep(2500 * time.Millisecond)
		route.Close()
		time.Sleep(time.Second) // the next beat sees ErrClosed and stops
		route.mu.Lock()
		defer route.mu.Unlock()
		if route.events != 2 {
			t.Errorf("%d heartbeats, want 2", route.events)
		}
	})
}
