package httpsse

import (
	"errors"
	"net/http"
)

// Stats is what a Route has done so far. [StatsOf] reads it.
type Stats struct {
	Subscribers    int    // subscribers attached now
	Published      uint64 // events published (blocks of comments alone, such as heartbeats, are not counted)
	DroppedBehind  uint64 // subscribers dropped for being more than MaxQueuedBytes behind
	DroppedTimeout uint64 // subscribers dropped because a write to them timed out (see WriteTimeout)
	Replays        uint64 // returning subscribers whose Last-Event-ID was found, in the Route's memory or its History
	Gaps           uint64 // returning subscribers whose Last-Event-ID was not found (each was sent the gap event, unless GapEvent(""))
}

// add adds the counts of st, all but Subscribers, to s.
func (s *Stats) add(st Stats) {
	s.Published += st.Published
	s.DroppedBehind += st.DroppedBehind
	s.DroppedTimeout += st.DroppedTimeout
	s.Replays += st.Replays
	s.Gaps += st.Gaps
}

// StatsOf returns what route has done so far: a Route made by [NewRoute] or [Topics], or any
// Route with a method Stats() Stats (such as redisstream's). For another Route it returns
// the zero Stats. It is cheap (one short lock) and may be called at any time, from any
// goroutine.
func StatsOf(route Route) Stats {
	if s, ok := route.(interface{ Stats() Stats }); ok {
		return s.Stats()
	}
	return Stats{}
}

// Stats returns what the Route has done so far; see [StatsOf].
func (r *broadcaster) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := r.stats
	st.Subscribers = len(r.subs)
	return st
}

// The reasons for dropping a subscriber that [OnDrop] reports.
var (
	ErrTooFarBehind = errors.New("httpsse: subscriber dropped: too far behind")
	ErrWriteTimeout = errors.New("httpsse: subscriber dropped: write timed out")
)

// OnDrop sets a function that the Route calls each time it drops a subscriber, with the
// subscriber's request and the reason: [ErrTooFarBehind] (more than [MaxQueuedBytes]
// behind) or [ErrWriteTimeout] (a write took longer than [WriteTimeout]). It is called from
// the subscriber's ServeHTTP, just before it returns, so it must not block for long. A
// subscriber that goes away on its own, or is ended by Close, is not dropped.
func OnDrop(fn func(req *http.Request, reason error)) RouteOption {
	return func(c *routeConfig) { c.onDrop = fn }
}

// dropReason returns why s, which has been detached, was dropped, or nil when it was not.
func (r *broadcaster) dropReason(s *subscriber) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case s.dropped.Load():
		return ErrTooFarBehind
	case s.out.timedOut && !r.isClosed():
		r.stats.DroppedTimeout++
		return ErrWriteTimeout
	}
	return nil
}
