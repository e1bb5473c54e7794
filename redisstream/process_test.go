package redisstream

import (
	"context"
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

// TestGapProcesses runs the gap check of TestFreshProcessResume across processes, as a
// client sees them: a process that has read the whole stream, one started after the stream
// was trimmed, which has not read it yet, and one started again after being killed. Each
// answers a Last-Event-ID that the stream trimmed away with the gap event carrying the ID
// of the stream's newest entry, and one the stream holds with the events after it.
func TestGapProcesses(t *testing.T) {
	r := startRedis(t)
	const stream = "gap-processes"
	first := startChild(t, r, stream)
	if err := first.publish("e", 100, 0); err != nil {
		t.Fatal(err)
	}
	admin := r.client(t)
	if err := admin.XTrimMaxLen(context.Background(), stream, 20).Err(); err != nil {
		t.Fatal(err)
	}
	held := streamEvents(t, admin, stream)
	oldest, _ := parseEntryID(held[0].id)
	gone := entryID{oldest.ms, oldest.seq - 1}.String()
	if oldest.seq == 0 {
		gone = entryID{oldest.ms - 1, 0}.String()
	}
	check := func(who string, p *child) {
		t.Helper()
		newest := held[len(held)-1]
		s := subscribe(t, p.url+"/events", gone)
		checkSame(t, who+", trimmed ID", s.waitFor(t, 1, 10*time.Second), []got{{id: newest.id, name: "gap", data: gone}})
		s.close()
		s = subscribe(t, p.url+"/events", held[2].id)
		checkSame(t, who+", held ID", s.waitFor(t, len(held)-3, 10*time.Second), held[3:])
		s.close()
	}
	check("the process that published", first)
	fresh := startChild(t, r, stream)
	check("a process started after the trimming", fresh)
	fresh.kill()
	check("a process started again", startChild(t, r, stream))
	// And the same once the stream has moved on.
	if err := first.publish("f", 5, 0); err != nil {
		t.Fatal(err)
	}
	held = streamEvents(t, admin, stream)
	check("a process started after more events", startChild(t, r, stream))
}
