package httpsse

import (
	"context"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// headerWriterCount is the number of writeHeaders goroutines.
func headerWriterCount() int {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	return strings.Count(string(buf), "httpsse.(*broadcaster).writeHeaders(")
}

// waitHeaderWriters waits until there are n writeHeaders goroutines.
func waitHeaderWriters(t *testing.T, n int) {
	t.Helper()
	waitCount(t, "writeHeaders goroutines", n, headerWriterCount)
}

// Subscribers arriving together on a shared Route share the goroutines that send their
// headers; at most maxIdleHeaderWriters of them wait for more, each ends with the subscriber
// that keeps it, and every subscriber gets its headers and its events. Over HTTP/1.1 and over
// HTTP/2, where all the subscribers share one connection.
func TestHeaderWritersEndWithTheirKeepers(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		name := "HTTP/1.1"
		if h2 {
			name = "HTTP/2"
		}
		t.Run(name, func(t *testing.T) {
			checkNoLeaks(t)
			route := NewRoute()
			ts := httptest.NewUnstartedServer(route)
			if h2 {
				ts.EnableHTTP2 = true
				ts.StartTLS()
			} else {
				ts.Start()
			}
			defer ts.Close()
			defer ts.Client().Transport.(*http.Transport).CloseIdleConnections()
			defer route.Close()
			testHeaderWriters(t, route, ts.URL, HTTPClient(ts.Client()))
		})
	}
}

func testHeaderWriters(t *testing.T, route Route, url string, opts ...DialOption) {
	const n = 40
	clients := make([]Client, n)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			c, err := Dial(url, append([]DialOption{Reconnect(false)}, opts...)...)
			if err != nil {
				t.Errorf("Dial = %v", err)
				return
			}
			clients[i] = c
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	waitSubscribers(t, route, n)
	if got := headerWriterCount(); got < 1 || got > maxIdleHeaderWriters {
		t.Errorf("%d writeHeaders goroutines wait with %d subscribers, want 1 to %d", got, n, maxIdleHeaderWriters)
	}
	publishData(t, route, "all")
	for _, c := range clients {
		if got := nextData(t, c); got != "all" {
			t.Errorf("data %q, want %q", got, "all")
		}
	}
	for _, c := range clients {
		c.Close()
	}
	waitSubscribers(t, route, 0)
	waitHeaderWriters(t, 0)
}

// A Route with a single subscriber (made per request) keeps no goroutine waiting to send
// another subscriber's headers.
func TestHeaderWritersNoneForOneSubscriber(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	ts := startRoute(t, route)
	c := dialTest(t, ts.URL)
	waitSubscribers(t, route, 1)
	waitHeaderWriters(t, 0)
	publishData(t, route, "x")
	if got := nextData(t, c); got != "x" {
		t.Errorf("data %q, want %q", got, "x")
	}
}

// In a synctest bubble a waiting header writer is durably blocked (time goes on), and it ends
// with its subscriber even when the request's context is never cancelled (ServeHTTP called
// directly, ended by Close): the bubble must end with no goroutine left.
func TestHeaderWritersInBubble(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		route := NewRoute()
		var served sync.WaitGroup
		writers := make([]*syncWriter, 3)
		for i := range writers {
			writers[i] = &syncWriter{header: http.Header{}}
			req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(context.WithoutCancel(t.Context()))
			served.Go(func() { route.ServeHTTP(writers[i], req) })
			synctest.Wait()
		}
		hb := HeartBeat(time.Second, route)
		defer hb.Close()
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()
		for i, w := range writers {
			if got, want := w.String(), ": heartbeat\n\n"; got != want {
				t.Errorf("subscriber %d got %q, want %q", i, got, want)
			}
		}
		route.Close()
		served.Wait()
	})
}

// A panic of the ResponseWriter while a waiting writer sends the headers is raised on the
// handler's goroutine too, where net/http recovers it, and the writer still ends with the
// subscribers.
func TestHeaderWriterPanicOnHandlerGoroutine(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	defer route.Close()
	b := route.(*broadcaster)
	ctx, cancel := context.WithCancel(context.Background())
	var served sync.WaitGroup
	for range 2 {
		req := httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx)
		served.Go(func() { route.ServeHTTP(&syncWriter{header: http.Header{}}, req) })
	}
	waitCount(t, "waiting header writers (at most 1 counted)", 1, func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return min(len(b.idleWriters), 1)
	})
	func() {
		defer func() {
			if p := recover(); p != http.ErrAbortHandler {
				t.Errorf("recovered %v, want http.ErrAbortHandler", p)
			}
		}()
		route.ServeHTTP(panickingWriter{httptest.NewRecorder()}, httptest.NewRequest(http.MethodGet, "/", nil))
		t.Error("ServeHTTP returned")
	}()
	cancel()
	served.Wait()
	waitSubscribers(t, route, 0)
	waitHeaderWriters(t, 0)
}
