package httpsse

import "errors"

// ErrClosed is returned by [Route.PublishEvent] once the [Route] has been closed.
// Test for it with errors.Is(err, httpsse.ErrClosed).
var ErrClosed = errors.New("httpsse: route closed")
