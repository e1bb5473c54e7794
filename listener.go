package httpsse

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// NewListener returns a listener for srv.Serve that serves event streams itself and passes
// every other connection on to srv, so that an idle subscriber costs far less memory:
//
//	ln, err := net.Listen("tcp", ":8080")
//	...
//	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
//	err = srv.Serve(httpsse.NewListener(ln, srv))
//
// On net/http's HTTP/1.1 server a connection that runs a handler keeps 10 KiB of buffers, a
// goroutine reading in the background and the handler's deep stack for as long as the handler
// runs, which for a stream is its whole life: about 19 KB of memory per subscriber before the
// Route allocates anything. A connection whose first request is an event-stream request
// (GET, HTTP/1.1, an Accept header that names text/event-stream, no body, no Upgrade) is
// served here instead: the request is read with a small pooled buffer that is given back
// once it is parsed, and srv.Handler (with its middleware) runs with a ResponseWriter that
// writes straight to the connection, with no buffer of its own. The handler and a goroutine
// that notices the client leaving keep small stacks. Everything else (other requests,
// HTTP/1.0, HTTP/2, TLS handshakes: the listener may be wrapped by srv.ServeTLS) goes to
// srv with the bytes already read, and net/http serves it as usual.
//
// The handler runs as under net/http: [http.ResponseController] finds Flush,
// SetWriteDeadline and SetReadDeadline (through middleware with an Unwrap method), the
// request's context ends when the client goes away, srv.BaseContext, srv.ConnContext and
// srv.ConnState are called, and a panic is logged to srv.ErrorLog (except
// [http.ErrAbortHandler]). The response is chunked and has Connection: close: when the handler
// returns, the body ends cleanly and the connection is closed. srv's ReadHeaderTimeout (or
// ReadTimeout) bounds the reading of the request; its WriteTimeout does not apply, a [Route]
// sets a deadline on each write itself.
//
// Close, which srv.Close and srv.Shutdown call, stops accepting and gives the streams it
// serves a second to end: a Route closed from srv.RegisterOnShutdown sends what was
// published and ends them at once. Then it ends those left as if their clients had gone
// (each response ends cleanly), and a second later closes the connection of any handler
// still running. It returns at once: the connections are not known to srv, so
// srv.Shutdown does not wait for them.
func NewListener(ln net.Listener, srv *http.Server) net.Listener {
	return &listener{
		Listener: ln,
		srv:      srv,
		handed:   make(chan net.Conn),
		errs:     make(chan error),
		done:     make(chan struct{}),
		conns:    make(map[net.Conn]context.CancelFunc),
	}
}

// listener is the Listener of [NewListener].
type listener struct {
	net.Listener // the one accepted from
	srv          *http.Server
	start        sync.Once
	handed       chan net.Conn // connections for net/http
	errs         chan error    // errors of the wrapped Accept, for net/http
	done         chan struct{} // closed by Close
	closing      sync.Once
	closeErr     error

	mu sync.Mutex
	// conns holds the connections being read (with a nil cancel) and those serving a
	// stream (with the cancel of the request's context).
	conns   map[net.Conn]context.CancelFunc
	streams sync.WaitGroup
}

// Accept returns the next connection that net/http is to serve.
func (l *listener) Accept() (net.Conn, error) {
	l.start.Do(func() { go l.acceptLoop() })
	select {
	case c := <-l.handed:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// acceptLoop accepts connections and reads the first request of each in a goroutine of its
// own, as net/http would.
func (l *listener) acceptLoop() {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			// A temporary error goes to net/http, which waits a little and calls Accept again;
			// any other ends the loop, once net/http has it.
			var te interface{ Temporary() bool }
			select {
			case l.errs <- err:
			case <-l.done:
				return
			}
			if !errors.As(err, &te) || !te.Temporary() {
				return
			}
			continue
		}
		if _, ok := c.(*tls.Conn); ok {
			go l.handOver(c, nil) // net/http makes the handshake and may speak HTTP/2
			continue
		}
		if !l.track(c, nil) {
			c.Close()
			return
		}
		go l.serveConn(c)
	}
}

// track records c as a connection of the listener's (a stream's when cancel is not nil), or
// reports false when the listener is closed.
func (l *listener) track(c net.Conn, cancel context.CancelFunc) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.done:
		return false
	default:
	}
	l.conns[c] = cancel
	if cancel != nil {
		l.streams.Add(1) // under mu, so never after Close's reap began waiting
	}
	return true
}

func (l *listener) untrack(c net.Conn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
}

// maxStreamRequest is the size of the buffer that the first request of a connection is read
// into. A request too large for it (many cookies) is passed on to net/http, which then serves
// the stream.
const maxStreamRequest = 4 << 10

var requestBuffers = sync.Pool{New: func() any { b := make([]byte, maxStreamRequest); return &b }}

// serveConn reads the first request of c and serves it if it asks for an event stream, or
// passes c on to net/http with the bytes read.
func (l *listener) serveConn(c net.Conn) {
	bp := requestBuffers.Get().(*[]byte)
	req, read, err := l.readRequest(c, *bp)
	if err != nil {
		requestBuffers.Put(bp)
		l.untrack(c)
		c.Close() // as net/http does with a client that sends nothing, or half a request
		return
	}
	if req == nil || !isStreamRequest(req) {
		prefix := bytes.Clone(read)
		requestBuffers.Put(bp)
		l.untrack(c)
		l.handOver(c, prefix)
		return
	}
	requestBuffers.Put(bp)
	// On a goroutine of its own: reading the request grew this one's stack to 8 KiB, and
	// a new one starts with the 2 KiB in which a subscriber waits.
	go l.serveStream(c, req)
}

// readRequest reads c until the end of the first request's header, into buf, and parses it.
// It returns the bytes read; req is nil when they are not a request to serve here (one that
// is not a GET, or does not fit in buf, or that does not parse: net/http answers those).
func (l *listener) readRequest(c net.Conn, buf []byte) (req *http.Request, read []byte, err error) {
	if d := l.readHeaderTimeout(); d > 0 {
		_ = c.SetReadDeadline(time.Now().Add(d))
	}
	n := 0
	for {
		k, err := c.Read(buf[n:])
		n += k
		read = buf[:n]
		if n >= 4 && string(read[:4]) != "GET " {
			return nil, read, nil
		}
		if end := headerEnd(read); end > 0 {
			_ = c.SetReadDeadline(time.Time{})
			if hostFields(read[:end]) != 1 {
				return nil, read, nil // net/http answers 400
			}
			return parseRequest(read[:end]), read, nil
		}
		if err != nil {
			if n > 0 && !isTimeout(err) {
				return nil, read, nil // let net/http tell the client what was wrong
			}
			return nil, read, err
		}
		if n == len(buf) {
			return nil, read, nil
		}
	}
}

// requestParser is a pooled reader of one request's header for http.ReadRequest.
type requestParser struct {
	r  bytes.Reader
	br *bufio.Reader
}

var requestParsers = sync.Pool{New: func() any {
	p := &requestParser{}
	p.br = bufio.NewReaderSize(&p.r, maxStreamRequest)
	return p
}}

// parseRequest parses the request whose header is p, or returns nil if it does not parse.
// A request with a body keeps a reader of p; one without (the only kind served here)
// keeps nothing, so the parser goes back to its pool either way and such a request is
// only passed on.
func parseRequest(p []byte) *http.Request {
	rp := requestParsers.Get().(*requestParser)
	rp.r.Reset(p)
	rp.br.Reset(&rp.r)
	req, err := http.ReadRequest(rp.br)
	rp.br.Reset(nil)
	requestParsers.Put(rp)
	if err != nil {
		return nil
	}
	return req
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// headerEnd returns the length of the request's header, its blank line included, or 0 when
// p does not hold all of it yet. Lines may end with LF alone, as net/http accepts.
func headerEnd(p []byte) int {
	for i := bytes.IndexByte(p, '\n'); i >= 0; {
		rest := p[i+1:]
		if len(rest) > 0 && rest[0] == '\n' {
			return i + 2
		}
		if len(rest) > 1 && rest[0] == '\r' && rest[1] == '\n' {
			return i + 3
		}
		j := bytes.IndexByte(rest, '\n')
		if j < 0 {
			return 0
		}
		i += 1 + j
	}
	return 0
}

// hostFields counts the Host fields of a request's header.
func hostFields(header []byte) int {
	n := 0
	for line := range bytes.Lines(header) {
		if len(line) > 5 && bytes.EqualFold(line[:5], []byte("host:")) {
			n++
		}
	}
	return n
}

// isStreamRequest reports whether req is one that the listener serves itself: an
// EventSource's request that net/http would take as it is. net/http answers the others,
// malformed ones included, as it does.
func isStreamRequest(req *http.Request) bool {
	return req.Method == http.MethodGet && req.ProtoMajor == 1 && req.ProtoMinor == 1 &&
		req.ContentLength == 0 && len(req.TransferEncoding) == 0 &&
		req.Header.Get("Upgrade") == "" && req.Header.Get("Expect") == "" &&
		acceptsEventStream(req.Header.Values("Accept")) && validFields(req)
}

// validFields reports whether the request's Host (http.ReadRequest moves the field there)
// is valid and no value has a control character, which net/http checks before a handler
// sees a request.
func validFields(req *http.Request) bool {
	if req.Host == "" || strings.Trim(req.Host, hostChars) != "" {
		return false
	}
	for _, vs := range req.Header {
		for _, v := range vs {
			for i := 0; i < len(v); i++ {
				if b := v[i]; b < ' ' && b != '\t' || b == 0x7f {
					return false
				}
			}
		}
	}
	return true
}

// hostChars are the bytes net/http accepts in a Host field.
const hostChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!$%&'()*+,-.:;=[]_~"

// acceptsEventStream reports whether one of the Accept header's values names
// text/event-stream, as an EventSource's request does.
func acceptsEventStream(accept []string) bool {
	for _, v := range accept {
		for v != "" {
			var item string
			item, v, _ = strings.Cut(v, ",")
			mt, _, _ := strings.Cut(item, ";")
			if strings.EqualFold(strings.TrimSpace(mt), ContentType) {
				return true
			}
		}
	}
	return false
}

func (l *listener) readHeaderTimeout() time.Duration {
	if l.srv.ReadHeaderTimeout > 0 {
		return l.srv.ReadHeaderTimeout
	}
	return l.srv.ReadTimeout
}

// handOver passes c to net/http; it reads prefix first.
func (l *listener) handOver(c net.Conn, prefix []byte) {
	if len(prefix) > 0 {
		c = &prefixConn{Conn: c, prefix: prefix}
	}
	select {
	case l.handed <- c:
	case <-l.done:
		c.Close()
	}
}

// prefixConn is a connection passed on to net/http after its first bytes were read.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) == 0 {
		return c.Conn.Read(p)
	}
	n := copy(p, c.prefix)
	c.prefix = c.prefix[n:]
	return n, nil
}

// CloseWrite and ReadFrom keep what net/http does with a *net.TCPConn: a half close before
// closing, and sendfile.
func (c *prefixConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *prefixConn) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.Conn, r) }

// serveStream runs the server's handler for req on c, then ends the response and closes c.
func (l *listener) serveStream(c net.Conn, req *http.Request) {
	ctx, cancel := context.WithCancel(l.connContext(c))
	defer cancel()
	if !l.track(c, cancel) {
		c.Close()
		return
	}
	defer l.streams.Done()
	defer l.untrack(c)
	if hook := l.srv.ConnState; hook != nil {
		hook(c, http.StateNew)
		hook(c, http.StateActive)
		defer hook(c, http.StateClosed)
	}
	defer c.Close()
	req.RemoteAddr = c.RemoteAddr().String()
	req = req.WithContext(ctx)
	w := &streamWriter{conn: c, cancel: cancel, header: make(http.Header)}
	go watchConn(c, cancel)
	if l.runHandler(w, req) {
		w.finish()
	}
}

// watchConn reads c until the client closes it (or it fails) and then ends the request's
// context: net/http's background read does the same. Bytes the client sends meanwhile are
// dropped, as nothing else is read from a connection that streams.
func watchConn(c net.Conn, cancel context.CancelFunc) {
	var b [1]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			cancel()
			return
		}
	}
}

// runHandler runs the server's handler and reports whether it returned; a panic is logged
// as net/http logs it.
func (l *listener) runHandler(w *streamWriter, req *http.Request) (returned bool) {
	defer func() {
		if p := recover(); p != nil && p != http.ErrAbortHandler {
			l.logf("http: panic serving %v: %v", req.RemoteAddr, p)
		}
	}()
	h := l.srv.Handler
	if h == nil {
		h = http.DefaultServeMux
	}
	h.ServeHTTP(w, req)
	return true
}

func (l *listener) logf(format string, args ...any) {
	if l.srv.ErrorLog != nil {
		l.srv.ErrorLog.Printf(format, args...)
	} else {
		log.Printf(format, args...)
	}
}

// connContext returns the context of a request on c, with the values that net/http gives it.
func (l *listener) connContext(c net.Conn) context.Context {
	ctx := context.Background()
	if l.srv.BaseContext != nil {
		ctx = l.srv.BaseContext(l)
	}
	ctx = context.WithValue(ctx, http.ServerContextKey, l.srv)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, c.LocalAddr())
	if l.srv.ConnContext != nil {
		ctx = l.srv.ConnContext(ctx, c)
	}
	return ctx
}

// Close stops accepting and closes the connections still being read. It does not wait for
// the streams (net/http and httptest call it holding locks that a handler's ConnState hook
// takes): reap ends them.
func (l *listener) Close() error {
	l.closing.Do(func() {
		l.mu.Lock()
		close(l.done)
		streams := map[net.Conn]context.CancelFunc{}
		for c, cancel := range l.conns {
			if cancel == nil {
				c.Close()
			} else {
				streams[c] = cancel
			}
		}
		l.mu.Unlock()
		l.closeErr = l.Listener.Close()
		if len(streams) > 0 {
			go l.reap(streams)
		}
	})
	return l.closeErr
}

// reap gives the streams the grace to end by themselves (Routes closed from
// RegisterOnShutdown send what was published, then end them), then ends those left as if
// their clients had gone, with their writes cut after another grace, and after that closes
// the connections of any handler still running.
func (l *listener) reap(streams map[net.Conn]context.CancelFunc) {
	ended := make(chan struct{})
	go func() { l.streams.Wait(); close(ended) }()
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	for step := 0; ; step++ {
		select {
		case <-ended:
			return
		case <-t.C:
		}
		l.mu.Lock()
		for c, cancel := range streams {
			if _, running := l.conns[c]; !running {
				continue
			}
			if step == 0 {
				cancel()
				_ = c.SetWriteDeadline(time.Now().Add(closeGrace))
			} else {
				c.Close()
			}
		}
		l.mu.Unlock()
		if step > 0 {
			return
		}
		t.Reset(closeGrace)
	}
}
