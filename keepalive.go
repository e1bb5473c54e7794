package httpsse

import "time"

// KeepAlive makes a Route, or every topic of a [Topics], send a comment line to each
// subscriber that has been sent nothing for d, so that proxies and load balancers that close
// idle connections keep the stream open. Choose d below the shortest idle timeout on the way
// (nginx's proxy_read_timeout is 60 s by default; many load balancers close after 60 s too):
// a quiet subscriber receives the comment between d and 1½ d after its last write.
//
// It costs no timer or goroutine per subscriber or per topic: one timer per Route (per
// [Topics] for its topics) wakes the Route's waiting subscribers every d/2, and each one that
// is due writes the comment itself. The comment is not an event: browsers do not dispatch
// it, and it does not count as a publish, as use of a topic or in [Stats]. Zero or a
// negative d sends none, which is the default.
func KeepAlive(d time.Duration) RouteOption {
	return func(c *routeConfig) { c.keepAlive = max(d, 0) }
}

// keepAliveComment is what KeepAlive sends.
var keepAliveComment = []byte(": keep-alive\n\n")

// keepAliveEvery is how often the subscribers of a Route with KeepAlive(d) look whether
// they are due.
func keepAliveEvery(d time.Duration) time.Duration {
	return max(d/2, time.Millisecond)
}

// due reports whether the output has been sent nothing for its keep-alive time.
func (o *output) due() bool {
	return o.keepAlive > 0 && time.Now().UnixNano()-o.lastSend >= int64(o.keepAlive)
}

// keepAliveTick wakes the Route's waiting subscribers, so that those due send the comment,
// and runs again while any are attached. A Route of a Topics has no timer of its own: the
// Topics' timer wakes its topics (see Topics.keepAliveTick).
func (r *broadcaster) keepAliveTick() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keepTimer == nil {
		return // stopped since
	}
	r.wakeWaiters()
	r.keepTimer.Reset(keepAliveEvery(r.cfg.keepAlive))
}

// keepAliveTick wakes the waiting subscribers of every topic, and runs again while there
// are topics.
func (t *Topics) keepAliveTick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.keepTimer == nil {
		return
	}
	for _, tp := range t.topics {
		if b, ok := tp.route.(*broadcaster); ok {
			b.wakeWaiters()
		}
	}
	t.keepTimer.Reset(keepAliveEvery(t.keepAlive))
}
