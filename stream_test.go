package httpsse

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// protos are the two ways a Stream is served; each end-to-end test runs in both.
var protos = []string{"HTTP/1.1", "HTTP/2"}

// startStreamServer serves handler on a test server speaking proto, and returns the server
// and a client for it. Both are closed when the test ends.
func startStreamServer(t *testing.T, proto string, handler http.HandlerFunc, configure func(*http.Server)) (*httptest.Server, *http.Client) {
	t.Helper()
	ts := httptest.NewUnstartedServer(handler)
	if configure != nil {
		configure(ts.Config)
	}
	if proto == "HTTP/2" {
		ts.EnableHTTP2 = true
		ts.StartTLS()
	} else {
		ts.Start()
	}
	client := ts.Client()
	t.Cleanup(func() {
		client.CloseIdleConnections()
		ts.Close()
	})
	return ts, client
}

// streamRequest GETs url with client and ctx, failing t unless the response is a 200 event stream.
func streamRequest(t *testing.T, ctx context.Context, client *http.Client, url string) *http.Response {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s = %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, want 200", url, resp.StatusCode)
	}
	return resp
}

// publish publishes one event with the given data.
func publish(s *Stream, data string) error {
	return s.PublishEvent(func(w EventWriter) error { return w.WriteData(data) })
}

// NewStream answers 200 with the event-stream headers and flushes them before any event.
func TestStreamHeadersAtOnce(t *testing.T) {
	checkNoLeaks(t)
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			release := make(chan struct{})
			ts, client := startStreamServer(t, proto, func(w http.ResponseWriter, r *http.Request) {
				if _, err := NewStream(w, r); err != nil {
					t.Errorf("NewStream = %v", err)
					return
				}
				select { // no event: only the headers can reach the client
				case <-release:
				case <-r.Context().Done():
				}
			}, nil)
			defer close(release)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			resp := streamRequest(t, ctx, client, ts.URL)
			want := map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
			for k, v := range want {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if resp.ProtoMajor != int(proto[5]-'0') {
				t.Errorf("response is %s, want %s", resp.Proto, proto)
			}
		})
	}
}

// The bytes of each event, exactly, as a ResponseRecorder receives them; a rejected event
// sends nothing and leaves the Stream usable.
func TestStreamEventBytes(t *testing.T) {
	tests := []struct {
		name    string
		fn      func(w EventWriter) error
		want    string // what the event writes; "" when it must fail
		wantErr string // part of the error
	}{
		{"data", func(w EventWriter) error { return w.WriteData("hello") }, "data: hello\n\n", ""},
		{"empty data", func(w EventWriter) error { return w.WriteData("") }, "data:\n\n", ""},
		{"all fields", func(w EventWriter) error {
			w.WriteEvent("token")
			w.WriteID("7")
			w.WriteRetry(1500 * time.Millisecond)
			return w.WriteData("Hel")
		}, "event: token\nid: 7\nretry: 1500\ndata: Hel\n\n", ""},
		{"line breaks in data", func(w EventWriter) error { return w.WriteData("a\nb\r\nc\rd") }, "data: a\ndata: b\ndata: c\ndata: d\n\n", ""},
		{"data that looks like a field", func(w EventWriter) error { return w.WriteData("x\nevent: evil\n\nid: 9") },
			"data: x\ndata: event: evil\ndata:\ndata: id: 9\n\n", ""},
		{"heartbeat comment", func(w EventWriter) error { return w.WriteComment("heartbeat") }, ": heartbeat\n\n", ""},
		{"LF in event", func(w EventWriter) error {
			w.WriteData("before")
			return w.WriteEvent("a\ndata: injected")
		}, "", "event field contains '\\n'"},
		{"CR in event", func(w EventWriter) error { return w.WriteEvent("a\rb") }, "", "event field contains '\\r'"},
		{"LF in id", func(w EventWriter) error { return w.WriteID("1\n\ndata: x") }, "", "id field contains '\\n'"},
		{"NUL in id", func(w EventWriter) error { return w.WriteID("1\x00") }, "", "id field contains '\\x00'"},
		{"invalid UTF-8", func(w EventWriter) error { return w.WriteData("\xff") }, "", "not valid UTF-8"},
		{"negative retry", func(w EventWriter) error { return w.WriteRetry(-time.Second) }, "", "negative retry"},
		{"error ignored by fn", func(w EventWriter) error {
			w.WriteData("one")
			w.WriteID("x\ny")
			w.WriteData("two")
			return nil
		}, "", "id field contains"},
		{"fn fails after writing", func(w EventWriter) error {
			w.WriteEvent("token")
			w.WriteData("half an event")
			return errors.New("model failed")
		}, "", "model failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			s, err := NewStream(rec, httptest.NewRequest(http.MethodGet, "/", nil))
			if err != nil {
				t.Fatalf("NewStream = %v", err)
			}
			if !rec.Flushed || rec.Code != http.StatusOK || rec.Body.Len() != 0 {
				t.Fatalf("after NewStream: Flushed %v, status %d, body %q; want flushed headers, 200, no body", rec.Flushed, rec.Code, rec.Body)
			}
			err = s.PublishEvent(tt.fn)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("PublishEvent = %v, want an error containing %q", err, tt.wantErr)
				}
				if errors.Is(err, ErrClosed) {
					t.Errorf("PublishEvent = %v, which ends the Stream; a rejected event must not", err)
				}
				if rec.Body.Len() != 0 {
					t.Errorf("a rejected event wrote %q, want nothing", rec.Body)
				}
			} else if err != nil {
				t.Errorf("PublishEvent = %v", err)
			}
			// The Stream goes on after a rejected event.
			if err := publish(s, "next"); err != nil {
				t.Fatalf("PublishEvent after the first event = %v", err)
			}
			if got, want := rec.Body.String(), tt.want+"data: next\n\n"; got != want {
				t.Errorf("body = %q, want %q", got, want)
			}
		})
	}
}

// Bad arguments are errors, not panics, and write nothing.
func TestStreamBadArguments(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	if _, err := NewStream(nil, req); err == nil {
		t.Error("NewStream(nil, r) = nil error")
	}
	rec := httptest.NewRecorder()
	if _, err := NewStream(rec, nil); err == nil {
		t.Error("NewStream(w, nil) = nil error")
	}
	if len(rec.Header()) != 0 || rec.Body.Len() != 0 {
		t.Errorf("NewStream(w, nil) wrote headers %v, body %q", rec.Header(), rec.Body)
	}

	s, err := NewStream(rec, req)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PublishEvent(nil); err == nil || errors.Is(err, ErrClosed) {
		t.Errorf("PublishEvent(nil) = %v, want an error that does not end the Stream", err)
	}
	var kept EventWriter
	s.PublishEvent(func(w EventWriter) error {
		kept = w
		return w.WriteData("one")
	})
	if err := kept.WriteData("late"); err == nil {
		t.Error("an EventWriter used after PublishEvent returned accepted a field")
	}
	if err := publish(s, "two"); err != nil {
		t.Fatal(err)
	}
	if got, want := rec.Body.String(), "data: one\n\ndata: two\n\n"; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
}

// silentWriter is a ResponseWriter that cannot flush, and records any use.
type silentWriter struct {
	header http.Header
	used   []string
}

func (w *silentWriter) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}
func (w *silentWriter) Write(p []byte) (int, error) {
	w.used = append(w.used, fmt.Sprintf("Write(%q)", p))
	return len(p), nil
}
func (w *silentWriter) WriteHeader(code int) {
	w.used = append(w.used, fmt.Sprint("WriteHeader(", code, ")"))
}

// loopWriter's Unwrap returns itself.
type loopWriter struct{ silentWriter }

func (w *loopWriter) Unwrap() http.ResponseWriter { return w }

// When nothing in the chain can flush, NewStream returns an error and writes nothing.
func TestStreamCannotFlush(t *testing.T) {
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	for _, tt := range []struct {
		name string
		w    func(*silentWriter) http.ResponseWriter
	}{
		{"plain", func(sw *silentWriter) http.ResponseWriter { return sw }},
		{"behind Unwrap", func(sw *silentWriter) http.ResponseWriter { return &unwrapWriter{rw: sw} }},
		{"Unwrap to nil", func(*silentWriter) http.ResponseWriter { return &unwrapWriter{} }},
		{"Unwrap loops", func(sw *silentWriter) http.ResponseWriter { return &loopWriter{} }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sw := &silentWriter{}
			w := tt.w(sw)
			s, err := NewStream(w, req)
			if err == nil || s != nil {
				t.Fatalf("NewStream = %v, %v; want nil and an error", s, err)
			}
			if !strings.HasPrefix(err.Error(), "httpsse: cannot stream the response") {
				t.Errorf("NewStream error = %q, want it to say the response cannot be streamed", err)
			}
			if lw, ok := w.(*loopWriter); ok {
				sw = &lw.silentWriter
			}
			if len(sw.used) != 0 || len(sw.header) != 0 {
				t.Errorf("NewStream wrote %v with headers %v; want nothing", sw.used, sw.header)
			}
		})
	}
	sw := &silentWriter{}
	if _, err := NewStream(sw, req); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("NewStream error = %v, want it to wrap http.ErrNotSupported", err)
	}

	// On a server, the handler can still answer otherwise.
	checkNoLeaks(t)
	ts, client := startStreamServer(t, "HTTP/1.1", func(w http.ResponseWriter, r *http.Request) {
		if _, err := NewStream(&silentWriter{header: w.Header()}, r); err != nil {
			http.Error(w, err.Error(), http.StatusNotImplemented)
		}
	}, nil)
	resp, err := client.Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented || !strings.Contains(string(body), "cannot flush") {
		t.Errorf("GET = %d %q, want the handler's own 501 with NewStream's error", resp.StatusCode, body)
	}
}

// A request whose context is already done gets no stream, and nothing is written.
func TestStreamClientGoneBeforeStart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := httptest.NewRecorder()
	_, err := NewStream(rec, httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
	if !errors.Is(err, context.Canceled) {
		t.Errorf("NewStream = %v, want an error wrapping context.Canceled", err)
	}
	if rec.Flushed || len(rec.Header()) != 0 {
		t.Errorf("NewStream wrote headers %v (flushed %v); want nothing", rec.Header(), rec.Flushed)
	}
}

// Each event can be read by the client before the next PublishEvent call: PublishEvent
// flushes. The handler publishes the next event only once the client has read the last one.
func TestStreamEachEventFlushed(t *testing.T) {
	checkNoLeaks(t)
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			read := make(chan struct{})
			handlerErr := make(chan error, 1)
			ts, client := startStreamServer(t, proto, func(w http.ResponseWriter, r *http.Request) {
				handlerErr <- func() error {
					s, err := NewStream(w, r)
					if err != nil {
						return err
					}
					for i := range 5 {
						if err := s.PublishEvent(func(w EventWriter) error {
							w.WriteID(fmt.Sprint(i))
							return w.WriteData(fmt.Sprint("token ", i))
						}); err != nil {
							return err
						}
						select {
						case <-read:
						case <-time.After(5 * time.Second):
							return fmt.Errorf("event %d did not reach the client", i)
						}
					}
					return nil
				}()
			}, nil)
			resp := streamRequest(t, context.Background(), client, ts.URL)
			br := bufio.NewReader(resp.Body)
			for i := range 5 {
				want := fmt.Sprintf("id: %d\ndata: token %d\n\n", i, i)
				got := make([]byte, len(want))
				if _, err := io.ReadFull(br, got); err != nil || string(got) != want {
					t.Fatalf("event %d = %q, %v; want %q", i, got, err, want)
				}
				read <- struct{}{}
			}
			if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
				t.Errorf("after the events: %q, %v; want a clean end", rest, err)
			}
			if err := <-handlerErr; err != nil {
				t.Error(err)
			}
		})
	}
}

// An event larger than one write's 64 KiB arrives whole.
func TestStreamLargeEvent(t *testing.T) {
	checkNoLeaks(t)
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	ts, client := startStreamServer(t, "HTTP/1.1", func(w http.ResponseWriter, r *http.Request) {
		s, err := NewStream(w, r)
		if err != nil {
			t.Error(err)
			return
		}
		if err := publish(s, big); err != nil {
			t.Error(err)
		}
		if cap(s.buf) > maxStreamBuffer {
			t.Errorf("the Stream keeps a buffer of %d bytes after a large event, want at most %d", cap(s.buf), maxStreamBuffer)
		}
	}, nil)
	c := dialTest(t, ts.URL, HTTPClient(client))
	if got := nextData(t, c); got != big {
		t.Errorf("event data: %d bytes, want the %d published", len(got), len(big))
	}
}

// Once the client has gone, PublishEvent returns an error soon, without calling its function,
// and so does every later call, at once.
func TestStreamClientGone(t *testing.T) {
	checkNoLeaks(t)
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			gone := make(chan time.Time, 1)
			type result struct {
				first, later []error
				waited       time.Duration
				calledAfter  int
			}
			results := make(chan result, 1)
			ts, client := startStreamServer(t, proto, func(w http.ResponseWriter, r *http.Request) {
				var res result
				defer func() { results <- res }()
				s, err := NewStream(w, r)
				if err != nil {
					t.Error(err)
					return
				}
				for i := 0; ; i++ {
					err := publish(s, fmt.Sprint(i))
					if err != nil {
						res.first = append(res.first, err)
						select {
						case at := <-gone:
							res.waited = time.Since(at)
						default:
						}
						break
					}
					time.Sleep(5 * time.Millisecond)
				}
				for range 3 {
					start := time.Now()
					err := s.PublishEvent(func(w EventWriter) error {
						res.calledAfter++
						return w.WriteData("never")
					})
					if d := time.Since(start); d > 100*time.Millisecond {
						t.Errorf("PublishEvent after the end took %v", d)
					}
					res.later = append(res.later, err)
				}
			}, nil)
			ctx, cancel := context.WithCancel(context.Background())
			resp := streamRequest(t, ctx, client, ts.URL)
			br := bufio.NewReader(resp.Body)
			for range 3 {
				if _, err := br.ReadString('\n'); err != nil {
					t.Fatal(err)
				}
			}
			gone <- time.Now()
			cancel()
			resp.Body.Close()

			res := <-results
			if len(res.first) != 1 {
				t.Fatal("PublishEvent never failed")
			}
			if res.waited > 2*time.Second {
				t.Errorf("PublishEvent failed %v after the client went away", res.waited)
			}
			for _, err := range append(res.first, res.later...) {
				if !errors.Is(err, ErrClosed) || !strings.HasPrefix(err.Error(), "httpsse: stream ended: ") {
					t.Errorf("PublishEvent = %v, want a stream-ended error wrapping ErrClosed", err)
				}
			}
			for _, err := range res.later {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("later PublishEvent = %v, want it to wrap context.Canceled", err)
				}
			}
			if res.calledAfter != 0 {
				t.Errorf("PublishEvent called its function %d times after the end", res.calledAfter)
			}
		})
	}
}

// The message of the error once the client has gone.
func TestStreamClientGoneError(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := NewStream(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	for range 2 {
		err := publish(s, "x")
		if got, want := fmt.Sprint(err), "httpsse: stream ended: the client has gone: context canceled"; got != want {
			t.Errorf("PublishEvent = %q, want %q", got, want)
		}
		if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrClosed) {
			t.Errorf("PublishEvent = %v, want it to wrap context.Canceled and ErrClosed", err)
		}
	}
}

// The server's WriteTimeout and ReadTimeout of 1 s do not cut a stream of 3 s.
func TestStreamOutlivesServerTimeouts(t *testing.T) {
	checkNoLeaks(t)
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			const events, every = 30, 100 * time.Millisecond
			ts, client := startStreamServer(t, proto, func(w http.ResponseWriter, r *http.Request) {
				s, err := NewStream(w, r)
				if err != nil {
					t.Error(err)
					return
				}
				for i := range events {
					time.Sleep(every)
					if err := publish(s, fmt.Sprint(i)); err != nil {
						t.Errorf("PublishEvent(%d) = %v", i, err)
						return
					}
				}
			}, func(srv *http.Server) {
				srv.WriteTimeout = time.Second
				srv.ReadTimeout = time.Second
			})
			start := time.Now()
			c := dialTest(t, ts.URL, HTTPClient(client))
			for i := range events {
				if got := nextData(t, c); got != fmt.Sprint(i) {
					t.Fatalf("event = %q, want %d", got, i)
				}
			}
			if c.Next() {
				t.Error("an event after the last one")
			}
			if err := c.Err(); err != nil {
				t.Errorf("the stream ended with %v, want a clean end", err)
			}
			if d := time.Since(start); d < 3*time.Second {
				t.Errorf("the stream lasted %v, want at least 3 s", d)
			}
		})
	}
}

// A client that stops reading cannot hold the handler: a write that takes longer than its
// time limit ends the Stream, and every later call fails at once.
func TestStreamWriteTimeout(t *testing.T) {
	checkNoLeaks(t)
	result := make(chan []error, 1)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := NewStream(w, r)
		if err != nil {
			t.Error(err)
			return
		}
		s.timeout = 100 * time.Millisecond
		big := strings.Repeat("z", 1<<20)
		var errs []error
		for range 64 {
			if err := publish(s, big); err != nil {
				errs = append(errs, err)
				break
			}
		}
		start := time.Now()
		errs = append(errs, publish(s, "after"))
		if d := time.Since(start); d > 100*time.Millisecond {
			t.Errorf("PublishEvent after a timeout took %v", d)
		}
		result <- errs
	}))
	defer ts.Close()
	stalledClient(t, ts.Listener.Addr().String())
	var errs []error
	select {
	case errs = <-result:
	case <-time.After(10 * time.Second):
		t.Fatal("a client that stopped reading held the handler past the write time limit")
	}
	if len(errs) != 2 {
		t.Fatalf("64 MiB went to a client that reads nothing: errors %v", errs)
	}
	for _, err := range errs {
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.Is(err, ErrClosed) {
			t.Errorf("PublishEvent = %v, want it to wrap os.ErrDeadlineExceeded and ErrClosed", err)
		}
		if !strings.HasPrefix(err.Error(), "httpsse: stream ended: a write took longer than 100ms") {
			t.Errorf("PublishEvent = %q, want it to name the time limit", err)
		}
	}
}

// Middleware whose ResponseWriter has only Unwrap: the Stream flushes and sets deadlines
// through it, and writes through the middleware's Write.
func TestStreamBehindMiddleware(t *testing.T) {
	checkNoLeaks(t)
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			var written atomic.Int64
			ts, client := startStreamServer(t, proto, func(w http.ResponseWriter, r *http.Request) {
				u := &unwrapWriter{rw: w}
				defer func() { written.Store(u.written.Load()) }()
				s, err := NewStream(u, r)
				if err != nil {
					t.Error(err)
					return
				}
				if s.noDeadline {
					t.Error("the Stream found no write deadline behind Unwrap")
				}
				publish(s, "through middleware")
			}, func(srv *http.Server) { srv.WriteTimeout = time.Second })
			c := dialTest(t, ts.URL, HTTPClient(client))
			if got := nextData(t, c); got != "through middleware" {
				t.Errorf("event = %q", got)
			}
			if c.Next() || c.Err() != nil {
				t.Errorf("Next() after the last event = true or Err() = %v, want a clean end", c.Err())
			}
			if got, want := written.Load(), int64(len("data: through middleware\n\n")); got != want {
				t.Errorf("the middleware's Write saw %d bytes, want %d", got, want)
			}
		})
	}
}

// Several goroutines publish at once: their functions never run at once, and events are
// never interleaved.
func TestStreamConcurrentPublishers(t *testing.T) {
	checkNoLeaks(t)
	for _, proto := range protos {
		t.Run(proto, func(t *testing.T) {
			const publishers, each = 8, 50
			ts, client := startStreamServer(t, proto, func(w http.ResponseWriter, r *http.Request) {
				s, err := NewStream(w, r)
				if err != nil {
					t.Error(err)
					return
				}
				var running atomic.Int32
				var wg sync.WaitGroup
				for p := range publishers {
					wg.Go(func() {
						for i := range each {
							err := s.PublishEvent(func(w EventWriter) error {
								if running.Add(1) != 1 {
									t.Error("two PublishEvent functions ran at once")
								}
								defer running.Add(-1)
								w.WriteEvent(fmt.Sprint("p", p))
								for range 3 {
									w.WriteData(fmt.Sprintf("%d-%d", p, i))
									runtime.Gosched()
								}
								return nil
							})
							if err != nil {
								t.Error(err)
								return
							}
						}
					})
				}
				wg.Wait()
			}, nil)
			c := dialTest(t, ts.URL, HTTPClient(client))
			next := make([]int, publishers)
			for range publishers * each {
				if !c.Next() {
					t.Fatalf("Next() = false (Err %v)", c.Err())
				}
				var e Event
				c.Decode(&e)
				lines := e.EventData()
				var p, i int
				fmt.Sscanf(lines[0], "%d-%d", &p, &i)
				if len(lines) != 3 || lines[0] != lines[1] || lines[1] != lines[2] || e.EventName() != fmt.Sprint("p", p) {
					t.Fatalf("event interleaved with another: %q", e.String())
				}
				if i != next[p] {
					t.Fatalf("publisher %d: event %d arrived, want %d", p, i, next[p])
				}
				next[p]++
			}
			if c.Next() {
				t.Error("more events than were published")
			}
		})
	}
}

// blockingWriter is a flushing ResponseWriter whose Write waits until unblock is closed.
type blockingWriter struct {
	*httptest.ResponseRecorder
	writing chan struct{} // closed by the first Write that waits
	unblock chan struct{}
	once    sync.Once
}

func (w *blockingWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { close(w.writing) })
	<-w.unblock
	return w.ResponseRecorder.Write(p)
}

// A call waiting for another call's write returns as soon as the client has gone.
func TestStreamWaitingCallReturnsWhenClientGone(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bw := &blockingWriter{ResponseRecorder: httptest.NewRecorder(), writing: make(chan struct{}), unblock: make(chan struct{})}
	s, err := NewStream(bw, httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() { first <- publish(s, "stuck") }()
	<-bw.writing
	second := make(chan error, 1)
	go func() { second <- publish(s, "waiting") }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case err := <-second:
		if !errors.Is(err, ErrClosed) || !errors.Is(err, context.Canceled) {
			t.Errorf("waiting PublishEvent = %v, want it to wrap ErrClosed and context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a PublishEvent waiting for another's write did not return when the client went away")
	}
	close(bw.unblock)
	if err := <-first; err != nil {
		t.Errorf("the PublishEvent whose write went through = %v", err)
	}
	if err := publish(s, "after"); !errors.Is(err, ErrClosed) {
		t.Errorf("PublishEvent after the client went = %v, want ErrClosed", err)
	}
	if got, want := bw.Body.String(), "data: stuck\n\n"; got != want {
		t.Errorf("body = %q, want %q", got, want)
	}
}

// A Stream starts no goroutine: none is running beyond the test's own while it streams, and
// none after it has ended.
func TestStreamStartsNoGoroutine(t *testing.T) {
	checkNoLeaks(t)
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := NewStream(httptest.NewRecorder(), httptest.NewRequestWithContext(ctx, http.MethodGet, "/", nil))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		publish(s, fmt.Sprint(i))
		if n := runtime.NumGoroutine(); n > before {
			t.Fatalf("%d goroutines while streaming, want at most the %d before", n, before)
		}
	}
	cancel()
	publish(s, "after")
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the client went, want at most the %d before", n, before)
	}
}
