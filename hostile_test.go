package httpsse_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/reiver/go-httpsse"
)

// The tests in this file send hostile values through every EventWriter method and check the
// bytes on the wire: whatever the value, it never adds a field or an event, an accepted value
// comes back unchanged from the Decoder (line breaks as LF), and a rejected one fails the
// whole event, which is not sent at all.

// hostileBig adds the 16 MiB values to the hostile values. Sent through every method, on a
// recorder, through the raw encoder and over HTTP, with the race detector on, they take about
// 35 s on 2 cores: more than the rest of the default run, so .ci/heavy turns them on.
var hostileBig = flag.Bool("hostile.big", os.Getenv("HTTPSSE_HEAVY") == "1",
	"TestHostile*: also send values of 16 MiB (on when HTTPSSE_HEAVY=1)")

// hostileValues returns the values, each with a name for the subtest.
func hostileValues(t *testing.T) []struct{ name, v string } {
	vs := []struct{ name, v string }{
		{"empty", ""},
		{"plain", "plain"},
		{"LF", "\n"},
		{"CR", "\r"},
		{"CRLF", "\r\n"},
		{"LFCR", "\n\r"},
		{"a LF b", "a\nb"},
		{"a CR b", "a\rb"},
		{"a CRLF b", "a\r\nb"},
		{"a LFCR b", "a\n\rb"},
		{"lone CR at end", "end\r"},
		{"LF at end", "end\n"},
		{"CRLF at end", "end\r\n"},
		{"CR at start", "\rstart"},
		{"LF LF data injection", "\n\ndata: injected"},
		{"CRLF event injection", "\r\nevent: injected"},
		{"CR id injection", "\rid: injected"},
		{"LF retry injection", "\nretry: 1"},
		{"LF comment injection", "\n: comment"},
		{"LF LF", "\n\n"},
		{"CR CR", "\r\r"},
		{"CRLF CRLF", "\r\n\r\n"},
		{"whole event injection", "x\n\nevent: evil\ndata: evil\n\n"},
		{"CR event injection", "x\r\revent: evil\rdata: evil\r\r"},
		{"NUL", "\x00"},
		{"a NUL b", "a\x00b"},
		{"NUL LF NUL", "\x00\n\x00"},
		{"CR NUL", "\r\x00"},
		{"invalid byte FF", "\xff"},
		{"truncated sequence", "\xe2\x82"},
		{"E2 82 FF", "\xE2\x82\xFF"},
		{"surrogate", "\xed\xa0\x80"},
		{"overlong slash", "\xc0\xaf"},
		{"invalid then LF", "\xff\ndata: x"},
		{"U+2028", "\u2028"},
		{"U+2029", "a\u2029b"},
		{"U+0085 NEL", "a\u0085b"},
		{"BOM", "\ufeff"},
		{"BOM then field", "\ufeffdata: x"},
		{"leading space", " leading space"},
		{"two leading spaces", "  two"},
		{"trailing space", "trailing "},
		{"colon", ":"},
		{"data colon", "data:"},
		{"data field", "data: x"},
		{"id field", "id: x"},
		{"tab VT FF", "\t\v\f"},
		{"DEL", "\x7f"},
		{"ANSI escape", "\x1b[2J\x1b[31m"},
		{"non-ASCII", "é€😀"},
		{"max rune", "\U0010FFFF"},
		{"64 KiB", strings.Repeat("a", 64<<10)},
		{"64 KiB + 1", strings.Repeat("b", 64<<10+1)},
		{"10000 lines", strings.Repeat("line\n", 10000)},
		{"1000 CRLF", strings.Repeat("\r\n", 1000)},
		{"1 MiB then injection", strings.Repeat("x", 1<<20) + "\n\ndata: tail"},
		{"100 data lines", "\n" + strings.Repeat("data: x\n", 100)},
	}
	if *hostileBig {
		vs = append(vs,
			struct{ name, v string }{"16 MiB", strings.Repeat("y", 16<<20)},
			struct{ name, v string }{"16 MiB of lines", strings.Repeat("0123456789abcd\r\n", 1<<20)},
		)
	}
	if len(vs) < 50 {
		t.Fatalf("only %d hostile values", len(vs))
	}
	return vs
}

// hostileMethods are the EventWriter methods that take a string. Each test event is the
// hostile write, then (except for WriteData) WriteData("payload") so that it is dispatched.
var hostileMethods = []struct {
	name  string
	write func(w httpsse.EventWriter, v string) error
	field string // the field name of the lines the value becomes; "" for comment lines
	// mustReject reports whether the contract requires an error for v.
	mustReject func(v string) bool
}{
	{"WriteData", httpsse.EventWriter.WriteData, "data", func(string) bool { return false }},
	{"WriteComment", httpsse.EventWriter.WriteComment, "", func(string) bool { return false }},
	{"WriteEvent", httpsse.EventWriter.WriteEvent, "event", func(v string) bool { return strings.ContainsAny(v, "\r\n") }},
	{"WriteID", httpsse.EventWriter.WriteID, "id", func(v string) bool { return strings.ContainsAny(v, "\r\n\x00") }},
}

// syncRecorder is an http.ResponseWriter and http.Flusher that may be read while ServeHTTP
// writes to it (httptest.ResponseRecorder may not). It has no write deadlines, as a
// middleware's writer may not.
type syncRecorder struct {
	mu     sync.Mutex
	header http.Header
	code   int
	body   bytes.Buffer
	wrote  chan struct{} // gets a value after each write; capacity 1, so a write never blocks
}

func newSyncRecorder() *syncRecorder {
	return &syncRecorder{header: http.Header{}, wrote: make(chan struct{}, 1)}
}

func (r *syncRecorder) Header() http.Header { return r.header }

func (r *syncRecorder) WriteHeader(code int) {
	r.mu.Lock()
	if r.code == 0 {
		r.code = code
	}
	r.mu.Unlock()
}

func (r *syncRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	if r.code == 0 {
		r.code = http.StatusOK
	}
	r.body.Write(p)
	r.mu.Unlock()
	select {
	case r.wrote <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (r *syncRecorder) Flush() {}

// take waits until the recorded body ends with suffix, then returns it and empties the
// recorder, so that long runs do not copy an ever growing body.
func (r *syncRecorder) take(t *testing.T, suffix string) []byte {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		r.mu.Lock()
		if bytes.HasSuffix(r.body.Bytes(), []byte(suffix)) {
			b := bytes.Clone(r.body.Bytes())
			r.body.Reset()
			r.mu.Unlock()
			return b
		}
		have := shortQuote(r.body.String())
		r.mu.Unlock()
		select {
		case <-r.wrote:
		case <-deadline:
			t.Fatalf("timed out waiting for %q on the wire; have %s", suffix, have)
		}
	}
}

// recordedRoute is a Route with one subscriber writing to a syncRecorder.
type recordedRoute struct {
	route httpsse.Route
	rec   *syncRecorder
	done  chan struct{}
}

func newRecordedRoute(t *testing.T) *recordedRoute {
	t.Helper()
	rr := &recordedRoute{route: httpsse.NewRoute(), rec: newSyncRecorder(), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest(http.MethodGet, "/events", nil).WithContext(ctx)
	go func() {
		defer close(rr.done)
		rr.route.ServeHTTP(rr.rec, req)
	}()
	t.Cleanup(func() {
		cancel()
		rr.route.Close()
		select {
		case <-rr.done:
		case <-time.After(5 * time.Second):
			t.Error("ServeHTTP did not return after Close and the end of the request's context")
		}
	})
	return rr
}

// mark publishes a marker event and waits until it is on the wire; it returns what was
// written since the last mark, the marker included.
func (rr *recordedRoute) mark(t *testing.T, name string) []byte {
	t.Helper()
	err := rr.route.PublishEvent(func(w httpsse.EventWriter) error { return w.WriteData("marker " + name) })
	if err != nil {
		t.Fatalf("PublishEvent(marker %s) = %v", name, err)
	}
	return rr.rec.take(t, "data: marker "+name+"\n\n")
}

// publishBetweenMarkers publishes fn between two markers and returns the exact bytes the
// Route wrote for it and the PublishEvent error.
func (rr *recordedRoute) publishBetweenMarkers(t *testing.T, fn func(httpsse.EventWriter) error) ([]byte, error) {
	t.Helper()
	rr.mark(t, "before")
	err := rr.route.PublishEvent(fn)
	after := rr.mark(t, "after")
	return after[:len(after)-len("data: marker after\n\n")], err
}

// splitLines splits the wire as the standard does: at CRLF, LF or CR. The line after the
// last line break (normally empty) is not returned.
func splitLines(b []byte) []string {
	var lines []string
	for len(b) > 0 {
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			lines = append(lines, string(b)) // unterminated: reported by the caller's checks
			break
		}
		lines = append(lines, string(b[:i]))
		if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			i++
		}
		b = b[i+1:]
	}
	return lines
}

// fieldName returns the field name of a line as the standard parses it, or ":" for a comment.
func fieldName(line string) string {
	if strings.HasPrefix(line, ":") {
		return ":"
	}
	name, _, _ := strings.Cut(line, ":")
	return name
}

// lineCount is the number of lines a value with line breaks becomes.
func lineCount(v string) int {
	return len(strings.Split(normalizeLineBreaks(v), "\n"))
}

func normalizeLineBreaks(v string) string {
	v = strings.ReplaceAll(v, "\r\n", "\n")
	return strings.ReplaceAll(v, "\r", "\n")
}

// decodeWire decodes the bytes of one event and returns every event found.
func decodeWire(t *testing.T, wire []byte) []httpsse.Event {
	t.Helper()
	dec := httpsse.NewDecoder(bytes.NewReader(wire))
	dec.SetMaxEventSize(64 << 20)
	var evs []httpsse.Event
	for dec.Next() {
		var ev httpsse.Event
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("Decode: %v", err)
		}
		evs = append(evs, ev)
	}
	if err := dec.Err(); err != nil {
		t.Fatalf("Decoder: %v", err)
	}
	return evs
}

func TestHostileValues(t *testing.T) {
	values := hostileValues(t)
	for _, m := range hostileMethods {
		t.Run(m.name, func(t *testing.T) {
			rr := newRecordedRoute(t)
			publish := func(fn func(httpsse.EventWriter) error) ([]byte, error) {
				return rr.publishBetweenMarkers(t, fn)
			}
			for _, hv := range values {
				t.Run(hv.name, func(t *testing.T) {
					checkHostile(t, publish, m.name, m.field, m.write, hv.v, m.mustReject(hv.v))
				})
			}
		})
	}
}

func TestHostileValuesRawEncoder(t *testing.T) {
	values := hostileValues(t)
	for _, m := range hostileMethods {
		t.Run(m.name, func(t *testing.T) {
			for _, hv := range values {
				t.Run(hv.name, func(t *testing.T) {
					checkHostile(t, httpsse.EncodeEvent, m.name, m.field, m.write, hv.v, m.mustReject(hv.v))
				})
			}
		})
	}
}

// checkHostile writes v with write, through publish (a Route or the raw encoder), and
// checks the bytes that publish returns.
func checkHostile(t *testing.T, publish func(func(httpsse.EventWriter) error) ([]byte, error), method, field string, write func(httpsse.EventWriter, string) error, v string, mustReject bool) {
	var writeErr error
	wire, err := publish(func(w httpsse.EventWriter) error {
		writeErr = write(w, v)
		if method != "WriteData" {
			// Ignore writeErr: a failed Write* fails the event even if fn returns nil.
			w.WriteData("payload")
		}
		return nil
	})
	call := fmt.Sprintf("%s(%s)", method, shortQuote(v))
	if writeErr != nil {
		if err == nil {
			t.Errorf("%s = %v, but PublishEvent returned nil", call, writeErr)
		}
		if len(wire) != 0 {
			t.Errorf("%s failed, yet the event was sent: %s", call, shortQuote(string(wire)))
		}
		if mustReject {
			return
		}
		if utf8.ValidString(v) {
			t.Errorf("%s = %v, want it accepted", call, writeErr)
		}
		return // an invalid UTF-8 value may be rejected
	}
	if mustReject {
		t.Errorf("%s = nil, want an error", call)
	}
	if err != nil {
		t.Errorf("%s succeeded but PublishEvent returned %v", call, err)
	}

	// On the wire: exactly the lines the value becomes, the payload and the blank line.
	lines := splitLines(wire)
	want := []string{}
	n := 1
	if method == "WriteData" || method == "WriteComment" {
		n = lineCount(v)
	}
	name := field
	if name == "" {
		name = ":"
	}
	for range n {
		want = append(want, name)
	}
	if method != "WriteData" {
		want = append(want, "data")
	}
	want = append(want, "")
	var got []string
	for _, l := range lines {
		if l == "" {
			got = append(got, "")
		} else {
			got = append(got, fieldName(l))
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		if len(got) > 10 || len(want) > 10 {
			t.Errorf("%s: %d wire lines, want %d", call, len(got), len(want))
		} else {
			t.Errorf("%s: wire fields %q, want %q; wire %s", call, got, want, shortQuote(string(wire)))
		}
	}
	if !bytes.HasSuffix(wire, []byte("\n\n")) && !bytes.HasSuffix(wire, []byte("\r\r")) && !bytes.HasSuffix(wire, []byte("\r\n\r\n")) {
		t.Errorf("%s: the event does not end with a blank line: %s", call, shortQuote(string(wire)))
	}

	// Decoded: one event, with the value where it belongs and nothing else.
	evs := decodeWire(t, wire)
	if len(evs) != 1 {
		t.Fatalf("%s: the wire decodes to %d events, want 1", call, len(evs))
	}
	ev := evs[0]
	wantName, wantID, wantData := "", "", "payload"
	switch method {
	case "WriteData":
		wantData = normalizeLineBreaks(v)
	case "WriteEvent":
		wantName = v
	case "WriteID":
		wantID = v
	}
	if !utf8.ValidString(v) {
		// The decoder replaces invalid bytes; only the shape is compared.
		if method == "WriteData" && len(ev.EventData()) != lineCount(v) {
			t.Errorf("%s: decoded %d data lines, want %d", call, len(ev.EventData()), lineCount(v))
		}
		return
	}
	if ev.EventName() != wantName || ev.EventID() != wantID || ev.EventDataCollapsed() != wantData {
		t.Errorf("%s: decoded name %s, id %s, data %s; want %s, %s, %s", call,
			shortQuote(ev.EventName()), shortQuote(ev.EventID()), shortQuote(ev.EventDataCollapsed()),
			shortQuote(wantName), shortQuote(wantID), shortQuote(wantData))
	}
}

func TestHostileRetry(t *testing.T) {
	rr := newRecordedRoute(t)
	for _, d := range []time.Duration{0, time.Nanosecond, 999 * time.Microsecond, time.Millisecond, 1500 * time.Millisecond, time.Hour, 1<<63 - 1, -1, -time.Second, -1 << 63} {
		t.Run(d.String(), func(t *testing.T) {
			var writeErr error
			wire, err := rr.publishBetweenMarkers(t, func(w httpsse.EventWriter) error {
				writeErr = w.WriteRetry(d)
				w.WriteData("payload")
				return nil
			})
			if writeErr != nil {
				if err == nil {
					t.Errorf("WriteRetry(%v) = %v, but PublishEvent returned nil", d, writeErr)
				}
				if len(wire) != 0 {
					t.Errorf("WriteRetry(%v) failed, yet the event was sent: %q", d, wire)
				}
				if d >= 0 {
					t.Errorf("WriteRetry(%v) = %v, want it accepted", d, writeErr)
				}
				return
			}
			lines := splitLines(wire)
			if len(lines) != 3 || !strings.HasPrefix(lines[0], "retry:") || lines[1] != "data: payload" || lines[2] != "" {
				t.Fatalf("WriteRetry(%v): wire %q, want a retry line, the data line and a blank line", d, wire)
			}
			digits := strings.TrimPrefix(strings.TrimPrefix(lines[0], "retry:"), " ")
			if digits == "" || strings.Trim(digits, "0123456789") != "" {
				t.Errorf("WriteRetry(%v) wrote %q: a client ignores a retry that is not all ASCII digits", d, lines[0])
			}
			if d >= 0 && digits != fmt.Sprint(d.Milliseconds()) {
				t.Errorf("WriteRetry(%v) wrote %q, want %d ms", d, lines[0], d.Milliseconds())
			}
		})
	}
}

func TestHostileErrorFailsWholeEvent(t *testing.T) {
	// A rejected field anywhere in the event, with fn returning the error or ignoring it,
	// sends nothing of the event, not even the fields written before it.
	bad := []struct {
		name  string
		write func(w httpsse.EventWriter) error
	}{
		{"WriteEvent LF", func(w httpsse.EventWriter) error { return w.WriteEvent("a\nb") }},
		{"WriteEvent CR", func(w httpsse.EventWriter) error { return w.WriteEvent("a\rb") }},
		{"WriteID CRLF", func(w httpsse.EventWriter) error { return w.WriteID("a\r\nb") }},
		{"WriteID NUL", func(w httpsse.EventWriter) error { return w.WriteID("a\x00b") }},
		{"WriteID lone CR at end", func(w httpsse.EventWriter) error { return w.WriteID("1\r") }},
	}
	rr := newRecordedRoute(t)
	for _, b := range bad {
		for _, returnIt := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/return error %v", b.name, returnIt), func(t *testing.T) {
				var writeErr error
				wire, err := rr.publishBetweenMarkers(t, func(w httpsse.EventWriter) error {
					w.WriteEvent("before")
					w.WriteData("written before the bad field")
					writeErr = b.write(w)
					w.WriteData("written after the bad field")
					if returnIt {
						return writeErr
					}
					return nil
				})
				if writeErr == nil {
					t.Fatalf("%s: no error", b.name)
				}
				if err == nil {
					t.Errorf("%s: PublishEvent returned nil", b.name)
				}
				if len(wire) != 0 {
					t.Errorf("%s: the event was sent: %q", b.name, wire)
				}
			})
		}
	}
	t.Run("fn error", func(t *testing.T) {
		boom := errors.New("boom")
		wire, err := rr.publishBetweenMarkers(t, func(w httpsse.EventWriter) error {
			w.WriteData("x")
			return boom
		})
		if !errors.Is(err, boom) {
			t.Errorf("PublishEvent = %v, want %v", err, boom)
		}
		if len(wire) != 0 {
			t.Errorf("the event was sent: %q", wire)
		}
	})
	t.Run("nil fn", func(t *testing.T) {
		wire, err := rr.publishBetweenMarkers(t, nil)
		if err == nil {
			t.Error("PublishEvent(nil) = nil, want an error")
		}
		if len(wire) != 0 {
			t.Errorf("PublishEvent(nil) sent %q", wire)
		}
	})
}

func TestHostileValuesOverHTTP(t *testing.T) {
	// Every value through every method on one real HTTP stream, parsed by the Decoder:
	// between two markers there is the event (when accepted) and nothing else.
	route := httpsse.NewRoute()
	ts := httptest.NewServer(route)
	t.Cleanup(func() {
		route.Close()
		ts.Close()
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	resp, err := (&http.Client{Transport: tr}).Get(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()

	type sent struct {
		call           string
		accepted       bool
		valid          bool
		name, id, data string
	}
	values := hostileValues(t)
	ch := make(chan []sent, 1)
	// The publisher waits until the reader has each marker before it goes on: a reader
	// slower than the publisher would otherwise fall more than MaxQueuedBytes behind
	// after a few 16 MiB values, and be dropped, as it should be.
	seen := make(chan int, 1)
	readerGone := make(chan struct{})
	var goneOnce sync.Once
	stopPublisher := func() { goneOnce.Do(func() { close(readerGone) }) }
	defer stopPublisher()
	go func() {
		var all []sent
		marker := func(i int) {
			route.PublishEvent(func(w httpsse.EventWriter) error {
				w.WriteEvent("marker")
				return w.WriteData(fmt.Sprint(i))
			})
			select {
			case <-seen:
			case <-readerGone:
			}
		}
		for _, m := range hostileMethods {
			for _, hv := range values {
				marker(len(all))
				var writeErr error
				err := route.PublishEvent(func(w httpsse.EventWriter) error {
					writeErr = m.write(w, hv.v)
					if m.name != "WriteData" {
						w.WriteData("payload")
					}
					return nil
				})
				s := sent{call: fmt.Sprintf("%s(%s)", m.name, shortQuote(hv.v)), accepted: writeErr == nil && err == nil, valid: utf8.ValidString(hv.v), data: "payload"}
				switch m.name {
				case "WriteData":
					s.data = normalizeLineBreaks(hv.v)
				case "WriteEvent":
					s.name = hv.v
				case "WriteID":
					s.id = hv.v
				}
				all = append(all, s)
			}
		}
		marker(len(all))
		route.PublishEvent(func(w httpsse.EventWriter) error { w.WriteEvent("end"); return w.WriteData("end") })
		ch <- all
	}()

	dec := httpsse.NewDecoder(resp.Body)
	dec.SetMaxEventSize(64 << 20)
	var evs []httpsse.Event
	for dec.Next() {
		var ev httpsse.Event
		if err := dec.Decode(&ev); err != nil {
			t.Fatal(err)
		}
		if ev.EventName() == "end" {
			break
		}
		evs = append(evs, ev)
		if ev.EventName() == "marker" {
			seen <- 0
		}
	}
	stopPublisher()
	if err := dec.Err(); err != nil {
		t.Fatalf("Decoder: %v", err)
	}
	all := <-ch
	// Walk the events: marker i, then the event of case i when it was accepted.
	j := 0
	lastID := ""
	for i, s := range all {
		if j >= len(evs) || evs[j].EventName() != "marker" || evs[j].EventDataCollapsed() != fmt.Sprint(i) {
			t.Fatalf("before %s: want marker %d, got %d events so far", s.call, i, j)
		}
		j++
		if !s.accepted {
			continue
		}
		if j >= len(evs) || evs[j].EventName() == "marker" {
			t.Errorf("%s: accepted, but no event on the wire", s.call)
			continue
		}
		ev := evs[j]
		j++
		if s.id != "" || strings.HasPrefix(s.call, "WriteID") {
			lastID = s.id
		}
		if !s.valid {
			continue
		}
		if ev.EventName() != s.name || ev.EventID() != lastID || ev.EventDataCollapsed() != s.data {
			t.Errorf("%s: decoded name %s, id %s, data %s; want %s, %s, %s", s.call,
				shortQuote(ev.EventName()), shortQuote(ev.EventID()), shortQuote(ev.EventDataCollapsed()),
				shortQuote(s.name), shortQuote(lastID), shortQuote(s.data))
		}
	}
	if j+1 != len(evs) {
		t.Errorf("decoded %d events, want %d", len(evs), j+1)
	}
}

// embeddedEvent is how a user adds fields to an event: *embeddedEvent is an EventSetter
// through the methods it gets from Event, so Decode fills it with one AppendEventDatum call
// per data line.
type embeddedEvent struct {
	httpsse.Event
}

func TestHostileManyLinesIntoEmbeddedEvent(t *testing.T) {
	// An event of 50,000 short data lines (850 KB, far under the size limit) decoded into
	// a type that embeds Event, which gets one AppendEventDatum call per line: linear, not
	// quadratic (it once took 9 s; 100,000 lines took 28 s), so a hostile server cannot
	// stall such a client with one event under the limit.
	const lines = 50000
	in := strings.Repeat("data: 0123456789\n", lines) + "\n"
	dec := httpsse.NewDecoder(strings.NewReader(in))
	if !dec.Next() {
		t.Fatalf("Next() = false, Err() = %v", dec.Err())
	}
	var ev embeddedEvent
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- dec.Decode(&ev) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Decode of %d data lines into a type embedding Event took %v, want well under 1 s", lines, d)
		}
		if n := len(ev.EventData()); n != lines {
			t.Errorf("EventData() has %d lines, want %d", n, lines)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("Decode of %d data lines into a type embedding Event still running after 5 s", lines)
		<-done
	}
}
