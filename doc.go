// Package httpsse implements HTTP server-sent events (SSE), as defined by the WHATWG HTML
// Standard: https://html.spec.whatwg.org/multipage/server-sent-events.html
//
// Use [NewRoute] to serve events: a [Route] is an [http.Handler] that streams every event
// published with [Route.PublishEvent] to every request it serves, whether one Route serves a
// single request (made in the handler and closed when it returns) or thousands (one Route
// mounted on a mux). Each event is encoded once; a subscriber that stops reading is dropped
// instead of holding memory. [WriteTimeout] and [MaxQueuedBytes] set the bounds.
//
// Use [Replay] to make a Route resumable: it keeps its last events, and a client that
// reconnects with Last-Event-ID, as EventSource does, receives every event it missed and then
// the live ones, none missing and none repeated. A client whose ID the Route no longer holds
// gets a gap event instead (see [GapEvent]). [ReplayFrom] takes a [History], a log kept
// elsewhere (a database, a Redis stream), for older events.
//
// Use [NewStream] in a handler that streams its own response to one client, such as an LLM's
// tokens as they arrive: [Stream.PublishEvent] writes and flushes each event, under the same
// rules as a Route's, with no Route, goroutine or Close, and fails once the client has gone.
//
// Use [NewTopics] for many named streams (one per user, room or document): [Topics.Route]
// makes a topic's Route on first use, and a topic nobody uses is freed ([MaxTopics] bounds
// how many are held). [Topics.Serve] serves several topics to one subscriber over one
// response, so that a page needs one EventSource; with Replay its one Last-Event-ID resumes
// every topic exactly.
//
// Use [NewListener] to serve the streams of an [http.Server] with httpsse's own connection
// handling: a connection whose first request is an EventSource's is served without
// net/http's per-connection buffers, so that an idle subscriber costs about half the memory;
// every other connection goes to the server as usual.
//
// Use [KeepAlive] to send a comment to subscribers that have been sent nothing for a while,
// so that proxies with an idle timeout keep quiet streams open, at no cost per subscriber.
//
// Use [StatsOf] to learn, cheaply and at any time, what a Route does: its subscribers, the
// events it published, the subscribers it dropped and why, the replays and gaps it served.
// [OnDrop] reports each dropped subscriber as it happens, with its request.
//
// Use [HeartBeat] to send a comment at a fixed interval, so that proxies do not close an idle
// stream.
//
// Use [Dial] to read events: a [Client] yields them with Next and Decode, as [bufio.Scanner]
// yields lines, and reconnects as the browser's EventSource does, sending Last-Event-ID.
// [Reconnect], [ReconnectDelay] and [MaxEventSize] change how.
//
// Use [DialRequest] for a request of your own: a POST to an LLM API with an Authorization
// header, a context, your own [http.Client] through [HTTPClient]. A request that is not a GET
// is not sent again on reconnection unless [ReconnectNonGET] says so.
//
// Use [Events] to range over the events of a Client or a Decoder; the loop ends after the
// last event, or with the error that ended the stream:
//
//	for event, err := range httpsse.Events(client) { ... }
//
// Use [NewDecoder] to parse a stream from any [io.Reader], such as the body of a response you
// fetched yourself.
//
// The module github.com/reiver/go-httpsse/redisstream links the Routes of several processes
// through a Redis stream; this package itself uses the standard library only.
//
// # Concurrency
//
// A [Route]'s methods, a [Topics]' methods, and [HeartBeat], may be called from any number
// of goroutines. The
// function given to PublishEvent runs in the caller's goroutine, one at a time; its
// [EventWriter] is valid only until it returns. The same holds for a [Stream]'s PublishEvent,
// until its handler returns. A [Client]'s Next, Decode and Err, like a
// [Decoder]'s methods, are for one goroutine at a time; [Client.Close] may be called from
// any goroutine to stop a Next that is waiting.
package httpsse
