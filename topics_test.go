package httpsse

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"sync"
	"testing"
	"time"
)

// Many goroutines asking for the same new topic at once all get one Route.
func TestTopicsSameRouteConcurrently(t *testing.T) {
	checkNoLeaks(t)
	topics := NewTopics()
	defer topics.Close()
	const n = 64
	routes := make([]Route, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			routes[i] = topics.Route("room")
		}()
	}
	close(start)
	wg.Wait()
	for i, r := range routes {
		if r != routes[0] {
			t.Fatalf("goroutine %d got another Route for the same topic", i)
		}
	}
	if topics.Route("other") == routes[0] {
		t.Error("two topics share a Route")
	}
	if got := topics.Len(); got != 2 {
		t.Errorf("Len() = %d, want 2", got)
	}
}

// Publishing to a topic nobody reads returns at once, and a subscriber that comes later
// gets the events retained for it (with Replay) and the live ones.
func TestTopicsPublishWithoutSubscriber(t *testing.T) {
	checkNoLeaks(t)
	topics := NewTopics(Replay(10))
	defer topics.Close()
	done := make(chan error, 1)
	go func() {
		for i := range 3 {
			if err := topics.Route("alice").PublishEvent(func(w EventWriter) error {
				w.WriteID(fmt.Sprint(i))
				return w.WriteData(fmt.Sprint("note ", i))
			}); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("PublishEvent = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("PublishEvent to a topic without subscribers blocked")
	}

	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		topics.Route(r.URL.Query().Get("user")).ServeHTTP(w, r)
	}))
	defer ts.Close()
	defer topics.Close() // before ts.Close, which waits for the streams to end
	s := openStream(t, ts.Client(), ts.URL+"?user=alice", "0")
	for _, want := range []string{"id: 1\ndata: note 1\n\n", "id: 2\ndata: note 2\n\n"} {
		if got := s.mustNext(t); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	waitSubscribers(t, topics.Route("alice"), 1)
	publishID(t, topics.Route("bob"), "not for alice", "b")
	publishID(t, topics.Route("alice"), "live", "3")
	if got, want := s.mustNext(t), "id: 3\ndata: live\n\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// Idle topics are freed (a topic with a subscriber never), with their memory; Close closes
// every topic's Route, and Route after Close returns a closed one.
func TestTopicsIdleFreedAndClose(t *testing.T) {
	checkNoLeaks(t)
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	const idle = 200 * time.Millisecond
	topics := NewTopics(Replay(100), TopicIdle(idle))
	defer topics.Close()
	for i := range 2000 {
		publishData(t, topics.Route(fmt.Sprint("user-", i)), "hello")
	}
	kept := topics.Route("kept")
	ts := startRoute(t, kept)
	s := openStream(t, ts.Client(), ts.URL, "")
	waitSubscribers(t, kept, 1)
	if got := topics.Len(); got != 2001 {
		t.Fatalf("Len() = %d, want 2001", got)
	}
	old := topics.Route("user-0")
	waitCount(t, "topics", 1, topics.Len)
	// The sweep closes the freed Routes once it has let go of the Topics' lock.
	waitCount(t, "open freed topics", 0, func() int {
		if old.(*broadcaster).isClosed() {
			return 0
		}
		return 1
	})
	if err := old.PublishEvent(func(w EventWriter) error { return w.WriteData("late") }); !errors.Is(err, ErrClosed) {
		t.Errorf("PublishEvent on a freed topic's Route = %v, want ErrClosed", err)
	}
	if topics.Route("kept") != kept {
		t.Error("a topic with a subscriber was freed")
	}
	// The sweep may still be closing the freed Routes, holding them until it is done.
	var grown int64
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if grown = int64(after.HeapAlloc) - int64(before.HeapAlloc); grown <= 1<<20 || time.Now().After(deadline) {
			break
		}
	}
	if grown > 1<<20 {
		t.Errorf("heap grew by %d bytes after 2,000 idle topics were freed", grown)
	}

	publishData(t, kept, "still here")
	if got := s.mustNext(t); got[:len("data: still here\n")] != "data: still here\n" {
		t.Errorf("got %q", got)
	}
	topics.Close()
	topics.Close()
	if _, err := s.next(); err == nil {
		t.Error("the stream did not end on Close")
	}
	r := topics.Route("kept")
	if err := r.PublishEvent(func(w EventWriter) error { return w.WriteData("x") }); !errors.Is(err, ErrClosed) {
		t.Errorf("PublishEvent after Close = %v, want ErrClosed", err)
	}
	rec := httptest.NewRecorder()
	r.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	if rec.Code != http.StatusNoContent {
		t.Errorf("ServeHTTP after Close: status %d, want 204", rec.Code)
	}
}

// 100,000 topics with no history cost little.
func TestTopicsManyCostLittle(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	topics := NewTopics()
	const n = 100_000
	for i := range n {
		topics.Route(fmt.Sprint(i))
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("%d topics: %d bytes each", n, per)
	if per > 2048 {
		t.Errorf("a topic with no history costs %d bytes, want under 2 KiB", per)
	}
	topics.Close()
}

// Stats counts subscribers, events, drops, replays and gaps, and OnDrop reports a dropped
// subscriber with its request.
func TestStatsAndOnDrop(t *testing.T) {
	checkNoLeaks(t)
	dropped := make(chan error, 3) // the three subscribers below, which never read
	route := NewRoute(Replay(5), ReplayMaxBytes(8<<10), MaxQueuedBytes(16<<10), WaitForSubscriber(false),
		OnDrop(func(req *http.Request, reason error) {
			if req == nil {
				reason = errors.New("OnDrop called without the request")
			}
			dropped <- reason
		}))
	ts := startRoute(t, route)
	if st := StatsOf(route); st != (Stats{}) {
		t.Errorf("new Route: Stats = %+v", st)
	}
	publishID(t, route, "a", "1")
	openStream(t, ts.Client(), ts.URL, "1")   // a replay
	openStream(t, ts.Client(), ts.URL, "old") // a gap
	stalledClient(t, ts.Listener.Addr().String())
	waitSubscribers(t, route, 3)
	// How much the kernel buffers for a client that does not read varies: publish until the
	// Route has dropped one of them.
	data := string(make([]byte, 1<<10))
	published := 1
	deadline := time.Now().Add(20 * time.Second)
	var reason error
	for reason == nil {
		if time.Now().After(deadline) {
			t.Fatalf("no subscriber was dropped after %d events; Stats %+v", published, StatsOf(route))
		}
		for range 100 {
			publishData(t, route, data)
			published++
		}
		select {
		case reason = <-dropped:
		case <-time.After(10 * time.Millisecond):
		}
	}
	if !errors.Is(reason, ErrTooFarBehind) {
		t.Errorf("OnDrop reason = %v, want ErrTooFarBehind", reason)
	}
	st := StatsOf(route)
	if st.DroppedBehind < 1 || st.Replays != 1 || st.Gaps != 1 || st.Published != uint64(published) {
		t.Errorf("Stats = %+v, want a drop, a replay, a gap, %d events", st, published)
	}
}

// A Route made with WaitForSubscriber(false) does not hold its publisher.
func TestWaitForSubscriberOff(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute(WaitForSubscriber(false))
	defer route.Close()
	done := make(chan error, 1)
	go func() { done <- route.PublishEvent(func(w EventWriter) error { return w.WriteData("x") }) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("PublishEvent = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("PublishEvent waited for a subscriber")
	}
	if st := StatsOf(route); st.Published != 1 {
		t.Errorf("Stats.Published = %d, want 1", st.Published)
	}
}
