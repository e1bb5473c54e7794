package httpsse

import "errors"

// ErrClosed is returned by [Route.PublishEvent] once the [Route] has been closed, and by
// [Stream.PublishEvent] once the [Stream] has ended (the client has gone, or a write failed).
// Test for it with errors.Is(err, httpsse.ErrClosed).
var ErrClosed = errors.New("httpsse: route closed")
