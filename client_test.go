package httpsse_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reiver/go-httpsse"
)

// The tests in this file run the Client against httptest servers whose handlers write raw
// event-stream bytes, so that each test says exactly what the server sent. Reconnection
// delays are milliseconds (ReconnectDelay or "retry:"), never the 3 s default.

// waitFor bounds every wait on the Client, so that a bug fails a test instead of hanging it.
const waitFor = 5 * time.Second

// ev is what a test compares of an event.
type ev struct {
	Name, ID, Data string
}

func (e ev) String() string { return fmt.Sprintf("{name %q id %q data %q}", e.Name, e.ID, e.Data) }

// attempt is what the server saw of one request.
type attempt struct {
	method     string
	path       string
	header     http.Header
	body       string
	protoMajor int
	start, end time.Time
}

// step answers one request of a scripted server.
type step func(w http.ResponseWriter, r *http.Request)

// sseServer is an httptest server that answers its n-th request with its n-th step, and
// with 204 No Content (which stops a Client from reconnecting) once the steps are used up.
// It records every request.
type sseServer struct {
	*httptest.Server
	steps []step

	mu       sync.Mutex
	attempts []attempt
}

// newServer starts an HTTP/1.1 sseServer that is closed when the test ends.
func newServer(t *testing.T, steps ...step) *sseServer {
	t.Helper()
	s := &sseServer{steps: steps}
	s.Server = httptest.NewUnstartedServer(s)
	s.Start()
	s.cleanup(t)
	return s
}

// newServerHTTP2 starts an HTTP/2 (TLS) sseServer that is closed when the test ends. Dial it
// with httpsse.HTTPClient(s.Client()).
func newServerHTTP2(t *testing.T, steps ...step) *sseServer {
	t.Helper()
	s := &sseServer{steps: steps}
	s.Server = httptest.NewUnstartedServer(s)
	s.EnableHTTP2 = true
	s.StartTLS()
	s.cleanup(t)
	return s
}

func (s *sseServer) cleanup(t *testing.T) {
	// Cleanups run last registered first: the Client (registered later by dial) is closed
	// before the server, and idle client connections go last.
	t.Cleanup(http.DefaultTransport.(*http.Transport).CloseIdleConnections)
	t.Cleanup(s.Close)
}

func (s *sseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := len(s.attempts)
	s.attempts = append(s.attempts, attempt{
		method:     r.Method,
		path:       r.URL.Path,
		header:     r.Header.Clone(),
		body:       string(body),
		protoMajor: r.ProtoMajor,
		start:      time.Now(),
	})
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.attempts[n].end = time.Now()
		s.mu.Unlock()
	}()
	if n < len(s.steps) {
		s.steps[n](w, r)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Attempts returns a copy of the requests seen so far.
func (s *sseServer) Attempts() []attempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.attempts)
}

// waitEnded waits until the server's n-th request (from 1) has been answered.
func (s *sseServer) waitEnded(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		if a := s.Attempts(); len(a) >= n && !a[n-1].end.IsZero() {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("server request %d not answered after %v", n, waitFor)
}

// startStream sends the headers of an event stream with the given Content-Type and flushes
// them.
func startStream(w http.ResponseWriter, contentType string) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(http.StatusOK)
	_ = http.NewResponseController(w).Flush()
}

// writeChunks writes each chunk and flushes it.
func writeChunks(w http.ResponseWriter, chunks ...string) {
	rc := http.NewResponseController(w)
	for _, c := range chunks {
		_, _ = io.WriteString(w, c)
		_ = rc.Flush()
	}
}

// stream answers with an event stream of the chunks, then ends the response cleanly.
func stream(chunks ...string) step {
	return func(w http.ResponseWriter, r *http.Request) {
		startStream(w, httpsse.ContentType)
		writeChunks(w, chunks...)
	}
}

// streamClose is stream with "Connection: close", so that the Client's next request opens a
// new connection.
func streamClose(chunks ...string) step {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		startStream(w, httpsse.ContentType)
		writeChunks(w, chunks...)
	}
}

// broken answers with an event stream of the chunks, then breaks the connection without
// ending the response.
func broken(chunks ...string) step {
	return func(w http.ResponseWriter, r *http.Request) {
		startStream(w, httpsse.ContentType)
		writeChunks(w, chunks...)
		panic(http.ErrAbortHandler)
	}
}

// hold answers with an event stream of the chunks, then keeps the response open until the
// client goes away.
func hold(chunks ...string) step {
	return func(w http.ResponseWriter, r *http.Request) {
		startStream(w, httpsse.ContentType)
		writeChunks(w, chunks...)
		<-r.Context().Done()
	}
}

// respond answers with the status, Content-Type ("" sends none at all) and body.
func respond(status int, contentType, body string) step {
	return func(w http.ResponseWriter, r *http.Request) {
		if contentType == "" {
			w.Header()["Content-Type"] = nil // no sniffing
		} else {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

// hangUp closes the connection without answering: a network error for the client.
func hangUp() step {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		conn.Close()
	}
}

// garbage answers with bytes that are not HTTP, then closes the connection.
func garbage() step {
	return func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(err)
		}
		_, _ = io.WriteString(conn, "this is not HTTP\r\n\r\n")
		conn.Close()
	}
}

// failing is the steps of a server that sends one event, then fails every reconnection with
// a network error.
func failing() []step {
	return append([]step{streamClose("data: a\n\n")}, slices.Repeat([]step{hangUp()}, 10000)...)
}

// dial dials url and closes the Client when the test ends.
func dial(t *testing.T, url string, opts ...httpsse.DialOption) httpsse.Client {
	t.Helper()
	c, err := httpsse.Dial(url, opts...)
	if err != nil {
		t.Fatalf("Dial(%q) error: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialRequest is dial for DialRequest.
func dialRequest(t *testing.T, req *http.Request, opts ...httpsse.DialOption) httpsse.Client {
	t.Helper()
	c, err := httpsse.DialRequest(req, opts...)
	if err != nil {
		t.Fatalf("DialRequest(%s %s) error: %v", req.Method, req.URL, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func newRequest(t *testing.T, ctx context.Context, method, url, body string) *http.Request {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func decode(t *testing.T, c httpsse.Client) ev {
	t.Helper()
	var e httpsse.Event
	if err := c.Decode(&e); err != nil {
		t.Errorf("Decode(&event) error: %v", err)
	}
	return ev{e.EventName(), e.EventID(), e.EventDataCollapsed()}
}

// next calls c.Next in another goroutine and returns its result, or fails the test (after
// closing c) if it does not return within d.
func next(t *testing.T, c httpsse.Client, d time.Duration) bool {
	t.Helper()
	done := make(chan bool, 1)
	go func() { done <- c.Next() }()
	select {
	case ok := <-done:
		return ok
	case <-time.After(d):
		c.Close()
		<-done
		t.Fatalf("Next() still blocked after %v", d)
		return false
	}
}

// nextEvent wants one more event from c.
func nextEvent(t *testing.T, c httpsse.Client) ev {
	t.Helper()
	if !next(t, c, waitFor) {
		t.Fatalf("Next() = false, want true (Err() = %v)", c.Err())
	}
	return decode(t, c)
}

// collect reads c to its end and returns the events.
func collect(t *testing.T, c httpsse.Client) []ev {
	t.Helper()
	var evs []ev
	deadline := time.Now().Add(waitFor)
	for next(t, c, time.Until(deadline)) {
		evs = append(evs, decode(t, c))
	}
	return evs
}

func checkEvents(t *testing.T, got, want []ev) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func checkErrNil(t *testing.T, c httpsse.Client) {
	t.Helper()
	if err := c.Err(); err != nil {
		t.Errorf("Err() = %v, want nil", err)
	}
}

// checkResponseError wants err to be a *ResponseError with the status code, whose message
// contains every one of msgs.
func checkResponseError(t *testing.T, err error, status int, msgs ...string) {
	t.Helper()
	var re *httpsse.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error = %v (%T), want a *httpsse.ResponseError", err, err)
	}
	if re.StatusCode != status {
		t.Errorf("ResponseError.StatusCode = %d, want %d", re.StatusCode, status)
	}
	if !strings.HasPrefix(err.Error(), "httpsse: ") {
		t.Errorf("error = %q, want the prefix %q", err, "httpsse: ")
	}
	for _, m := range msgs {
		if !strings.Contains(err.Error(), m) {
			t.Errorf("error = %q, want it to name %q", err, m)
		}
	}
}

func TestDialRequestHeadersAndEarlyReturn(t *testing.T) {
	dials := []struct {
		name string
		dial func(string, ...httpsse.DialOption) (httpsse.Client, error)
	}{
		{"Dial", httpsse.Dial},
		{"DialURL", httpsse.DialURL},
	}
	for _, tt := range dials {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			ts := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				startStream(w, httpsse.ContentType)
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
				writeChunks(w, "data: hello\n\n")
				<-r.Context().Done()
			})

			type result struct {
				c   httpsse.Client
				err error
			}
			done := make(chan result, 1)
			go func() {
				c, err := tt.dial(ts.URL)
				done <- result{c, err}
			}()
			var c httpsse.Client
			select {
			case res := <-done:
				if res.err != nil {
					t.Fatalf("%s(%q) error: %v", tt.name, ts.URL, res.err)
				}
				c = res.c
				t.Cleanup(func() { c.Close() })
			case <-time.After(waitFor):
				close(release)
				t.Fatalf("%s did not return after %v with the headers in and no event sent", tt.name, waitFor)
			}

			a := ts.Attempts()
			if len(a) != 1 {
				t.Fatalf("server saw %d requests, want 1", len(a))
			}
			if a[0].method != http.MethodGet {
				t.Errorf("method = %q, want GET", a[0].method)
			}
			for _, h := range []struct{ key, want string }{
				{"Accept", "text/event-stream"},
				{"Cache-Control", "no-cache"},
			} {
				if got := a[0].header.Get(h.key); got != h.want {
					t.Errorf("request header %s = %q, want %q", h.key, got, h.want)
				}
			}
			if got := a[0].header.Values("Last-Event-ID"); got != nil {
				t.Errorf("first request's Last-Event-ID = %q, want none", got)
			}

			close(release)
			if got, want := nextEvent(t, c), (ev{Data: "hello"}); got != want {
				t.Errorf("event = %v, want %v", got, want)
			}
			if err := c.Close(); err != nil {
				t.Errorf("Close() = %v, want nil", err)
			}
		})
	}
}

func TestDialResponseError(t *testing.T) {
	tests := []struct {
		name        string
		status      int
		contentType string
		want        []string // what the message must name
	}{
		{"204", http.StatusNoContent, httpsse.ContentType, []string{"204 No Content"}},
		{"404", http.StatusNotFound, "text/plain; charset=utf-8", []string{"404 Not Found"}},
		{"500", http.StatusInternalServerError, "text/plain; charset=utf-8", []string{"500 Internal Server Error"}},
		{"500 as an event stream", http.StatusInternalServerError, httpsse.ContentType, []string{"500 Internal Server Error"}},
		{"text/html", http.StatusOK, "text/html; charset=utf-8", []string{"Content-Type", "text/html; charset=utf-8"}},
		{"application/json", http.StatusOK, "application/json", []string{"Content-Type", "application/json"}},
		{"no Content-Type", http.StatusOK, "", []string{`Content-Type ""`}},
		{"text/event-streams", http.StatusOK, "text/event-streams", []string{"Content-Type", "text/event-streams"}},
		{"text/x-bogus", http.StatusOK, "text/x-bogus", []string{"Content-Type", "text/x-bogus"}}, // WPT format-mime-bogus
		{"text/event-stream, text/html", http.StatusOK, "text/event-stream, text/html", []string{"Content-Type", "text/event-stream, text/html"}},
		{"*/*", http.StatusOK, "*/*", []string{"Content-Type", "*/*"}},
		{"text/event-stream/x", http.StatusOK, "text/event-stream/x", []string{"Content-Type", "text/event-stream/x"}},
		{"text/event stream", http.StatusOK, "text/event stream", []string{"Content-Type", "text/event stream"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newServer(t, respond(tt.status, tt.contentType, "data: not an event stream\n\n"))
			c, err := httpsse.Dial(ts.URL)
			if err == nil {
				c.Close()
				t.Fatalf("Dial(%q) error = nil, want one", ts.URL)
			}
			if c != nil {
				t.Errorf("Dial(%q) client = %v, want nil with the error", ts.URL, c)
			}
			checkResponseError(t, err, tt.status, tt.want...)
			var re *httpsse.ResponseError
			if errors.As(err, &re) && re.ContentType != tt.contentType {
				t.Errorf("ResponseError.ContentType = %q, want %q", re.ContentType, tt.contentType)
			}
			if n := len(ts.Attempts()); n != 1 {
				t.Errorf("server saw %d requests, want 1", n)
			}
		})
	}
}

// Of several Content-Type lines the last valid one decides, and the error shows them all.
func TestDialContentTypeLines(t *testing.T) {
	ts := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header()["Content-Type"] = []string{"text/event-stream", "text/html"}
		w.WriteHeader(http.StatusOK)
	})
	c, err := httpsse.Dial(ts.URL)
	if err == nil {
		c.Close()
		t.Fatalf("Dial(%q) error = nil, want one", ts.URL)
	}
	checkResponseError(t, err, http.StatusOK, "text/event-stream, text/html")
	var re *httpsse.ResponseError
	if errors.As(err, &re) && re.ContentType != "text/event-stream, text/html" {
		t.Errorf("ResponseError.ContentType = %q, want both lines joined", re.ContentType)
	}
}

// TestDialContentTypeAccepted follows the Fetch Standard's "extract a MIME type", as
// EventSource does: only the essence counts, parameters never make a MIME type invalid, and
// of several values (comma-separated or on several lines) the last valid one wins.
func TestDialContentTypeAccepted(t *testing.T) {
	for _, lines := range [][]string{
		{"text/event-stream"},
		{"text/event-stream; charset=utf-8"},
		{"text/event-stream;charset=UTF-8"},
		{"Text/Event-Stream"},
		{"text/event-stream;"},                // WPT format-mime-trailing-semicolon
		{"text/event-stream;this=is;valid"},   // WPT format-mime-valid-bogus
		{"text/event-stream ; charset=utf-8"}, // whitespace before the parameters
		{`text/event-stream;x="a,b"`},         // a comma inside a quoted string
		{`text/event-stream;x="a\"b,c"`},      // and an escaped quote before it
		{"text/html, text/event-stream"},
		{"text/event-stream, */*"},
		{"text/event-stream, text/"},
		{"text/html", "text/event-stream"},
	} {
		t.Run(strings.Join(lines, " | "), func(t *testing.T) {
			ts := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header()["Content-Type"] = lines
				w.WriteHeader(http.StatusOK)
				writeChunks(w, "data: ok\n\n")
			})
			c := dial(t, ts.URL, httpsse.ReconnectDelay(time.Millisecond))
			checkEvents(t, collect(t, c), []ev{{Data: "ok"}})
			checkErrNil(t, c)
		})
	}
}

func TestDialNetworkError(t *testing.T) {
	ts := httptest.NewServer(http.NotFoundHandler())
	url := ts.URL
	ts.Close()
	c, err := httpsse.Dial(url)
	if err == nil {
		c.Close()
		t.Fatalf("Dial(%q) to a closed server: error = nil, want one", url)
	}

	c, err = httpsse.Dial("://no scheme")
	if err == nil {
		c.Close()
		t.Fatalf("Dial(%q) error = nil, want one", "://no scheme")
	}
	if !strings.HasPrefix(err.Error(), "httpsse: ") {
		t.Errorf("Dial(%q) error = %q, want the prefix %q", "://no scheme", err, "httpsse: ")
	}
}

func TestReconnectLastEventID(t *testing.T) {
	tests := []struct {
		name   string
		first  step
		want   []string // Last-Event-ID on the second and third request; nil: none
		events []ev
	}{
		{
			name:   "last dispatched id",
			first:  stream("id: 1\ndata: a\n\nid: 2\ndata: b\n\n"),
			want:   []string{"2"},
			events: []ev{{"", "1", "a"}, {"", "2", "b"}, {"", "2", "next"}},
		},
		{
			name:   "id of an event left unterminated does not count",
			first:  stream("id: 1\ndata: a\n\nid: 2\ndata: b\n"),
			want:   []string{"1"},
			events: []ev{{"", "1", "a"}, {"", "1", "next"}},
		},
		{
			name:   "id of an event cut by a broken connection does not count",
			first:  broken("id: 1\ndata: a\n\nid: 2\ndata: b\n"),
			want:   []string{"1"},
			events: []ev{{"", "1", "a"}, {"", "1", "next"}},
		},
		{
			name:   "id of an event without data counts",
			first:  stream("id: 1\ndata: a\n\nid: 7\n\n"),
			want:   []string{"7"},
			events: []ev{{"", "1", "a"}, {"", "7", "next"}},
		},
		{
			name:   "empty id clears it",
			first:  stream("id: 1\ndata: a\n\nid:\ndata: b\n\n"),
			want:   nil,
			events: []ev{{"", "1", "a"}, {"", "", "b"}, {"", "", "next"}},
		},
		{
			name:   "id without a colon clears it",
			first:  stream("id: 1\ndata: a\n\nid\n\n"),
			want:   nil,
			events: []ev{{"", "1", "a"}, {"", "", "next"}},
		},
		{
			name:   "id with NUL is ignored",
			first:  stream("id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"),
			want:   []string{"1"},
			events: []ev{{"", "1", "a"}, {"", "1", "b"}, {"", "1", "next"}},
		},
		{
			name:   "no id",
			first:  stream("data: a\n\n"),
			want:   nil,
			events: []ev{{"", "", "a"}, {"", "", "next"}},
		},
		{
			name:   "non-ASCII id",
			first:  stream("id: é€😀\ndata: a\n\n"),
			want:   []string{"é€😀"},
			events: []ev{{"", "é€😀", "a"}, {"", "é€😀", "next"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newServer(t, tt.first, stream("data: next\n\n"))
			c := dial(t, ts.URL, httpsse.ReconnectDelay(time.Millisecond))
			checkEvents(t, collect(t, c), tt.events)
			checkErrNil(t, c)

			a := ts.Attempts()
			if len(a) != 3 {
				t.Fatalf("server saw %d requests, want 3 (stream, reconnect, 204)", len(a))
			}
			if got := a[0].header.Values("Last-Event-ID"); got != nil {
				t.Errorf("request 1 Last-Event-ID = %q, want none", got)
			}
			for i := 1; i < 3; i++ {
				if got := a[i].header.Values("Last-Event-ID"); !slices.Equal(got, tt.want) {
					t.Errorf("request %d Last-Event-ID = %q, want %q", i+1, got, tt.want)
				}
			}
		})
	}
}

func TestReconnectIDAcrossStreams(t *testing.T) {
	ts := newServer(t,
		stream("id: a\ndata: 1\n\n"),
		stream("data: 2\n\nid: b\ndata: 3\n\n"),
		broken("data: 4\n\n"),
		stream("data: 5\n\n"),
	)
	c := dial(t, ts.URL, httpsse.ReconnectDelay(time.Millisecond))
	checkEvents(t, collect(t, c), []ev{
		{"", "a", "1"}, {"", "a", "2"}, {"", "b", "3"}, {"", "b", "4"}, {"", "b", "5"},
	})
	checkErrNil(t, c)
	a := ts.Attempts()
	want := [][]string{nil, {"a"}, {"b"}, {"b"}, {"b"}}
	if len(a) != len(want) {
		t.Fatalf("server saw %d requests, want %d", len(a), len(want))
	}
	for i := range a {
		if got := a[i].header.Values("Last-Event-ID"); !slices.Equal(got, want[i]) {
			t.Errorf("request %d Last-Event-ID = %q, want %q", i+1, got, want[i])
		}
	}
}

func TestReconnectDelay(t *testing.T) {
	tests := []struct {
		name     string
		opts     []httpsse.DialOption
		first    string
		min, max time.Duration
	}{
		{
			name:  "server retry, default delay",
			first: "retry: 100\ndata: a\n\n",
			min:   100 * time.Millisecond,
			max:   2 * time.Second, // well under the 3 s default
		},
		{
			name:  "ReconnectDelay without retry",
			opts:  []httpsse.DialOption{httpsse.ReconnectDelay(150 * time.Millisecond)},
			first: "data: a\n\n",
			min:   150 * time.Millisecond,
			max:   2 * time.Second,
		},
		{
			name:  "server retry overrides ReconnectDelay",
			opts:  []httpsse.DialOption{httpsse.ReconnectDelay(10 * time.Second)},
			first: "retry: 50\ndata: a\n\n",
			min:   50 * time.Millisecond,
			max:   2 * time.Second,
		},
		{
			name:  "retry in an event without data",
			opts:  []httpsse.DialOption{httpsse.ReconnectDelay(10 * time.Second)},
			first: "data: a\n\nretry: 50\n\n",
			min:   50 * time.Millisecond,
			max:   2 * time.Second,
		},
		{
			name:  "retry in an event left unterminated",
			opts:  []httpsse.DialOption{httpsse.ReconnectDelay(10 * time.Second)},
			first: "data: a\n\nretry: 50\n",
			min:   50 * time.Millisecond,
			max:   2 * time.Second,
		},
		{
			name:  "retry not all digits is ignored",
			opts:  []httpsse.DialOption{httpsse.ReconnectDelay(120 * time.Millisecond)},
			first: "retry: 10ms\ndata: a\n\nretry: 1.5\n\nretry: -1\n\nretry:  10\n\n",
			min:   120 * time.Millisecond,
			max:   2 * time.Second,
		},
		{
			name:  "last retry wins",
			opts:  []httpsse.DialOption{httpsse.ReconnectDelay(10 * time.Second)},
			first: "retry: 10000\ndata: a\n\nretry: 60\n\n",
			min:   60 * time.Millisecond,
			max:   2 * time.Second,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newServer(t, stream(tt.first))
			c := dial(t, ts.URL, tt.opts...)
			checkEvents(t, collect(t, c), []ev{{Data: "a"}})
			checkErrNil(t, c)
			a := ts.Attempts()
			if len(a) != 2 {
				t.Fatalf("server saw %d requests, want 2 (stream, 204)", len(a))
			}
			gap := a[1].start.Sub(a[0].end)
			if gap < tt.min || gap > tt.max {
				t.Errorf("reconnected after %v, want between %v and %v", gap, tt.min, tt.max)
			}
		})
	}
}

func TestReconnectRetryPersists(t *testing.T) {
	// The reconnection time set by one stream holds for the later reconnections too.
	ts := newServer(t, stream("retry: 80\ndata: a\n\n"), stream("data: b\n\n"))
	c := dial(t, ts.URL, httpsse.ReconnectDelay(10*time.Second))
	checkEvents(t, collect(t, c), []ev{{Data: "a"}, {Data: "b"}})
	checkErrNil(t, c)
	a := ts.Attempts()
	if len(a) != 3 {
		t.Fatalf("server saw %d requests, want 3", len(a))
	}
	for i := 1; i < 3; i++ {
		if gap := a[i].start.Sub(a[i-1].end); gap < 80*time.Millisecond || gap > 2*time.Second {
			t.Errorf("request %d came %v after the previous, want between 80ms and 2s", i+1, gap)
		}
	}
}

func TestReconnectResponse(t *testing.T) {
	tests := []struct {
		name   string
		second step
		status int      // 0: Err nil
		want   []string // what the error names
	}{
		{"204 ends cleanly", respond(http.StatusNoContent, "", ""), 0, nil},
		{"204 as an event stream ends cleanly", respond(http.StatusNoContent, httpsse.ContentType, ""), 0, nil},
		{"404", respond(http.StatusNotFound, "text/plain", "gone"), 404, []string{"404 Not Found"}},
		{"500", respond(http.StatusInternalServerError, "text/plain", "oops"), 500, []string{"500 Internal Server Error"}},
		{"503 as an event stream", respond(http.StatusServiceUnavailable, httpsse.ContentType, "data: x\n\n"), 503, []string{"503 Service Unavailable"}},
		{"text/html", respond(http.StatusOK, "text/html", "<p>hi</p>"), 200, []string{"Content-Type", "text/html"}},
		{"no Content-Type", respond(http.StatusOK, "", "data: x\n\n"), 200, []string{`Content-Type ""`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newServer(t, stream("id: 1\ndata: a\n\n"), tt.second, stream("data: never\n\n"))
			c := dial(t, ts.URL, httpsse.ReconnectDelay(time.Millisecond))
			checkEvents(t, collect(t, c), []ev{{"", "1", "a"}})
			if tt.status == 0 {
				checkErrNil(t, c)
			} else {
				checkResponseError(t, c.Err(), tt.status, tt.want...)
			}
			if next(t, c, waitFor) {
				t.Errorf("Next() after the end = true, want false")
			}
			if n := len(ts.Attempts()); n != 2 {
				t.Errorf("server saw %d requests, want 2 (no reconnection after the answer)", n)
			}
		})
	}
}

func TestReconnectNetworkErrors(t *testing.T) {
	const delay = 30 * time.Millisecond
	ts := newServer(t,
		streamClose("id: 1\ndata: a\n\n"),
		hangUp(),
		garbage(),
		hangUp(),
		stream("data: b\n\n"),
	)
	c := dial(t, ts.URL, httpsse.ReconnectDelay(delay))
	checkEvents(t, collect(t, c), []ev{{"", "1", "a"}, {"", "1", "b"}})
	checkErrNil(t, c)
	a := ts.Attempts()
	if len(a) != 6 {
		t.Fatalf("server saw %d requests, want 6 (stream, 3 network errors, stream, 204)", len(a))
	}
	for i := 1; i < len(a); i++ {
		if got := a[i].header.Get("Last-Event-ID"); got != "1" {
			t.Errorf("request %d Last-Event-ID = %q, want %q", i+1, got, "1")
		}
		// EventSource waits the reconnection time before each new attempt. (From start to
		// start: a hung-up request ends, for the client, before its handler returns.)
		if gap := a[i].start.Sub(a[i-1].start); gap < delay {
			t.Errorf("request %d came %v after the previous, want at least %v", i+1, gap, delay)
		}
	}
}

func TestReconnectOff(t *testing.T) {
	tests := []struct {
		name    string
		first   step
		events  []ev
		wantErr bool
	}{
		{"clean end", stream("data: a\n\ndata: b\n\n"), []ev{{Data: "a"}, {Data: "b"}}, false},
		{"unterminated event dropped", stream("data: a\n\ndata: b\n"), []ev{{Data: "a"}}, false},
		{"broken connection", broken("data: a\n\ndata: b\n"), []ev{{Data: "a"}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newServer(t, tt.first, stream("data: never\n\n"))
			c := dial(t, ts.URL, httpsse.Reconnect(false), httpsse.ReconnectDelay(time.Millisecond))
			checkEvents(t, collect(t, c), tt.events)
			if err := c.Err(); (err != nil) != tt.wantErr {
				t.Errorf("Err() = %v, want error: %v", err, tt.wantErr)
			}
			if n := len(ts.Attempts()); n != 1 {
				t.Errorf("server saw %d requests, want 1", n)
			}
		})
	}
}

func TestDialRequestNonGET(t *testing.T) {
	t.Run("not re-sent by default", func(t *testing.T) {
		ts := newServer(t, stream("id: 1\ndata: a\n\n"), stream("data: never\n\n"))
		req := newRequest(t, context.Background(), http.MethodPost, ts.URL, `{"prompt":"hi"}`)
		req.Header.Set("Content-Type", "application/json")
		c := dialRequest(t, req, httpsse.ReconnectDelay(time.Millisecond))
		checkEvents(t, collect(t, c), []ev{{"", "1", "a"}})
		checkErrNil(t, c)
		a := ts.Attempts()
		if len(a) != 1 {
			t.Fatalf("server saw %d requests, want exactly 1", len(a))
		}
		if a[0].method != http.MethodPost || a[0].body != `{"prompt":"hi"}` {
			t.Errorf("request = %s with body %q, want POST with body %q", a[0].method, a[0].body, `{"prompt":"hi"}`)
		}
		if got := a[0].header.Get("Accept"); got != httpsse.ContentType {
			t.Errorf("request header Accept = %q, want %q", got, httpsse.ContentType)
		}
	})

	t.Run("broken stream not re-sent by default", func(t *testing.T) {
		ts := newServer(t, broken("data: a\n\ndata: b"), stream("data: never\n\n"))
		req := newRequest(t, context.Background(), http.MethodPost, ts.URL, "prompt")
		c := dialRequest(t, req, httpsse.ReconnectDelay(time.Millisecond))
		checkEvents(t, collect(t, c), []ev{{Data: "a"}})
		if err := c.Err(); err == nil {
			t.Errorf("Err() = nil, want the error that broke the stream")
		}
		if n := len(ts.Attempts()); n != 1 {
			t.Errorf("server saw %d requests, want exactly 1", n)
		}
	})

	t.Run("re-sent with ReconnectNonGET", func(t *testing.T) {
		ts := newServer(t, stream("id: 1\ndata: a\n\n"), broken("data: b\n\n"))
		req := newRequest(t, context.Background(), http.MethodPost, ts.URL, "prompt")
		c := dialRequest(t, req, httpsse.ReconnectNonGET(true), httpsse.ReconnectDelay(time.Millisecond))
		checkEvents(t, collect(t, c), []ev{{"", "1", "a"}, {"", "1", "b"}})
		checkErrNil(t, c)
		a := ts.Attempts()
		if len(a) != 3 {
			t.Fatalf("server saw %d requests, want 3", len(a))
		}
		for i, at := range a {
			if at.method != http.MethodPost || at.body != "prompt" {
				t.Errorf("request %d = %s with body %q, want POST with body %q", i+1, at.method, at.body, "prompt")
			}
		}
		if got := a[1].header.Get("Last-Event-ID"); got != "1" {
			t.Errorf("request 2 Last-Event-ID = %q, want %q", got, "1")
		}
	})

	t.Run("body that cannot be re-sent", func(t *testing.T) {
		ts := newServer(t, stream("data: a\n\n"), stream("data: never\n\n"))
		req := newRequest(t, context.Background(), http.MethodPost, ts.URL, "")
		req.Body = io.NopCloser(strings.NewReader("prompt")) // no GetBody
		c := dialRequest(t, req, httpsse.ReconnectNonGET(true), httpsse.ReconnectDelay(time.Millisecond))
		checkEvents(t, collect(t, c), []ev{{Data: "a"}})
		err := c.Err()
		if err == nil || !strings.Contains(err.Error(), "GetBody") {
			t.Errorf("Err() = %v, want an error naming GetBody", err)
		}
		if n := len(ts.Attempts()); n != 1 {
			t.Errorf("server saw %d requests, want 1", n)
		}
	})
}

func TestDialRequestHeaders(t *testing.T) {
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			ts := newServer(t, stream("id: 1\ndata: a\n\n"), broken("data: b\n\n"))
			req := newRequest(t, context.Background(), method, ts.URL, "")
			req.Header.Set("Authorization", "Bearer secret")
			req.Header.Set("X-Custom", "yes")
			c := dialRequest(t, req, httpsse.ReconnectNonGET(true), httpsse.ReconnectDelay(time.Millisecond))
			checkEvents(t, collect(t, c), []ev{{"", "1", "a"}, {"", "1", "b"}})
			checkErrNil(t, c)
			a := ts.Attempts()
			if len(a) != 3 {
				t.Fatalf("server saw %d requests, want 3", len(a))
			}
			for i, at := range a {
				for _, h := range []struct{ key, want string }{
					{"Authorization", "Bearer secret"},
					{"X-Custom", "yes"},
					{"Accept", httpsse.ContentType},
					{"Cache-Control", "no-cache"},
				} {
					if got := at.header.Get(h.key); got != h.want {
						t.Errorf("request %d header %s = %q, want %q", i+1, h.key, got, h.want)
					}
				}
			}
			if got := req.Header.Values("Last-Event-ID"); got != nil {
				t.Errorf("caller's request Last-Event-ID = %q after reconnection, want it untouched", got)
			}
		})
	}
}

func TestDialRequestContextCancel(t *testing.T) {
	tests := []struct {
		name   string
		method string
		steps  []step
		opts   []httpsse.DialOption
		wait   int // the server request to wait for the end of before cancel; 0: none
	}{
		{"GET while reading", http.MethodGet, []step{hold("data: a\n\n")}, nil, 0},
		{"POST while reading", http.MethodPost, []step{hold("data: a\n\n")}, nil, 0},
		{"GET while waiting to reconnect", http.MethodGet, []step{stream("data: a\n\n")},
			[]httpsse.DialOption{httpsse.ReconnectDelay(time.Minute)}, 1},
		{"GET while reconnecting fails", http.MethodGet, failing(),
			[]httpsse.DialOption{httpsse.ReconnectDelay(time.Millisecond)}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newServer(t, tt.steps...)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c := dialRequest(t, newRequest(t, ctx, tt.method, ts.URL, ""), tt.opts...)
			if got, want := nextEvent(t, c), (ev{Data: "a"}); got != want {
				t.Errorf("event = %v, want %v", got, want)
			}
			result := make(chan bool, 1)
			go func() { result <- c.Next() }()
			if tt.wait > 0 {
				ts.waitEnded(t, tt.wait)
			}
			time.Sleep(10 * time.Millisecond) // let Next block
			cancel()
			select {
			case ok := <-result:
				if ok {
					t.Errorf("Next() after cancel = true, want false")
				}
			case <-time.After(waitFor):
				c.Close()
				<-result
				t.Fatalf("Next() still blocked %v after the context was canceled", waitFor)
			}
			if err := c.Err(); !errors.Is(err, context.Canceled) {
				t.Errorf("Err() = %v, want an error that is context.Canceled", err)
			}
		})
	}
}

func TestClose(t *testing.T) {
	tests := []struct {
		name  string
		http2 bool
		steps []step
		opts  []httpsse.DialOption
		wait  int // the server request to wait for the end of before Close; 0: none
	}{
		{"Next blocked reading", false, []step{hold("data: a\n\n")}, nil, 0},
		{"Next blocked reading HTTP/2", true, []step{hold("data: a\n\n")}, nil, 0},
		{"waiting to reconnect (option)", false, []step{stream("data: a\n\n")}, []httpsse.DialOption{httpsse.ReconnectDelay(time.Minute)}, 1},
		{"waiting to reconnect HTTP/2", true, []step{stream("data: a\n\n")}, []httpsse.DialOption{httpsse.ReconnectDelay(time.Minute)}, 1},
		{"waiting to reconnect (retry)", false, []step{stream("retry: 60000\ndata: a\n\n")}, nil, 1},
		{"reconnecting fails", false, failing(),
			[]httpsse.DialOption{httpsse.ReconnectDelay(time.Millisecond)}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := runtime.NumGoroutine()
			var ts *sseServer
			opts := tt.opts
			if tt.http2 {
				ts = newServerHTTP2(t, tt.steps...)
				opts = append(opts, httpsse.HTTPClient(ts.Client()))
			} else {
				ts = newServer(t, tt.steps...)
			}
			c, err := httpsse.Dial(ts.URL, opts...)
			if err != nil {
				t.Fatalf("Dial(%q) error: %v", ts.URL, err)
			}
			if got, want := nextEvent(t, c), (ev{Data: "a"}); got != want {
				t.Errorf("event = %v, want %v", got, want)
			}
			result := make(chan bool, 1)
			go func() { result <- c.Next() }()
			if tt.wait > 0 {
				ts.waitEnded(t, tt.wait)
			}
			time.Sleep(10 * time.Millisecond) // let Next block

			start := time.Now()
			if err := c.Close(); err != nil {
				t.Errorf("Close() = %v, want nil", err)
			}
			select {
			case ok := <-result:
				if ok {
					t.Errorf("Next() after Close = true, want false")
				}
			case <-time.After(waitFor):
				t.Fatalf("Next() still blocked %v after Close", waitFor)
			}
			if d := time.Since(start); d > time.Second {
				t.Errorf("Next() returned %v after Close, want promptly", d)
			}
			checkErrNil(t, c)
			if err := c.Close(); err != nil {
				t.Errorf("second Close() = %v, want nil", err)
			}
			if next(t, c, waitFor) {
				t.Errorf("Next() after Close and a false Next = true, want false")
			}
			checkErrNil(t, c)

			// Everything the Client started ends with it.
			ts.Close()
			ts.Client().Transport.(*http.Transport).CloseIdleConnections()
			http.DefaultTransport.(*http.Transport).CloseIdleConnections()
			checkGoroutines(t, before)
		})
	}
}

// checkGoroutines waits briefly for the number of goroutines to come back to before.
func checkGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("%d goroutines after Close, want at most %d as before:\n%s", n, before, buf)
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCloseBeforeNext(t *testing.T) {
	ts := newServer(t, hold("data: a\n\n"))
	c := dial(t, ts.URL)
	if err := c.Close(); err != nil {
		t.Errorf("Close() = %v, want nil", err)
	}
	if next(t, c, waitFor) {
		t.Errorf("Next() after Close = true, want false")
	}
	checkErrNil(t, c)
}

func TestCloseKeepsEarlierError(t *testing.T) {
	ts := newServer(t, stream("data: a\n\n"), respond(http.StatusInternalServerError, "text/plain", ""))
	c := dial(t, ts.URL, httpsse.ReconnectDelay(time.Millisecond))
	collect(t, c)
	c.Close()
	checkResponseError(t, c.Err(), http.StatusInternalServerError)
}

// setter is an EventSetter that records what it is given.
type setter struct {
	name, id string
	data     []string
}

func (s *setter) AppendEventDatum(d string) { s.data = append(s.data, d) }
func (s *setter) SetEventName(n string)     { s.name = n }
func (s *setter) SetEventID(id string)      { s.id = id }

func TestDecode(t *testing.T) {
	ts := newServer(t, hold(
		"event: greeting\nid: 42\ndata: hello\ndata:\ndata: world\n\n",
		": comment\ndata: second\n\n",
		"data: third\n\n",
		"event: x\ndata: fourth\n\n",
	))
	c := dial(t, ts.URL)

	if !next(t, c, waitFor) {
		t.Fatalf("Next() = false, want true (Err() = %v)", c.Err())
	}
	var e httpsse.Event
	if err := c.Decode(&e); err != nil {
		t.Fatalf("Decode(*Event) error: %v", err)
	}
	if got, want := (ev{e.EventName(), e.EventID(), e.EventDataCollapsed()}), (ev{"greeting", "42", "hello\n\nworld"}); got != want {
		t.Errorf("Decode(*Event) = %v, want %v", got, want)
	}
	if got, want := e.EventData(), []string{"hello", "", "world"}; !slices.Equal(got, want) {
		t.Errorf("EventData() = %q, want %q", got, want)
	}
	var s setter
	if err := c.Decode(&s); err != nil {
		t.Fatalf("Decode(EventSetter) error: %v", err)
	}
	if s.name != "greeting" || s.id != "42" || !slices.Equal(s.data, []string{"hello", "", "world"}) {
		t.Errorf("Decode(EventSetter) gave name %q, id %q, data %q; want %q, %q, %q",
			s.name, s.id, s.data, "greeting", "42", []string{"hello", "", "world"})
	}

	if !next(t, c, waitFor) {
		t.Fatalf("Next() = false, want true (Err() = %v)", c.Err())
	}
	s = setter{name: "stale", id: "stale"}
	if err := c.Decode(&s); err != nil {
		t.Fatalf("Decode(EventSetter) error: %v", err)
	}
	if s.name != "" || s.id != "42" || !slices.Equal(s.data, []string{"second"}) {
		t.Errorf("Decode(EventSetter) gave name %q, id %q, data %q; want %q, %q, %q",
			s.name, s.id, s.data, "", "42", []string{"second"})
	}

	// A type Decode does not take is an error naming it, and the stream goes on.
	if !next(t, c, waitFor) {
		t.Fatalf("Next() = false, want true (Err() = %v)", c.Err())
	}
	for _, v := range []interface{}{
		nil,
		42,
		"string",
		httpsse.Event{}, // not a pointer
		&struct{ Data string }{},
		new([]byte),
	} {
		err := c.Decode(v)
		if err == nil {
			t.Errorf("Decode(%T) error = nil, want one", v)
			continue
		}
		if want := fmt.Sprintf("%T", v); !strings.Contains(err.Error(), want) {
			t.Errorf("Decode(%T) error = %q, want it to name %s", v, err, want)
		}
	}
	if got, want := decode(t, c), (ev{"", "42", "third"}); got != want {
		t.Errorf("Decode after a refused type = %v, want %v", got, want)
	}
	if got, want := nextEvent(t, c), (ev{"x", "42", "fourth"}); got != want {
		t.Errorf("event after a refused type = %v, want %v", got, want)
	}
	checkErrNil(t, c)
}

func TestMaxEventSize(t *testing.T) {
	big := strings.Repeat("x", 2000)
	huge := strings.Repeat("h", 17<<20) // over the default limit of 16 MiB
	hugeEvent := "data: " + huge + "\n\n"
	tests := []struct {
		name   string
		opts   []httpsse.DialOption
		stream string
		hold   bool     // keep the connection open after the stream
		data   []string // the data of the events wanted, in order
		tooBig bool
	}{
		{
			name:   "over the limit in one line",
			opts:   []httpsse.DialOption{httpsse.MaxEventSize(1024)},
			stream: "data: small\n\ndata: " + big + "\n\ndata: after\n\n",
			data:   []string{"small"},
			tooBig: true,
		},
		{
			name:   "over the limit in many lines",
			opts:   []httpsse.DialOption{httpsse.MaxEventSize(1024)},
			stream: "data: small\n\n" + strings.Repeat("data: "+big[:100]+"\n", 20) + "\ndata: after\n\n",
			data:   []string{"small"},
			tooBig: true,
		},
		{
			name:   "over the limit in a line never ended",
			opts:   []httpsse.DialOption{httpsse.MaxEventSize(1024)},
			stream: "data: small\n\ndata: " + big,
			hold:   true,
			data:   []string{"small"},
			tooBig: true,
		},
		{
			name:   "over the limit in the event name",
			opts:   []httpsse.DialOption{httpsse.MaxEventSize(1024)},
			stream: "data: small\n\nevent: " + big + "\ndata: x\n\ndata: after\n\n",
			data:   []string{"small"},
			tooBig: true,
		},
		{
			name:   "under the limit",
			opts:   []httpsse.DialOption{httpsse.MaxEventSize(4096)},
			stream: "data: " + big + "\n\n",
			data:   []string{big},
		},
		{
			name:   "line over 64 KiB",
			stream: "data: " + huge[:200<<10] + "\n\n",
			data:   []string{huge[:200<<10]},
		},
		{
			name:   "6 MiB event in one line",
			stream: "data: " + huge[:6<<20] + "\n\n",
			data:   []string{huge[:6<<20]},
		},
		{
			name:   "6 MiB event in 6 lines",
			stream: strings.Repeat("data: "+huge[:1<<20]+"\n", 6) + "\n",
			data:   []string{strings.Repeat(huge[:1<<20]+"\n", 5) + huge[:1<<20]},
		},
		{
			name:   "no limit",
			opts:   []httpsse.DialOption{httpsse.MaxEventSize(0)},
			stream: hugeEvent,
			data:   []string{huge},
		},
		{
			name:   "default limit of 16 MiB",
			stream: hugeEvent,
			tooBig: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			first := stream(tt.stream)
			if tt.hold {
				first = hold(tt.stream)
			}
			steps := []step{first} // then 204
			if tt.tooBig {
				steps = append(steps, stream("data: never\n\n"))
			}
			ts := newServer(t, steps...)
			c := dial(t, ts.URL, append(tt.opts, httpsse.ReconnectDelay(time.Millisecond))...)
			var data []string
			for _, e := range collect(t, c) {
				data = append(data, e.Data)
			}
			if !slices.Equal(data, tt.data) {
				t.Errorf("got %d events of sizes %v, want %d of sizes %v", len(data), sizes(data), len(tt.data), sizes(tt.data))
			}
			err := c.Err()
			if tt.tooBig {
				if !errors.Is(err, httpsse.ErrEventTooLarge) {
					t.Errorf("Err() = %v, want an error that is ErrEventTooLarge", err)
				} else if !strings.HasPrefix(err.Error(), "httpsse: ") {
					t.Errorf("Err() = %q, want the prefix %q", err, "httpsse: ")
				}
				if n := len(ts.Attempts()); n != 1 {
					t.Errorf("server saw %d requests, want 1 (no reconnection after a too large event)", n)
				}
			} else if err != nil {
				t.Errorf("Err() = %v, want nil", err)
			}
		})
	}
}

func sizes(data []string) []int {
	var n []int
	for _, d := range data {
		n = append(n, len(d))
	}
	return n
}

func TestHTTP2(t *testing.T) {
	ts := newServerHTTP2(t,
		stream("id: 1\ndata: a\n\n", "event: e\ndata: b\n", "\n"),
		broken("data: c\n\n"),
		stream("data: d\n\n"),
	)
	req := newRequest(t, context.Background(), http.MethodGet, ts.URL, "")
	c := dialRequest(t, req, httpsse.HTTPClient(ts.Client()), httpsse.ReconnectDelay(time.Millisecond))
	checkEvents(t, collect(t, c), []ev{{"", "1", "a"}, {"e", "1", "b"}, {"", "1", "c"}, {"", "1", "d"}})
	checkErrNil(t, c)
	a := ts.Attempts()
	if len(a) != 4 {
		t.Fatalf("server saw %d requests, want 4", len(a))
	}
	for i, at := range a {
		if at.protoMajor != 2 {
			t.Errorf("request %d ProtoMajor = %d, want 2", i+1, at.protoMajor)
		}
		if i > 0 && at.header.Get("Last-Event-ID") != "1" {
			t.Errorf("request %d Last-Event-ID = %q, want %q", i+1, at.header.Get("Last-Event-ID"), "1")
		}
	}
}

func TestRoute(t *testing.T) {
	// A Route on the server, the Client on the other end.
	route := httpsse.NewRoute()
	t.Cleanup(func() { route.Close() })
	ts := httptest.NewServer(route)
	t.Cleanup(http.DefaultTransport.(*http.Transport).CloseIdleConnections)
	t.Cleanup(ts.Close)
	c := dial(t, ts.URL, httpsse.ReconnectDelay(time.Millisecond))

	publish := func(id, name string, data ...string) {
		t.Helper()
		err := route.PublishEvent(func(w httpsse.EventWriter) error {
			if id != "" {
				if err := w.WriteID(id); err != nil {
					return err
				}
			}
			if name != "" {
				if err := w.WriteEvent(name); err != nil {
					return err
				}
			}
			for _, d := range data {
				if err := w.WriteData(d); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("PublishEvent error: %v", err)
		}
	}
	publish("1", "", "a")
	publish("", "n", "b\nc")
	publish("2", "") // no data: not dispatched, but its id counts
	publish("", "", "d")
	for _, want := range []ev{{"", "1", "a"}, {"n", "1", "b\nc"}, {"", "2", "d"}} {
		if got := nextEvent(t, c); got != want {
			t.Errorf("event = %v, want %v", got, want)
		}
	}
	// Closing the Route ends the stream; the reconnection gets 204 and ends the Client cleanly.
	route.Close()
	if next(t, c, waitFor) {
		t.Errorf("Next() after Route.Close = true, want false")
	}
	checkErrNil(t, c)
}

// Test that nothing of the response body is read after the event that Next returns: an
// event is yielded as soon as its blank line is in.
func TestNextDoesNotWaitForMore(t *testing.T) {
	for _, end := range []string{"\n\n", "\r\r", "\r\n\r\n"} {
		t.Run(fmt.Sprintf("%q", end), func(t *testing.T) {
			ts := newServer(t, hold("data: a"+end))
			c := dial(t, ts.URL)
			if got, want := nextEvent(t, c), (ev{Data: "a"}); got != want {
				t.Errorf("event = %v, want %v", got, want)
			}
		})
	}
}

// The standard's parsing rules, through Dial, each byte in its own flushed chunk.
func TestDialChunked(t *testing.T) {
	in := "\xEF\xBB\xBFdata: a\r\ndata:b\r\rid: 1\revent: e\ndata:  c\r\n\r\n: comment\nfoo: bar\ndata\n\ndata: \xE2\x82\xFF\n\n"
	want := []ev{{"", "", "a\nb"}, {"e", "1", " c"}, {"", "1", ""}, {"", "1", "\uFFFD\uFFFD"}}
	var chunks []string
	for i := range len(in) {
		chunks = append(chunks, in[i:i+1])
	}
	ts := newServer(t, stream(chunks...))
	c := dial(t, ts.URL, httpsse.Reconnect(false))
	checkEvents(t, collect(t, c), want)
	checkErrNil(t, c)
}

func TestReconnectUnsendableLastEventID(t *testing.T) {
	// An ID may hold control characters that net/http refuses to put in a header. Such a
	// reconnection can never be sent: the stream must end with an error that says so, not
	// retry forever.
	ts := newServer(t, stream("id: a\x01b\ndata: a\n\n"), stream("data: never\n\n"))
	c := dial(t, ts.URL, httpsse.ReconnectDelay(time.Millisecond))
	checkEvents(t, collect(t, c), []ev{{"", "a\x01b", "a"}})
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "Last-Event-ID") {
		t.Errorf("Err() = %v, want an error naming Last-Event-ID", err)
	}
	if n := len(ts.Attempts()); n != 1 {
		t.Errorf("server saw %d requests, want 1", n)
	}
}

func TestDialRequestLiteral(t *testing.T) {
	// A request built as a struct literal: an empty Method means GET (so it reconnects),
	// and a nil Header is allowed.
	ts := newServer(t, stream("id: 1\ndata: a\n\n"), stream("data: b\n\n"))
	u, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := dialRequest(t, &http.Request{URL: u}, httpsse.ReconnectDelay(time.Millisecond))
	checkEvents(t, collect(t, c), []ev{{"", "1", "a"}, {"", "1", "b"}})
	checkErrNil(t, c)
	a := ts.Attempts()
	if len(a) != 3 {
		t.Fatalf("server saw %d requests, want 3", len(a))
	}
	for i, at := range a {
		if at.method != http.MethodGet || at.header.Get("Accept") != httpsse.ContentType {
			t.Errorf("request %d = %s with Accept %q, want GET with %q", i+1, at.method, at.header.Get("Accept"), httpsse.ContentType)
		}
	}
}

func TestDialRequestLastEventID(t *testing.T) {
	// A caller resuming a stream sets Last-Event-ID itself; it is the last event ID until the
	// server sends another, so a reconnection resumes from it too.
	ts := newServer(t, stream("data: a\n\n"), stream("id: 9\ndata: b\n\n"), stream("data: c\n\n"))
	req := newRequest(t, context.Background(), http.MethodGet, ts.URL, "")
	req.Header.Set("Last-Event-ID", "5")
	c := dialRequest(t, req, httpsse.ReconnectDelay(time.Millisecond))
	checkEvents(t, collect(t, c), []ev{{"", "5", "a"}, {"", "9", "b"}, {"", "9", "c"}})
	checkErrNil(t, c)
	a := ts.Attempts()
	want := []string{"5", "5", "9", "9"}
	if len(a) != len(want) {
		t.Fatalf("server saw %d requests, want %d", len(a), len(want))
	}
	for i := range a {
		if got := a[i].header.Get("Last-Event-ID"); got != want[i] {
			t.Errorf("request %d Last-Event-ID = %q, want %q", i+1, got, want[i])
		}
	}
}

func TestCloseWithEventsBuffered(t *testing.T) {
	// Events already read from the connection are not yielded after Close.
	ts := newServer(t, hold("data: a\n\ndata: b\n\ndata: c\n\n"))
	c := dial(t, ts.URL)
	if got, want := nextEvent(t, c), (ev{Data: "a"}); got != want {
		t.Errorf("event = %v, want %v", got, want)
	}
	c.Close()
	if next(t, c, waitFor) {
		t.Errorf("Next() after Close = true (event %v), want false", decode(t, c))
	}
	checkErrNil(t, c)
}

func TestDecodeWithoutEvent(t *testing.T) {
	ts := newServer(t, stream("data: a\n\n"))
	c := dial(t, ts.URL, httpsse.Reconnect(false))
	var e httpsse.Event
	if err := c.Decode(&e); err == nil {
		t.Errorf("Decode before Next: error = nil, want one")
	}
	checkEvents(t, collect(t, c), []ev{{Data: "a"}})
	if err := c.Decode(&e); err == nil {
		t.Errorf("Decode after a false Next: error = nil, want one")
	}
}

func TestDialRedirect(t *testing.T) {
	// EventSource follows redirects, and reconnects to the URL it was given.
	ts := newServer(t,
		func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/events", http.StatusFound) },
		stream("id: 1\ndata: a\n\n"),
		func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/events", http.StatusTemporaryRedirect)
		},
		stream("data: b\n\n"),
	)
	c := dial(t, ts.URL+"/start", httpsse.ReconnectDelay(time.Millisecond))
	checkEvents(t, collect(t, c), []ev{{"", "1", "a"}, {"", "1", "b"}})
	checkErrNil(t, c)
	a := ts.Attempts()
	if len(a) != 5 {
		t.Fatalf("server saw %d requests, want 5", len(a))
	}
	for i, want := range []string{"/start", "/events", "/start", "/events", "/start"} {
		if a[i].path != want {
			t.Errorf("request %d path = %q, want %q", i+1, a[i].path, want)
		}
	}
	for i := 2; i < 4; i++ {
		if got := a[i].header.Get("Last-Event-ID"); got != "1" {
			t.Errorf("request %d Last-Event-ID = %q, want %q", i+1, got, "1")
		}
	}
}

func TestReconnectStreamStartsAfresh(t *testing.T) {
	// A new stream starts a new parse: its BOM is dropped, and nothing of an event the old
	// stream left unterminated (name, data) leaks into the first event of the new one.
	ts := newServer(t,
		stream("data: a\n\nevent: x\ndata: partial\ndata: more"),
		stream("\xEF\xBB\xBFdata: b\n\n"),
		stream("\xEF\xBB\xBF\xEF\xBB\xBFdata: c\n\n"), // only one BOM is dropped
	)
	c := dial(t, ts.URL, httpsse.ReconnectDelay(time.Millisecond))
	checkEvents(t, collect(t, c), []ev{{Data: "a"}, {Data: "b"}})
	checkErrNil(t, c)
}

// headerTransport adds a header to every request it sends.
type headerTransport struct {
	key, value string
	next       http.RoundTripper
}

func (h headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set(h.key, h.value)
	return h.next.RoundTrip(req)
}

func TestHTTPClient(t *testing.T) {
	ts := newServer(t, stream("data: a\n\n"), broken("data: b\n\n"))
	transport := &http.Transport{}
	t.Cleanup(transport.CloseIdleConnections)
	client := &http.Client{Transport: headerTransport{"X-Via", "custom", transport}}
	c := dial(t, ts.URL, httpsse.HTTPClient(client), httpsse.ReconnectDelay(time.Millisecond))
	checkEvents(t, collect(t, c), []ev{{Data: "a"}, {Data: "b"}})
	checkErrNil(t, c)
	a := ts.Attempts()
	if len(a) != 3 {
		t.Fatalf("server saw %d requests, want 3", len(a))
	}
	for i, at := range a {
		if got := at.header.Get("X-Via"); got != "custom" {
			t.Errorf("request %d header X-Via = %q, want %q (sent through the HTTPClient)", i+1, got, "custom")
		}
	}

	// HTTPClient(nil) is the default client.
	ts2 := newServer(t, stream("data: a\n\n"))
	c2 := dial(t, ts2.URL, httpsse.HTTPClient(nil), httpsse.ReconnectDelay(time.Millisecond))
	checkEvents(t, collect(t, c2), []ev{{Data: "a"}})
	checkErrNil(t, c2)
}

func TestCloseConcurrent(t *testing.T) {
	ts := newServer(t, hold("data: a\n\n"))
	c := dial(t, ts.URL)
	nextEvent(t, c)
	result := make(chan bool, 1)
	go func() { result <- c.Next() }()
	time.Sleep(10 * time.Millisecond)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := c.Close(); err != nil {
				t.Errorf("Close() = %v, want nil", err)
			}
		}()
	}
	wg.Wait()
	select {
	case ok := <-result:
		if ok {
			t.Errorf("Next() after Close = true, want false")
		}
	case <-time.After(waitFor):
		t.Fatalf("Next() still blocked %v after Close", waitFor)
	}
	checkErrNil(t, c)
}

func TestDecodeReusedEvent(t *testing.T) {
	// One Event decoded into again and again holds each event, not a mix with the last one.
	ts := newServer(t, stream(
		"event: x\nid: 1\ndata: a\ndata: b\n\n",
		"data: c\n\n",
		"event: y\nid\ndata: d\n\n",
		"event: z\ndata: e\n\n",
	))
	c := dial(t, ts.URL, httpsse.Reconnect(false))
	want := []struct {
		name, id string
		data     []string
	}{
		{"x", "1", []string{"a", "b"}},
		{"", "1", []string{"c"}},
		{"y", "", []string{"d"}},
		{"z", "", []string{"e"}},
	}
	var e httpsse.Event
	for i, w := range want {
		if !next(t, c, waitFor) {
			t.Fatalf("Next() for event %d = false, want true (Err() = %v)", i+1, c.Err())
		}
		if err := c.Decode(&e); err != nil {
			t.Fatalf("Decode(&event) error: %v", err)
		}
		if e.EventName() != w.name || e.EventID() != w.id || !slices.Equal(e.EventData(), w.data) {
			t.Errorf("event %d = name %q id %q data %q, want name %q id %q data %q",
				i+1, e.EventName(), e.EventID(), e.EventData(), w.name, w.id, w.data)
		}
	}
	if next(t, c, waitFor) {
		t.Errorf("Next() at the end = true, want false")
	}
	checkErrNil(t, c)
}

func TestDecodeReusedEventEmptyData(t *testing.T) {
	ts := newServer(t, stream("event: x\nid: 1\ndata: a\n\n", "id\ndata\n\n"))
	c := dial(t, ts.URL, httpsse.Reconnect(false))
	var e httpsse.Event
	for i, want := range []ev{{"x", "1", "a"}, {"", "", ""}} {
		if !next(t, c, waitFor) {
			t.Fatalf("Next() for event %d = false, want true (Err() = %v)", i+1, c.Err())
		}
		if err := c.Decode(&e); err != nil {
			t.Fatalf("Decode(&event) error: %v", err)
		}
		if got := (ev{e.EventName(), e.EventID(), e.EventDataCollapsed()}); got != want {
			t.Errorf("event %d = %v, want %v", i+1, got, want)
		}
	}
}
