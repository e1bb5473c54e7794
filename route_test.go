package httpsse

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// publishData publishes one event with the given data, failing t on error.
func publishData(t *testing.T, route Route, data string) {
	t.Helper()
	if err := route.PublishEvent(func(w EventWriter) error { return w.WriteData(data) }); err != nil {
		t.Errorf("PublishEvent(%q) = %v", data, err)
	}
}

// startRoute serves route on a test server, closing both when the test ends.
func startRoute(t *testing.T, route Route) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(route)
	t.Cleanup(func() {
		route.Close()
		ts.Close()
	})
	return ts
}

// dialTest dials url without reconnection and closes the client when the test ends.
func dialTest(t *testing.T, url string, opts ...DialOption) Client {
	t.Helper()
	c, err := Dial(url, append([]DialOption{Reconnect(false)}, opts...)...)
	if err != nil {
		t.Fatalf("Dial(%q) = %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// nextData reads the next event's data, failing t when there is none.
func nextData(t *testing.T, c Client) string {
	t.Helper()
	if !c.Next() {
		t.Fatalf("Next() = false, want true (Err %v)", c.Err())
	}
	var e Event
	if err := c.Decode(&e); err != nil {
		t.Fatalf("Decode(&e) = %v", err)
	}
	return e.EventDataCollapsed()
}

// waitSubscribers waits until route has n subscribers.
func waitSubscribers(t *testing.T, route Route, n int) {
	t.Helper()
	b := route.(*broadcaster)
	waitCount(t, "subscribers", n, func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		return len(b.subs)
	})
}

// waitCount waits up to 5 s until count returns want, failing t otherwise.
func waitCount(t *testing.T, what string, want int, count func() int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := count()
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d %s, want %d", got, what, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// Rule 2: status, headers, flushed before any event exists.
func TestRouteHeadersFlushedAtOnce(t *testing.T) {
	checkNoLeaks(t)
	ts := startRoute(t, NewRoute())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET = %v; the headers were not flushed before any event", err)
	}
	defer resp.Body.Close()
	want := map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
	if resp.StatusCode != http.StatusOK {
		t.Errorf("status = %d, want 200", resp.StatusCode)
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
}

func TestRouteRecorder(t *testing.T) {
	route := NewRoute()
	rec := httptest.NewRecorder()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		route.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil).WithContext(ctx))
	}()
	publishData(t, route, "a")
	route.Close()
	<-done
	cancel()
	if !rec.Flushed {
		t.Error("the response was not flushed")
	}
	if got, want := rec.Body.String(), "data: a\n\n"; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
	if got := rec.Header().Get("Content-Type"); got != ContentType {
		t.Errorf("Content-Type = %q, want %q", got, ContentType)
	}
}

// Rule 2: a closed Route answers 204, which tells an EventSource not to reconnect.
func TestRouteClosedAnswers204(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	route.Close()
	ts := startRoute(t, route)
	resp, err := http.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("status = %d, want 204", resp.StatusCode)
	}
	_, err = Dial(ts.URL)
	var re *ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusNoContent {
		t.Errorf("Dial on a closed route = %v, want a *ResponseError with 204", err)
	}
}

// Rules 1 and 4: a shared Route sends every event to every subscriber, in publish order.
func TestRouteSharedFanOut(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	ts := startRoute(t, route)
	const subscribers, events = 5, 200
	clients := make([]Client, subscribers)
	for i := range clients {
		clients[i] = dialTest(t, ts.URL)
	}
	waitSubscribers(t, route, subscribers)
	go func() {
		for i := range events {
			publishData(t, route, fmt.Sprintf("event %d\nline 2", i))
		}
	}()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			readInOrder(t, c, events, func(i int) string { return fmt.Sprintf("event %d\nline 2", i) }, nil)
		})
	}
	wg.Wait()
}

// readInOrder reads n events from c and wants event i to carry the data want(i). After
// each event it calls read(i+1), if read is not nil, with the number of events read so far.
func readInOrder(t *testing.T, c Client, n int, want func(i int) string, read func(int)) {
	t.Helper()
	for i := range n {
		if !c.Next() {
			t.Errorf("Next() = false at event %d (Err %v)", i, c.Err())
			return
		}
		var e Event
		c.Decode(&e)
		if got, w := e.EventDataCollapsed(), want(i); got != w {
			t.Errorf("event %d = %.40q, want %.40q", i, got, w)
			return
		}
		if read != nil {
			read(i + 1)
		}
	}
}

// Rules 1 and 6: the original README's pattern, a Route per request closed by its handler.
func TestRoutePerRequest(t *testing.T) {
	checkNoLeaks(t)
	loopDone := make(chan error, 1)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := NewRoute()
		defer route.Close()
		hb := HeartBeat(time.Hour, route)
		defer hb.Close()
		go func() {
			for i := 0; ; i++ {
				err := route.PublishEvent(func(w EventWriter) error {
					w.WriteEvent("status")
					w.WriteID(fmt.Sprint(i))
					return w.WriteData("Hello world!")
				})
				if errors.Is(err, ErrClosed) {
					loopDone <- err
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		route.ServeHTTP(w, r)
	})
	ts := httptest.NewServer(handler)
	defer ts.Close()
	c, err := Dial(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		var e Event
		if !c.Next() || c.Decode(&e) != nil {
			t.Fatalf("Next() = false (Err %v)", c.Err())
		}
		if e.EventName() != "status" || e.EventID() != fmt.Sprint(i) || e.EventDataCollapsed() != "Hello world!" {
			t.Errorf("event %d = %q", i, e.String())
		}
	}
	c.Close()
	select {
	case <-loopDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the publishing loop did not stop with ErrClosed after the client left")
	}
}

// Rule 5: PublishEvent waits for the first subscriber, so early events are not lost.
func TestRoutePublishWaitsForFirstSubscriber(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	ts := startRoute(t, route)
	published := make(chan error, 1)
	go func() {
		published <- route.PublishEvent(func(w EventWriter) error { return w.WriteData("early") })
	}()
	select {
	case err := <-published:
		t.Fatalf("PublishEvent returned %v before any subscriber", err)
	case <-time.After(50 * time.Millisecond):
	}
	c := dialTest(t, ts.URL)
	if got := nextData(t, c); got != "early" {
		t.Errorf("first event = %q, want \"early\"", got)
	}
	if err := <-published; err != nil {
		t.Errorf("PublishEvent = %v", err)
	}
}

// Rule 5: after the first subscriber, events go to those present; none wait.
func TestRoutePublishAfterSubscribersLeft(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	ts := startRoute(t, route)
	c := dialTest(t, ts.URL)
	waitSubscribers(t, route, 1)
	c.Close()
	waitSubscribers(t, route, 0)
	done := make(chan error)
	go func() { done <- route.PublishEvent(func(w EventWriter) error { return w.WriteData("nobody") }) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("PublishEvent with no subscribers = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("PublishEvent blocked with no subscribers after the first one left")
	}
	c2 := dialTest(t, ts.URL)
	waitSubscribers(t, route, 1)
	publishData(t, route, "later")
	if got := nextData(t, c2); got != "later" {
		t.Errorf("event = %q, want \"later\" (an event published before it joined)", got)
	}
}

func TestRoutePublishWaitEndsOnClose(t *testing.T) {
	route := NewRoute()
	done := make(chan error)
	go func() { done <- route.PublishEvent(func(w EventWriter) error { return w.WriteData("x") }) }()
	time.Sleep(10 * time.Millisecond)
	route.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("PublishEvent = %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a PublishEvent waiting for a subscriber")
	}
}

// Rule 4 and 8: a failed event sends nothing, and PublishEvent returns the error.
func TestRoutePublishFailedEventSendsNothing(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	ts := startRoute(t, route)
	c := dialTest(t, ts.URL)
	waitSubscribers(t, route, 1)

	if err := route.PublishEvent(nil); err == nil || !strings.HasPrefix(err.Error(), "httpsse: ") {
		t.Errorf("PublishEvent(nil) = %v, want an httpsse error", err)
	}
	boom := errors.New("boom")
	failures := []struct {
		name string
		fn   func(w EventWriter) error
		want error
	}{
		{"fn error", func(w EventWriter) error { w.WriteData("half"); return boom }, boom},
		{"ignored WriteEvent error", func(w EventWriter) error { w.WriteEvent("a\nb"); w.WriteData("x"); return nil }, nil},
		{"ignored WriteID error", func(w EventWriter) error { w.WriteData("x"); w.WriteID("1\r"); return nil }, nil},
		{"ignored WriteID NUL error", func(w EventWriter) error { w.WriteID("\x00"); w.WriteData("x"); return nil }, nil},
		{"ignored invalid UTF-8", func(w EventWriter) error { w.WriteData("\xff"); return nil }, nil},
		{"ignored negative retry", func(w EventWriter) error { w.WriteRetry(-1); w.WriteData("x"); return nil }, nil},
	}
	for _, f := range failures {
		err := route.PublishEvent(f.fn)
		if err == nil || (f.want != nil && !errors.Is(err, f.want)) {
			t.Errorf("%s: PublishEvent = %v, want an error", f.name, err)
		}
	}
	publishData(t, route, "good")
	if got := nextData(t, c); got != "good" {
		t.Errorf("first event received = %q, want \"good\": a failed event was sent", got)
	}
}

// Rule 8: WriteData("") dispatches an empty event; an event without data is not dispatched
// but its id counts.
func TestRouteEmptyDataAndNoData(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	ts := startRoute(t, route)
	c := dialTest(t, ts.URL)
	waitSubscribers(t, route, 1)
	route.PublishEvent(func(w EventWriter) error { return w.WriteID("7") })
	route.PublishEvent(func(w EventWriter) error { return w.WriteData("") })
	var e Event
	if !c.Next() || c.Decode(&e) != nil {
		t.Fatalf("Next() = false (Err %v)", c.Err())
	}
	if e.EventDataCollapsed() != "" || len(e.EventData()) != 1 || e.EventID() != "7" {
		t.Errorf("event = %q, want empty data with id 7", e.String())
	}
}

// Rule 4: calls are serialized and events are never interleaved.
func TestRoutePublishSerialized(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	ts := startRoute(t, route)
	c := dialTest(t, ts.URL)
	waitSubscribers(t, route, 1)
	const publishers, each = 8, 50
	var running atomic.Int32
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				route.PublishEvent(func(w EventWriter) error {
					if running.Add(1) != 1 {
						t.Error("two PublishEvent functions ran at once")
					}
					defer running.Add(-1)
					for range 3 {
						w.WriteData(fmt.Sprintf("%d-%d", p, i))
						time.Sleep(time.Microsecond)
					}
					return nil
				})
			}
		}()
	}
	next := make([]int, publishers)
	for range publishers * each {
		lines := strings.Split(nextData(t, c), "\n")
		if len(lines) != 3 || lines[0] != lines[1] || lines[1] != lines[2] {
			t.Fatalf("event interleaved with another: %q", lines)
		}
		var p, i int
		fmt.Sscanf(lines[0], "%d-%d", &p, &i)
		if i != next[p] {
			t.Fatalf("publisher %d: event %d arrived, want %d", p, i, next[p])
		}
		next[p]++
	}
	wg.Wait()
}

// Rule 6: Close ends every stream cleanly, after what was published before it.
func TestRouteCloseEndsStreamsCleanly(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	ts := startRoute(t, route)
	clients := []Client{dialTest(t, ts.URL), dialTest(t, ts.URL), dialTest(t, ts.URL)}
	waitSubscribers(t, route, len(clients))
	publishData(t, route, "last")
	if err := route.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	if err := route.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
	for _, c := range clients {
		if got := nextData(t, c); got != "last" {
			t.Errorf("event = %q, want \"last\"", got)
		}
		if c.Next() {
			t.Error("Next() = true after Close, want false")
		}
		if err := c.Err(); err != nil {
			t.Errorf("Err() = %v, want nil: the stream did not end cleanly", err)
		}
	}
	if err := route.PublishEvent(func(w EventWriter) error { return w.WriteData("x") }); !errors.Is(err, ErrClosed) {
		t.Errorf("PublishEvent after Close = %v, want ErrClosed", err)
	}
	waitSubscribers(t, route, 0)
}

// Rule 3: ServeHTTP returns promptly when the client goes away.
func TestRouteReturnsWhenClientLeaves(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	returned := make(chan struct{})
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route.ServeHTTP(w, r)
		close(returned)
	}))
	defer ts.Close()
	defer route.Close()
	c, err := Dial(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	waitSubscribers(t, route, 1)
	c.Close()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("ServeHTTP did not return after the client left")
	}
}

// Rule 6: http.Server.Shutdown returns promptly with open streams when the Route is
// registered to close on shutdown.
func TestRouteGracefulShutdown(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	ts := httptest.NewUnstartedServer(route)
	ts.Config.RegisterOnShutdown(func() { route.Close() })
	ts.Start()
	defer ts.Close()
	c := dialTest(t, ts.URL)
	waitSubscribers(t, route, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := ts.Config.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown = %v after %v", err, time.Since(start))
	}
	if c.Next() || c.Err() != nil {
		t.Errorf("after Shutdown: Next() = true or Err() = %v, want a clean end", c.Err())
	}
}

// Rule 2: the server's WriteTimeout and ReadTimeout do not kill a healthy stream.
func TestRouteOutlivesServerTimeouts(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			checkNoLeaks(t)
			route := NewRoute()
			ts := httptest.NewUnstartedServer(route)
			ts.Config.WriteTimeout = 100 * time.Millisecond
			ts.Config.ReadTimeout = 100 * time.Millisecond
			var opts []DialOption
			if proto == "HTTP/2" {
				ts.EnableHTTP2 = true
				ts.StartTLS()
				opts = append(opts, HTTPClient(ts.Client()))
			} else {
				ts.Start()
			}
			defer ts.Close()
			defer route.Close()
			c := dialTest(t, ts.URL, opts...)
			waitSubscribers(t, route, 1)
			go func() {
				for i := range 8 {
					time.Sleep(50 * time.Millisecond)
					publishData(t, route, fmt.Sprint(i))
				}
			}()
			for i := range 8 {
				if got := nextData(t, c); got != fmt.Sprint(i) {
					t.Fatalf("event = %q, want %d", got, i)
				}
			}
			if proto == "HTTP/2" {
				ts.Client().Transport.(*http.Transport).CloseIdleConnections()
			}
		})
	}
}

// Rule 2: HTTP/2 works, through http.ResponseController.
func TestRouteHTTP2(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	var proto atomic.Int32
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(int32(r.ProtoMajor))
		route.ServeHTTP(w, r)
	}))
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer ts.Close()
	defer ts.Client().Transport.(*http.Transport).CloseIdleConnections()
	defer route.Close()
	c := dialTest(t, ts.URL, HTTPClient(ts.Client()))
	waitSubscribers(t, route, 1)
	publishData(t, route, "over h2")
	if got := nextData(t, c); got != "over h2" {
		t.Errorf("event = %q", got)
	}
	if proto.Load() != 2 {
		t.Errorf("request was HTTP/%d, want HTTP/2", proto.Load())
	}
}

// unwrapWriter is middleware's ResponseWriter: no Flush of its own, only Unwrap.
type unwrapWriter struct {
	rw      http.ResponseWriter
	written atomic.Int64
}

func (u *unwrapWriter) Header() http.Header         { return u.rw.Header() }
func (u *unwrapWriter) WriteHeader(code int)        { u.rw.WriteHeader(code) }
func (u *unwrapWriter) Unwrap() http.ResponseWriter { return u.rw }
func (u *unwrapWriter) Write(p []byte) (int, error) {
	u.written.Add(int64(len(p)))
	return u.rw.Write(p)
}

// Rule 2: middleware wrappers with Unwrap work.
func TestRouteBehindMiddleware(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	var wrapped *unwrapWriter
	var mu sync.Mutex
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u := &unwrapWriter{rw: w}
		mu.Lock()
		wrapped = u
		mu.Unlock()
		route.ServeHTTP(u, r)
	}))
	defer ts.Close()
	defer route.Close()
	c := dialTest(t, ts.URL)
	waitSubscribers(t, route, 1)
	publishData(t, route, "through middleware")
	if got := nextData(t, c); got != "through middleware" {
		t.Errorf("event = %q", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if wrapped.written.Load() == 0 {
		t.Error("the middleware's Write was bypassed")
	}
}

// stalledClient opens a stream and never reads from it.
func stalledClient(t *testing.T, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n\r\n")
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Rule 7: a subscriber that stops reading is dropped, and the others receive every event.
func TestRouteSlowSubscriberDropped(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute(MaxQueuedBytes(256<<10), WriteTimeout(time.Second))
	var returned atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route.ServeHTTP(w, r)
		returned.Add(1)
	}))
	defer ts.Close()
	defer route.Close()
	stalledClient(t, ts.Listener.Addr().String())
	const fast = 3
	clients := make([]Client, fast)
	for i := range clients {
		clients[i] = dialTest(t, ts.URL)
	}
	waitSubscribers(t, route, fast+1)

	// The publisher stays at most a window of events ahead of the fast subscribers, so only
	// the stalled one falls behind by more than the queue bound.
	const events, window = 4000, 32
	payload := strings.Repeat("x", 2<<10)
	var progress [fast]atomic.Int64
	go func() {
		for i := range events {
			for {
				behind := int64(i)
				for k := range progress {
					behind = min(behind, progress[k].Load())
				}
				if int64(i)-behind < window || t.Failed() {
					break
				}
				time.Sleep(100 * time.Microsecond)
			}
			publishData(t, route, fmt.Sprint(i, payload))
		}
	}()
	var wg sync.WaitGroup
	for k, c := range clients {
		wg.Go(func() {
			readInOrder(t, c, events, func(i int) string { return fmt.Sprint(i, payload) },
				func(n int) { progress[k].Store(int64(n)) })
		})
	}
	wg.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for returned.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the stalled subscriber was not dropped")
		}
		time.Sleep(5 * time.Millisecond)
	}
	waitSubscribers(t, route, fast)
}

// Rule 2: a client that stops reading is cut by the per-write deadline even when its queue
// is within budget.
func TestRouteWriteDeadlineCutsStalledClient(t *testing.T) {
	testWriteDeadlineCutsStalledClient(t, httptest.NewServer)
}

// testWriteDeadlineCutsStalledClient serves a Route with a short WriteTimeout on a server
// that start makes, stalls a client and publishes large events until its handler returns.
func testWriteDeadlineCutsStalledClient(t *testing.T, start func(http.Handler) *httptest.Server) {
	checkNoLeaks(t)
	route := NewRoute(MaxQueuedBytes(1<<30), WriteTimeout(100*time.Millisecond))
	returned := make(chan struct{})
	ts := start(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route.ServeHTTP(w, r)
		close(returned)
	}))
	defer ts.Close()
	defer route.Close()
	stalledClient(t, ts.Listener.Addr().String())
	waitSubscribers(t, route, 1)
	big := strings.Repeat("y", 1<<20)
	go func() {
		for range 16 {
			if route.PublishEvent(func(w EventWriter) error { return w.WriteData(big) }) != nil {
				return
			}
		}
	}()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("a client that stopped reading held its handler past the write deadline")
	}
}

// Issue 3: a burst of 2,000 events of 100 B to 100 subscribers reading at full speed
// arrives complete: nobody is dropped by the default queue bound.
func TestRouteBurstArrivesComplete(t *testing.T) {
	checkNoLeaks(t)
	subscribers := 100
	if testing.Short() {
		subscribers = 10
	}
	const events = 2000
	route := NewRoute()
	ts := startRoute(t, route)
	conns := make([]*bufio.Reader, subscribers)
	for i := range conns {
		conn, err := net.Dial("tcp", ts.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: test\r\n\r\n")
		conns[i] = bufio.NewReader(conn)
	}
	waitSubscribers(t, route, subscribers)
	data := strings.Repeat("z", 100)
	go func() {
		for range events {
			publishData(t, route, data)
		}
	}()
	var wg sync.WaitGroup
	for _, r := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.ReadResponse(r, nil)
			if err != nil {
				t.Error(err)
				return
			}
			dec := NewDecoder(resp.Body)
			for i := range events {
				if !dec.Next() {
					t.Errorf("subscriber got %d events, want %d (Err %v)", i, events, dec.Err())
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestRouteOptionsDefaults(t *testing.T) {
	b := NewRoute().(*broadcaster)
	if b.cfg.writeTimeout != DefaultWriteTimeout || b.cfg.maxQueuedBytes != DefaultMaxQueuedBytes {
		t.Errorf("NewRoute() config = %+v, want the defaults", b.cfg)
	}
	b = NewRoute(MaxQueuedBytes(0), WriteTimeout(-1)).(*broadcaster)
	if b.cfg.maxQueuedBytes != DefaultMaxQueuedBytes || b.cfg.writeTimeout != -1 {
		t.Errorf("NewRoute(MaxQueuedBytes(0), WriteTimeout(-1)) config = %+v", b.cfg)
	}
	b = NewRoute(MaxQueuedBytes(1), MaxQueuedBytes(2)).(*broadcaster)
	if b.cfg.maxQueuedBytes != 2 {
		t.Errorf("the last option did not win: %+v", b.cfg)
	}
}

// The shared log releases what every subscriber has taken.
func TestRouteLogIsReleased(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	ts := startRoute(t, route)
	c := dialTest(t, ts.URL)
	waitSubscribers(t, route, 1)
	data := strings.Repeat("q", 1000)
	for range 1000 {
		publishData(t, route, data)
		nextData(t, c)
	}
	b := route.(*broadcaster)
	b.mu.Lock()
	size := cap(b.log)
	b.mu.Unlock()
	if size > 64<<10 {
		t.Errorf("the log holds %d bytes after every event was taken", size)
	}
}

// A panic of the ResponseWriter while the headers go out (they are written from a goroutine
// of their own) is raised on the handler's goroutine, where net/http recovers it.
func TestRouteHeaderPanicOnHandlerGoroutine(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	defer route.Close()
	w := panickingWriter{httptest.NewRecorder()}
	defer func() {
		if p := recover(); p != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", p)
		}
	}()
	route.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/", nil))
	t.Error("ServeHTTP returned")
}

// panickingWriter is a ResponseWriter whose WriteHeader panics.
type panickingWriter struct{ *httptest.ResponseRecorder }

func (w panickingWriter) WriteHeader(int) { panic(http.ErrAbortHandler) }

// Publishing to a Route nobody is attached to reuses the log's array: one allocation per
// event (the EventWriter, fresh for each publish so that one kept past its function writes
// nowhere). A subscriber that comes afterwards gets the next event, not the old bytes.
func TestRoutePublishToNobody(t *testing.T) {
	route := NewRoute(WaitForSubscriber(false))
	ts := startRoute(t, route)
	unheard := func(w EventWriter) error { return w.WriteData("nobody hears this") }
	allocs := testing.AllocsPerRun(200, func() {
		if err := route.PublishEvent(unheard); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("publishing to nobody: %v allocations per event, want at most 1", allocs)
	}
	s := openStream(t, ts.Client(), ts.URL, "")
	waitSubscribers(t, route, 1)
	publishData(t, route, "live")
	if got, want := s.mustNext(t), "data: live\n\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
