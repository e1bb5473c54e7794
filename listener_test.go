package httpsse

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startListener serves h on a test server whose listener is a NewListener, closing it when
// the test ends. The test server's ConnState hook tracks the streams too, so its Close
// waits for them.
func startListener(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.Listener = NewListener(ts.Listener, ts.Config)
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// rawStream sends an event-stream request on a connection of its own and returns it.
func rawStream(t *testing.T, addr, extra string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	fmt.Fprintf(c, "GET /events HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n%s\r\n", extra)
	return c
}

// The exact bytes of a stream served by the listener: the Route's headers, chunked events,
// and after Close the last chunk and the end of the connection.
func TestListenerStreamBytes(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	ts := startListener(t, route)
	defer route.Close()
	c := rawStream(t, ts.Listener.Addr().String(), "")
	waitSubscribers(t, route, 1)
	publishData(t, route, "a")
	publishData(t, route, "line 1\nline 2")
	route.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	all, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	head, body, ok := bytes.Cut(all, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no end of header in %q", all)
	}
	lines := strings.Split(string(head), "\r\n")
	if lines[0] != "HTTP/1.1 200 OK" {
		t.Errorf("status line %q", lines[0])
	}
	var fields []string
	for _, l := range lines[1:] {
		if !strings.HasPrefix(l, "Date: ") {
			fields = append(fields, l)
		}
	}
	wantFields := []string{
		"Transfer-Encoding: chunked",
		"Connection: close",
		"Cache-Control: no-cache",
		"Content-Type: text/event-stream",
		"X-Accel-Buffering: no",
	}
	if strings.Join(fields, "|") != strings.Join(wantFields, "|") {
		t.Errorf("header fields\n%q\nwant\n%q", fields, wantFields)
	}
	// The events may come in one chunk or two, as the subscriber takes them.
	const events = "data: a\n\n" + "data: line 1\ndata: line 2\n\n"
	one := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(events), events)
	two := "9\r\ndata: a\n\n\r\n" + "1b\r\ndata: line 1\ndata: line 2\n\n\r\n" + "0\r\n\r\n"
	if string(body) != one && string(body) != two {
		t.Errorf("body\n%q\nwant\n%q\nor\n%q", body, one, two)
	}
}

// Fan-out to clients of this package through the listener; a client that leaves ends its
// ServeHTTP (the request's context), and so does Close, after what was published.
func TestListenerFanOut(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute(WaitForSubscriber(false))
	returned := make(chan struct{}, 4)
	ts := startListener(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route.ServeHTTP(w, r)
		returned <- struct{}{}
	}))
	defer route.Close()
	clients := make([]Client, 3)
	for i := range clients {
		clients[i] = dialTest(t, ts.URL)
	}
	waitSubscribers(t, route, len(clients))
	const events = 200
	for i := range events {
		publishData(t, route, fmt.Sprint("event ", i))
	}
	for _, c := range clients {
		for i := range events {
			if got, want := nextData(t, c), fmt.Sprint("event ", i); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
	}
	clients[0].Close()
	<-returned
	waitSubscribers(t, route, 2)
	publishData(t, route, "last")
	route.Close()
	for _, c := range clients[1:] {
		if got := nextData(t, c); got != "last" {
			t.Errorf("got %q, want last", got)
		}
		if c.Next() || c.Err() != nil {
			t.Errorf("after Close: Next true or Err %v, want a clean end", c.Err())
		}
	}
}

// Requests other than an event-stream GET go to net/http with their bytes, and keep-alive
// works for them; a stream whose request is too large for the listener is served by net/http.
func TestListenerHandsOver(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute(WaitForSubscriber(false))
	defer route.Close()
	mux := http.NewServeMux()
	mux.Handle("/events", route)
	mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %s", r.Method, r.Proto, body)
	})
	ts := startListener(t, mux)
	addr := ts.Listener.Addr().String()

	reused := 0
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) {
		if i.Reused {
			reused++
		}
	}}
	for i, method := range []string{"GET", "POST", "GET"} {
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), method, ts.URL+"/plain", strings.NewReader("body"))
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := method + " HTTP/1.1 body"
		if method == "GET" {
			want = "GET HTTP/1.1 body"
		}
		if string(b) != want || resp.ContentLength != int64(len(want)) {
			t.Errorf("request %d: %q (length %d), want %q from net/http", i, b, resp.ContentLength, want)
		}
	}
	if reused != 2 {
		t.Errorf("%d of 2 later requests reused the connection", reused)
	}

	for _, tc := range []struct{ name, request, wantStatus string }{
		{"HTTP/1.0", "GET /plain HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n", "HTTP/1.0 200 OK"},
		{"malformed", "GET /plain HTTP/1.1\r\nHost: test\r\nno colon\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"not GET first", "PUT /plain HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 200 OK"},
		{"with a body", "GET /plain HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\nContent-Length: 2\r\n\r\nhi", "HTTP/1.1 200 OK"},
		{"no Host", "GET /plain HTTP/1.1\r\nAccept: text/event-stream\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"two Hosts", "GET /plain HTTP/1.1\r\nHost: a\r\nHost: b\r\nAccept: text/event-stream\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"bad Host", "GET /plain HTTP/1.1\r\nHost: a b\r\nAccept: text/event-stream\r\n\r\n", "HTTP/1.1 400 Bad Request"},
		{"control byte", "GET /plain HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\nAccept: text/event-stream\r\n\r\n", "HTTP/1.1 400 Bad Request"},
	} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, tc.request)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		status, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if !strings.HasPrefix(status, tc.wantStatus) {
			t.Errorf("%s: status %q, want %q", tc.name, status, tc.wantStatus)
		}
	}

	big := rawStream(t, addr, "Cookie: "+strings.Repeat("c", maxStreamRequest)+"\r\n")
	waitSubscribers(t, route, 1)
	publishData(t, route, "to a large request")
	big.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(big), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Close {
		t.Error("a stream served by net/http has Connection: close")
	}
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	if line != "data: to a large request\n" {
		t.Errorf("first line %q", line)
	}
}

// TLS connections, HTTP/2 among them, go to net/http when srv.ServeTLS wraps the listener.
func TestListenerTLSAndHTTP2(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute(WaitForSubscriber(false))
	defer route.Close()
	ts := httptest.NewUnstartedServer(route)
	ts.EnableHTTP2 = true
	ts.Listener = NewListener(ts.Listener, ts.Config)
	ts.StartTLS()
	defer ts.Close()
	var proto atomic.Value
	client := ts.Client()
	c := dialTest(t, ts.URL, HTTPClient(&http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		resp, err := client.Transport.RoundTrip(r)
		if err == nil {
			proto.Store(resp.Proto)
		}
		return resp, err
	})}))
	waitSubscribers(t, route, 1)
	publishData(t, route, "over TLS")
	if got := nextData(t, c); got != "over TLS" {
		t.Errorf("got %q", got)
	}
	if p := proto.Load(); p != "HTTP/2.0" {
		t.Errorf("protocol %v, want HTTP/2.0", p)
	}
	c.Close()
	ts.CloseClientConnections()
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Shutdown with the Route closed from RegisterOnShutdown ends every stream of the listener
// cleanly and at once, after what was published, and nothing is left behind.
func TestListenerShutdown(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute(WaitForSubscriber(false))
	defer route.Close()
	srv := &http.Server{Handler: route}
	srv.RegisterOnShutdown(func() { route.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(NewListener(ln, srv)) }()
	clients := make([]Client, 3)
	for i := range clients {
		clients[i] = dialTest(t, "http://"+ln.Addr().String())
	}
	waitSubscribers(t, route, len(clients))
	publishData(t, route, "before shutdown")
	for _, c := range clients {
		if got := nextData(t, c); got != "before shutdown" {
			t.Errorf("got %q", got)
		}
	}
	for i := range 100 {
		publishData(t, route, fmt.Sprint("published before shutdown ", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve = %v, want ErrServerClosed", err)
	}
	for _, c := range clients {
		for i := range 100 {
			if got, want := nextData(t, c), fmt.Sprint("published before shutdown ", i); got != want {
				t.Fatalf("got %q, want %q", got, want)
			}
		}
		if c.Next() || c.Err() != nil {
			t.Errorf("after Shutdown: Next true or Err %v, want a clean end", c.Err())
		}
	}
	waitSubscribers(t, route, 0)
	if d := time.Since(start); d >= closeGrace {
		t.Errorf("the streams ended %v after Shutdown, want at once", d)
	}
}

// Shutdown with nothing closing the Route still ends the listener's streams cleanly, after
// the grace.
func TestListenerShutdownWithoutHook(t *testing.T) {
	t.Parallel() // the grace takes a second; TestMain checks for leaks
	route := NewRoute(WaitForSubscriber(false))
	defer route.Close()
	srv := &http.Server{Handler: route}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(NewListener(ln, srv))
	c := dialTest(t, "http://"+ln.Addr().String())
	waitSubscribers(t, route, 1)
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Errorf("Shutdown = %v", err)
	}
	if c.Next() || c.Err() != nil {
		t.Errorf("after Shutdown: Next true or Err %v, want a clean end", c.Err())
	}
	waitSubscribers(t, route, 0)
}

// Close does not wait for a handler that ignores its request's context for longer than
// the grace: its connection is closed under it.
func TestListenerCloseStuckHandler(t *testing.T) {
	t.Parallel() // the grace takes 1.5 s; TestMain checks for leaks
	release := make(chan struct{})
	ts := startListener(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.(http.Flusher).Flush()
		<-release
	}))
	defer close(release)
	c := rawStream(t, ts.Listener.Addr().String(), "")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ts.Listener.Close()
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Error("the body of a stuck handler ended cleanly, want a cut")
	}
	if d := time.Since(start); d > 4*closeGrace {
		t.Errorf("the stuck handler's connection was closed after %v", d)
	}
}

// Middleware with Unwrap finds the listener's Flush and deadlines, and its header fields
// go out with the Route's.
func TestListenerBehindMiddleware(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	defer route.Close()
	var written atomic.Int64
	ts := startListener(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		u := &unwrapWriter{rw: w}
		defer func() { written.Add(u.written.Load()) }()
		route.ServeHTTP(u, r)
	}))
	c, err := Dial(ts.URL, Reconnect(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitSubscribers(t, route, 1)
	publishData(t, route, "through middleware")
	if got := nextData(t, c); got != "through middleware" {
		t.Errorf("got %q", got)
	}
	resp, err := http.Get(ts.URL) // without Accept: net/http serves it, also through the middleware
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Error("the middleware's header is missing")
	}
	route.Close()
	waitSubscribers(t, route, 0)
	c.Close()
	ts.Close()
	if written.Load() == 0 {
		t.Error("the middleware's Write was bypassed")
	}
}

// A client that stops reading is cut by the Route's per-write deadline.
func TestListenerWriteDeadline(t *testing.T) {
	testWriteDeadlineCutsStalledClient(t, func(h http.Handler) *httptest.Server { return startListener(t, h) })
}

// Handlers other than a Route answer event-stream requests as they would under net/http.
func TestListenerOtherResponses(t *testing.T) {
	checkNoLeaks(t)
	var logged bytes.Buffer
	var logMu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("/error", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "not for you", http.StatusUnauthorized)
	})
	mux.HandleFunc("/nothing", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/no-content", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
		if _, err := w.Write([]byte("x")); err != http.ErrBodyNotAllowed {
			t.Errorf("Write after 204 = %v", err)
		}
	})
	mux.HandleFunc("/length", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		w.Write([]byte("ab"))
		if _, err := w.Write([]byte("cd")); err != http.ErrContentLength {
			t.Errorf("Write past Content-Length = %v", err)
		}
		w.Write([]byte("c"))
	})
	mux.HandleFunc("/inject", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Value", "a\r\nSet-Cookie: stolen=1")
		w.Header().Set("Bad Name", "v")
		w.Write([]byte("<html>"))
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(strings.Repeat("y", 10000)))
		w.Write([]byte("z"))
	})
	mux.HandleFunc("/big-length", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "10001")
		w.Write([]byte(strings.Repeat("y", 10000) + "z"))
	})
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic("boom") })
	mux.HandleFunc("/abort", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	ts := httptest.NewUnstartedServer(mux)
	ts.Config.ErrorLog = log.New(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logged.Write(p)
	}), "", 0)
	ts.Listener = NewListener(ts.Listener, ts.Config)
	ts.Start()
	defer ts.Close()
	get := func(path string) (*http.Response, string, error) {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := ts.Client().Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}
	for _, tc := range []struct {
		path, body, contentType string
		status                  int
		length                  int64
	}{
		{"/error", "not for you\n", "text/plain; charset=utf-8", 401, -1},
		{"/nothing", "", "", 200, 0},
		{"/no-content", "", "", 204, 0},
		{"/length", "abc", "text/plain; charset=utf-8", 200, 3},
		{"/inject", "<html>", "text/html; charset=utf-8", 200, -1},
		{"/big", strings.Repeat("y", 10000) + "z", "text/plain", 200, -1},
		{"/big-length", strings.Repeat("y", 10000) + "z", "text/plain", 200, 10001},
	} {
		resp, body, err := get(tc.path)
		if err != nil {
			t.Errorf("%s: %v", tc.path, err)
			continue
		}
		if resp.StatusCode != tc.status || body != tc.body || resp.Header.Get("Content-Type") != tc.contentType || resp.ContentLength != tc.length {
			t.Errorf("%s: %d %q, Content-Type %q, length %d; want %d %q %q %d", tc.path, resp.StatusCode, body,
				resp.Header.Get("Content-Type"), resp.ContentLength, tc.status, tc.body, tc.contentType, tc.length)
		}
		if !resp.Close {
			t.Errorf("%s: no Connection: close", tc.path)
		}
		if tc.path == "/inject" {
			if resp.Header.Get("Set-Cookie") != "" || resp.Header.Get("X-Value") != "a  Set-Cookie: stolen=1" {
				t.Errorf("a value with a line break: header %v", resp.Header)
			}
		}
	}
	for _, path := range []string{"/panic", "/abort"} {
		if _, _, err := get(path); err == nil {
			t.Errorf("%s: the response ended cleanly, want a cut", path)
		}
	}
	logMu.Lock()
	defer logMu.Unlock()
	if got := logged.String(); !strings.Contains(got, "panic serving") || !strings.Contains(got, "boom") || strings.Count(got, "panic serving") != 1 {
		t.Errorf("log %q, want the one panic that was not ErrAbortHandler", got)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Several topics through one connection, with the combined ID: Topics.Serve works the same
// on the listener's writer.
func TestListenerTopicsServe(t *testing.T) {
	checkNoLeaks(t)
	topics := NewTopics(Replay(100), WaitForSubscriber(false))
	defer topics.Close()
	ts := startListener(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		topics.Serve(w, r, "a", "b")
	}))
	c := dialTest(t, ts.URL)
	waitCount(t, "subscribers", 2, func() int { return topics.Stats().Subscribers })
	for _, name := range []string{"a", "b"} {
		if err := topics.Route(name).PublishEvent(func(w EventWriter) error { return w.WriteData(name) }); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]bool{}
	var last string
	for range 2 {
		if !c.Next() {
			t.Fatalf("Next = false, Err %v", c.Err())
		}
		var e Event
		c.Decode(&e)
		got[e.EventDataCollapsed()], last = true, e.EventID()
	}
	if !got["a"] || !got["b"] || !strings.HasPrefix(last, "~") {
		t.Errorf("events %v, last ID %q", got, last)
	}
}

// NewStream writes through the listener's writer as through net/http's.
func TestListenerNewStream(t *testing.T) {
	checkNoLeaks(t)
	ts := startListener(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := NewStream(w, r)
		if err != nil {
			t.Error(err)
			return
		}
		for i := range 3 {
			s.PublishEvent(func(w EventWriter) error { return w.WriteData(fmt.Sprint("token ", i)) })
		}
	}))
	c := dialTest(t, ts.URL)
	for i := range 3 {
		if got, want := nextData(t, c), fmt.Sprint("token ", i); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if c.Next() || c.Err() != nil {
		t.Errorf("Next true or Err %v, want a clean end", c.Err())
	}
}

// A stream costs two goroutines: its handler's and the one that notices the client leaving.
func TestListenerGoroutinesPerStream(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute(WaitForSubscriber(false))
	defer route.Close()
	ts := startListener(t, route)
	waitSubscribers(t, route, 0)
	before := runtime.NumGoroutine()
	const n = 50
	for range n {
		rawStream(t, ts.Listener.Addr().String(), "")
	}
	waitSubscribers(t, route, n)
	if got, most := runtime.NumGoroutine()-before, 2*n+maxIdleHeaderWriters; got > most {
		t.Errorf("%d goroutines for %d streams, want at most %d", got, n, most)
	}
}

func TestHeaderEnd(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0},
		{"GET / HTTP/1.1\r\n", 0},
		{"GET / HTTP/1.1\r\n\r\n", 18},
		{"GET / HTTP/1.1\r\nA: b\r\n\r\nrest", 24},
		{"GET / HTTP/1.1\nA: b\n\n", 21},
		{"GET / HTTP/1.1\r\nA: b\r\n\r", 0},
		{"\n\n", 2},
	} {
		if got := headerEnd([]byte(tc.in)); got != tc.want {
			t.Errorf("headerEnd(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestAcceptsEventStream(t *testing.T) {
	for _, tc := range []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{"text/event-stream"}, true},
		{[]string{"Text/Event-Stream"}, true},
		{[]string{"text/html, text/event-stream;q=0.9"}, true},
		{[]string{"*/*"}, false},
		{[]string{"text/html", "text/event-stream"}, true},
		{[]string{"text/event-streams"}, false},
	} {
		if got := acceptsEventStream(tc.accept); got != tc.want {
			t.Errorf("acceptsEventStream(%q) = %v", tc.accept, got)
		}
	}
}

// Close racing with connections at every stage (being read, handed over, streaming) leaves
// nothing behind: every connection ends, and no goroutine of the listener is left.
func TestListenerCloseRace(t *testing.T) {
	checkNoLeaks(t)
	for range 5 {
		route := NewRoute(WaitForSubscriber(false))
		mux := http.NewServeMux()
		mux.Handle("/events", route)
		mux.HandleFunc("/plain", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
		srv := &http.Server{Handler: mux}
		srv.RegisterOnShutdown(func() { route.Close() })
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(NewListener(ln, srv))
		var wg sync.WaitGroup
		for i := range 60 {
			wg.Go(func() {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					return // the listener is closed already
				}
				defer c.Close()
				switch i % 3 {
				case 0:
					io.WriteString(c, "GET /events HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n")
				case 1:
					io.WriteString(c, "GET /plain HTTP/1.1\r\nHost: t\r\n\r\n")
				case 2:
					io.WriteString(c, "GET /eve") // half a request
				}
				c.SetReadDeadline(time.Now().Add(10 * time.Second))
				io.Copy(io.Discard, c)
			})
		}
		time.Sleep(time.Duration(rand.IntN(20)) * time.Millisecond)
		publishData(t, route, "x")
		if rand.IntN(2) == 0 {
			srv.Close()
		} else {
			srv.Shutdown(context.Background())
		}
		route.Close()
		wg.Wait() // every connection was ended by the server
	}
}

// The server's ReadTimeout and WriteTimeout bound the reading of the request, not the
// stream: a healthy stream outlives them.
func TestListenerOutlivesServerTimeouts(t *testing.T) {
	t.Parallel() // a second of streaming; TestMain checks for leaks
	route := NewRoute(WaitForSubscriber(false))
	defer route.Close()
	ts := httptest.NewUnstartedServer(route)
	ts.Config.ReadTimeout, ts.Config.WriteTimeout = 200*time.Millisecond, 200*time.Millisecond
	ts.Listener = NewListener(ts.Listener, ts.Config)
	ts.Start()
	defer ts.Close()
	c := dialTest(t, ts.URL)
	waitSubscribers(t, route, 1)
	for i := range 10 {
		time.Sleep(100 * time.Millisecond)
		publishData(t, route, fmt.Sprint("tick ", i))
		if got, want := nextData(t, c), fmt.Sprint("tick ", i); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
}

// Rule 2 through the listener: a closed Route answers 204 No Content, which tells an
// EventSource not to reconnect, and the connection ends.
func TestListenerClosedRoute204(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute()
	route.Close()
	ts := startListener(t, route)
	c := rawStream(t, ts.Listener.Addr().String(), "")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusNoContent || len(body) != 0 || err != nil || !resp.Close {
		t.Errorf("status %d, body %q (%v), Connection: close %v; want 204, no body, close", resp.StatusCode, body, err, resp.Close)
	}
}
