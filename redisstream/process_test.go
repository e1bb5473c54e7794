package redisstream

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestProcesses runs three server processes on one stream, with subscribers and a
// publisher on each. Midway one process is killed with SIGKILL, and its subscribers resume
// on the others with their Last-Event-ID. Every subscriber must receive the whole stream,
// in the order of the stream, with the entries' IDs: none missing, none repeated. The
// processes keep 16 events in memory, so the resumed subscribers get most of what they
// missed from Redis.
func TestProcesses(t *testing.T) {
	r := startRedis(t)
	const (
		stream  = "processes"
		perProc = 3   // subscribers per process
		events  = 150 // events each process publishes
	)
	var procs [3]*child
	for i := range procs {
		procs[i] = startChild(t, r, stream)
	}
	var subs [3][]*subscriber
	for i, p := range procs {
		for range perProc {
			subs[i] = append(subs[i], subscribe(t, p.url+"/events", ""))
		}
	}

	var wg sync.WaitGroup
	errs := make([]error, len(procs))
	for i, p := range procs {
		wg.Go(func() { errs[i] = p.publish(fmt.Sprintf("p%d", i), events, 2*time.Millisecond) })
	}

	// Kill the third process once its subscribers are a third of the way.
	subs[2][0].waitFor(t, events, 30*time.Second)
	procs[2].kill()
	var before [][]got
	for _, s := range subs[2] {
		<-s.done
		before = append(before, s.received())
	}
	// Resume once the stream has gone on by more than the processes keep in memory.
	subs[0][0].waitFor(t, len(before[0])+40, 30*time.Second)
	var resumed []*subscriber
	for k, evs := range before {
		to := procs[k%2]
		resumed = append(resumed, subscribe(t, to.url+"/events", evs[len(evs)-1].id))
	}
	wg.Wait()
	for i, err := range errs[:2] {
		if err != nil {
			t.Fatalf("process %d publishing: %v", i, err)
		}
	}
	want := streamEvents(t, r.client(t), stream)
	if errs[2] == nil || len(want) <= 2*events || len(want) >= 3*events {
		t.Fatalf("the stream holds %d events (publishing in the killed process: %v), want the killed process to have died mid-stream", len(want), errs[2])
	}
	for i := range 2 {
		for k, s := range subs[i] {
			checkSame(t, fmt.Sprintf("subscriber %d of process %d", k, i), s.waitFor(t, len(want), 30*time.Second), want)
		}
	}
	for k, s := range resumed {
		evs := append(before[k], s.waitFor(t, len(want)-len(before[k]), 30*time.Second)...)
		checkSame(t, fmt.Sprintf("subscriber %d of the killed process, resumed on process %d", k, k%2), evs, want)
	}
}
