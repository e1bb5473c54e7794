package httpsse

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// DefaultReconnectDelay is the client's reconnection time until the server sets one with a
// "retry" field, as in EventSource.
const DefaultReconnectDelay = 3 * time.Second

// dialConfig is what a [DialOption] sets.
type dialConfig struct {
	httpClient      *http.Client
	reconnectDelay  time.Duration
	reconnect       bool
	reconnectNonGET bool
	maxEventSize    int
}

// DialOption configures [Dial], [DialURL] and [DialRequest].
type DialOption func(*dialConfig)

// HTTPClient sets the [http.Client] that sends the requests. The default is
// [http.DefaultClient]. A Timeout on it bounds the whole stream, not only the connection.
func HTTPClient(c *http.Client) DialOption {
	return func(cfg *dialConfig) { cfg.httpClient = c }
}

// ReconnectDelay sets the reconnection time used until the server sends a "retry" field.
// The default is [DefaultReconnectDelay]; zero or a negative duration reconnects at once.
func ReconnectDelay(d time.Duration) DialOption {
	return func(cfg *dialConfig) { cfg.reconnectDelay = max(d, 0) }
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

// MaxEventSize sets the largest event the [Client] accepts, as [Decoder.SetMaxEventSize]
// does. The default is [DefaultMaxEventSize]; zero or a negative value removes the limit.
func MaxEventSize(n int) DialOption {
	return func(cfg *dialConfig) { cfg.maxEventSize = n }
}

// Dial connects to the event stream at url with a GET request carrying
// Accept: text/event-stream and Cache-Control: no-cache, and returns once the response's
// headers are in. A response whose status is not 200 OK (204 No Content included), or whose
// Content-Type is not text/event-stream, is an error of type *[ResponseError].
//
// The returned [Client] reconnects as EventSource does; see [Reconnect], [ReconnectDelay]
// and [MaxEventSize] for the defaults and how to change them. To send another method,
// headers or a context, use [DialRequest].
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
// modify req.
func DialRequest(req *http.Request, opts ...DialOption) (Client, error) {
	cfg := dialConfig{
		httpClient:     http.DefaultClient,
		reconnectDelay: DefaultReconnectDelay,
		reconnect:      true,
		maxEventSize:   DefaultMaxEventSize,
	}
	for _, opt := range opts {
		opt(&cfg)
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
	c.dec = NewDecoder(nil)
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

// connect sends the request once, with the given body, and checks the response.
func (c *streamClient) connect(body io.ReadCloser) (io.ReadCloser, error) {
	req := c.req.Clone(c.ctx)
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
	resp, err := c.cfg.httpClient.Do(req)
	if err != nil {
		return nil, err // a *url.Error, which names the method and URL
	}
	if err := checkResponse(resp); err != nil {
		_, _ = io.CopyN(io.Discard, resp.Body, 4<<10) // lets the connection be reused
		resp.Body.Close()
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		resp.Body.Close()
		return nil, errClientClosed
	}
	c.body = resp.Body
	return resp.Body, nil
}

// checkResponse returns a *ResponseError for a response that is not an event stream.
func checkResponse(resp *http.Response) error {
	if resp.StatusCode == http.StatusOK && isEventStream(resp.Header) {
		return nil
	}
	return &ResponseError{StatusCode: resp.StatusCode, Status: resp.Status, ContentType: strings.Join(resp.Header.Values("Content-Type"), ", ")}
}

// ResponseError is the error for a response that is not an event stream: a status other
// than 200 OK, or a Content-Type other than text/event-stream. [Dial] returns it, and so
// does [Client.Err] when a reconnection gets such a response. Get it with errors.As.
type ResponseError struct {
	StatusCode  int    // the response's status code, such as 500
	Status      string // the response's status line, such as "500 Internal Server Error"
	ContentType string // the response's Content-Type header as sent; several lines are joined with ", "
}

func (e *ResponseError) Error() string {
	if e.StatusCode != http.StatusOK {
		status := e.Status
		if status == "" {
			status = fmt.Sprint(e.StatusCode)
		}
		return fmt.Sprintf("httpsse: unexpected status %q, want \"200 OK\"", status)
	}
	return fmt.Sprintf("httpsse: unexpected Content-Type %q, want %q", e.ContentType, ContentType)
}
