package httpsse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultReconnectDelay is the client's reconnection time until the server sets one with a
// "retry" field, as in EventSource.
const DefaultReconnectDelay = 3 * time.Second

// DefaultConnectTimeout bounds each connection attempt of a [Client], from sending the
// request to receiving the response's headers, unless [ConnectTimeout] says otherwise.
const DefaultConnectTimeout = 30 * time.Second

// dialConfig is what a [DialOption] sets.
type dialConfig struct {
	httpClient             *http.Client
	reconnectDelay         time.Duration
	maxReconnectDelay      time.Duration
	reconnect              bool
	reconnectNonGET        bool
	reconnectOnUnavailable bool
	onReconnect            func(err error, delay time.Duration)
	connectTimeout         time.Duration
	idleTimeout            time.Duration
	maxEventSize           int
}

// DialOption configures [Dial], [DialURL] and [DialRequest]. A nil DialOption is ignored.
type DialOption func(*dialConfig)

// HTTPClient sets the [http.Client] that sends the requests. The default is
// [http.DefaultClient]; nil means the default. A Timeout on it bounds the whole stream, not
// only the connection: use [ConnectTimeout] and [IdleTimeout] instead.
func HTTPClient(c *http.Client) DialOption {
	return func(cfg *dialConfig) { cfg.httpClient = c }
}

// ReconnectDelay sets the reconnection time used until the server sends a "retry" field.
// The default is [DefaultReconnectDelay]; zero or a negative duration reconnects at once.
// The reconnection time is what the first reconnection after a stream ends waits; further
// attempts that fail in a row wait longer (see [MaxReconnectDelay]).
func ReconnectDelay(d time.Duration) DialOption {
	return func(cfg *dialConfig) { cfg.reconnectDelay = max(d, 0) }
}

// MaxReconnectDelay sets the cap of the backoff between reconnection attempts. The default is
// [DefaultMaxReconnectDelay].
//
// The first reconnection after an established stream ends waits the reconnection time
// exactly, as EventSource does. Each attempt that fails after it (a network error, a
// [ConnectTimeout], or a status that [ReconnectOnUnavailable] retries) doubles a ceiling c,
// starting from the reconnection time (1 ms if that is shorter) and never above the cap, and
// the next attempt waits a random time between c/2 and c, never less than the reconnection
// time: after k failures in a row, about 0.75 × reconnection time × 2^k on average. The random
// part keeps clients that lost the same server from coming back in step. A connection that
// succeeds (200 with an event stream) starts over.
//
// A reconnection time longer than the cap is used as it is. Zero or a negative duration turns
// the backoff off: every attempt waits the reconnection time, as EventSource does.
func MaxReconnectDelay(d time.Duration) DialOption {
	return func(cfg *dialConfig) { cfg.maxReconnectDelay = max(d, 0) }
}

// Reconnect turns reconnection on or off. It is on by default: when an established stream
// ends or breaks, the [Client] waits the reconnection time and sends the request again with
// Last-Event-ID, as EventSource does. When it is off, the end of the stream is the end of the
// Client: Next returns false and Err reports the error that broke the stream, if any.
func Reconnect(on bool) DialOption {
	return func(cfg *dialConfig) { cfg.reconnect = on }
}

// ReconnectNonGET lets reconnection re-send a request whose method is not GET (a POST to an
// LLM API, say, which would be charged again). It is off by default, so such a stream ends
// when its connection does. A request with a body can be re-sent only if its GetBody is set,
// as [http.NewRequest] does for common body types.
func ReconnectNonGET(on bool) DialOption {
	return func(cfg *dialConfig) { cfg.reconnectNonGET = on }
}

// ReconnectOnUnavailable makes a reconnection that gets 429 Too Many Requests, 502 Bad
// Gateway, 503 Service Unavailable or 504 Gateway Timeout try again later, with the backoff
// of [MaxReconnectDelay], as after a network error: what a load balancer answers while the
// servers behind it restart. A Retry-After header (in seconds or as a date) lengthens the
// wait to what it asks, up to the cap of [MaxReconnectDelay] (or the reconnection time, if
// longer). It is off by default: as EventSource does, such a status ends the stream with a
// *[ResponseError]. It does not apply to the first connection, which [Dial] reports.
func ReconnectOnUnavailable(on bool) DialOption {
	return func(cfg *dialConfig) { cfg.reconnectOnUnavailable = on }
}

// OnReconnect sets a function that the [Client] calls each time it is about to wait before a
// reconnection attempt, for logs and metrics: err is what ended the connection or the failed
// attempt (io.EOF when the server ended the response cleanly), delay is the wait before the
// next attempt. It is called from the goroutine that called Next, which it delays; it may call
// Close but not Next. There is none by default; nil removes it.
func OnReconnect(fn func(err error, delay time.Duration)) DialOption {
	return func(cfg *dialConfig) { cfg.onReconnect = fn }
}

// ConnectTimeout bounds each connection attempt, the first one and every reconnection, from
// sending the request to receiving the response's headers (and, for a response that is not
// an event stream, the start of its body that [ResponseError] keeps). It does not bound the
// stream that follows; see [IdleTimeout] for that. An attempt that takes longer fails with an
// error that names the timeout and matches os.ErrDeadlineExceeded with errors.Is: from Dial,
// it is Dial's error; on reconnection, it is retried like a network error. The default is
// [DefaultConnectTimeout]; zero or a negative duration means no bound.
func ConnectTimeout(d time.Duration) DialOption {
	return func(cfg *dialConfig) { cfg.connectTimeout = max(d, 0) }
}

// IdleTimeout treats the connection as broken when nothing at all arrives on it for d once
// the response's headers are in: no byte, where comments such as [HeartBeat]'s count as
// traffic. The [Client] then reconnects as after a network error, or, with Reconnect(false),
// ends with an error that names the timeout and matches os.ErrDeadlineExceeded with
// errors.Is. Use it to notice a stream that went silent through a dead proxy or a half-open
// connection, with d comfortably longer than the server's heartbeat interval. It is off by
// default; zero or a negative duration turns it off.
func IdleTimeout(d time.Duration) DialOption {
	return func(cfg *dialConfig) { cfg.idleTimeout = max(d, 0) }
}

// MaxEventSize sets the largest event the [Client] accepts, as [Decoder.SetMaxEventSize]
// does. The default is [DefaultMaxEventSize]; zero or a negative value removes the limit.
func MaxEventSize(n int) DialOption {
	return func(cfg *dialConfig) { cfg.maxEventSize = n }
}

// Dial connects to the event stream at url with a GET request carrying
// Accept: text/event-stream and Cache-Control: no-cache, and returns once the response's
// headers are in. A response whose status is not 200 OK (204 No Content included), or whose
// Content-Type is not text/event-stream, is an error of type *[ResponseError]. Dial makes one
// attempt, bounded by [ConnectTimeout]; only later reconnections are retried.
//
// The returned [Client] reconnects as EventSource does; see [Reconnect], [ReconnectDelay],
// [MaxReconnectDelay], [IdleTimeout] and [MaxEventSize] for the defaults and how to change
// them. To send another method, headers or a context, use [DialRequest].
func Dial(url string, opts ...DialOption) (Client, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("httpsse: %w", err)
	}
	return DialRequest(req, opts...)
}

// DialURL is [Dial], under the name later versions of the original library use.
func DialURL(url string, opts ...DialOption) (Client, error) {
	return Dial(url, opts...)
}

// DialRequest is [Dial] with a request of the caller's own: another method (POST to an LLM
// API), headers (Authorization), a body, a context. Accept and Cache-Control are added when
// the request does not set them; a Last-Event-ID the request sets is the last event ID until
// the server sends one, so that events report it and a reconnection resumes from it. The
// request's context bounds the whole stream, reconnection included. A request whose method is
// not GET is not re-sent on reconnection unless [ReconnectNonGET] says so. DialRequest does not
// modify req. A nil req is an error.
func DialRequest(req *http.Request, opts ...DialOption) (Client, error) {
	if req == nil {
		return nil, errors.New("httpsse: DialRequest called with a nil *http.Request")
	}
	if req.URL == nil {
		return nil, errors.New("httpsse: DialRequest called with a request without a URL")
	}
	cfg := dialConfig{
		httpClient:        http.DefaultClient,
		reconnectDelay:    DefaultReconnectDelay,
		maxReconnectDelay: DefaultMaxReconnectDelay,
		reconnect:         true,
		connectTimeout:    DefaultConnectTimeout,
		maxEventSize:      DefaultMaxEventSize,
	}
	for _, opt := range opts {
		if opt != nil {
			opt(&cfg)
		}
	}
	if cfg.httpClient == nil {
		cfg.httpClient = http.DefaultClient
	}
	ctx, cancel := context.WithCancel(req.Context())
	c := &streamClient{
		cfg:    cfg,
		req:    req,
		ctx:    ctx,
		cancel: cancel,
	}
	c.dec = newDecoder()
	c.dec.SetMaxEventSize(cfg.maxEventSize)
	// A caller resuming a stream sets Last-Event-ID: that is the last event ID until the
	// server sends another, so reconnection resumes from it too.
	c.dec.lastID = append(c.dec.lastID[:0], req.Header.Get("Last-Event-ID")...)
	body, err := c.connect(req.Body)
	if err != nil {
		cancel()
		return nil, err
	}
	c.dec.reset(body)
	return c, nil
}

// connect sends the request once, with the given body, and checks the response. The body it
// returns ends the attempt's context when closed, and carries the idle timeout.
func (c *streamClient) connect(body io.ReadCloser) (io.ReadCloser, error) {
	// Each attempt has a context of its own, so that a timeout can end one connection
	// without ending the Client.
	ctx, cancel := context.WithCancelCause(c.ctx)
	req := c.req.Clone(ctx)
	req.Body = body
	if req.Header == nil {
		req.Header = make(http.Header)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", ContentType)
	}
	if req.Header.Get("Cache-Control") == "" {
		req.Header.Set("Cache-Control", "no-cache")
	}
	// "If the EventSource object's last event ID string is not the empty string, set
	// (`Last-Event-ID`, last event ID string, encoded as UTF-8) in request's header list."
	// The caller's own Last-Event-ID started lastID, so it is kept until the server changes it.
	if id := c.dec.lastID; len(id) > 0 {
		req.Header.Set("Last-Event-ID", string(id))
	} else {
		req.Header.Del("Last-Event-ID")
	}

	// The connect timeout cancels the attempt's context, not a deadline on it: a deadline
	// would go on bounding the body, which is the stream.
	var timedOut error
	var timer *time.Timer
	if d := c.cfg.connectTimeout; d > 0 {
		timedOut = fmt.Errorf("httpsse: %s %s: no response within %v (ConnectTimeout): %w", req.Method, req.URL.Redacted(), d, os.ErrDeadlineExceeded)
		timer = time.AfterFunc(d, func() { cancel(timedOut) })
	}
	// stop stops the timer and reports whether the attempt is still in time.
	stop := func() bool {
		return timer == nil || timer.Stop()
	}

	resp, err := c.cfg.httpClient.Do(req)
	if err != nil {
		inTime := stop()
		cancel(nil)
		if !inTime && c.ctx.Err() == nil {
			return nil, timedOut
		}
		return nil, err // a *url.Error, which names the method and URL
	}
	if err := checkResponse(resp); err != nil {
		inTime := stop()
		resp.Body.Close()
		cancel(nil)
		if !inTime && c.ctx.Err() == nil {
			return nil, timedOut
		}
		return nil, err
	}
	if !stop() {
		// The timer fired as the headers came: the attempt's context is already canceled.
		resp.Body.Close()
		cancel(nil)
		return nil, timedOut
	}
	cb := &connBody{body: resp.Body, ctx: ctx, cancel: cancel, idle: c.cfg.idleTimeout}
	if cb.idle > 0 {
		// Without the "httpsse: " prefix: the Decoder wraps read errors in "httpsse: reading
		// stream: ".
		cb.idleErr = fmt.Errorf("nothing received for %v (IdleTimeout): %w", cb.idle, os.ErrDeadlineExceeded)
		cb.timer = time.AfterFunc(cb.idle, func() { cancel(cb.idleErr) })
		cb.timer.Stop() // each Read starts it
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		cb.Close()
		return nil, errClientClosed
	}
	c.body = cb
	return cb, nil
}

// connBody is the body of one connection: closing it ends the attempt's context. With an
// idle timeout, a timer runs while a Read waits: it ends the connection when a Read has
// waited that long without a byte. Time spent outside Read (the program working on an event)
// does not count, so a slow reader is not mistaken for a silent server.
type connBody struct {
	body    io.ReadCloser
	ctx     context.Context
	cancel  context.CancelCauseFunc
	idle    time.Duration
	timer   *time.Timer // nil without an idle timeout
	idleErr error
}

func (b *connBody) Read(p []byte) (int, error) {
	if b.timer == nil {
		return b.body.Read(p)
	}
	b.timer.Reset(b.idle)
	n, err := b.body.Read(p)
	b.timer.Stop()
	if err != nil && context.Cause(b.ctx) == b.idleErr {
		// The read failed because the idle timeout ended the connection: say so, rather
		// than "context canceled".
		return n, b.idleErr
	}
	return n, err
}

func (b *connBody) Close() error {
	if b.timer != nil {
		b.timer.Stop()
	}
	b.cancel(nil)
	return b.body.Close()
}

// maxErrorBody is how much of the body of a response that is not an event stream
// ResponseError keeps.
const maxErrorBody = 4 << 10

// checkResponse returns a *ResponseError for a response that is not an event stream, with the
// start of its body.
func checkResponse(resp *http.Response) error {
	if resp.StatusCode == http.StatusOK && isEventStream(resp.Header) {
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody)) // what was read, even on an error
	if len(body) == 0 {
		body = nil
	}
	return &ResponseError{
		StatusCode:  resp.StatusCode,
		Status:      resp.Status,
		ContentType: strings.Join(resp.Header.Values("Content-Type"), ", "),
		Header:      resp.Header,
		Body:        body,
	}
}

// ResponseError is the error for a response that is not an event stream: a status other
// than 200 OK, or a Content-Type other than text/event-stream. [Dial] returns it, and so
// does [Client.Err] when a reconnection gets such a response. Get it with errors.As.
type ResponseError struct {
	StatusCode  int    // the response's status code, such as 500
	Status      string // the response's status line, such as "500 Internal Server Error"
	ContentType string // the response's Content-Type header as sent; several lines are joined with ", "

	// Header is the response's header, for headers such as Retry-After or a request ID.
	Header http.Header

	// Body is the start of the response's body, up to 4 KiB, or nil when it had none: where
	// an API says what was wrong, such as {"error":{"message":"Incorrect API key provided"}}.
	Body []byte
}

// maxErrorBodyShown is how much of the body Error shows.
const maxErrorBodyShown = 512

// Error names what was wrong with the response, then shows the start of its body, when it
// has one, on one line: its runs of white space and control characters become one space, and
// it is cut after 512 bytes.
func (e *ResponseError) Error() string {
	var msg string
	if e.StatusCode != http.StatusOK {
		status := e.Status
		if status == "" {
			status = strconv.Itoa(e.StatusCode)
		}
		msg = fmt.Sprintf("httpsse: unexpected status %q, want \"200 OK\"", status)
	} else {
		msg = fmt.Sprintf("httpsse: unexpected Content-Type %q, want %q", e.ContentType, ContentType)
	}
	if body := oneLine(e.Body, maxErrorBodyShown); body != "" {
		msg += ": " + body
	}
	return msg
}

// oneLine returns b as one line of valid UTF-8 of at most about n bytes: runs of white space
// and control characters become one space, invalid UTF-8 becomes U+FFFD, and a cut is marked
// with "...".
func oneLine(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	var s strings.Builder
	space := false
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		b = b[size:]
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			space = true
			continue
		}
		if s.Len() >= n {
			s.WriteString("...")
			break
		}
		if space {
			s.WriteByte(' ')
			space = false
		}
		s.WriteRune(r)
	}
	return s.String()
}
