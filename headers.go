package httpsse

import "net/http"

// maxIdleHeaderWriters bounds the writeHeaders goroutines that a Route keeps waiting for new
// subscribers. It needs to be only as large as the number of subscribers that arrive at
// the same moment.
const maxIdleHeaderWriters = 16

// headerJob is the sending of one subscriber's status line and headers.
type headerJob struct {
	sub   *subscriber
	first []byte   // sent with the headers
	done  chan any // receives the job's panic, or nil; capacity 1, so the writer never waits
	err   error
}

// sendHeaders sends the subscriber's status 200 and headers, and first after them, from
// another goroutine, and waits for it. Writing the headers takes net/http's deepest call path, which grows a
// goroutine's stack to 8 KiB; the goroutine of ServeHTTP, which then waits for events for as
// long as the stream lasts, would keep that stack, and the garbage collector cannot shrink it
// back while it waits (its frames, net/http's included, are too deep). Writing an event
// takes a shallower path that fits in the 4 KiB that the goroutine has by then.
func (r *broadcaster) sendHeaders(s *subscriber, first []byte) error {
	j := &headerJob{sub: s, first: first, done: make(chan any, 1)}
	r.mu.Lock()
	if n := len(r.idleWriters); n > 0 {
		r.idleWriters[n-1] = nil
		r.idleWriters = r.idleWriters[:n-1]
		r.mu.Unlock()
		r.headerJobs <- j
	} else {
		r.mu.Unlock()
		go r.writeHeaders(j)
	}
	if p := <-j.done; p != nil {
		panic(p) // on the handler's goroutine, as net/http expects (http.ErrAbortHandler)
	}
	return j.err
}

// writeHeaders runs job j, then waits for the next subscriber's job for as long as j's
// subscriber is attached, and so on; a nil job ends it. Subscribers arriving one after
// another then share a few goroutines instead of starting and ending one each. That matters
// for memory: the runtime gives a goroutine started in place of one that ended a stack of
// the average size in use (4 KiB, as deep as subscribers wait), where a new goroutine gets
// the 2 KiB that net/http's background reader of each connection needs. A Route with one
// subscriber (made per request) keeps no writer waiting.
func (r *broadcaster) writeHeaders(j *headerJob) {
	for {
		j.run()
		s := j.sub
		r.mu.Lock()
		if s.index < 0 || len(r.subs) < 2 || len(r.idleWriters) >= maxIdleHeaderWriters {
			r.mu.Unlock()
			return
		}
		r.idleWriters = append(r.idleWriters, s)
		r.mu.Unlock()
		if j = <-r.headerJobs; j == nil {
			return
		}
	}
}

func (j *headerJob) run() {
	defer func() { j.done <- recover() }()
	j.sub.out.w.WriteHeader(http.StatusOK)
	j.err = j.sub.out.send(j.first)
}

// releaseWriter ends the writeHeaders goroutine that s keeps waiting, if any. It is called
// with mu held, when s is detached; the caller sends the nil job after unlocking when it
// returns true. Any waiting writer may take it: only their number matters.
func (r *broadcaster) releaseWriter(s *subscriber) bool {
	for i, k := range r.idleWriters {
		if k == s {
			last := len(r.idleWriters) - 1
			r.idleWriters[i] = r.idleWriters[last]
			r.idleWriters[last] = nil
			r.idleWriters = r.idleWriters[:last]
			return true
		}
	}
	return false
}
