package httpsse

import (
	"sync"
	"time"
)

// KeepAlive makes a Route, or every topic of a [Topics], send a comment line to each
// subscriber that has been sent nothing for d, so that proxies and load balancers that close
// idle connections keep the stream open. Choose d below the shortest idle timeout on the way
// (nginx's proxy_read_timeout is 60 s by default; many load balancers close after 60 s too):
// a quiet subscriber receives the comment between d and 1½ d after its last write.
//
// It costs no timer or goroutine per subscriber, per topic or per Route: one timer in the
// process for each duration d in use wakes the waiting subscribers of every Route with
// subscribers and that KeepAlive every d/2, and each subscriber that is due writes the
// comment itself; the timer stops when no such Route has subscribers. The comment is not an event: browsers do not dispatch
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

// keepAliveClocks are the timers of KeepAlive: one for each duration in use, running while
// some Route with that duration has subscribers.
var keepAliveClocks = struct {
	mu     sync.Mutex
	clocks map[time.Duration]*keepAliveClock
}{clocks: make(map[time.Duration]*keepAliveClock)}

// keepAliveClock wakes the waiting subscribers of its Routes every keepAliveEvery(d), as a
// publish would (see broadcaster.wakeWaiters).
type keepAliveClock struct {
	d      time.Duration
	timer  *time.Timer
	routes map[*broadcaster]struct{}
}

// keepAwake adds r, which has just got its first subscriber, to the clock of its KeepAlive
// duration, starting it if need be. It is called with r.mu held.
func keepAwake(r *broadcaster) {
	d := r.cfg.keepAlive
	keepAliveClocks.mu.Lock()
	defer keepAliveClocks.mu.Unlock()
	c := keepAliveClocks.clocks[d]
	if c == nil {
		c = &keepAliveClock{d: d, routes: make(map[*broadcaster]struct{})}
		c.timer = time.AfterFunc(keepAliveEvery(d), c.tick)
		keepAliveClocks.clocks[d] = c
	}
	c.routes[r] = struct{}{}
}

// letSleep takes r, which has just lost its last subscriber, from its clock, and stops the
// clock when r was its last Route. It is called with r.mu held.
func letSleep(r *broadcaster) {
	keepAliveClocks.mu.Lock()
	defer keepAliveClocks.mu.Unlock()
	c := keepAliveClocks.clocks[r.cfg.keepAlive]
	if c == nil {
		return
	}
	delete(c.routes, r)
	if len(c.routes) == 0 {
		c.timer.Stop()
		delete(keepAliveClocks.clocks, c.d)
	}
}

func (c *keepAliveClock) tick() {
	keepAliveClocks.mu.Lock()
	defer keepAliveClocks.mu.Unlock()
	if keepAliveClocks.clocks[c.d] != c {
		return // stopped since
	}
	for r := range c.routes {
		r.wakeWaiters()
	}
	c.timer.Reset(keepAliveEvery(c.d))
}
