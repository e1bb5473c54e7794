package redisstream

import (
	"net/http"

	"github.com/redis/go-redis/v9"
	httpsse "github.com/reiver/go-httpsse"
)

// Topics is [httpsse.Topics] across processes: any number of named streams (a user's
// notifications, a chat room, a document), topic t being the Redis stream prefix+t, served
// as [NewRoute] would serve it, with the options given to [NewTopics].
//
// All the topics of a process, like all its Routes, are read by one loop over one Redis
// connection per client, so what a process spends grows with the events it receives, not
// with the number of topics. A topic's Route starts reading its stream only at its first
// subscriber in this process: publishing to a topic that has no subscriber here is one XADD
// and costs this process nothing more. A topic that has had no subscriber in this process,
// no publish through it and no call of Route for the time set by [TopicIdle] is freed in
// this process, with the events it kept in memory; its Route is closed, and the next
// Route(t) makes a new one (a returning subscriber then resumes from the Redis stream).
// So do not keep a topic's Route for later: call Route(t) each time, which is cheap. A topic
// with subscribers is never freed.
//
// A process holds at most [httpsse.DefaultMaxTopics] topics, or the number that
// RouteOptions([httpsse.MaxTopics](n)) sets, as [httpsse.MaxTopics] says: past it, the
// least recently used topic without subscribers in this process is freed here (its Redis
// stream is untouched), and when every topic has subscribers a new one is refused.
type Topics struct {
	// The topics of a process are an [httpsse.Topics] whose Routes are this package's:
	// Route, Close, Stats and Len are its own.
	*httpsse.Topics
}

// NewTopics returns an empty [Topics] whose topic t is the Redis stream prefix+t, read
// through client, and whose Routes are configured by opts. It panics if client is nil.
func NewTopics(client redis.UniversalClient, prefix string, opts ...Option) *Topics {
	if client == nil {
		panic("httpsse: redisstream.NewTopics called with a nil redis client")
	}
	cfg := newConfig(opts)
	newRoute := func(topic string) httpsse.Route { return newRoute(client, prefix+topic, cfg) }
	return &Topics{httpsse.NewTopicsOf(newRoute, cfg.topicIdle, cfg.routeOpts...)}
}

// Serve serves one subscriber of every named topic over one response, as
// [httpsse.Topics.Serve] does, across processes: a page opens one EventSource for its
// user's notifications, a room and a document, whichever process answers it.
//
// Every event of the response carries one ID that says how far the client got in each
// topic: the Redis entry ID of the topic's last event it received, or, for a topic from
// which nothing has arrived yet, the point where it joined the topic ("0-0" when the topic's
// stream was empty then). A reconnection with that Last-Event-ID and the same names, to any
// process, even after the first died, receives for each topic exactly the entries appended
// after that point, from that process's memory (see [Replay]) or else from the Redis
// stream, then the live ones; as ServeHTTP does, it waits (up to 2 s) for a process that has
// not read as far as the ID. A topic whose point the stream no longer holds (trimmed away,
// see [MaxLen], or, for "0-0", a stream that has lost any entry) gets the gap event, whose
// data is the topic's name, then its live events; the other topics resume exactly.
//
// The process's one reading loop serves every topic it reads; a subscriber of several
// topics adds no Redis traffic. When Redis does not answer within [PublishTimeout] for a
// topic that this process has not read yet, Serve answers 503 Service Unavailable; after
// Close, 204 No Content. The rest (400 for no topic or more than
// [httpsse.MaxServeTopics], 503 past [httpsse.MaxTopics]) is [httpsse.Topics.Serve]'s.
func (t *Topics) Serve(w http.ResponseWriter, req *http.Request, topics ...string) {
	t.Topics.Serve(w, req, topics...)
}
