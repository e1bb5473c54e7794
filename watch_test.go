package httpsse

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// On HTTP/2 writes carry no deadline; the Route's watchdog cuts a write that has gone on for
// longer than WriteTimeout. A client that stops reading is dropped with ErrWriteTimeout once
// its stream's flow-control window is full, while one that reads and then sits idle for
// several timeouts is not touched (a deadline left in place would reset its stream).
func TestWatchdogHTTP2(t *testing.T) {
	const timeout = 300 * time.Millisecond
	var mu sync.Mutex
	var reasons []error
	route := NewRoute(WaitForSubscriber(false), WriteTimeout(timeout), MaxQueuedBytes(64<<20),
		OnDrop(func(_ *http.Request, reason error) {
			mu.Lock()
			reasons = append(reasons, reason)
			mu.Unlock()
		}))
	ts := httptest.NewUnstartedServer(route)
	ts.EnableHTTP2 = true
	ts.StartTLS()
	defer func() {
		route.Close()
		ts.Close()
	}()
	client := ts.Client()
	openStream(t, client, ts.URL, "") // stalled: never read
	s := openStream(t, client, ts.URL, "")
	waitSubscribers(t, route, 2)
	b := route.(*broadcaster)
	b.mu.Lock()
	watched := b.subs[0].out.watch && b.subs[1].out.watch
	b.mu.Unlock()
	if !watched {
		t.Fatal("an HTTP/2 subscriber's writes are not watched")
	}

	chunk := strings.Repeat("x", 60<<10)
	for i := 0; ; i++ {
		publishData(t, route, chunk)
		if got := s.mustNext(t); got != "data: "+chunk+"\n\n" {
			t.Fatalf("idle subscriber: event %d is %d bytes", i, len(got))
		}
		mu.Lock()
		n := len(reasons)
		mu.Unlock()
		if n > 0 {
			break
		}
		if i > 1000 {
			t.Fatal("the stalled subscriber was not dropped after 60 MB")
		}
	}
	mu.Lock()
	if len(reasons) != 1 || reasons[0] != ErrWriteTimeout {
		t.Errorf("drops: %v, want one ErrWriteTimeout", reasons)
	}
	mu.Unlock()
	if st := StatsOf(route); st.DroppedTimeout != 1 || st.Subscribers != 1 {
		t.Errorf("stats: %+v, want 1 dropped on timeout and 1 subscriber left", st)
	}

	time.Sleep(4 * timeout) // idle, with the watchdog running
	publishData(t, route, "still here")
	if got := s.mustNext(t); got != "data: still here\n\n" {
		t.Errorf("after being idle: got %q", got)
	}

	// The watchdog's timer outlives no subscriber.
	route.Close()
	waitSubscribers(t, route, 0)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.watchTimer != nil || b.watched != 0 {
		t.Errorf("after the last subscriber left: watchTimer set %v, watched %d", b.watchTimer != nil, b.watched)
	}
}
