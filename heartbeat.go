package httpsse

import (
	"errors"
	"io"
	"sync"
	"time"
)

// heartbeatComment is what a heartbeat sends: a comment, which clients do not dispatch but
// which keeps proxies and load balancers from closing an idle connection.
const heartbeatComment = "heartbeat"

// HeartBeat publishes a comment to route every wait, until the returned Closer is closed or
// the Route is closed. Like any event, the first heartbeat waits for the Route's first
// subscriber.
//
// A wait of zero or less sends no heartbeat and starts nothing. HeartBeat always returns a
// non-nil [io.Closer]; its Close is idempotent, returns nil, and, for a Route made by
// [NewRoute], returns only once the heartbeat's goroutine has ended.
func HeartBeat(wait time.Duration, route Route) io.Closer {
	hb := &heartbeat{stop: make(chan struct{}), done: make(chan struct{})}
	if wait <= 0 || route == nil {
		close(hb.done)
		return hb
	}
	r, ours := route.(*broadcaster)
	if !ours {
		// A foreign Route's PublishEvent cannot be interrupted, so Close does not wait.
		close(hb.done)
		go hb.run(wait, route.PublishEvent, nil)
		return hb
	}
	go func() {
		defer close(hb.done)
		hb.run(wait, func(fn func(EventWriter) error) error { return r.publish(fn, hb.stop) }, r.closed)
	}()
	return hb
}

type heartbeat struct {
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{} // closed when the goroutine, if any, has ended
}

func (hb *heartbeat) Close() error {
	hb.stopOnce.Do(func() { close(hb.stop) })
	<-hb.done
	return nil
}

func (hb *heartbeat) run(wait time.Duration, publish func(func(EventWriter) error) error, closed <-chan struct{}) {
	ticker := time.NewTicker(wait)
	defer ticker.Stop()
	beat := func(w EventWriter) error { return w.WriteComment(heartbeatComment) }
	for {
		select {
		case <-hb.stop:
			return
		case <-closed:
			return
		case <-ticker.C:
		}
		if err := publish(beat); errors.Is(err, ErrClosed) || errors.Is(err, errHeartBeatStopped) {
			return
		}
	}
}
