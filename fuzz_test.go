package httpsse

import (
	"bufio"
	"bytes"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
	"unicode/utf8"
)

// FuzzDecoder checks that decoding never panics, gives the same events whole and a byte at a
// time, and gives the events of referenceDecode, a plain reading of the standard's rules.
func FuzzDecoder(f *testing.F) {
	for _, tt := range decoderTests {
		f.Add([]byte(tt.in))
	}
	f.Add([]byte("\xEF\xBB\xBF\xEF\xBB\xBFdata: x\r\n\r\n"))
	f.Add([]byte("id: a\x00\ndata\rretry: 5\r\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		whole := decodeForFuzz(t, strings.NewReader(string(in)))
		oneByte := decodeForFuzz(t, iotest.OneByteReader(strings.NewReader(string(in))))
		if !equalEvents(whole, oneByte) {
			t.Fatalf("decode(%q) whole = %q, one byte at a time = %q", in, whole, oneByte)
		}
		if want := referenceDecode(in); !equalEvents(whole, want) {
			t.Fatalf("decode(%q) = %q, reference = %q", in, whole, want)
		}
		for _, e := range whole {
			for _, s := range append([]string{e.name, e.id}, e.data...) {
				if !utf8.ValidString(s) || strings.ContainsAny(s, "\r\n") {
					t.Fatalf("decode(%q) gave a field %q with a line break or invalid UTF-8", in, s)
				}
			}
		}
	})
}

func decodeForFuzz(t *testing.T, r interface{ Read([]byte) (int, error) }) []wantEvent {
	dec := NewDecoder(r)
	var got []wantEvent
	for dec.Next() {
		var e Event
		if err := dec.Decode(&e); err != nil {
			t.Fatal(err)
		}
		got = append(got, wantEvent{e.EventName(), e.EventID(), e.EventData()})
	}
	if err := dec.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// referenceDecode is the standard's parsing and interpretation written as plainly as
// possible, for comparison: decode the bytes as UTF-8 into code points, drop one leading BOM,
// cut lines at CRLF, LF or CR, and interpret each complete line.
func referenceDecode(in []byte) []wantEvent {
	text := []rune(referenceUTF8(in))
	if len(text) > 0 && text[0] == '\uFEFF' {
		text = text[1:]
	}
	var events []wantEvent
	var data, eventType, lastID string
	var lines []string
	var line []rune
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c != '\r' && c != '\n' {
			line = append(line, c)
			continue
		}
		if c == '\r' && i+1 < len(text) && text[i+1] == '\n' {
			i++
		}
		l := string(line)
		line = line[:0]
		switch {
		case l == "":
			if data == "" {
				eventType = ""
				continue
			}
			events = append(events, wantEvent{eventType, lastID, lines})
			data, eventType, lines = "", "", nil
		case l[0] == ':':
		default:
			field, value := l, ""
			if i := strings.Index(l, ":"); i >= 0 {
				field, value = l[:i], strings.TrimPrefix(l[i+1:], " ")
			}
			switch field {
			case "event":
				eventType = value
			case "data":
				data += value + "\n"
				lines = append(lines, value)
			case "id":
				if !strings.Contains(value, "\x00") {
					lastID = value
				}
			}
		}
	}
	return events
}

// referenceUTF8 is the Encoding Standard's UTF-8 decoder, step by step.
func referenceUTF8(in []byte) string {
	var out []rune
	var cp rune
	needed, seen := 0, 0
	lower, upper := byte(0x80), byte(0xBF)
	for i := 0; i < len(in); i++ {
		b := in[i]
		if needed == 0 {
			switch {
			case b <= 0x7F:
				out = append(out, rune(b))
			case 0xC2 <= b && b <= 0xDF:
				needed, cp = 1, rune(b&0x1F)
			case 0xE0 <= b && b <= 0xEF:
				if b == 0xE0 {
					lower = 0xA0
				}
				if b == 0xED {
					upper = 0x9F
				}
				needed, cp = 2, rune(b&0xF)
			case 0xF0 <= b && b <= 0xF4:
				if b == 0xF0 {
					lower = 0x90
				}
				if b == 0xF4 {
					upper = 0x8F
				}
				needed, cp = 3, rune(b&0x7)
			default:
				out = append(out, utf8.RuneError)
			}
			continue
		}
		if b < lower || b > upper {
			cp, needed, seen, lower, upper = 0, 0, 0, 0x80, 0xBF
			out = append(out, utf8.RuneError)
			i-- // "prepend byte to stream"
			continue
		}
		lower, upper = 0x80, 0xBF
		cp = cp<<6 | rune(b&0x3F)
		seen++
		if seen == needed {
			out = append(out, cp)
			cp, needed, seen = 0, 0, 0
		}
	}
	if needed != 0 {
		out = append(out, utf8.RuneError)
	}
	return string(out)
}

// FuzzRoundTrip checks that whatever an EventWriter accepts comes out of the Decoder as it
// went in (line breaks as LF), and that nothing it is given can add a field or an event.
func FuzzRoundTrip(f *testing.F) {
	f.Add("add", "1", "hello", "comment")
	f.Add("", "", "", "")
	f.Add("x", "y", "a\nb\r\nc\rd", "c\n\ndata: evil")
	f.Add("e", "i", "\n\ndata: injected\n\n", "\r")
	f.Add("\uFEFF", "\uFEFF", "\uFEFFx", ":")
	f.Fuzz(func(t *testing.T, name, id, data, comment string) {
		enc := &encoder{}
		enc.WriteComment(comment)
		enc.WriteEvent(name)
		enc.WriteID(id)
		enc.WriteData(data)
		wire, err := enc.finish()
		if err != nil {
			if len(wire) != 0 {
				t.Fatalf("a rejected event produced bytes %q", wire)
			}
			return
		}
		got := decodeForFuzz(t, strings.NewReader(string(wire)))
		want := strings.ReplaceAll(strings.ReplaceAll(data, "\r\n", "\n"), "\r", "\n")
		if len(got) != 1 {
			t.Fatalf("wire %q decoded to %d events, want 1", wire, len(got))
		}
		if g := got[0]; g.name != name || g.id != id || strings.Join(g.data, "\n") != want {
			t.Fatalf("round trip of (%q, %q, %q) = %q", name, id, data, g)
		}
	})
}

// FuzzTopicsID checks that reading a Last-Event-ID of Topics.Serve never panics, and that
// any event IDs written in the form read back as they were.
func FuzzTopicsID(f *testing.F) {
	f.Add("~r2PcTI=5s0ke2q7b1nhg-41,bmcyiH=mine%2C%3D%25", "a", "x-1", "b", "mine,=% \x7f é")
	f.Add("~", "", "", "", "")
	f.Add("~AAAAAA=%zz", "n", "", "m", "%")
	f.Fuzz(func(t *testing.T, header, nameA, idA, nameB, idB string) {
		parseTopicsID(header)
		topicPositions(header, []string{nameA, nameB})
		if nameA == nameB || topicKey(nameA) == topicKey(nameB) {
			return
		}
		c := newTopicsID([]string{nameA, nameB})
		c.set(0, []byte(idA))
		c.set(1, []byte(idB))
		form := c.String()
		if strings.ContainsAny(form, "\r\n\x00 ") {
			t.Fatalf("form %q has a byte an id field cannot carry", form)
		}
		ids, ok := parseTopicsID(form)
		if !ok || ids[topicKey(nameA)] != idA || ids[topicKey(nameB)] != idB {
			t.Fatalf("%q read back as %q, %v; want %q and %q", form, ids, ok, idA, idB)
		}
	})
}

// FuzzStreamRequest reads any bytes as NewListener reads a connection's first request: it
// never panics, the pooled parser carries nothing from one request to the next, and a
// request it would serve is an EventSource's GET with one valid Host.
func FuzzStreamRequest(f *testing.F) {
	f.Add([]byte("GET /events HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\nLast-Event-ID: 7\r\n\r\n"), []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"))
	f.Add([]byte("GET http://x/y HTTP/1.1\nHost: z\nAccept: text/html, text/event-stream;q=1\n\n"), []byte("\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nAccept: text/event-stream\r\n\r\n"), []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	f.Fuzz(func(t *testing.T, first, second []byte) {
		for _, p := range [][]byte{first, second} {
			end := headerEnd(p)
			if end == 0 {
				continue
			}
			req := parseRequest(p[:end])
			fresh, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(p[:end])))
			if (req == nil) != (err != nil) || req != nil && (req.Method != fresh.Method || req.RequestURI != fresh.RequestURI || len(req.Header) != len(fresh.Header)) {
				t.Fatalf("the pooled parser read %q differently from a fresh one", p[:end])
			}
			if req == nil || hostFields(p[:end]) != 1 || !isStreamRequest(req) {
				continue
			}
			if req.Method != http.MethodGet || req.Host == "" || !acceptsEventStream(req.Header.Values("Accept")) {
				t.Fatalf("%q would be served as a stream", p[:end])
			}
		}
	})
}
