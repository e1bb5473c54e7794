package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// rawReader is the one subscriber used for every library: a plain TCP connection, an HTTP/1.1
// GET written by hand, the response's chunked encoding decoded here, and the events counted
// from their data lines. It never uses the library under test nor net/http's client.
type rawReader struct {
	conn net.Conn
	br   *bufio.Reader
	scan eventScanner
	// chunks, when not nil, counts the chunks of a chunked response: one for each write
	// (with its flush) of the server's handler.
	chunks *atomic.Int64
}

// dialRaw connects to addr and sends the request. The response is read by run.
func dialRaw(addr, path string, bufSize int) (*rawReader, error) {
	return dialRawTLS(addr, path, bufSize, false)
}

// dialRawTLS is dialRaw, over TLS (with ALPN "http/1.1") when useTLS.
func dialRawTLS(addr, path string, bufSize int, useTLS bool) (*rawReader, error) {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if useTLS {
		cfg := clientTLS(nil)
		cfg.NextProtos = []string{"http/1.1"}
		tc := tls.Client(conn, cfg)
		_ = tc.SetDeadline(time.Now().Add(10 * time.Second))
		if err := tc.Handshake(); err != nil {
			conn.Close()
			return nil, err
		}
		_ = tc.SetDeadline(time.Time{})
		conn = tc
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		conn.Close()
		return nil, err
	}
	return &rawReader{conn: conn, br: bufio.NewReaderSize(conn, bufSize)}, nil
}

var errBadResponse = errors.New("bad response")

// run reads the response to its end, calling onData with each piece of the body.
func (rr *rawReader) run(onData func([]byte)) error {
	status, err := rr.br.ReadSlice('\n')
	if err != nil {
		return fmt.Errorf("reading status line: %w", err)
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200")) {
		return fmt.Errorf("%w: %q", errBadResponse, strings.TrimSpace(string(status)))
	}
	chunked := false
	for {
		h, err := rr.br.ReadSlice('\n')
		if err != nil {
			return fmt.Errorf("reading headers: %w", err)
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		k, v, _ := bytes.Cut(h, []byte(":"))
		if strings.EqualFold(string(k), "Transfer-Encoding") && bytes.Contains(bytes.ToLower(v), []byte("chunked")) {
			chunked = true
		}
	}
	if !chunked {
		for {
			p, err := rr.next(1 << 30)
			if len(p) > 0 {
				onData(p)
			}
			if err != nil {
				return err
			}
		}
	}
	for {
		line, err := rr.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseUint(string(line), 16, 63)
		if err != nil {
			return fmt.Errorf("%w: chunk size %q", errBadResponse, line)
		}
		if size == 0 {
			return io.EOF // the server ended the response
		}
		if rr.chunks != nil {
			rr.chunks.Add(1)
		}
		for size > 0 {
			p, err := rr.next(int(size))
			if len(p) > 0 {
				size -= uint64(len(p))
				onData(p)
			}
			if err != nil {
				return err
			}
		}
		if _, err := rr.br.Discard(2); err != nil { // CRLF after the chunk's data
			return err
		}
	}
}

// next returns up to n buffered bytes, reading from the connection when none are buffered.
func (rr *rawReader) next(n int) ([]byte, error) {
	if rr.br.Buffered() == 0 {
		if _, err := rr.br.Peek(1); err != nil {
			return nil, err
		}
	}
	n = min(n, rr.br.Buffered())
	p, _ := rr.br.Peek(n)
	// p stays valid until the next read from br, which is after onData returns.
	_, _ = rr.br.Discard(n)
	return p, nil
}

// eventScanner finds events in an event stream that uses LF or CRLF line ends, and reads from each
// event's data line either a sequence number ({"seq":N,...}) or the word warm.
type eventScanner struct {
	line    [32]byte // the first bytes of the current line
	n       int      // bytes in line
	lineLen int      // length of the current line so far
	seq     int
	hasSeq  bool
	hasWarm bool
}

// feed scans p, calling onSeq for each event that carries a sequence number and onWarm for each
// warm-up event.
func (s *eventScanner) feed(p []byte, onSeq func(int), onWarm func()) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i]
		}
		if s.n < len(s.line) {
			s.n += copy(s.line[s.n:], seg)
		}
		s.lineLen += len(seg)
		if i < 0 {
			return
		}
		p = p[i+1:]
		s.endLine(onSeq, onWarm)
	}
}

var seqPrefix = []byte(`{"seq":`)

func (s *eventScanner) endLine(onSeq func(int), onWarm func()) {
	l := s.line[:s.n]
	length := s.lineLen
	s.n, s.lineLen = 0, 0
	if length == 1 && l[0] == '\r' { // a CRLF line end
		length = 0
	}
	if length == 0 {
		switch {
		case s.hasSeq:
			onSeq(s.seq)
		case s.hasWarm:
			onWarm()
		}
		s.hasSeq, s.hasWarm = false, false
		return
	}
	if !bytes.HasPrefix(l, []byte("data:")) {
		return
	}
	v := l[5:]
	if len(v) > 0 && v[0] == ' ' {
		v = v[1:]
	}
	if bytes.HasPrefix(v, seqPrefix) {
		v = v[len(seqPrefix):]
		n := 0
		for _, c := range v {
			if c < '0' || c > '9' {
				break
			}
			n = n*10 + int(c-'0')
		}
		s.seq, s.hasSeq = n, true
	} else if bytes.HasPrefix(v, []byte("warm")) {
		s.hasWarm = true
	}
}
