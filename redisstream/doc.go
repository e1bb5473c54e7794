// Package redisstream serves one stream of server-sent events from several processes, through
// a Redis stream (https://redis.io/docs/latest/develop/data-types/streams/) used as a log.
//
// Use [NewRoute] where a program would use [httpsse.NewRoute]: every process that calls it
// with the same Redis and the same stream name serves the same events, in the same order,
// with the Redis stream entry's ID as each event's ID. An event published in any process is
// appended to the Redis stream and reaches the subscribers of every process. A subscriber that
// comes back with Last-Event-ID, to any process, even after the one it was connected to has
// died, receives what it missed, from that process's memory or else from Redis, then the live
// events. Use [NewTopics] for many streams (per user, per room) that share one reading
// connection, and [Topics.Serve] to serve several of them on one connection, resumable in
// any process.
//
// Redis streams are read as a log, never through a consumer group: every process reads every
// entry. Each process reads all the streams it serves with one blocking XREAD at a time on one
// connection of its own, and publishes each entry it reads once to an [httpsse.Route] made with
// [httpsse.Replay], which fans it out to that process's subscribers; subscribers add no Redis
// traffic. Publishing is one XADD with approximate trimming ([MaxLen]).
//
// # Concurrency
//
// All methods of [Route] and [Topics], and the Routes that [Topics.Route] returns, may be
// called from several goroutines at once.
package redisstream
