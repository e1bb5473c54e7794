package httpsse

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// streamWriter is the ResponseWriter of a request that a [NewListener] serves. It has no
// buffer: each Write goes to the connection at once, in one system call with its chunk's
// framing (the header too, with the first Write), so Flush has nothing to do but send the
// header if it has not gone yet. The response is chunked unless the handler set a
// Content-Length, and ends with the connection, which finish closes.
type streamWriter struct {
	conn   net.Conn
	cancel context.CancelFunc // ends the request's context, when a write fails
	header http.Header
	status int  // 0 until WriteHeader
	sent   bool // the header is on the wire
	// chunked is set when the body is chunked; left is what a body of the handler's
	// Content-Length still has to come (when not chunked).
	chunked bool
	left    int64
	noBody  bool
	err     error // the first write error, returned by every later write
	// deadline is set while the handler has a write deadline in place; SetWriteDeadline
	// may be called from any goroutine (a Route's Close does).
	deadline atomic.Bool
}

var chunkBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// Header returns the header to send. Once it has gone, changing it has no effect (as under
// net/http), and the writer lets the map go, which a long stream would keep for nothing.
func (w *streamWriter) Header() http.Header {
	if w.header == nil {
		w.header = make(http.Header)
	}
	return w.header
}

// WriteHeader records the status, which goes out with the first Write or Flush; an
// informational status (1xx but 101) goes out at once, as net/http sends it.
func (w *streamWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code)) // as net/http does
	}
	if w.status != 0 || w.sent {
		return
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		b := w.appendStatusLine(nil, code)
		b = w.appendFields(b)
		w.write(append(b, "\r\n"...))
		return
	}
	w.status = code
}

func (w *streamWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.err != nil {
		return 0, w.err
	}
	if !w.sent {
		if !bodyAllowed(w.status) {
			return 0, http.ErrBodyNotAllowed
		}
		if h := w.Header(); h.Get("Content-Type") == "" && len(p) > 0 {
			h.Set("Content-Type", http.DetectContentType(p))
		}
	} else if w.noBody {
		return 0, http.ErrBodyNotAllowed
	}
	if err := w.send(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// send writes p, with the header first if it has not gone yet, in one system call. Up to
// copyLimit bytes of p are copied after the framing into a pooled buffer; more go out from
// where they are (writev), so that a write blocked on a client that stopped reading holds
// no copy of a large event.
func (w *streamWriter) send(p []byte) error {
	bp := chunkBuffers.Get().(*[]byte)
	b := (*bp)[:0]
	if !w.sent {
		b = w.appendHeader(b)
	}
	var err error
	if !w.noBody && !w.chunked && int64(len(p)) > w.left {
		p, err = nil, http.ErrContentLength
	}
	if w.noBody {
		p = nil
	}
	var tail []byte // what follows p: the CRLF that ends a chunk
	if len(p) > 0 && w.chunked {
		b = strconv.AppendInt(b, int64(len(p)), 16)
		b = append(b, crlf...)
		tail = crlf
	} else {
		w.left -= int64(len(p))
	}
	switch {
	case len(p) > copyLimit:
		w.writeBuffers(net.Buffers{b, p, tail})
	case len(b)+len(p) > 0:
		b = append(b, p...)
		w.write(append(b, tail...))
	}
	w.header = nil
	if cap(b) <= maxPooled {
		*bp = b[:0]
		chunkBuffers.Put(bp)
	}
	if err == nil {
		err = w.err
	}
	return err
}

var crlf = []byte("\r\n")

// copyLimit is the most of a Write that is copied to go out with its framing in one write;
// maxPooled is the largest buffer kept for the next (a header may be large).
const (
	copyLimit = 2 << 10
	maxPooled = 8 << 10
)

// write writes b to the connection and records the first error, which also ends the
// request's context, as net/http does.
func (w *streamWriter) write(b []byte) {
	if w.err != nil {
		return
	}
	if _, err := w.conn.Write(b); err != nil {
		w.err = err
		w.cancel()
	}
}

// writeBuffers is write of several pieces at once.
func (w *streamWriter) writeBuffers(bufs net.Buffers) {
	if w.err != nil {
		return
	}
	if _, err := bufs.WriteTo(w.conn); err != nil {
		w.err = err
		w.cancel()
	}
}

// appendHeader appends the status line and the header, and decides how the body is framed.
func (w *streamWriter) appendHeader(b []byte) []byte {
	w.sent = true
	h := w.Header()
	w.noBody = !bodyAllowed(w.status)
	if !w.noBody {
		if n, err := strconv.ParseInt(h.Get("Content-Length"), 10, 64); err == nil && n >= 0 {
			w.left = n
		} else {
			h.Del("Content-Length")
			w.chunked = true
		}
	}
	b = w.appendStatusLine(b, w.status)
	if h.Get("Date") == "" {
		b = append(b, "Date: "...)
		b = time.Now().UTC().AppendFormat(b, http.TimeFormat)
		b = append(b, "\r\n"...)
	}
	if w.chunked {
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	}
	b = append(b, "Connection: close\r\n"...)
	b = w.appendFields(b)
	return append(b, "\r\n"...)
}

func (w *streamWriter) appendStatusLine(b []byte, code int) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	b = append(b, ' ')
	b = append(b, http.StatusText(code)...)
	return append(b, "\r\n"...)
}

// ownFields are the header fields that the writer decides itself.
var ownFields = map[string]bool{"Connection": true, "Transfer-Encoding": true}

// appendFields appends the handler's header fields; Header.Write drops invalid names and
// turns line breaks in values into spaces, so no value can add a field.
func (w *streamWriter) appendFields(b []byte) []byte {
	buf := bytes.NewBuffer(b)
	_ = w.Header().WriteSubset(buf, ownFields)
	return buf.Bytes()
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// Flush sends the header if it has not gone yet; what was written has gone already.
func (w *streamWriter) Flush() { _ = w.FlushError() }

// FlushError is Flush that tells whether the response can still be written.
func (w *streamWriter) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.sent && w.err == nil {
		return w.send(nil)
	}
	return w.err
}

// SetWriteDeadline sets the deadline of the writes to come, and of one under way.
func (w *streamWriter) SetWriteDeadline(t time.Time) error {
	w.deadline.Store(!t.IsZero())
	return w.conn.SetWriteDeadline(t)
}

// SetReadDeadline sets the deadline of the read that notices the client leaving; when it
// passes, the request's context ends, as under net/http.
func (w *streamWriter) SetReadDeadline(t time.Time) error { return w.conn.SetReadDeadline(t) }

// finish ends the response once the handler has returned: the header if it has not gone
// (with an empty body), or the last chunk. The write gets a deadline if the handler left
// none.
func (w *streamWriter) finish() {
	if w.err != nil {
		return
	}
	if !w.deadline.Load() {
		_ = w.conn.SetWriteDeadline(time.Now().Add(DefaultWriteTimeout))
	}
	if !w.sent {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		if h := w.Header(); bodyAllowed(w.status) && h.Get("Content-Length") == "" {
			h.Set("Content-Length", "0")
		}
		_ = w.send(nil)
		return
	}
	if w.chunked {
		w.write([]byte("0\r\n\r\n"))
	}
}
