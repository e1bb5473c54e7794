package httpsse_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/reiver/go-httpsse"
)

// The tests in this file check the Client's timing (backoff, OnReconnect, IdleTimeout,
// ConnectTimeout, ReconnectOnUnavailable) exactly, inside testing/synctest bubbles, where
// time is fake and moves only when every goroutine of the bubble waits. The network stays
// out of the bubbles: the Client's http.Client has an in-memory RoundTripper, memTransport,
// that answers each request with the next scripted step, its body an io.Pipe that a script
// goroutine writes into. The same behaviours are checked over real connections in
// client_prod_test.go.

// memStep answers one request of a memTransport.
type memStep func(req *http.Request) (*http.Response, error)

// memTransport is an http.RoundTripper that answers its n-th request with its n-th step, and
// with 204 No Content once the steps are used up. It records when each request came.
type memTransport struct {
	steps []memStep

	mu       sync.Mutex
	times    []time.Time
	lastIDs  []string
	requests int
}

func (m *memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	m.mu.Lock()
	n := m.requests
	m.requests++
	m.times = append(m.times, time.Now())
	m.lastIDs = append(m.lastIDs, req.Header.Get("Last-Event-ID"))
	m.mu.Unlock()
	if req.Body != nil {
		req.Body.Close()
	}
	if err := req.Context().Err(); err != nil {
		return nil, err
	}
	if n < len(m.steps) {
		return m.steps[n](req)
	}
	return memResponse(http.StatusNoContent, nil, nil), nil
}

// gaps returns the time between each request and the one before it.
func (m *memTransport) gaps() []time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var gaps []time.Duration
	for i := 1; i < len(m.times); i++ {
		gaps = append(gaps, m.times[i].Sub(m.times[i-1]))
	}
	return gaps
}

func (m *memTransport) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.requests
}

func memResponse(status int, header http.Header, body io.ReadCloser) *http.Response {
	if header == nil {
		header = http.Header{}
	}
	if body == nil {
		body = http.NoBody
	}
	return &http.Response{
		StatusCode: status,
		Status:     fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: header,
		Body:   body,
	}
}

// memBody returns a response body that script writes into, in its own goroutine, and that
// ends when script returns. The body fails, as a real connection's does, when the request's
// context ends.
func memBody(req *http.Request, script func(ctx context.Context, w io.Writer)) io.ReadCloser {
	pr, pw := io.Pipe()
	ctx := req.Context()
	stop := context.AfterFunc(ctx, func() { pr.CloseWithError(ctx.Err()) })
	go func() {
		defer stop()
		script(ctx, pw)
		pw.Close()
	}()
	return pr
}

// memStream answers with an event stream that script writes.
func memStream(script func(ctx context.Context, w io.Writer)) memStep {
	return func(req *http.Request) (*http.Response, error) {
		return memResponse(http.StatusOK, http.Header{"Content-Type": {httpsse.ContentType}}, memBody(req, script)), nil
	}
}

// memEvents answers with an event stream of the chunks, then ends it.
func memEvents(chunks ...string) memStep {
	return memStream(func(ctx context.Context, w io.Writer) {
		for _, c := range chunks {
			io.WriteString(w, c)
		}
	})
}

// memHold answers with an event stream of the chunks, then sends nothing more until the
// client goes away: a stream gone silent.
func memHold(chunks ...string) memStep {
	return memStream(func(ctx context.Context, w io.Writer) {
		for _, c := range chunks {
			io.WriteString(w, c)
		}
		<-ctx.Done()
	})
}

// memStatus answers with the status, header and body.
func memStatus(status int, header http.Header, body string) memStep {
	return func(req *http.Request) (*http.Response, error) {
		return memResponse(status, header, io.NopCloser(strings.NewReader(body))), nil
	}
}

// memNetErr fails the request as a refused connection does.
func memNetErr() memStep {
	return func(req *http.Request) (*http.Response, error) {
		return nil, errors.New("dial tcp: connection refused")
	}
}

// memSilent never answers: a server that accepts the connection and says nothing.
func memSilent() memStep {
	return func(req *http.Request) (*http.Response, error) {
		<-req.Context().Done()
		return nil, req.Context().Err()
	}
}

// reconnection is one call of an OnReconnect function.
type reconnection struct {
	err   error
	delay time.Duration
	at    time.Time
}

// observer records the calls of its OnReconnect function.
type observer struct {
	mu    sync.Mutex
	calls []reconnection
}

func (o *observer) option() httpsse.DialOption {
	return httpsse.OnReconnect(func(err error, delay time.Duration) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.calls = append(o.calls, reconnection{err, delay, time.Now()})
	})
}

func (o *observer) get() []reconnection {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]reconnection(nil), o.calls...)
}

// memDial dials a memTransport in a bubble; the Client is closed when the test ends.
func memDial(t *testing.T, m *memTransport, opts ...httpsse.DialOption) httpsse.Client {
	t.Helper()
	opts = append([]httpsse.DialOption{httpsse.HTTPClient(&http.Client{Transport: m})}, opts...)
	c, err := httpsse.Dial("http://example.test/events", opts...)
	if err != nil {
		t.Fatalf("Dial error: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readEvents reads c to its end, in the bubble (no real-time guard needed: a deadlock in a
// bubble fails the test).
func readEvents(t *testing.T, c httpsse.Client) []string {
	t.Helper()
	var got []string
	for c.Next() {
		var e httpsse.Event
		if err := c.Decode(&e); err != nil {
			t.Errorf("Decode error: %v", err)
		}
		got = append(got, e.EventDataCollapsed())
	}
	return got
}

func checkData(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("events = %q, want %q", got, want)
	}
}

// checkBetween wants lo <= d <= hi.
func checkBetween(t *testing.T, what string, d, lo, hi time.Duration) {
	t.Helper()
	if d < lo || d > hi {
		t.Errorf("%s = %v, want between %v and %v", what, d, lo, hi)
	}
}

func TestBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memTransport{steps: []memStep{
			memEvents("id: 1\ndata: a\n\n"),
			memNetErr(), memNetErr(), memNetErr(), memNetErr(), memNetErr(), memNetErr(),
			memEvents("data: b\n\n"), // success starts over
			memNetErr(),
			memEvents("data: c\n\n"),
		}}
		var o observer
		c := memDial(t, m, httpsse.ReconnectDelay(time.Second), httpsse.MaxReconnectDelay(20*time.Second), o.option())
		checkData(t, readEvents(t, c), "a", "b", "c")
		checkErrNil(t, c)

		gaps := m.gaps()
		want := []struct{ lo, hi time.Duration }{
			{time.Second, time.Second},           // the first reconnection: the reconnection time exactly
			{time.Second, 2 * time.Second},       // 1 failure
			{2 * time.Second, 4 * time.Second},   // 2 failures
			{4 * time.Second, 8 * time.Second},   // 3
			{8 * time.Second, 16 * time.Second},  // 4
			{10 * time.Second, 20 * time.Second}, // 5: capped at 20 s
			{10 * time.Second, 20 * time.Second}, // 6
			{time.Second, time.Second},           // after "b": starts over
			{time.Second, 2 * time.Second},
			{time.Second, time.Second}, // after "c", to the 204
		}
		if len(gaps) != len(want) {
			t.Fatalf("%d requests, want %d", len(gaps)+1, len(want)+1)
		}
		for i, w := range want {
			checkBetween(t, fmt.Sprintf("wait before request %d", i+2), gaps[i], w.lo, w.hi)
		}

		// OnReconnect saw each reconnection, with its cause and the exact wait that followed.
		calls := o.get()
		if len(calls) != len(gaps) {
			t.Fatalf("OnReconnect called %d times, want %d", len(calls), len(gaps))
		}
		for i, call := range calls {
			if call.delay != gaps[i] {
				t.Errorf("OnReconnect call %d delay = %v, but the next request came %v later", i+1, call.delay, gaps[i])
			}
		}
		for _, i := range []int{0, 7, 9} {
			if calls[i].err != io.EOF {
				t.Errorf("OnReconnect call %d err = %v, want io.EOF (the stream ended cleanly)", i+1, calls[i].err)
			}
		}
		for _, i := range []int{1, 2, 3, 4, 5, 6, 8} {
			if err := calls[i].err; err == nil || !strings.Contains(err.Error(), "connection refused") {
				t.Errorf("OnReconnect call %d err = %v, want the network error", i+1, err)
			}
		}
		for i, id := range m.lastIDs[1:] {
			if id != "1" {
				t.Errorf("request %d Last-Event-ID = %q, want %q", i+2, id, "1")
			}
		}
	})
}

// The server's retry field sets the base of the backoff.
func TestBackoffFromRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memTransport{steps: []memStep{
			memEvents("retry: 200\ndata: a\n\n"),
			memNetErr(), memNetErr(),
			memEvents("data: b\n\n"),
		}}
		c := memDial(t, m, httpsse.ReconnectDelay(time.Hour))
		checkData(t, readEvents(t, c), "a", "b")
		gaps := m.gaps()
		if len(gaps) != 4 {
			t.Fatalf("%d requests, want 5", len(gaps)+1)
		}
		checkBetween(t, "first wait", gaps[0], 200*time.Millisecond, 200*time.Millisecond)
		checkBetween(t, "second wait", gaps[1], 200*time.Millisecond, 400*time.Millisecond)
		checkBetween(t, "third wait", gaps[2], 400*time.Millisecond, 800*time.Millisecond)
		checkBetween(t, "wait after success", gaps[3], 200*time.Millisecond, 200*time.Millisecond)
	})
}

// MaxReconnectDelay(0) is EventSource's fixed delay.
func TestBackoffOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memTransport{steps: []memStep{
			memEvents("data: a\n\n"), memNetErr(), memNetErr(), memNetErr(), memEvents("data: b\n\n"),
		}}
		c := memDial(t, m, httpsse.ReconnectDelay(time.Second), httpsse.MaxReconnectDelay(0))
		checkData(t, readEvents(t, c), "a", "b")
		for i, g := range m.gaps() {
			if g != time.Second {
				t.Errorf("wait before request %d = %v, want exactly 1s", i+2, g)
			}
		}
	})
}

// The default cap is DefaultMaxReconnectDelay.
func TestBackoffDefaultCap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		steps := []memStep{memEvents("data: a\n\n")}
		for range 12 {
			steps = append(steps, memNetErr())
		}
		m := &memTransport{steps: steps}
		c := memDial(t, m)
		checkData(t, readEvents(t, c), "a")
		gaps := m.gaps()
		checkBetween(t, "first wait", gaps[0], httpsse.DefaultReconnectDelay, httpsse.DefaultReconnectDelay)
		for _, g := range gaps[8:] {
			checkBetween(t, "wait after many failures", g, httpsse.DefaultMaxReconnectDelay/2, httpsse.DefaultMaxReconnectDelay)
		}
	})
}

// Clients that lose the same server come back spread out, not in step.
func TestBackoffJitterManyClients(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const clients = 50
		var mu sync.Mutex
		third := map[time.Duration]int{} // the time of each client's third request
		var wg sync.WaitGroup
		for range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m := &memTransport{steps: []memStep{memEvents("data: a\n\n"), memNetErr(), memNetErr(), memNetErr()}}
				start := time.Now()
				c, err := httpsse.Dial("http://example.test/", httpsse.HTTPClient(&http.Client{Transport: m}), httpsse.ReconnectDelay(time.Second))
				if err != nil {
					t.Errorf("Dial error: %v", err)
					return
				}
				defer c.Close()
				for c.Next() {
				}
				mu.Lock()
				third[m.times[2].Sub(start)]++
				mu.Unlock()
			}()
		}
		wg.Wait()
		if len(third) < clients*9/10 {
			t.Errorf("%d clients made their third request at %d different times, want nearly all different", clients, len(third))
		}
	})
}

// LaunchDarkly's SSE contract test "read timeout": the server sends nothing for 500 ms; the
// client reports an error and reconnects.
func TestIdleTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memTransport{steps: []memStep{
			memHold("id: 1\ndata: a\n\n"),
			memEvents("data: b\n\n"),
		}}
		var o observer
		start := time.Now()
		c := memDial(t, m, httpsse.IdleTimeout(500*time.Millisecond), httpsse.ReconnectDelay(100*time.Millisecond), o.option())
		checkData(t, readEvents(t, c), "a", "b")
		checkErrNil(t, c)
		calls := o.get()
		if len(calls) < 1 {
			t.Fatal("OnReconnect not called")
		}
		err := calls[0].err
		if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "IdleTimeout") || !strings.HasPrefix(err.Error(), "httpsse: ") {
			t.Errorf("OnReconnect err = %v, want an httpsse error naming IdleTimeout that is os.ErrDeadlineExceeded", err)
		}
		if got := calls[0].at.Sub(start); got != 500*time.Millisecond {
			t.Errorf("idle timeout noticed after %v, want 500ms", got)
		}
		if gaps := m.gaps(); gaps[0] != 600*time.Millisecond {
			t.Errorf("reconnected %v after connecting, want 600ms (500ms idle + 100ms)", gaps[0])
		}
		if m.lastIDs[1] != "1" {
			t.Errorf("reconnection Last-Event-ID = %q, want %q", m.lastIDs[1], "1")
		}
	})
}

func TestIdleTimeoutReconnectOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memTransport{steps: []memStep{memHold("data: a\n\n")}}
		start := time.Now()
		c := memDial(t, m, httpsse.IdleTimeout(time.Second), httpsse.Reconnect(false))
		checkData(t, readEvents(t, c), "a")
		if d := time.Since(start); d != time.Second {
			t.Errorf("stream ended after %v, want 1s", d)
		}
		err := c.Err()
		if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "IdleTimeout") {
			t.Errorf("Err() = %v, want an error naming IdleTimeout that is os.ErrDeadlineExceeded", err)
		}
		if n := m.count(); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
}

// Any byte counts as traffic: heartbeat comments keep an idle timeout from firing.
func TestIdleTimeoutHeartbeat(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memTransport{steps: []memStep{memStream(func(ctx context.Context, w io.Writer) {
			io.WriteString(w, "data: a\n\n")
			for range 20 {
				time.Sleep(400 * time.Millisecond)
				io.WriteString(w, ":\n")
			}
			io.WriteString(w, "data: b\n\n")
		})}}
		var o observer
		c := memDial(t, m, httpsse.IdleTimeout(500*time.Millisecond), o.option())
		checkData(t, readEvents(t, c), "a", "b")
		if calls := o.get(); len(calls) != 1 || calls[0].err != io.EOF {
			t.Errorf("OnReconnect calls = %v, want one, at the end of the stream (io.EOF)", calls)
		}
	})
}

// Time the program spends on an event, outside Next, is not the server's silence.
func TestIdleTimeoutSlowReader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memTransport{steps: []memStep{memEvents("data: a\n\n", "data: b\n\n")}}
		var o observer
		c := memDial(t, m, httpsse.IdleTimeout(500*time.Millisecond), httpsse.Reconnect(false), o.option())
		if !c.Next() {
			t.Fatalf("Next() = false, Err() = %v", c.Err())
		}
		time.Sleep(5 * time.Second) // working on "a"; "b" waits in the pipe
		var got []string
		for c.Next() {
			var e httpsse.Event
			c.Decode(&e)
			got = append(got, e.EventDataCollapsed())
		}
		checkData(t, got, "b")
		checkErrNil(t, c)
	})
}

func TestIdleTimeoutOffByDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memTransport{steps: []memStep{memStream(func(ctx context.Context, w io.Writer) {
			io.WriteString(w, "data: a\n\n")
			time.Sleep(time.Hour)
			io.WriteString(w, "data: b\n\n")
		})}}
		c := memDial(t, m)
		checkData(t, readEvents(t, c), "a", "b")
		if n := m.count(); n != 2 {
			t.Errorf("%d requests, want 2 (the stream, the 204)", n)
		}
	})
}

func TestConnectTimeoutDial(t *testing.T) {
	tests := []struct {
		name string
		opts []httpsse.DialOption
		step memStep
		want time.Duration
	}{
		{"default", nil, memSilent(), httpsse.DefaultConnectTimeout},
		{"option", []httpsse.DialOption{httpsse.ConnectTimeout(2 * time.Second)}, memSilent(), 2 * time.Second},
		{"last option wins", []httpsse.DialOption{httpsse.ConnectTimeout(time.Hour), httpsse.ConnectTimeout(time.Second)}, memSilent(), time.Second},
		// The start of an error response's body is read within the same bound.
		{"error body never ends", []httpsse.DialOption{httpsse.ConnectTimeout(time.Second)}, func(req *http.Request) (*http.Response, error) {
			return memResponse(http.StatusBadGateway, nil, memBody(req, func(ctx context.Context, w io.Writer) {
				io.WriteString(w, "bad")
				<-ctx.Done()
			})), nil
		}, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := &memTransport{steps: []memStep{tt.step}}
				start := time.Now()
				c, err := httpsse.Dial("http://example.test/events", append([]httpsse.DialOption{httpsse.HTTPClient(&http.Client{Transport: m})}, tt.opts...)...)
				if err == nil {
					c.Close()
					t.Fatal("Dial error = nil, want a timeout")
				}
				if d := time.Since(start); d != tt.want {
					t.Errorf("Dial returned after %v, want %v", d, tt.want)
				}
				if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "ConnectTimeout") ||
					!strings.HasPrefix(err.Error(), "httpsse: ") || !strings.Contains(err.Error(), "http://example.test/events") {
					t.Errorf("Dial error = %v, want an httpsse error naming the URL and ConnectTimeout that is os.ErrDeadlineExceeded", err)
				}
			})
		})
	}
}

// ConnectTimeout(0) waits for the headers as long as the request's context allows.
func TestConnectTimeoutOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memTransport{steps: []memStep{memSilent()}}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://example.test/", nil)
		start := time.Now()
		_, err := httpsse.DialRequest(req, httpsse.HTTPClient(&http.Client{Transport: m}), httpsse.ConnectTimeout(0))
		if d := time.Since(start); d != 2*time.Hour {
			t.Errorf("DialRequest returned after %v, want 2h (the context's deadline)", d)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("DialRequest error = %v, want context.DeadlineExceeded", err)
		}
	})
}

// ConnectTimeout bounds the wait for headers, not the stream.
func TestConnectTimeoutNotTheStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memTransport{steps: []memStep{memStream(func(ctx context.Context, w io.Writer) {
			io.WriteString(w, "data: a\n\n")
			time.Sleep(time.Minute)
			io.WriteString(w, "data: b\n\n")
		})}}
		c := memDial(t, m, httpsse.ConnectTimeout(time.Second))
		checkData(t, readEvents(t, c), "a", "b")
		checkErrNil(t, c)
	})
}

// A reconnection that gets no answer in time is retried like a network error.
func TestConnectTimeoutReconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memTransport{steps: []memStep{memEvents("data: a\n\n"), memSilent(), memEvents("data: b\n\n")}}
		var o observer
		c := memDial(t, m, httpsse.ConnectTimeout(2*time.Second), httpsse.ReconnectDelay(time.Second), o.option())
		checkData(t, readEvents(t, c), "a", "b")
		checkErrNil(t, c)
		gaps := m.gaps()
		checkBetween(t, "first wait", gaps[0], time.Second, time.Second)
		checkBetween(t, "second request after the first", gaps[1], 2*time.Second+time.Second, 2*time.Second+2*time.Second)
		calls := o.get()
		if len(calls) < 2 || !errors.Is(calls[1].err, os.ErrDeadlineExceeded) || !strings.Contains(calls[1].err.Error(), "ConnectTimeout") {
			t.Errorf("OnReconnect calls = %v, want the second to report the ConnectTimeout", calls)
		}
	})
}

func TestReconnectOnUnavailable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memTransport{steps: []memStep{
			memEvents("id: 1\ndata: a\n\n"),
			memStatus(http.StatusServiceUnavailable, nil, "restarting"),
			memStatus(http.StatusTooManyRequests, http.Header{"Retry-After": {"10"}}, ""),
			memStatus(http.StatusBadGateway, nil, ""),
			memStatus(http.StatusGatewayTimeout, http.Header{"Retry-After": {"3600"}}, ""), // over the cap
			memEvents("data: b\n\n"),
		}}
		var o observer
		c := memDial(t, m, httpsse.ReconnectOnUnavailable(true), httpsse.ReconnectDelay(time.Second), httpsse.MaxReconnectDelay(time.Minute), o.option())
		checkData(t, readEvents(t, c), "a", "b")
		checkErrNil(t, c)
		gaps := m.gaps()
		if len(gaps) != 6 {
			t.Fatalf("%d requests, want 7", len(gaps)+1)
		}
		checkBetween(t, "wait after the stream", gaps[0], time.Second, time.Second)
		checkBetween(t, "wait after 503", gaps[1], time.Second, 2*time.Second)
		checkBetween(t, "wait after 429 with Retry-After: 10", gaps[2], 10*time.Second, 10*time.Second)
		checkBetween(t, "wait after 502", gaps[3], 4*time.Second, 8*time.Second)
		checkBetween(t, "wait after 504 with Retry-After: 3600", gaps[4], time.Minute, time.Minute)
		calls := o.get()
		for i, status := range []int{503, 429, 502, 504} {
			var re *httpsse.ResponseError
			if !errors.As(calls[i+1].err, &re) || re.StatusCode != status {
				t.Errorf("OnReconnect call %d err = %v, want a *ResponseError with status %d", i+2, calls[i+1].err, status)
			}
		}
		for i, id := range m.lastIDs[1:] {
			if id != "1" {
				t.Errorf("request %d Last-Event-ID = %q, want %q", i+2, id, "1")
			}
		}
	})
}

// Without the option, and for other statuses with it, such a response ends the stream as
// EventSource's does.
func TestReconnectOnUnavailableOff(t *testing.T) {
	tests := []struct {
		name   string
		opts   []httpsse.DialOption
		status int
	}{
		{"503 by default", nil, http.StatusServiceUnavailable},
		{"429 by default", nil, http.StatusTooManyRequests},
		{"503 turned off", []httpsse.DialOption{httpsse.ReconnectOnUnavailable(true), httpsse.ReconnectOnUnavailable(false)}, http.StatusServiceUnavailable},
		{"500 with the option", []httpsse.DialOption{httpsse.ReconnectOnUnavailable(true)}, http.StatusInternalServerError},
		{"401 with the option", []httpsse.DialOption{httpsse.ReconnectOnUnavailable(true)}, http.StatusUnauthorized},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				m := &memTransport{steps: []memStep{memEvents("data: a\n\n"), memStatus(tt.status, nil, "no"), memEvents("data: never\n\n")}}
				c := memDial(t, m, append(tt.opts, httpsse.ReconnectDelay(time.Second))...)
				checkData(t, readEvents(t, c), "a")
				checkResponseError(t, c.Err(), tt.status)
				if n := m.count(); n != 2 {
					t.Errorf("%d requests, want 2", n)
				}
			})
		})
	}
}

// The first Dial is one attempt: a 503 there is Dial's error, whatever the option says.
func TestReconnectOnUnavailableNotDial(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m := &memTransport{steps: []memStep{memStatus(http.StatusServiceUnavailable, nil, ""), memEvents("data: a\n\n")}}
		_, err := httpsse.Dial("http://example.test/", httpsse.HTTPClient(&http.Client{Transport: m}), httpsse.ReconnectOnUnavailable(true))
		checkResponseError(t, err, http.StatusServiceUnavailable)
		if n := m.count(); n != 1 {
			t.Errorf("%d requests, want 1", n)
		}
	})
}

// Close during a backoff wait ends it at once, and Err stays nil.
func TestCloseDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		steps := []memStep{memEvents("data: a\n\n")}
		for range 20 {
			steps = append(steps, memNetErr())
		}
		m := &memTransport{steps: steps}
		c := memDial(t, m, httpsse.ReconnectDelay(time.Second))
		if !c.Next() {
			t.Fatal("Next() = false")
		}
		done := make(chan bool)
		go func() { done <- c.Next() }()
		time.Sleep(20 * time.Second)
		synctest.Wait()
		c.Close()
		if <-done {
			t.Error("Next() after Close = true, want false")
		}
		checkErrNil(t, c)
		n := m.count()
		time.Sleep(time.Hour)
		if m.count() != n {
			t.Errorf("requests went on after Close")
		}
	})
}
