// Package httpsse implements HTTP server-sent events (SSE), as defined by the WHATWG HTML
// Standard: https://html.spec.whatwg.org/multipage/server-sent-events.html
//
// Use [NewRoute] to serve events: a [Route] is an [http.Handler] that streams every event
// published with [Route.PublishEvent] to every request it serves, whether one Route serves a
// single request or thousands. [HeartBeat] keeps idle streams alive.
//
// Use [Dial] to read events: a [Client] yields them with Next and Decode, as [bufio.Scanner]
// yields lines, and reconnects as the browser's EventSource does. Use [DialRequest] for a
// request of your own (POST, headers, a context), and [NewDecoder] to parse a stream from any
// [io.Reader].
//
// # Concurrency
//
// A [Route]'s methods, and [HeartBeat], may be called from any number of goroutines. The
// function given to PublishEvent runs in the caller's goroutine, one at a time; its
// [EventWriter] is valid only until it returns. A [Client]'s Next, Decode and Err, like a
// [Decoder]'s methods, are for one goroutine at a time; [Client.Close] may be called from
// any goroutine to stop a Next that is waiting.
package httpsse
