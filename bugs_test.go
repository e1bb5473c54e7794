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
