package redisstream

import (
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
	return &Topics{httpsse.NewTopicsOf(newRoute, cfg.topicIdle)}
}
