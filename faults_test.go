package httpsse_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reiver/go-httpsse"
)

// The tests in this file put the Client in front of servers that misbehave: they die in the
// middle of an event, reset the connection, send garbage, change their answer on a
// reconnect, or trickle one byte at a time. The Client must yield exactly the complete
// events, reconnect where the WHATWG standard says so (with Last-Event-ID) and stop with a
// clear error where it says not to.

// faultStreamHeader starts a 200 text/event-stream response whose body ends when the
// connection closes.
const faultStreamHeader = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"

// faultServer is a raw TCP server: it reads each request and hands the connection to
// handle, with the number of the connection (0 for the first).
type faultServer struct {
	ln     net.Listener
	handle func(i int, c net.Conn, req *http.Request)

	mu    sync.Mutex
	reqs  []*http.Request
	conns []net.Conn
	wg    sync.WaitGroup
}

func newFaultServer(t *testing.T, handle func(i int, c net.Conn, req *http.Request)) *faultServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &faultServer{ln: ln, handle: handle}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	return s
}

func (s *faultServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			req, err := http.ReadRequest(bufio.NewReader(c))
			if err != nil {
				return
			}
			c.SetReadDeadline(time.Time{})
			s.mu.Lock()
			i := len(s.reqs)
			s.reqs = append(s.reqs, req)
			s.mu.Unlock()
			s.handle(i, c, req)
		}()
	}
}

func (s *faultServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *faultServer) url() string { return "http://" + s.ln.Addr().String() + "/events" }

// requests returns the requests received so far.
func (s *faultServer) requests() []*http.Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*http.Request(nil), s.reqs...)
}

// lastEventIDs returns the Last-Event-ID header of each request ("-" when absent).
func (s *faultServer) lastEventIDs() []string {
	var ids []string
	for _, r := range s.requests() {
		if v, ok := r.Header["Last-Event-Id"]; ok {
			ids = append(ids, strings.Join(v, ","))
		} else {
			ids = append(ids, "-")
		}
	}
	return ids
}

func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func write204(c net.Conn) {
	io.WriteString(c, "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
}

// faultHTTPClient returns an http.Client of its own, whose idle connections are closed when
// the test ends.
func faultHTTPClient(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func faultDial(t *testing.T, url string, opts ...httpsse.DialOption) httpsse.Client {
	t.Helper()
	opts = append([]httpsse.DialOption{httpsse.HTTPClient(faultHTTPClient(t)), httpsse.ReconnectDelay(5 * time.Millisecond)}, opts...)
	c, err := httpsse.Dial(url, opts...)
	if err != nil {
		t.Fatalf("Dial(%q) error: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// faultEvent is what the tests compare: the name, the last event ID and the data.
type faultEvent struct{ name, id, data string }

func (e faultEvent) String() string {
	return fmt.Sprintf("{%q %q %s}", e.name, e.id, shortQuote(e.data))
}

// shortQuote quotes s, eliding the middle of a long one so that failures stay readable.
func shortQuote(s string) string {
	if len(s) <= 80 {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q...(%d bytes)...%q", s[:40], len(s), s[len(s)-20:])
}

// readAll reads events from c until Next returns false, and fails the test when that takes
// longer than timeout.
func readAll(t *testing.T, c httpsse.Client, timeout time.Duration) ([]faultEvent, error) {
	t.Helper()
	type result struct {
		evs []faultEvent
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		for c.Next() {
			var ev httpsse.Event
			if err := c.Decode(&ev); err != nil {
				r.err = fmt.Errorf("Decode: %w", err)
				break
			}
			r.evs = append(r.evs, faultEvent{ev.EventName(), ev.EventID(), ev.EventDataCollapsed()})
		}
		if r.err == nil {
			r.err = c.Err()
		}
		done <- r
	}()
	select {
	case r := <-done:
		return r.evs, r.err
	case <-time.After(timeout):
		c.Close()
		r := <-done
		t.Fatalf("Next did not return false within %v; events so far %v", timeout, r.evs)
		return nil, nil
	}
}

func sameEvents(t *testing.T, got, want []faultEvent) {
	t.Helper()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("events = %v, want %v", got, want)
	}
}

func sameIDs(t *testing.T, s *faultServer, want ...string) {
	t.Helper()
	if got := s.lastEventIDs(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Last-Event-ID of each request = %q, want %q", got, want)
	}
}

func TestFaultServerDiesMidEvent(t *testing.T) {
	s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) {
		switch i {
		case 0:
			io.WriteString(c, faultStreamHeader+"id: 1\ndata: one\n\nid: 2\ndata: tw")
		case 1:
			io.WriteString(c, faultStreamHeader+"id: 2\ndata: two\n\nevent: half\ndata: x\n")
		default:
			write204(c)
		}
	})
	c := faultDial(t, s.url())
	evs, err := readAll(t, c, 5*time.Second)
	if err != nil {
		t.Errorf("Err() = %v, want nil after a 204", err)
	}
	sameEvents(t, evs, []faultEvent{{"", "1", "one"}, {"", "2", "two"}})
	sameIDs(t, s, "-", "1", "2")
}

func TestFaultChunkedStreamAborted(t *testing.T) {
	// The server writes a chunked response and aborts the handler in the middle of an event:
	// the client sees a broken chunked body, not a clean end.
	var mu sync.Mutex
	n := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		i := n
		n++
		mu.Unlock()
		if i >= 2 {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "id: %d\ndata: whole %d\n\ndata: partial", i+1, i+1)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	}))
	t.Cleanup(ts.Close)
	c := faultDial(t, ts.URL)
	evs, err := readAll(t, c, 5*time.Second)
	if err != nil {
		t.Errorf("Err() = %v, want nil after a 204", err)
	}
	sameEvents(t, evs, []faultEvent{{"", "1", "whole 1"}, {"", "2", "whole 2"}})
}

func TestFaultConnectionReset(t *testing.T) {
	s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) {
		switch i {
		case 0:
			io.WriteString(c, faultStreamHeader+"id: a\ndata: one\n\ndata: lost")
			time.Sleep(10 * time.Millisecond)
			resetConn(c)
		case 1:
			// Reset at once, before any response: a network error, which is retried.
			resetConn(c)
		case 2:
			io.WriteString(c, faultStreamHeader+"data: two\n\n")
		default:
			write204(c)
		}
	})
	c := faultDial(t, s.url())
	evs, err := readAll(t, c, 5*time.Second)
	if err != nil {
		t.Errorf("Err() = %v, want nil after a 204", err)
	}
	sameEvents(t, evs, []faultEvent{{"", "a", "one"}, {"", "a", "two"}})
	sameIDs(t, s, "-", "a", "a", "a")
}

func TestFaultNetworkErrorsRetried(t *testing.T) {
	// Several reconnects fail (the server resets before answering); the Client keeps trying,
	// as EventSource does.
	s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) {
		switch {
		case i == 0:
			io.WriteString(c, faultStreamHeader+"id: 7\ndata: first\n\n")
		case i < 6:
			resetConn(c)
		case i == 6:
			io.WriteString(c, faultStreamHeader+"data: second\n\n")
		default:
			write204(c)
		}
	})
	c := faultDial(t, s.url())
	evs, err := readAll(t, c, 5*time.Second)
	if err != nil {
		t.Errorf("Err() = %v, want nil after a 204", err)
	}
	sameEvents(t, evs, []faultEvent{{"", "7", "first"}, {"", "7", "second"}})
	if got := len(s.requests()); got != 8 {
		t.Errorf("requests = %d, want 8", got)
	}
}

func TestFaultRefusedWhileReconnecting(t *testing.T) {
	// The server goes away entirely (connection refused) and comes back on the same port.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		http.ReadRequest(bufio.NewReader(c))
		io.WriteString(c, faultStreamHeader+"id: 1\ndata: before\n\n")
		c.Close()
		ln.Close()
	}()
	c := faultDial(t, "http://"+addr+"/", httpsse.ReconnectDelay(20*time.Millisecond))
	if !c.Next() {
		t.Fatalf("Next() = false, Err() = %v", c.Err())
	}
	<-served
	time.Sleep(100 * time.Millisecond) // several refused reconnects
	var ln2 net.Listener
	for i := 0; ; i++ {
		ln2, err = net.Listen("tcp", addr)
		if err == nil {
			break
		}
		if i == 50 {
			t.Skipf("cannot listen on %s again: %v", addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s := &faultServer{ln: ln2, handle: func(i int, c net.Conn, req *http.Request) {
		if i == 0 {
			io.WriteString(c, faultStreamHeader+"data: after\n\n")
			return
		}
		write204(c)
	}}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	evs, err := readAll(t, c, 5*time.Second)
	if err != nil {
		t.Errorf("Err() = %v, want nil after a 204", err)
	}
	sameEvents(t, evs, []faultEvent{{"", "1", "after"}})
	sameIDs(t, s, "1", "1")
}

func TestFaultPartialLineThenClose(t *testing.T) {
	tails := []string{
		"data: abc",           // a partial line
		"data: abc\n",         // a whole line, but no blank line
		"data: abc\ndata: d",  // a whole line and a partial one
		"data: abc\r",         // ends in CR: the line is complete, the event is not
		"event: x\ndata: y\n", // name and data, no blank line
		"id: 9\ndata: z",      // an unfinished event's ID is not the last event ID: that is set at dispatch
		"id: 9\n",             // likewise without data
		"id: 9\n\ndata: z",    // a blank line after an ID dispatches nothing, but sets the last event ID
	}
	for _, tail := range tails {
		t.Run(fmt.Sprintf("%q", tail), func(t *testing.T) {
			s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) {
				switch i {
				case 0:
					io.WriteString(c, faultStreamHeader+"id: 1\ndata: complete\n\n"+tail)
				case 1:
					io.WriteString(c, faultStreamHeader+"data: next\n\n")
				default:
					write204(c)
				}
			})
			c := faultDial(t, s.url())
			evs, err := readAll(t, c, 5*time.Second)
			if err != nil {
				t.Errorf("Err() = %v, want nil after a 204", err)
			}
			// The standard copies the last event ID buffer to the last event ID string (sent
			// as Last-Event-ID, and carried into the new stream) when an event is
			// dispatched, step 1, even one without data; an unterminated event is not.
			wantID := "1"
			if strings.HasPrefix(tail, "id: 9\n\n") {
				wantID = "9"
			}
			sameEvents(t, evs, []faultEvent{{"", "1", "complete"}, {"", wantID, "next"}})
			sameIDs(t, s, "-", wantID, wantID)
		})
	}
}

func TestFaultGarbageBytes(t *testing.T) {
	// Whatever the bytes, the Client yields what a Decoder yields from the same bytes.
	bodies := []string{
		"data: \xff\xfe\n\n",
		"data: a\x00b\n\n",
		"\x00\x01\x02\n\ndata: after nul line\n\n",
		"data: \xE2\x82\xFF\n\n",
		"data: \xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\n\n",
		"\xef\xbb\xbfdata: bom\n\n",
		"\xef\xbb\xbf\xef\xbb\xbfdata: two boms\n\n",
		"dat\xffa: x\n\ndata: y\n\n",
		"id: \xff\ndata: bad id\n\n",
		"retry: \xff\ndata: bad retry\n\n",
		"event: \x00\ndata: nul name\n\n",
		":\xff\xff\xff\ndata: comment\n\n",
		strings.Repeat("\r", 100) + "data: crs\r\r",
		strings.Repeat(":", 1000) + "\ndata: colons\n\n",
		"data\n\ndata:\n\ndata\ndata\n\n",
		"\x1b[31mdata: ansi\x1b[0m\n\n",
		"data: " + strings.Repeat("\x80", 300) + "\n\n",
	}
	for _, body := range bodies {
		t.Run(fmt.Sprintf("%.40q", body), func(t *testing.T) {
			want := decodeAll(t, body)
			s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) {
				if i == 0 {
					io.WriteString(c, faultStreamHeader+body)
					return
				}
				write204(c)
			})
			c := faultDial(t, s.url())
			got, err := readAll(t, c, 5*time.Second)
			if err != nil {
				t.Errorf("Err() = %v, want nil after a 204", err)
			}
			sameEvents(t, got, want)
			for _, ev := range got {
				if !isValidUTF8(ev.data) || !isValidUTF8(ev.name) || !isValidUTF8(ev.id) {
					t.Errorf("event %v is not valid UTF-8", ev)
				}
				if strings.ContainsAny(ev.name+ev.id, "\r\n") || strings.Contains(ev.data, "\r") {
					t.Errorf("event %v holds a line break it should not", ev)
				}
			}
		})
	}
}

// decodeAll returns the events a Decoder yields from body.
func decodeAll(t *testing.T, body string) []faultEvent {
	t.Helper()
	dec := httpsse.NewDecoder(strings.NewReader(body))
	var evs []faultEvent
	for dec.Next() {
		var ev httpsse.Event
		if err := dec.Decode(&ev); err != nil {
			t.Fatalf("Decode: %v", err)
		}
		evs = append(evs, faultEvent{ev.EventName(), ev.EventID(), ev.EventDataCollapsed()})
	}
	if err := dec.Err(); err != nil {
		t.Fatalf("Decoder on %q: Err() = %v", body, err)
	}
	return evs
}

func isValidUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

func TestFaultWrongContentTypeAfterReconnect(t *testing.T) {
	for _, ct := range []string{"text/html", "text/plain; charset=utf-8", "application/json", ""} {
		t.Run(ct, func(t *testing.T) {
			s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) {
				switch i {
				case 0:
					io.WriteString(c, faultStreamHeader+"id: 1\ndata: one\n\n")
				case 1:
					h := "HTTP/1.1 200 OK\r\nConnection: close\r\n"
					if ct != "" {
						h += "Content-Type: " + ct + "\r\n"
					}
					io.WriteString(c, h+"\r\ndata: never\n\n")
				default:
					io.WriteString(c, faultStreamHeader+"data: must not be requested\n\n")
				}
			})
			c := faultDial(t, s.url())
			evs, err := readAll(t, c, 5*time.Second)
			sameEvents(t, evs, []faultEvent{{"", "1", "one"}})
			if err == nil {
				t.Fatalf("Err() = nil after a reconnect answered with Content-Type %q, want an error", ct)
			}
			if ct != "" && !strings.Contains(err.Error(), strings.Split(ct, ";")[0]) {
				t.Errorf("Err() = %q, want it to name the Content-Type %q", err, ct)
			}
			var re *httpsse.ResponseError
			if errors.As(err, &re) && re.StatusCode != http.StatusOK {
				t.Errorf("ResponseError.StatusCode = %d, want 200", re.StatusCode)
			}
			time.Sleep(50 * time.Millisecond)
			if got := len(s.requests()); got != 2 {
				t.Errorf("requests = %d, want 2 (no reconnect after a wrong Content-Type)", got)
			}
		})
	}
}

func TestFault500ThenSuccess(t *testing.T) {
	t.Run("on Dial", func(t *testing.T) {
		s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) {
			if i == 0 {
				io.WriteString(c, "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nConnection: close\r\n\r\noops")
				return
			}
			io.WriteString(c, faultStreamHeader+"data: too late\n\n")
		})
		c, err := httpsse.Dial(s.url(), httpsse.HTTPClient(faultHTTPClient(t)), httpsse.ReconnectDelay(5*time.Millisecond))
		if err == nil {
			c.Close()
			t.Fatal("Dial: no error on status 500")
		}
		var re *httpsse.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 500 {
			t.Errorf("Dial error %v: want a *ResponseError with StatusCode 500", err)
		}
		if !strings.Contains(err.Error(), "500") {
			t.Errorf("Dial error %q does not name the status", err)
		}
		time.Sleep(30 * time.Millisecond)
		if got := len(s.requests()); got != 1 {
			t.Errorf("requests = %d, want 1", got)
		}
	})
	t.Run("on reconnect", func(t *testing.T) {
		// The standard fails the connection on a non-200 status during a reconnect: no more
		// attempts, so the 200 that would follow is never requested.
		s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) {
			switch i {
			case 0:
				io.WriteString(c, faultStreamHeader+"id: 1\ndata: one\n\n")
			case 1:
				io.WriteString(c, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
			default:
				io.WriteString(c, faultStreamHeader+"data: never\n\n")
			}
		})
		c := faultDial(t, s.url())
		evs, err := readAll(t, c, 5*time.Second)
		sameEvents(t, evs, []faultEvent{{"", "1", "one"}})
		var re *httpsse.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 500 {
			t.Errorf("Err() = %v, want a *ResponseError with StatusCode 500", err)
		}
		time.Sleep(50 * time.Millisecond)
		if got := len(s.requests()); got != 2 {
			t.Errorf("requests = %d, want 2", got)
		}
	})
	t.Run("204 on reconnect ends cleanly", func(t *testing.T) {
		s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) {
			if i == 0 {
				io.WriteString(c, faultStreamHeader+"data: one\n\n")
				return
			}
			write204(c)
		})
		c := faultDial(t, s.url())
		evs, err := readAll(t, c, 5*time.Second)
		sameEvents(t, evs, []faultEvent{{"", "", "one"}})
		if err != nil {
			t.Errorf("Err() = %v, want nil", err)
		}
	})
	t.Run("204 on Dial", func(t *testing.T) {
		s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) { write204(c) })
		c, err := httpsse.Dial(s.url(), httpsse.HTTPClient(faultHTTPClient(t)))
		if err == nil {
			c.Close()
			t.Fatal("Dial: no error on status 204")
		}
		var re *httpsse.ResponseError
		if !errors.As(err, &re) || re.StatusCode != 204 {
			t.Errorf("Dial error %v: want a *ResponseError with StatusCode 204", err)
		}
	})
}

func TestFaultTrickle(t *testing.T) {
	// One byte per write, with line ends of every kind, a BOM, a CRLF split across writes,
	// and an event that ends in CR CR, which must be yielded without waiting for a possible
	// LF. Each event must be yielded before the server sends the next byte after it.
	events := []struct {
		wire string
		want faultEvent
	}{
		{"\xef\xbb\xbfid: 1\r\ndata: crlf\r\n\r\n", faultEvent{"", "1", "crlf"}},
		{"event: e\rdata: cr\r\r", faultEvent{"e", "1", "cr"}},
		{"data: lf\ndata: two\n\n", faultEvent{"", "1", "lf\ntwo"}},
		{": comment\r\nid: 2\r\ndata: é€😀\r\n\r\n", faultEvent{"", "2", "é€😀"}},
		{"data:no space\r\r", faultEvent{"", "2", "no space"}},
	}
	yielded := make(chan struct{}, 1) // the test says it has the event; the server goes on
	s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) {
		if i > 0 {
			write204(c)
			return
		}
		c.(*net.TCPConn).SetNoDelay(true)
		io.WriteString(c, faultStreamHeader)
		for _, e := range events {
			for j := 0; j < len(e.wire); j++ {
				if _, err := c.Write([]byte{e.wire[j]}); err != nil {
					return
				}
				time.Sleep(200 * time.Microsecond)
			}
			select {
			case <-yielded:
			case <-time.After(5 * time.Second):
				return
			}
		}
	})
	c := faultDial(t, s.url())
	for _, e := range events {
		got := make(chan faultEvent, 1)
		go func() {
			if !c.Next() {
				close(got)
				return
			}
			var ev httpsse.Event
			c.Decode(&ev)
			got <- faultEvent{ev.EventName(), ev.EventID(), ev.EventDataCollapsed()}
		}()
		select {
		case ev, ok := <-got:
			if !ok {
				t.Fatalf("Next() = false before %v, Err() = %v", e.want, c.Err())
			}
			if ev != e.want {
				t.Errorf("event = %v, want %v", ev, e.want)
			}
		case <-time.After(2 * time.Second):
			c.Close()
			<-got
			t.Fatalf("event %q not yielded within 2 s of its last byte: the parser waits for more bytes", e.wire)
		}
		yielded <- struct{}{}
	}
}

func TestFaultRetryFieldSetsDelay(t *testing.T) {
	// The server's retry: overrides the client's reconnection time (here 1 h).
	var mu sync.Mutex
	var times []time.Time
	s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		mu.Unlock()
		if i == 0 {
			io.WriteString(c, faultStreamHeader+"retry: 30\ndata: one\n\n")
			return
		}
		write204(c)
	})
	c := faultDial(t, s.url(), httpsse.ReconnectDelay(time.Hour))
	evs, err := readAll(t, c, 5*time.Second)
	if err != nil {
		t.Errorf("Err() = %v", err)
	}
	sameEvents(t, evs, []faultEvent{{"", "", "one"}})
	mu.Lock()
	defer mu.Unlock()
	if len(times) == 2 {
		if d := times[1].Sub(times[0]); d < 30*time.Millisecond {
			t.Errorf("reconnected after %v, want at least the server's retry of 30 ms", d)
		}
	}
}

func TestFaultReconnectOff(t *testing.T) {
	s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) {
		io.WriteString(c, faultStreamHeader+"data: only\n\n")
	})
	c := faultDial(t, s.url(), httpsse.Reconnect(false))
	evs, _ := readAll(t, c, 5*time.Second)
	sameEvents(t, evs, []faultEvent{{"", "", "only"}})
	time.Sleep(30 * time.Millisecond)
	if got := len(s.requests()); got != 1 {
		t.Errorf("requests = %d with Reconnect(false), want 1", got)
	}
}

func TestFaultCloseDuringReconnectWait(t *testing.T) {
	s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) {
		io.WriteString(c, faultStreamHeader+"data: one\n\n")
	})
	c := faultDial(t, s.url(), httpsse.ReconnectDelay(time.Hour))
	if !c.Next() {
		t.Fatalf("Next() = false, Err() = %v", c.Err())
	}
	done := make(chan bool)
	go func() { done <- c.Next() }()
	time.Sleep(50 * time.Millisecond) // the stream has ended; Next waits for the reconnection
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	select {
	case ok := <-done:
		if ok {
			t.Error("Next() = true after Close")
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Next still blocked 2 s after Close")
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Next returned %v after Close", d)
	}
	if err := c.Err(); err != nil {
		t.Errorf("Err() after Close = %v, want nil", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close() = %v", err)
	}
}

func TestFaultContextEndsReconnecting(t *testing.T) {
	// The server resets every reconnect; cancelling the request's context ends the retries.
	s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) {
		if i == 0 {
			io.WriteString(c, faultStreamHeader+"data: one\n\n")
			return
		}
		resetConn(c)
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := httpsse.DialRequest(req, httpsse.HTTPClient(faultHTTPClient(t)), httpsse.ReconnectDelay(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.AfterFunc(100*time.Millisecond, cancel)
	evs, _ := readAll(t, c, 5*time.Second)
	sameEvents(t, evs, []faultEvent{{"", "", "one"}})
	if n := len(s.requests()); n < 3 {
		t.Errorf("requests = %d, want the Client to have retried", n)
	}
}

func TestFaultPostNotResent(t *testing.T) {
	for _, resend := range []bool{false, true} {
		t.Run(fmt.Sprintf("ReconnectNonGET(%v)", resend), func(t *testing.T) {
			s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) {
				if i == 0 {
					io.WriteString(c, faultStreamHeader+"id: p\ndata: answer\n\n")
					return
				}
				write204(c)
			})
			req, err := http.NewRequest(http.MethodPost, s.url(), strings.NewReader(`{"prompt":"hi"}`))
			if err != nil {
				t.Fatal(err)
			}
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(`{"prompt":"hi"}`)), nil }
			c, err := httpsse.DialRequest(req, httpsse.HTTPClient(faultHTTPClient(t)), httpsse.ReconnectDelay(5*time.Millisecond), httpsse.ReconnectNonGET(resend))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			evs, _ := readAll(t, c, 5*time.Second)
			sameEvents(t, evs, []faultEvent{{"", "p", "answer"}})
			time.Sleep(30 * time.Millisecond)
			reqs := s.requests()
			want := 1
			if resend {
				want = 2
			}
			if len(reqs) != want {
				t.Fatalf("requests = %d, want %d", len(reqs), want)
			}
			if resend {
				if reqs[1].Method != http.MethodPost {
					t.Errorf("re-sent method = %s, want POST", reqs[1].Method)
				}
				body, _ := io.ReadAll(reqs[1].Body)
				if string(body) != `{"prompt":"hi"}` {
					t.Errorf("re-sent body = %q", body)
				}
			}
		})
	}
}

func TestFaultEventTooLarge(t *testing.T) {
	s := newFaultServer(t, func(i int, c net.Conn, req *http.Request) {
		io.WriteString(c, faultStreamHeader+"data: small\n\n")
		big := bytes.Repeat([]byte("x"), 4096)
		io.WriteString(c, "data: ")
		for j := 0; j < 64; j++ { // 256 KiB in one line, no line end yet
			if _, err := c.Write(big); err != nil {
				return
			}
		}
		io.WriteString(c, "\n\n")
	})
	c := faultDial(t, s.url(), httpsse.MaxEventSize(64<<10))
	evs, err := readAll(t, c, 5*time.Second)
	sameEvents(t, evs, []faultEvent{{"", "", "small"}})
	if !errors.Is(err, httpsse.ErrEventTooLarge) {
		t.Errorf("Err() = %v, want ErrEventTooLarge", err)
	}
	time.Sleep(30 * time.Millisecond)
	if got := len(s.requests()); got != 1 {
		t.Errorf("requests = %d, want 1 (an oversized event ends the stream)", got)
	}
}
