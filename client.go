package httpsse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Client reads the events of a stream that [Dial] or [DialRequest] connected to, and
// reconnects as EventSource does. Use it like [bufio.Scanner]:
//
//	for client.Next() {
//		var event httpsse.Event
//		if err := client.Decode(&event); err != nil { ... }
//	}
//	if err := client.Err(); err != nil { ... }
//
// or with [Events] and a range loop.
//
// Next waits for the next event and reports whether there is one. When an established
// stream ends or breaks, Next waits the reconnection time (the server's "retry" field, else
// the [ReconnectDelay] default), sends the request again with Last-Event-ID set to the last
// event ID, and goes on; network errors and timeouts ([ConnectTimeout], [IdleTimeout]) while
// reconnecting are retried, each failed attempt in a row waiting longer, with random jitter,
// up to [MaxReconnectDelay], until the Client is closed or the request's context ends.
// [OnReconnect] observes each reconnection. A 204 No Content on reconnection ends the stream
// cleanly; another status (unless [ReconnectOnUnavailable] retries it), or another
// Content-Type, ends it with a *[ResponseError]; an event larger than the maximum size ends it
// with [ErrEventTooLarge]; a last event ID with control characters, which net/http cannot send
// as a header, ends it with an error that says so.
//
// Decode stores the current event into an *[Event] or an [EventSetter]; any other type is
// an error that does not end the stream. Err returns the error that ended the stream, nil
// after a clean end or after Close. Close ends the connection and makes a Next blocked in
// another goroutine return false, as does every later Next, even for events already read; it
// is idempotent.
//
// Next, Decode and Err must be called from one goroutine at a time; Close may be called from
// any goroutine.
type Client interface {
	Close() error
	Decode(interface{}) error
	Err() error
	Next() bool
}

var errClientClosed = errors.New("httpsse: client closed")

// streamClient is the Client: a Decoder over the current response, and the request to send
// again when the stream ends.
type streamClient struct {
	cfg    dialConfig
	req    *http.Request
	ctx    context.Context // ends with Close or the request's context
	cancel context.CancelFunc

	dec  *Decoder
	err  error
	done bool

	mu     sync.Mutex
	closed bool
	body   io.ReadCloser
}

func (c *streamClient) Next() bool {
	if !c.done && c.isClosed() {
		// Events already read from the connection are not yielded after Close.
		c.finish(nil)
	}
	for !c.done {
		if c.dec.Next() {
			return true
		}
		c.closeBody()
		err := c.dec.Err()
		switch {
		case c.isClosed():
			c.finish(nil)
		case errors.Is(err, ErrEventTooLarge):
			c.finish(err)
		case !c.cfg.reconnect:
			c.finish(err)
		case c.req.Method != "" && c.req.Method != http.MethodGet && !c.cfg.reconnectNonGET:
			c.finish(err)
		default:
			if err == nil {
				err = io.EOF // the server ended the response
			}
			c.reconnect(err)
		}
	}
	return false
}

// reconnect waits and connects again, until it succeeds, the Client is closed, or a response
// says to stop (which finishes the Client). cause is what ended the stream. The first attempt
// waits the reconnection time; attempts that fail in a row back off (see reconnectDelay).
func (c *streamClient) reconnect(cause error) {
	// The standard sends the last event ID as it is; net/http refuses a header value with
	// control characters, so such a reconnection can never be sent and retrying is futile.
	if !validHeaderValue(c.dec.lastID) {
		c.finish(fmt.Errorf("httpsse: cannot reconnect: last event ID %q cannot be sent as a Last-Event-ID header", c.dec.lastID))
		return
	}
	var retryAfter time.Duration // what the last response asked for with Retry-After
	for failures := 0; ; failures++ {
		base := c.cfg.reconnectDelay
		if c.dec.retrySet { // the server's "retry" field sets the reconnection time
			base = c.dec.retry
		}
		delay := reconnectDelay(base, c.cfg.maxReconnectDelay, failures)
		if retryAfter > delay {
			delay = min(retryAfter, max(c.cfg.maxReconnectDelay, base))
		}
		if fn := c.cfg.onReconnect; fn != nil {
			fn(cause, delay)
		}
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-c.ctx.Done():
			timer.Stop()
			c.finishContext()
			return
		}
		body, err := c.requestBody()
		if err != nil {
			c.finish(err)
			return
		}
		body, err = c.connect(body)
		var re *ResponseError
		switch {
		case err == nil:
			c.dec.reset(body)
			return
		case c.ctx.Err() != nil:
			c.finishContext()
			return
		case errors.As(err, &re) && re.StatusCode == http.StatusNoContent:
			c.finish(nil) // "HTTP 204 No Content ... prevents the user agent from reconnecting"
			return
		case re != nil && c.cfg.reconnectOnUnavailable && isUnavailable(re.StatusCode):
			retryAfter = parseRetryAfter(re.Header.Get("Retry-After"), time.Now())
		case re != nil:
			c.finish(err)
			return
		default:
			// A network error or a connect timeout: EventSource tries again.
			retryAfter = 0
		}
		cause = err
	}
}

// isUnavailable reports whether status is one that ReconnectOnUnavailable retries: the
// server, or the load balancer before it, is busy or restarting.
func isUnavailable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// parseRetryAfter returns the wait a Retry-After header value asks for, in seconds or as an
// HTTP date, or 0 when there is none or it cannot be read.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(1<<63-1)/int64(time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}

// requestBody returns a fresh copy of the request's body to send again.
func (c *streamClient) requestBody() (io.ReadCloser, error) {
	if c.req.Body == nil || c.req.Body == http.NoBody {
		return c.req.Body, nil
	}
	if c.req.GetBody == nil {
		return nil, fmt.Errorf("httpsse: cannot reconnect: the %s request's body cannot be sent again (GetBody is nil)", c.req.Method)
	}
	return c.req.GetBody()
}

func (c *streamClient) finishContext() {
	if c.isClosed() {
		c.finish(nil)
		return
	}
	c.finish(fmt.Errorf("httpsse: stream ended: %w", context.Cause(c.ctx)))
}

func (c *streamClient) finish(err error) {
	c.done = true
	c.err = err
	c.closeBody()
	c.cancel()
}

func (c *streamClient) Decode(v interface{}) error {
	return c.dec.Decode(v)
}

func (c *streamClient) Err() error {
	return c.err
}

func (c *streamClient) Close() error {
	c.mu.Lock()
	c.closed = true
	body := c.body
	c.body = nil
	c.mu.Unlock()
	c.cancel()
	if body != nil {
		body.Close()
	}
	return nil
}

func (c *streamClient) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

func (c *streamClient) closeBody() {
	c.mu.Lock()
	body := c.body
	c.body = nil
	c.mu.Unlock()
	if body != nil {
		body.Close()
	}
}

// validHeaderValue reports whether net/http sends v as a header value: no control character
// other than tab (httpguts.ValidHeaderFieldValue).
func validHeaderValue(v []byte) bool {
	for _, b := range v {
		if (b < ' ' && b != '\t') || b == 0x7f {
			return false
		}
	}
	return true
}
