package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/reiver/go-httpsse"
)

var fastDemoConfig = demoConfig{
	tick:      20 * time.Millisecond,
	heartbeat: 50 * time.Millisecond,
	status:    20 * time.Millisecond,
	streamRun: 3,
	retry:     30 * time.Millisecond,
}

// startDemo serves the demo's handler on a loopback port. Like main, it
// closes the demo from RegisterOnShutdown.
func startDemo(t *testing.T, cfg demoConfig) (*httptest.Server, io.Closer) {
	t.Helper()
	handler, closer := newDemo(cfg)
	ts := httptest.NewUnstartedServer(handler)
	ts.Config.RegisterOnShutdown(func() { closer.Close() })
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(func() { closer.Close() })
	return ts, closer
}

// next reads one event from c, or fails the test.
func next(t *testing.T, c httpsse.Client) httpsse.Event {
	t.Helper()
	if !c.Next() {
		t.Fatalf("Next() = false, Err() = %v", c.Err())
	}
	var ev httpsse.Event
	if err := c.Decode(&ev); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return ev
}

func TestDemoPage(t *testing.T) {
	ts, _ := startDemo(t, fastDemoConfig)
	resp, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("GET / Content-Type = %q, want text/html; charset=utf-8", ct)
	}
	for _, s := range []string{`new EventSource(`, `"/events?client="`, `"/stream"`, `"/notify?user="`, `"/cut?client="`, `"/stats?client="`} {
		if !strings.Contains(string(body), s) {
			t.Errorf("GET / lacks %s", s)
		}
	}
	// Self-contained: nothing is loaded from elsewhere.
	for _, s := range []string{"http://", "https://", "<script src", "<link rel=\"stylesheet\""} {
		if strings.Contains(string(body), s) {
			t.Errorf("GET / contains %q; the page must be self-contained", s)
		}
	}
	resp, err = http.Get(ts.URL + "/nothing-here")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing-here = %d, want 404", resp.StatusCode)
	}
}

func TestDemoSharedEvents(t *testing.T) {
	ts, _ := startDemo(t, fastDemoConfig)
	c, err := httpsse.Dial(ts.URL+"/events", httpsse.Reconnect(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seen := map[string]bool{}
	for i := 0; i < 40 && len(seen) < 4; i++ {
		ev := next(t, c)
		seen[ev.EventName()] = true
		if ev.EventName() == "note" && len(ev.EventData()) != 3 {
			t.Errorf("note event data = %q, want 3 lines", ev.EventData())
		}
	}
	for _, name := range []string{"tick", "note", "", "heartbeat"} {
		if !seen[name] {
			t.Errorf("no %q event among the first 40 of /events", name)
		}
	}
}

// TestDemoStreamResumes follows the per-request stream through the server's
// end of it: the client reconnects after the retry: time with Last-Event-ID,
// and the count goes on.
func TestDemoStreamResumes(t *testing.T) {
	ts, _ := startDemo(t, fastDemoConfig)
	c, err := httpsse.Dial(ts.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []string
	for len(got) < 11 {
		ev := next(t, c)
		got = append(got, ev.EventName()+" "+ev.EventID()+" "+ev.EventDataCollapsed())
	}
	retry := fastDemoConfig.retry
	want := []string{
		"hello  new stream: no Last-Event-ID",
		"status status-1 Hello world! #1",
		"status status-2 Hello world! #2",
		"status status-3 Hello world! #3",
		fmt.Sprintf("bye status-3 the server ends this stream; EventSource reconnects in %s", retry),
		"hello status-3 reconnected with Last-Event-ID: status-3",
		"status status-4 Hello world! #4",
		"status status-5 Hello world! #5",
		"status status-6 Hello world! #6",
		fmt.Sprintf("bye status-6 the server ends this stream; EventSource reconnects in %s", retry),
		"hello status-6 reconnected with Last-Event-ID: status-6",
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %q, want %q", i, got[i], want[i])
		}
	}
}

// TestDemoShutdown checks main's graceful shutdown: with streams open,
// Shutdown returns promptly and each stream ends cleanly.
func TestDemoShutdown(t *testing.T) {
	cfg := fastDemoConfig
	cfg.streamRun = 1 << 30
	ts, _ := startDemo(t, cfg)
	var clients []httpsse.Client
	for _, path := range []string{"/events", "/events", "/stream"} {
		c, err := httpsse.Dial(ts.URL+path, httpsse.Reconnect(false))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		next(t, c)
		clients = append(clients, c)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := ts.Config.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with open streams: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %s, want it prompt", d)
	}
	for i, c := range clients {
		for c.Next() {
		}
		if err := c.Err(); err != nil {
			t.Errorf("stream %d after Shutdown: Err() = %v, want a clean end", i, err)
		}
	}
}
