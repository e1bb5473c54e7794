package httpsse_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/reiver/go-httpsse"
)

// The tests in this file check the Client's production features over real connections to
// httptest servers; client_timing_test.go checks their timing exactly.

const openAI401 = `{
    "error": {
        "message": "Incorrect API key provided: sk-abc. You can find your API key at https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error",
        "param": null,
        "code": "invalid_api_key"
    }
}
`

func TestResponseErrorBody(t *testing.T) {
	ts := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "req_123")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, openAI401)
	})
	_, err := httpsse.Dial(ts.URL)
	checkResponseError(t, err, http.StatusUnauthorized, "401 Unauthorized", `"message": "Incorrect API key provided: sk-abc.`)
	var re *httpsse.ResponseError
	if !errors.As(err, &re) {
		t.Fatal("not a *ResponseError")
	}
	if string(re.Body) != openAI401 {
		t.Errorf("ResponseError.Body = %q, want %q", re.Body, openAI401)
	}
	if got := re.Header.Get("X-Request-Id"); got != "req_123" {
		t.Errorf("ResponseError.Header X-Request-Id = %q, want %q", got, "req_123")
	}
	if strings.ContainsAny(err.Error(), "\r\n") {
		t.Errorf("error = %q, want one line", err)
	}
	want := `httpsse: unexpected status "401 Unauthorized", want "200 OK": { "error": { "message": "Incorrect API key provided:`
	if !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error = %q, want it to start %q", err, want)
	}
	// The API's own message can be had from the body.
	var apiErr struct {
		Error struct{ Message string }
	}
	if err := json.Unmarshal(re.Body, &apiErr); err != nil || !strings.HasPrefix(apiErr.Error.Message, "Incorrect API key provided") {
		t.Errorf("json.Unmarshal(Body) = %v, message %q", err, apiErr.Error.Message)
	}
}

func TestResponseErrorBodyBounded(t *testing.T) {
	big := strings.Repeat("x", 100<<10)
	ts := newServer(t, respond(http.StatusInternalServerError, "text/plain", big))
	_, err := httpsse.Dial(ts.URL)
	var re *httpsse.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("Dial error = %v, want a *ResponseError", err)
	}
	if len(re.Body) != 4<<10 || string(re.Body) != big[:4<<10] {
		t.Errorf("len(ResponseError.Body) = %d, want the first 4096 bytes", len(re.Body))
	}
	msg := err.Error()
	if !strings.HasSuffix(msg, "...") || len(msg) > 700 {
		t.Errorf("error is %d bytes ending %q, want it cut after 512 bytes of body with \"...\"", len(msg), msg[max(len(msg)-10, 0):])
	}
}

func TestResponseErrorNoBody(t *testing.T) {
	tests := []struct {
		name string
		step step
		want string
	}{
		{"404 empty", respond(http.StatusNotFound, "text/plain", ""), `httpsse: unexpected status "404 Not Found", want "200 OK"`},
		{"500 white space", respond(http.StatusInternalServerError, "text/plain", " \r\n\t "), `httpsse: unexpected status "500 Internal Server Error", want "200 OK"`},
		{"html", respond(http.StatusOK, "text/html", "<p>\n  Log in\x00\xff</p>\n"), `httpsse: unexpected Content-Type "text/html", want "text/event-stream": <p> Log in ` + "\uFFFD</p>"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newServer(t, tt.step)
			_, err := httpsse.Dial(ts.URL)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Dial error = %q, want %q", err, tt.want)
			}
		})
	}
	// A ResponseError made by hand, without a body, reads as before.
	err := &httpsse.ResponseError{StatusCode: 502}
	if got, want := err.Error(), `httpsse: unexpected status "502", want "200 OK"`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// A reconnection's error carries the body too.
func TestResponseErrorBodyOnReconnect(t *testing.T) {
	ts := newServer(t, stream("data: a\n\n"), respond(http.StatusForbidden, "application/json", `{"error":"token expired"}`))
	c := dial(t, ts.URL, httpsse.ReconnectDelay(time.Millisecond))
	checkEvents(t, collect(t, c), []ev{{Data: "a"}})
	checkResponseError(t, c.Err(), http.StatusForbidden, `{"error":"token expired"}`)
}

func TestDialRequestNil(t *testing.T) {
	c, err := httpsse.DialRequest(nil)
	if c != nil || err == nil || !strings.HasPrefix(err.Error(), "httpsse: ") || !strings.Contains(err.Error(), "nil") {
		t.Errorf("DialRequest(nil) = %v, %v, want nil and an httpsse error naming the nil request", c, err)
	}
	c, err = httpsse.DialRequest(&http.Request{Method: http.MethodGet})
	if c != nil || err == nil || !strings.HasPrefix(err.Error(), "httpsse: ") || !strings.Contains(err.Error(), "URL") {
		t.Errorf("DialRequest(request without URL) = %v, %v, want nil and an httpsse error naming the URL", c, err)
	}
}

func TestNilDialOption(t *testing.T) {
	ts := newServer(t, stream("data: a\n\n"), respond(http.StatusNoContent, "", ""), hold())
	c := dial(t, ts.URL, nil, httpsse.ReconnectDelay(time.Millisecond), nil)
	checkEvents(t, collect(t, c), []ev{{Data: "a"}})
	checkErrNil(t, c)
	req := newRequest(t, t.Context(), http.MethodGet, ts.URL, "")
	c2, err := httpsse.DialRequest(req, nil, httpsse.HTTPClient(nil), httpsse.OnReconnect(nil))
	if err != nil {
		t.Fatalf("DialRequest with nil options: %v", err)
	}
	c2.Close()
}

func TestNewDecoderNil(t *testing.T) {
	dec := httpsse.NewDecoder(nil)
	if dec.Next() {
		t.Error("NewDecoder(nil).Next() = true, want false")
	}
	err := dec.Err()
	if err == nil || err.Error() != "httpsse: NewDecoder called with a nil io.Reader" {
		t.Errorf("NewDecoder(nil).Err() = %v, want an error naming the nil reader", err)
	}
	if dec.Next() {
		t.Error("second Next() = true, want false")
	}
	var e httpsse.Event
	if err := dec.Decode(&e); err == nil {
		t.Error("Decode after a false Next: error = nil, want one")
	}
}

func TestEventsDecoder(t *testing.T) {
	tests := []struct {
		name    string
		r       io.Reader
		want    []string
		wantErr string
	}{
		{"clean end", strings.NewReader("data: a\n\nevent: x\ndata: b\n\ndata: cut"), []string{"a", "b"}, ""},
		{"empty", strings.NewReader(""), nil, ""},
		{"error", io.MultiReader(strings.NewReader("data: a\n\n"), iotest.ErrReader(errors.New("boom"))), []string{"a"}, "httpsse: reading stream: boom"},
		{"nil reader", nil, nil, "httpsse: NewDecoder called with a nil io.Reader"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			var errs []error
			for e, err := range httpsse.Events(httpsse.NewDecoder(tt.r)) {
				if err != nil {
					errs = append(errs, err)
					if e.EventDataCollapsed() != "" || e.EventName() != "" || e.EventData() != nil {
						t.Errorf("event with the error = %q, want Event{}", e.String())
					}
					continue
				}
				if len(errs) > 0 {
					t.Errorf("event %q after the error", e.EventDataCollapsed())
				}
				got = append(got, e.EventDataCollapsed())
			}
			checkData(t, got, tt.want...)
			switch {
			case tt.wantErr == "" && len(errs) > 0:
				t.Errorf("errors = %v, want none", errs)
			case tt.wantErr != "" && (len(errs) != 1 || errs[0].Error() != tt.wantErr):
				t.Errorf("errors = %v, want one: %s", errs, tt.wantErr)
			}
		})
	}
}

// The events yielded may be kept: later events do not change them.
func TestEventsKept(t *testing.T) {
	var kept []httpsse.Event
	for e, err := range httpsse.Events(httpsse.NewDecoder(strings.NewReader("event: one\nid: 1\ndata: a\n\nevent: two\ndata: b\ndata: c\n\nid: 3\ndata: d\n\n"))) {
		if err != nil {
			t.Fatal(err)
		}
		kept = append(kept, e)
	}
	want := []string{
		"event: one\nid: 1\ndata: a\n\n",
		"event: two\nid: 1\ndata: b\ndata: c\n\n",
		"id: 3\ndata: d\n\n",
	}
	if len(kept) != len(want) {
		t.Fatalf("%d events, want %d", len(kept), len(want))
	}
	for i := range want {
		if got := kept[i].String(); got != want[i] {
			t.Errorf("kept event %d = %q, want %q", i, got, want[i])
		}
	}
}

// countingReader counts the reads.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}

// Breaking out of the loop stops reading.
func TestEventsBreak(t *testing.T) {
	r := &countingReader{r: iotest.OneByteReader(strings.NewReader("data: a\n\ndata: b\n\ndata: c\n\n"))}
	for e := range httpsse.Events(httpsse.NewDecoder(r)) {
		if e.EventDataCollapsed() == "a" {
			break
		}
	}
	if r.reads != len("data: a\n\n") {
		t.Errorf("%d reads, want %d (none after the first event)", r.reads, len("data: a\n\n"))
	}
}

func TestEventsNil(t *testing.T) {
	n := 0
	for _, err := range httpsse.Events(nil) {
		n++
		if err == nil || !strings.HasPrefix(err.Error(), "httpsse: ") {
			t.Errorf("Events(nil) yields %v, want an httpsse error", err)
		}
	}
	if n != 1 {
		t.Errorf("Events(nil) yields %d times, want 1", n)
	}
}

// decodeFails is a stream whose Decode always fails: Events reports that and goes on.
type decodeFails struct{ n int }

func (d *decodeFails) Next() bool               { d.n++; return d.n <= 2 }
func (d *decodeFails) Decode(interface{}) error { return errors.New("httpsse: cannot decode") }
func (d *decodeFails) Err() error               { return nil }

func TestEventsDecodeError(t *testing.T) {
	n := 0
	for _, err := range httpsse.Events(&decodeFails{}) {
		n++
		if err == nil {
			t.Error("err = nil, want the Decode error")
		}
	}
	if n != 2 {
		t.Errorf("%d yields, want 2", n)
	}
}

func TestEventsClient(t *testing.T) {
	ts := newServer(t, stream("id: 1\ndata: a\n\n"), broken("data: b\n\n"), respond(http.StatusInternalServerError, "text/plain", "down"))
	c := dial(t, ts.URL, httpsse.ReconnectDelay(time.Millisecond))
	var got []ev
	var final error
	for e, err := range httpsse.Events(c) {
		if err != nil {
			final = err
			continue
		}
		got = append(got, ev{e.EventName(), e.EventID(), e.EventDataCollapsed()})
	}
	checkEvents(t, got, []ev{{"", "1", "a"}, {"", "1", "b"}})
	checkResponseError(t, final, http.StatusInternalServerError, "down")

	// Breaking out does not close the Client: the stream goes on with the next loop.
	ts2 := newServer(t, hold("data: 1\n\ndata: 2\n\n"))
	c2 := dial(t, ts2.URL)
	for range httpsse.Events(c2) {
		break
	}
	if got, want := nextEvent(t, c2), (ev{Data: "2"}); got != want {
		t.Errorf("event after the break = %v, want %v", got, want)
	}
}

func TestWriteJSON(t *testing.T) {
	type price struct {
		Symbol string  `json:"symbol"`
		Price  float64 `json:"price"`
		Note   string  `json:"note,omitempty"`
	}
	b, err := httpsse.EncodeEvent(func(w httpsse.EventWriter) error {
		w.WriteEvent("price")
		return httpsse.WriteJSON(w, price{"ACME", 12.5, "line one\nline two"})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := "event: price\ndata: {\"symbol\":\"ACME\",\"price\":12.5,\"note\":\"line one\\nline two\"}\n\n"
	if string(b) != want {
		t.Errorf("event = %q, want %q", b, want)
	}
	// Round trip through the Decoder.
	dec := httpsse.NewDecoder(bytes.NewReader(b))
	if !dec.Next() {
		t.Fatal(dec.Err())
	}
	var e httpsse.Event
	dec.Decode(&e)
	var got price
	if err := e.DecodeJSON(&got); err != nil || got != (price{"ACME", 12.5, "line one\nline two"}) {
		t.Errorf("DecodeJSON = %v, %+v", err, got)
	}

	// A value json cannot encode is an error, and the event is not sent.
	_, err = httpsse.EncodeEvent(func(w httpsse.EventWriter) error {
		return httpsse.WriteJSON(w, make(chan int))
	})
	if err == nil || !strings.HasPrefix(err.Error(), "httpsse: encoding event data as JSON: ") {
		t.Errorf("WriteJSON(chan) error = %v, want an httpsse JSON error", err)
	}
	var ute *json.UnsupportedTypeError
	if !errors.As(err, &ute) {
		t.Errorf("WriteJSON(chan) error = %v, want it to wrap *json.UnsupportedTypeError", err)
	}

	// json.RawMessage with line breaks comes out compact, on one line.
	b, err = httpsse.EncodeEvent(func(w httpsse.EventWriter) error {
		return httpsse.WriteJSON(w, json.RawMessage("{\n  \"a\": 1\n}"))
	})
	if err != nil || string(b) != "data: {\"a\":1}\n\n" {
		t.Errorf("WriteJSON(RawMessage) = %q, %v", b, err)
	}
}

func TestWriteJSONRoute(t *testing.T) {
	route := httpsse.NewRoute()
	ts := newServer(t, route.ServeHTTP)
	t.Cleanup(func() { route.Close() })
	c := dial(t, ts.URL)
	if err := route.PublishEvent(func(w httpsse.EventWriter) error { return httpsse.WriteJSON(w, func() {}) }); err == nil {
		t.Error("PublishEvent with WriteJSON(func) error = nil, want one")
	}
	if err := route.PublishEvent(func(w httpsse.EventWriter) error { return httpsse.WriteJSON(w, map[string]int{"n": 7}) }); err != nil {
		t.Fatal(err)
	}
	if got, want := nextEvent(t, c), (ev{Data: `{"n":7}`}); got != want {
		t.Errorf("event = %v, want %v", got, want)
	}
}

func TestDecodeJSON(t *testing.T) {
	var e httpsse.Event
	e.AppendEventDatum(`{"a":`)
	e.AppendEventDatum(`[1, 2]}`)
	var v struct{ A []int }
	if err := e.DecodeJSON(&v); err != nil || len(v.A) != 2 || v.A[1] != 2 {
		t.Errorf("DecodeJSON(multi-line data) = %v, %+v", err, v)
	}
	var done httpsse.Event
	done.AppendEventDatum("[DONE]")
	err := done.DecodeJSON(&v)
	var se *json.SyntaxError
	if err == nil || !strings.HasPrefix(err.Error(), "httpsse: decoding event data as JSON: ") || !errors.As(err, &se) {
		t.Errorf("DecodeJSON([DONE]) error = %v, want an httpsse error wrapping *json.SyntaxError", err)
	}
	if err := (httpsse.Event{}).DecodeJSON(&v); err == nil {
		t.Error("DecodeJSON of an event without data: error = nil, want one")
	}
}

// Over a real connection: a stream gone silent is noticed and the Client reconnects.
func TestIdleTimeoutHTTP(t *testing.T) {
	ts := newServer(t, hold("id: 1\ndata: a\n\n"), stream("data: b\n\n"))
	var o observer
	c := dial(t, ts.URL, httpsse.IdleTimeout(100*time.Millisecond), httpsse.ReconnectDelay(time.Millisecond), o.option())
	checkEvents(t, collect(t, c), []ev{{"", "1", "a"}, {"", "1", "b"}})
	checkErrNil(t, c)
	calls := o.get()
	if len(calls) == 0 || !errors.Is(calls[0].err, os.ErrDeadlineExceeded) {
		t.Errorf("OnReconnect calls = %v, want the first to report the idle timeout", calls)
	}
	if a := ts.Attempts(); len(a) != 3 || a[1].header.Get("Last-Event-ID") != "1" {
		t.Errorf("server saw %d requests, want 3 with Last-Event-ID 1 on the second", len(a))
	}

	ts2 := newServer(t, hold("data: a\n\n"))
	c2 := dial(t, ts2.URL, httpsse.IdleTimeout(100*time.Millisecond), httpsse.Reconnect(false))
	checkEvents(t, collect(t, c2), []ev{{Data: "a"}})
	if err := c2.Err(); !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "IdleTimeout") {
		t.Errorf("Err() = %v, want the idle timeout", err)
	}
}

// Over a real connection: a server that accepts and never answers does not block Dial.
func TestConnectTimeoutHTTP(t *testing.T) {
	ts := newServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	start := time.Now()
	c, err := httpsse.Dial(ts.URL, httpsse.ConnectTimeout(100*time.Millisecond))
	if err == nil {
		c.Close()
		t.Fatal("Dial error = nil, want a timeout")
	}
	if d := time.Since(start); d > waitFor {
		t.Errorf("Dial returned after %v", d)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) || !strings.Contains(err.Error(), "ConnectTimeout") || !strings.Contains(err.Error(), ts.URL) {
		t.Errorf("Dial error = %v, want a ConnectTimeout error naming the URL", err)
	}
}

// Over a real connection: a load balancer's 503 during a deploy is retried.
func TestReconnectOnUnavailableHTTP(t *testing.T) {
	ts := newServer(t,
		stream("id: 1\ndata: a\n\n"),
		respond(http.StatusServiceUnavailable, "text/html", "<h1>503</h1>"),
		respond(http.StatusBadGateway, "text/html", "<h1>502</h1>"),
		stream("data: b\n\n"),
	)
	c := dial(t, ts.URL, httpsse.ReconnectOnUnavailable(true), httpsse.ReconnectDelay(time.Millisecond))
	checkEvents(t, collect(t, c), []ev{{"", "1", "a"}, {"", "1", "b"}})
	checkErrNil(t, c)
}

func TestIdleTimeoutHTTP2(t *testing.T) {
	ts := newServerHTTP2(t, hold("id: 1\ndata: a\n\n"), hold("data: b\n\n"))
	var o observer
	c := dial(t, ts.URL, httpsse.HTTPClient(ts.Client()), httpsse.IdleTimeout(100*time.Millisecond),
		httpsse.ReconnectDelay(time.Millisecond), o.option())
	if got, want := nextEvent(t, c), (ev{"", "1", "a"}); got != want {
		t.Errorf("event = %v, want %v", got, want)
	}
	if got, want := nextEvent(t, c), (ev{"", "1", "b"}); got != want {
		t.Errorf("event = %v, want %v", got, want)
	}
	if calls := o.get(); len(calls) != 1 || !errors.Is(calls[0].err, os.ErrDeadlineExceeded) {
		t.Errorf("OnReconnect calls = %v, want one, for the idle timeout", calls)
	}
	if a := ts.Attempts(); len(a) != 2 || a[1].protoMajor != 2 {
		t.Errorf("server saw %d requests, want 2 over HTTP/2", len(a))
	}
	c.Close()
}
