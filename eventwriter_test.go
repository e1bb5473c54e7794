package httpsse

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func encode(fn func(w EventWriter) error) (string, error) {
	enc := &encoder{}
	err := fn(enc)
	b, ferr := enc.finish()
	if err == nil {
		err = ferr
	}
	return string(b), err
}

func TestEventWriterBytes(t *testing.T) {
	tests := []struct {
		name string
		fn   func(w EventWriter) error
		want string
	}{
		{"data", func(w EventWriter) error { return w.WriteData("hello") }, "data: hello\n\n"},
		{"empty data", func(w EventWriter) error { return w.WriteData("") }, "data:\n\n"},
		{"data with LF", func(w EventWriter) error { return w.WriteData("a\nb") }, "data: a\ndata: b\n\n"},
		{"data with CR", func(w EventWriter) error { return w.WriteData("a\rb") }, "data: a\ndata: b\n\n"},
		{"data with CRLF", func(w EventWriter) error { return w.WriteData("a\r\nb") }, "data: a\ndata: b\n\n"},
		{"data with LFCR", func(w EventWriter) error { return w.WriteData("a\n\rb") }, "data: a\ndata:\ndata: b\n\n"},
		{"data ending with LF", func(w EventWriter) error { return w.WriteData("a\n") }, "data: a\ndata:\n\n"},
		{"data that is a blank line", func(w EventWriter) error { return w.WriteData("\n") }, "data:\ndata:\n\n"},
		{"data injection", func(w EventWriter) error { return w.WriteData("x\n\ndata: evil") }, "data: x\ndata:\ndata: data: evil\n\n"},
		{"data with leading space", func(w EventWriter) error { return w.WriteData(" a") }, "data:  a\n\n"},
		{"data with colon", func(w EventWriter) error { return w.WriteData("a: b") }, "data: a: b\n\n"},
		{"data with NUL", func(w EventWriter) error { return w.WriteData("a\x00b") }, "data: a\x00b\n\n"},
		{"two data calls", func(w EventWriter) error { w.WriteData("a"); return w.WriteData("b") }, "data: a\ndata: b\n\n"},
		{"comment", func(w EventWriter) error { return w.WriteComment("hi") }, ": hi\n\n"},
		{"empty comment", func(w EventWriter) error { return w.WriteComment("") }, ":\n\n"},
		{"comment with line breaks", func(w EventWriter) error { return w.WriteComment("a\nb\rc\r\nd") }, ": a\n: b\n: c\n: d\n\n"},
		{"comment injection", func(w EventWriter) error { return w.WriteComment("x\ndata: evil\n") }, ": x\n: data: evil\n:\n\n"},
		{"event", func(w EventWriter) error { return w.WriteEvent("add") }, "event: add\n\n"},
		{"empty event", func(w EventWriter) error { return w.WriteEvent("") }, "event: \n\n"},
		{"id", func(w EventWriter) error { return w.WriteID("42") }, "id: 42\n\n"},
		{"empty id", func(w EventWriter) error { return w.WriteID("") }, "id: \n\n"},
		{"retry", func(w EventWriter) error { return w.WriteRetry(1500 * time.Millisecond) }, "retry: 1500\n\n"},
		{"retry rounds down", func(w EventWriter) error { return w.WriteRetry(1999 * time.Microsecond) }, "retry: 1\n\n"},
		{"retry zero", func(w EventWriter) error { return w.WriteRetry(0) }, "retry: 0\n\n"},
		{"fields in order", func(w EventWriter) error {
			w.WriteEvent("e")
			w.WriteID("1")
			w.WriteRetry(time.Second)
			w.WriteComment("c")
			return w.WriteData("d")
		}, "event: e\nid: 1\nretry: 1000\n: c\ndata: d\n\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encode(tt.fn)
			if err != nil {
				t.Fatalf("encode = %v", err)
			}
			if got != tt.want {
				t.Errorf("encode = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestEventWriterRejects(t *testing.T) {
	tests := []struct {
		name    string
		fn      func(w EventWriter) error
		message string
	}{
		{"event with LF", func(w EventWriter) error { return w.WriteEvent("a\nb") }, `httpsse: event field contains '\n' at byte 1`},
		{"event with CR", func(w EventWriter) error { return w.WriteEvent("a\rb") }, `httpsse: event field contains '\r' at byte 1`},
		{"event with CRLF", func(w EventWriter) error { return w.WriteEvent("ab\r\n") }, `httpsse: event field contains '\r' at byte 2`},
		{"id with LF", func(w EventWriter) error { return w.WriteID("1\n\ndata: x") }, `httpsse: id field contains '\n' at byte 1`},
		{"id with CR", func(w EventWriter) error { return w.WriteID("\r") }, `httpsse: id field contains '\r' at byte 0`},
		{"id with NUL", func(w EventWriter) error { return w.WriteID("a\x00") }, `httpsse: id field contains '\x00' at byte 1`},
		{"invalid UTF-8 data", func(w EventWriter) error { return w.WriteData("a\xff") }, "httpsse: data field is not valid UTF-8"},
		{"invalid UTF-8 comment", func(w EventWriter) error { return w.WriteComment("\xe2\x82") }, "httpsse: comment field is not valid UTF-8"},
		{"invalid UTF-8 event", func(w EventWriter) error { return w.WriteEvent("\xc0") }, "httpsse: event field is not valid UTF-8"},
		{"invalid UTF-8 id", func(w EventWriter) error { return w.WriteID("\xed\xa0\x80") }, "httpsse: id field is not valid UTF-8"},
		{"negative retry", func(w EventWriter) error { return w.WriteRetry(-time.Second) }, "httpsse: negative retry -1s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var inner error
			got, err := encode(func(w EventWriter) error {
				w.WriteData("before")
				inner = tt.fn(w)
				w.WriteData("after") // ignored: the event has failed
				return nil
			})
			if inner == nil || inner.Error() != tt.message {
				t.Errorf("Write = %v, want %q", inner, tt.message)
			}
			if err != inner || got != "" {
				t.Errorf("encode = %q, %v; want nothing and the Write error", got, err)
			}
		})
	}
}

func TestEventWriterAfterPublish(t *testing.T) {
	enc := &encoder{}
	enc.WriteData("a")
	if _, err := enc.finish(); err != nil {
		t.Fatal(err)
	}
	if err := enc.WriteData("late"); !errors.Is(err, errEventWriterDone) {
		t.Errorf("WriteData after the event = %v, want %v", err, errEventWriterDone)
	}
	if strings.Contains(string(enc.buf), "late") {
		t.Errorf("a late WriteData reached the buffer: %q", enc.buf)
	}
}
