package httpsse_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/reiver/go-httpsse"
)

// The tests in this file show behaviour of the core that the reliability suite found to
// differ from CONTRACT.md. They are skipped unless HTTPSSE_BUGS=1, so that CI stays green
// until the core is changed; once it is, remove the skip.

func skipUnlessBugs(t *testing.T) {
	t.Helper()
	if os.Getenv("HTTPSSE_BUGS") == "" {
		t.Skip("known core bug; run with HTTPSSE_BUGS=1")
	}
}

// BUG(route.go): a subscriber that falls more than MaxQueuedBytes behind is only marked
// dropped (compact sets s.dropped); it is disconnected when its blocked Write fails, that
// is after WriteTimeout (never with WriteTimeout(0)). CONTRACT server rule 7 says it is
// disconnected. Memory stays bounded (the shared log is released), but the handler, its
// goroutines and the connection stay for up to WriteTimeout after the drop.
func TestBugDroppedSubscriberWaitsForWriteTimeout(t *testing.T) {
	skipUnlessBugs(t)
	route := httpsse.NewRoute(httpsse.WriteTimeout(time.Minute), httpsse.MaxQueuedBytes(64<<10))
	srv := newLoadServer(t, route, 32<<10, 0)
	s, err := dialLoadSubscriber(srv.addr, "slow", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close(false)
	// About 4 MiB at 2 MiB/s for a subscriber that never reads: it keeps up at first, until
	// the socket buffers are full and its handler blocks in a Write; then it falls 64 times
	// its budget behind.
	pad := strings.Repeat("x", 2000)
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for k := 1; k <= 2000; k++ {
		<-tick.C
		if err := publishNumbered(route, "seq", k, pad); err != nil {
			t.Fatal(err)
		}
	}
	published := time.Since(start)
	for len(srv.endedTimes("slow")) == 0 && time.Since(start) < published+time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	if len(srv.endedTimes("slow")) == 0 {
		t.Errorf("ServeHTTP of a subscriber 4 MiB behind with MaxQueuedBytes(64 KiB) still running %v after publishing began (WriteTimeout is 1 min)", time.Since(start).Round(time.Millisecond))
	}
	route.Close()
	s.close(true) // unblock the stuck write so the handler can return
}

// BUG(route.go): Close does not interrupt a write that is blocked on a subscriber that has
// stopped reading: that ServeHTTP returns only when the write times out (WriteTimeout, 10 s
// by default; never with WriteTimeout(0)), so http.Server.Shutdown with
// RegisterOnShutdown(route.Close) waits that long. CONTRACT server rule 6 says every
// ServeHTTP returns after Close and Shutdown returns promptly. Same root cause as above:
// nothing sets the write deadline of a blocked subscriber to the past.
func TestBugCloseWaitsForStalledWrite(t *testing.T) {
	skipUnlessBugs(t)
	route := httpsse.NewRoute(httpsse.WriteTimeout(time.Minute), httpsse.MaxQueuedBytes(64<<20))
	srv := newLoadServer(t, route, 32<<10, 0)
	s, err := dialLoadSubscriber(srv.addr, "slow", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close(true)
	// Fill the socket buffers, so that the handler blocks in a Write.
	pad := strings.Repeat("x", 2000)
	for k := 1; k <= 500; k++ {
		if err := publishNumbered(route, "seq", k, pad); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Microsecond)
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	route.Close()
	for len(srv.endedTimes("slow")) == 0 && time.Since(start) < 3*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	if len(srv.endedTimes("slow")) == 0 {
		t.Errorf("ServeHTTP of a stalled subscriber still running %v after Close (WriteTimeout is 1 min)", time.Since(start).Round(time.Millisecond))
	}
	s.close(true)
}

// embeddedEvent is how a user adds fields to an event: *embeddedEvent is an EventSetter
// through the methods it gets from Event, so Decode fills it with one AppendEventDatum call
// per data line.
type embeddedEvent struct {
	httpsse.Event
}

// BUG(event.go): Event.AppendEventDatum appends with ev.data += datum, which copies the data
// so far on every call: quadratic in the number of lines. Decoding an event of 50,000 short
// data lines (850 KB, far under the 16 MiB limit) into a type that embeds Event takes about
// 9 s here (100,000 lines: 28 s) instead of a few milliseconds for *Event, so a hostile
// server can stall such a client for hours with one event under the size limit.
func TestBugEmbeddedEventDecodeQuadratic(t *testing.T) {
	skipUnlessBugs(t)
	const lines = 50000
	in := strings.Repeat("data: 0123456789\n", lines) + "\n"
	dec := httpsse.NewDecoder(strings.NewReader(in))
	if !dec.Next() {
		t.Fatalf("Next() = false, Err() = %v", dec.Err())
	}
	var ev embeddedEvent
	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- dec.Decode(&ev) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Decode of %d data lines into a type embedding Event took %v, want well under 1 s", lines, d)
		}
		if n := len(ev.EventData()); n != lines {
			t.Errorf("EventData() has %d lines, want %d", n, lines)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("Decode of %d data lines into a type embedding Event still running after 5 s", lines)
		<-done
	}
}
