package httpsse

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// wantEvent is an event as a test expects it: name, last event ID, and data lines.
type wantEvent struct {
	name string
	id   string
	data []string
}

func ev(name, id string, data ...string) wantEvent { return wantEvent{name, id, data} }

// decoderTests has one case per rule of "Parsing an event stream" and "Interpreting an event
// stream", then the standard's own examples.
var decoderTests = []struct {
	name string
	in   string
	want []wantEvent
}{
	{"empty stream", "", nil},
	{"one event", "data: hello\n\n", []wantEvent{ev("", "", "hello")}},
	{"two events", "data: a\n\ndata: b\n\n", []wantEvent{ev("", "", "a"), ev("", "", "b")}},

	// Line endings.
	{"LF", "data: a\ndata: b\n\n", []wantEvent{ev("", "", "a", "b")}},
	{"CRLF", "data: a\r\ndata: b\r\n\r\n", []wantEvent{ev("", "", "a", "b")}},
	{"CR", "data: a\rdata: b\r\r", []wantEvent{ev("", "", "a", "b")}},
	{"mixed line endings", "data: a\rdata: b\r\ndata: c\n\r\n", []wantEvent{ev("", "", "a", "b", "c")}},
	{"LF CR is two line ends", "data: a\n\rdata: b\n\n", []wantEvent{ev("", "", "a"), ev("", "", "b")}},
	{"CR CR LF is a blank line then a LF", "data: a\r\r\ndata: b\n\n", []wantEvent{ev("", "", "a"), ev("", "", "b")}},
	{"CRLF then CR", "data: a\r\n\rdata: b\r\n\r\n", []wantEvent{ev("", "", "a"), ev("", "", "b")}},

	// BOM.
	{"leading BOM dropped", "\uFEFFdata: a\n\n", []wantEvent{ev("", "", "a")}},
	{"second BOM kept, so the field is unknown", "\uFEFF\uFEFFdata: a\n\ndata: b\n\n", []wantEvent{ev("", "", "b")}},
	{"BOM not at start is data", "data: \uFEFFa\n\n", []wantEvent{ev("", "", "\uFEFFa")}},
	{"partial BOM is not a BOM", "\xEF\xBBdata: a\n\ndata: b\n\n", []wantEvent{ev("", "", "b")}},
	{"BOM alone", "\uFEFF", nil},

	// Comments and fields.
	{"comment ignored", ": comment\ndata: a\n\n", []wantEvent{ev("", "", "a")}},
	{"comment only event not dispatched", ": comment\n\n", nil},
	{"colon alone is a comment", ":\ndata: a\n\n", []wantEvent{ev("", "", "a")}},
	{"field without colon is an empty value", "data\n\n", []wantEvent{ev("", "", "")}},
	{"field without colon twice", "data\ndata\n\n", []wantEvent{ev("", "", "", "")}},
	{"no space after colon", "data:a\n\n", []wantEvent{ev("", "", "a")}},
	{"one leading space stripped", "data:  a\n\n", []wantEvent{ev("", "", " a")}},
	{"tab not stripped", "data:\ta\n\n", []wantEvent{ev("", "", "\ta")}},
	{"trailing space kept", "data: a \n\n", []wantEvent{ev("", "", "a ")}},
	{"colon in value kept", "data: a: b\n\n", []wantEvent{ev("", "", "a: b")}},
	{"empty data value", "data:\n\n", []wantEvent{ev("", "", "")}},
	{"data with space only", "data: \n\n", []wantEvent{ev("", "", "")}},
	{"unknown field ignored", "foo: bar\ndata: a\n\n", []wantEvent{ev("", "", "a")}},
	{"field names are case-sensitive", "Data: a\nDATA: b\ndata: c\n\n", []wantEvent{ev("", "", "c")}},
	{"space before colon is part of the name", "data : a\ndata: b\n\n", []wantEvent{ev("", "", "b")}},
	{"leading space before name", " data: a\ndata: b\n\n", []wantEvent{ev("", "", "b")}},
	{"unknown field only", "foo\n\n", nil},

	// Dispatch.
	{"no data no dispatch", "event: x\n\n", nil},
	{"event type reset without data", "event: x\n\ndata: a\n\n", []wantEvent{ev("", "", "a")}},
	{"event type reset after dispatch", "event: x\ndata: a\n\ndata: b\n\n", []wantEvent{ev("x", "", "a"), ev("", "", "b")}},
	{"event name", "event: add\ndata: 1\n\n", []wantEvent{ev("add", "", "1")}},
	{"last event name wins", "event: a\nevent: b\ndata: 1\n\n", []wantEvent{ev("b", "", "1")}},
	{"empty event name", "event:\ndata: 1\n\n", []wantEvent{ev("", "", "1")}},
	{"several blank lines", "data: a\n\n\n\ndata: b\n\n", []wantEvent{ev("", "", "a"), ev("", "", "b")}},
	{"trailing LF of data removed, inner kept", "data:\ndata:\n\n", []wantEvent{ev("", "", "", "")}},
	{"unterminated event discarded", "data: a\n\ndata: b\n", []wantEvent{ev("", "", "a")}},
	{"unterminated line discarded", "data: a\n\ndata: b", []wantEvent{ev("", "", "a")}},
	{"unterminated after CR is a complete line only", "data: a\r", nil},
	{"event ended by CR at end of stream", "data: a\r\r", []wantEvent{ev("", "", "a")}},

	// id.
	{"id", "id: 1\ndata: a\n\n", []wantEvent{ev("", "1", "a")}},
	{"id persists", "id: 1\ndata: a\n\ndata: b\n\n", []wantEvent{ev("", "1", "a"), ev("", "1", "b")}},
	{"id of an event without data counts", "id: 7\n\ndata: a\n\n", []wantEvent{ev("", "7", "a")}},
	{"empty id resets", "id: 1\ndata: a\n\nid\ndata: b\n\n", []wantEvent{ev("", "1", "a"), ev("", "", "b")}},
	{"id with NUL ignored", "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", []wantEvent{ev("", "1", "a"), ev("", "1", "b")}},
	{"id with only NUL ignored", "id: 5\ndata: a\n\nid: \x00\ndata: b\n\n", []wantEvent{ev("", "5", "a"), ev("", "5", "b")}},
	{"id set after data in the same event", "data: a\nid: 3\n\n", []wantEvent{ev("", "3", "a")}},
	{"id with spaces", "id:  x y \ndata: a\n\n", []wantEvent{ev("", " x y ", "a")}},
	{"NUL in data kept", "data: a\x00b\n\n", []wantEvent{ev("", "", "a\x00b")}},

	// retry does not change events.
	{"retry ignored for events", "retry: 1000\ndata: a\n\n", []wantEvent{ev("", "", "a")}},
	{"retry alone not dispatched", "retry: 1000\n\n", nil},

	// UTF-8 decoding: one U+FFFD per maximal subpart (Encoding Standard).
	{"invalid byte", "data: a\xFFb\n\n", []wantEvent{ev("", "", "a\uFFFDb")}},
	{"truncated 3-byte sequence", "data: \xE2\x82\xFF\n\n", []wantEvent{ev("", "", "\uFFFD\uFFFD")}},
	{"truncated sequence at end of line", "data: \xE2\x82\n\n", []wantEvent{ev("", "", "\uFFFD")}},
	{"lone continuation bytes", "data: \x80\x80\n\n", []wantEvent{ev("", "", "\uFFFD\uFFFD")}},
	{"overlong", "data: \xC0\xAF\n\n", []wantEvent{ev("", "", "\uFFFD\uFFFD")}},
	{"overlong 3-byte", "data: \xE0\x80\xAF\n\n", []wantEvent{ev("", "", "\uFFFD\uFFFD\uFFFD")}},
	{"surrogate", "data: \xED\xA0\x80\n\n", []wantEvent{ev("", "", "\uFFFD\uFFFD\uFFFD")}},
	{"above U+10FFFF", "data: \xF4\x90\x80\x80\n\n", []wantEvent{ev("", "", "\uFFFD\uFFFD\uFFFD\uFFFD")}},
	{"truncated 4-byte", "data: \xF0\x9F\x98\n\n", []wantEvent{ev("", "", "\uFFFD")}},
	{"valid 4-byte", "data: \xF0\x9F\x98\x80\n\n", []wantEvent{ev("", "", "😀")}},
	{"invalid in event name", "event: \xFFx\ndata: a\n\n", []wantEvent{ev("\uFFFDx", "", "a")}},
	{"invalid in id", "id: \xFF\ndata: a\n\n", []wantEvent{ev("", "\uFFFD", "a")}},
	{"invalid in field name", "da\xFFta: a\ndata: b\n\n", []wantEvent{ev("", "", "b")}},
	{"unicode", "data: héllo wörld ✓ 日本\n\n", []wantEvent{ev("", "", "héllo wörld ✓ 日本")}},
	{"U+2028 is not a line break", "data: a\u2028b\n\n", []wantEvent{ev("", "", "a\u2028b")}},

	// The standard's examples (HTML Standard, 9.2.5 and 9.2.6).
	{"spec: three messages", "data: This is the first message.\n\ndata: This is the second message, it\ndata: has two lines.\n\ndata: This is the third message.\n\n",
		[]wantEvent{ev("", "", "This is the first message."), ev("", "", "This is the second message, it", "has two lines."), ev("", "", "This is the third message.")}},
	{"spec: add and remove", "event: add\ndata: 73857293\n\nevent: remove\ndata: 2153\n\nevent: add\ndata: 113411\n\n",
		[]wantEvent{ev("add", "", "73857293"), ev("remove", "", "2153"), ev("add", "", "113411")}},
	{"spec: stock ticker", "data: YHOO\ndata: +2\ndata: 10\n\n", []wantEvent{ev("", "", "YHOO", "+2", "10")}},
	{"spec: comment, ids, and an unterminated event", ": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n",
		[]wantEvent{ev("", "1", "first event"), ev("", "", "second event")}},
	{"spec: empty data", "data\n\ndata\ndata\n\ndata:", []wantEvent{ev("", "", ""), ev("", "", "", "")}},
	{"spec: same with or without space", "data:test\n\ndata: test\n\n", []wantEvent{ev("", "", "test"), ev("", "", "test")}},
}

// readers are the ways each case is read: whole, a byte at a time (so CR and LF, and the
// BOM, are split across reads), and in halves.
var readers = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"OneByte", iotest.OneByteReader},
	{"Half", iotest.HalfReader},
	{"DataErr", iotest.DataErrReader},
}

func decodeAll(t *testing.T, r io.Reader) []wantEvent {
	t.Helper()
	dec := NewDecoder(r)
	var got []wantEvent
	for dec.Next() {
		var e Event
		if err := dec.Decode(&e); err != nil {
			t.Fatalf("Decode(&e) = %v", err)
		}
		got = append(got, wantEvent{e.EventName(), e.EventID(), e.EventData()})
	}
	if err := dec.Err(); err != nil {
		t.Fatalf("Err() = %v, want nil", err)
	}
	return got
}

func TestDecoder(t *testing.T) {
	for _, tt := range decoderTests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				got := decodeAll(t, rd.wrap(strings.NewReader(tt.in)))
				if !equalEvents(got, tt.want) {
					t.Errorf("decode(%q) = %q, want %q", tt.in, got, tt.want)
				}
			})
		}
	}
}

func equalEvents(a, b []wantEvent) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].name != b[i].name || a[i].id != b[i].id || strings.Join(a[i].data, "\n") != strings.Join(b[i].data, "\n") || len(a[i].data) != len(b[i].data) {
			return false
		}
	}
	return true
}

func TestDecoderCollapsed(t *testing.T) {
	dec := NewDecoder(strings.NewReader("data: a\ndata:\ndata: b\n\n"))
	if !dec.Next() {
		t.Fatalf("Next() = false, want true (Err %v)", dec.Err())
	}
	var e Event
	if err := dec.Decode(&e); err != nil {
		t.Fatal(err)
	}
	if got, want := e.EventDataCollapsed(), "a\n\nb"; got != want {
		t.Errorf("EventDataCollapsed() = %q, want %q", got, want)
	}
}

func TestDecoderRetry(t *testing.T) {
	tests := []struct {
		in    string
		want  time.Duration
		isSet bool
	}{
		{"retry: 1500\n", 1500 * time.Millisecond, true},
		{"retry:0\n", 0, true},
		{"retry: 15x\n", 0, false},
		{"retry: -1\n", 0, false},
		{"retry: 1.5\n", 0, false},
		{"retry:\n", 0, false},
		{"retry\n", 0, false},
		{"retry:  10\n", 0, false}, // the second space is part of the value
		{"retry: 10 \n", 0, false},
		{"retry: 100\nretry: x\n", 100 * time.Millisecond, true},
		{"retry: 99999999999999999999999999\n", time.Duration(int64(1<<63-1) / int64(time.Millisecond) * int64(time.Millisecond)), true},
	}
	for _, tt := range tests {
		dec := NewDecoder(strings.NewReader(tt.in + "\n"))
		for dec.Next() {
		}
		if dec.retry != tt.want || dec.retrySet != tt.isSet {
			t.Errorf("decode(%q) retry = %v, %v, want %v, %v", tt.in, dec.retry, dec.retrySet, tt.want, tt.isSet)
		}
	}
}

// TestDecoderYieldsWithoutWaiting checks that an event is yielded as soon as its blank line
// is read, also when the last byte read is a CR that a LF may follow.
func TestDecoderYieldsWithoutWaiting(t *testing.T) {
	for _, end := range []string{"\n\n", "\r\r", "\r\n\r\n", "\r\n\r"} {
		pr, pw := io.Pipe()
		dec := NewDecoder(pr)
		go pw.Write([]byte("data: a" + end))
		if !dec.Next() {
			t.Fatalf("Next() after %q = false, want true", end)
		}
		go func() {
			pw.Write([]byte("\ndata: b\n\n"))
			pw.Close()
		}()
		var e Event
		if !dec.Next() || dec.Decode(&e) != nil || e.EventDataCollapsed() != "b" {
			t.Fatalf("second event after %q = %q, want \"b\" (Err %v)", end, e.EventDataCollapsed(), dec.Err())
		}
	}
}

func TestDecoderLongLines(t *testing.T) {
	long := strings.Repeat("x", 5<<20)
	in := "data: " + long + "\nevent: " + strings.Repeat("n", 100<<10) + "\n\n"
	got := decodeAll(t, iotest.HalfReader(strings.NewReader(in)))
	if len(got) != 1 || got[0].data[0] != long || len(got[0].name) != 100<<10 {
		t.Fatalf("decode of a 5 MiB line failed: %d events", len(got))
	}
}

func TestDecoderMaxEventSize(t *testing.T) {
	tests := []struct {
		name   string
		max    int
		in     string
		events int
		tooBig bool
	}{
		{"data under limit", 10, "data: 0123456789\n\n", 1, false},
		{"data over limit", 10, "data: 0123456789a\n\n", 0, true},
		{"lines add up with the LF between them", 10, "data: 01234\ndata: 5678\n\n", 1, false},
		{"lines add up over the limit", 10, "data: 01234\ndata: 56789\n\n", 0, true},
		{"limit is per event", 10, "data: 01234\n\ndata: 5678\n\n", 2, false},
		{"name counts", 10, "event: 01234\ndata: 567890\n\n", 0, true},
		{"a new name replaces the old", 10, "event: 01234\nevent: 56789\ndata: 0\n\n", 1, false},
		{"long id", 10, "id: " + strings.Repeat("x", 11) + "\n", 0, true},
		{"long unterminated line", 10, "data: " + strings.Repeat("x", 100), 0, true},
		{"long comment line", 10, ": " + strings.Repeat("x", 100) + "\n", 0, true},
		{"comment at the limit", 10, ": " + strings.Repeat("x", 10) + "\ndata: a\n\n", 1, false},
		{"no limit", 0, "data: " + strings.Repeat("x", 100) + "\n\n", 1, false},
		{"events before the big one are yielded", 10, "data: a\n\ndata: " + strings.Repeat("x", 100) + "\n\n", 1, true},
	}
	for _, tt := range tests {
		for _, rd := range readers {
			t.Run(tt.name+"/"+rd.name, func(t *testing.T) {
				dec := NewDecoder(rd.wrap(strings.NewReader(tt.in)))
				dec.SetMaxEventSize(tt.max)
				n := 0
				for dec.Next() {
					n++
				}
				err := dec.Err()
				if n != tt.events || errors.Is(err, ErrEventTooLarge) != tt.tooBig {
					t.Fatalf("decode(%.30q) with limit %d = %d events, Err %v; want %d events, too large %v", tt.in, tt.max, n, err, tt.events, tt.tooBig)
				}
				if tt.tooBig && !strings.Contains(err.Error(), "limit 10 bytes") {
					t.Errorf("Err() = %q, want it to name the limit", err)
				}
			})
		}
	}
}

func TestDecoderDefaultMaxEventSize(t *testing.T) {
	data := strings.Repeat("x", DefaultMaxEventSize)
	got := decodeAll(t, strings.NewReader("data: "+data+"\n\n"))
	if len(got) != 1 || len(got[0].data[0]) != len(data) {
		t.Fatalf("event of the default maximum size: %d events, want 1", len(got))
	}
	dec := NewDecoder(strings.NewReader("data: " + data + "x\n\n"))
	if dec.Next() || !errors.Is(dec.Err(), ErrEventTooLarge) {
		t.Fatalf("event over the default maximum: Err() = %v, want ErrEventTooLarge", dec.Err())
	}
}

func TestDecoderSetMaxEventSizeAfterNextPanics(t *testing.T) {
	dec := NewDecoder(strings.NewReader(""))
	dec.Next()
	defer func() {
		if recover() == nil {
			t.Error("SetMaxEventSize after Next did not panic")
		}
	}()
	dec.SetMaxEventSize(1)
}

func TestDecoderReadError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("data: a\n\ndata: b\n"), iotest.ErrReader(boom))
	dec := NewDecoder(r)
	n := 0
	for dec.Next() {
		n++
	}
	if n != 1 {
		t.Errorf("events before the error = %d, want 1", n)
	}
	if err := dec.Err(); !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "httpsse: reading stream: ") {
		t.Errorf("Err() = %v, want %v wrapped with context", err, boom)
	}
}

func TestDecoderNoProgress(t *testing.T) {
	dec := NewDecoder(emptyReader{})
	if dec.Next() || !errors.Is(dec.Err(), io.ErrNoProgress) {
		t.Errorf("Err() = %v, want io.ErrNoProgress", dec.Err())
	}
}

type emptyReader struct{}

func (emptyReader) Read([]byte) (int, error) { return 0, nil }

// recordingSetter is an EventSetter that records the calls it gets.
type recordingSetter struct{ calls []string }

func (s *recordingSetter) AppendEventDatum(d string) { s.calls = append(s.calls, "data "+d) }
func (s *recordingSetter) SetEventName(n string)     { s.calls = append(s.calls, "name "+n) }
func (s *recordingSetter) SetEventID(id string)      { s.calls = append(s.calls, "id "+id) }

func TestDecoderDecodeEventSetter(t *testing.T) {
	dec := NewDecoder(strings.NewReader("id: 9\nevent: e\ndata: a\ndata:\ndata: c\n\n"))
	if !dec.Next() {
		t.Fatal("Next() = false, want true")
	}
	var s recordingSetter
	if err := dec.Decode(&s); err != nil {
		t.Fatal(err)
	}
	want := []string{"name e", "id 9", "data a", "data ", "data c"}
	if strings.Join(s.calls, "|") != strings.Join(want, "|") {
		t.Errorf("Decode(EventSetter) calls = %q, want %q", s.calls, want)
	}
}

func TestDecoderDecodeUnsupportedType(t *testing.T) {
	dec := NewDecoder(strings.NewReader("data: a\n\ndata: b\n\n"))
	if !dec.Next() {
		t.Fatal("Next() = false, want true")
	}
	var s string
	err := dec.Decode(&s)
	if err == nil || !strings.Contains(err.Error(), "*string") {
		t.Errorf("Decode(*string) = %v, want an error naming *string", err)
	}
	var e Event
	if !dec.Next() || dec.Decode(&e) != nil || e.EventDataCollapsed() != "b" {
		t.Errorf("stream after a bad Decode: got %q, want \"b\"", e.EventDataCollapsed())
	}
}

func TestDecoderDecodeBeforeNext(t *testing.T) {
	dec := NewDecoder(strings.NewReader("data: a\n\n"))
	var e Event
	if err := dec.Decode(&e); err == nil {
		t.Error("Decode before Next = nil, want an error")
	}
}

func TestDecoderReusedEvent(t *testing.T) {
	in := "event: a\nid: 1\ndata: x\n\nid: 2\ndata: y\n\nevent: b\ndata: z\n\n"
	dec := NewDecoder(strings.NewReader(in))
	var e Event
	var got []wantEvent
	for dec.Next() {
		if err := dec.Decode(&e); err != nil {
			t.Fatal(err)
		}
		got = append(got, wantEvent{e.EventName(), e.EventID(), e.EventData()})
	}
	want := []wantEvent{ev("a", "1", "x"), ev("", "2", "y"), ev("b", "2", "z")}
	if !equalEvents(got, want) {
		t.Errorf("decode into a reused Event = %q, want %q", got, want)
	}
}

func TestDecoderAllocsPerEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation count")
	}
	var b strings.Builder
	for i := range 1000 {
		b.WriteString("event: token\nid: ")
		b.WriteString(strings.Repeat("1", i%7+1))
		b.WriteString("\ndata: {\"choices\":[{\"delta\":{\"content\":\"hello\"}}]}\n\n")
	}
	in := b.String()
	var e Event
	allocs := testing.AllocsPerRun(5, func() {
		dec := NewDecoder(strings.NewReader(in))
		for dec.Next() {
			dec.Decode(&e)
		}
	})
	if perEvent := allocs / 1000; perEvent > 1.01 {
		t.Errorf("allocations per event = %.2f, want at most 1", perEvent)
	}
}
