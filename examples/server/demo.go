package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reiver/go-httpsse"
)

//go:embed index.html
var indexHTML []byte

// demoConfig holds the demo's timings, so that tests can run it fast.
type demoConfig struct {
	tick      time.Duration // shared route: time between two events
	heartbeat time.Duration // shared route: time between two heartbeats
	status    time.Duration // per-request stream: time between two "status" events
	streamRun int           // per-request stream: "status" events before the server ends the stream
	retry     time.Duration // per-request stream: the reconnection time sent with retry:
}

var defaultDemoConfig = demoConfig{
	tick:      1500 * time.Millisecond,
	heartbeat: 5 * time.Second,
	status:    1 * time.Second,
	streamRun: 6,
	retry:     2 * time.Second,
}

// demo serves the page and its two event streams:
//
//	GET /        the page (index.html, embedded)
//	GET /events  one shared Route: every tab sees the same events
//	GET /stream  a new Route per request (the original README's pattern)
type demo struct {
	cfg     demoConfig
	shared  httpsse.Route
	clients atomic.Int64 // subscribers of the shared route now
	started time.Time

	ctx    context.Context // done once the demo is closed
	cancel context.CancelFunc
	wg     sync.WaitGroup // the shared route's publishers
	once   sync.Once
}

// newDemo starts the demo's publishers and returns its handler, and a Closer
// that ends every stream and stops the publishers. Close it on shutdown:
//
//	srv.RegisterOnShutdown(func() { closer.Close() })
func newDemo(cfg demoConfig) (http.Handler, io.Closer) {
	d := &demo{cfg: cfg, shared: httpsse.NewRoute(), started: time.Now()}
	d.ctx, d.cancel = context.WithCancel(context.Background())

	// Comments keep proxies from timing the stream out, but EventSource never
	// shows them, so the page also gets a named "heartbeat" event.
	hb := httpsse.HeartBeat(cfg.heartbeat, d.shared)
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		defer hb.Close()
		d.publishTicks()
	}()
	go func() {
		defer d.wg.Done()
		d.publishHeartbeats()
	}()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", serveIndex)
	mux.HandleFunc("GET /events", d.serveShared)
	mux.HandleFunc("GET /stream", d.serveStream)
	return mux, d
}

// Close ends every stream of the demo and waits for its publishers.
func (d *demo) Close() error {
	d.once.Do(func() {
		d.cancel()
		d.shared.Close()
		d.wg.Wait()
	})
	return nil
}

func serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(indexHTML)
}

// serveShared mounts the one shared Route; it only counts subscribers, so
// that the events can say how many tabs are watching.
func (d *demo) serveShared(w http.ResponseWriter, r *http.Request) {
	d.clients.Add(1)
	defer d.clients.Add(-1)
	d.shared.ServeHTTP(w, r)
}

// publishTicks publishes the shared route's events until the route is closed.
// PublishEvent waits for the first subscriber, so nothing is lost before the
// first tab connects.
func (d *demo) publishTicks() {
	t := time.NewTicker(d.cfg.tick)
	defer t.Stop()
	for n := 1; ; n++ {
		err := d.shared.PublishEvent(func(ew httpsse.EventWriter) error {
			return d.writeTick(ew, n)
		})
		if errors.Is(err, httpsse.ErrClosed) {
			return
		}
		if err != nil {
			log.Printf("publish: %v", err)
		}
		// The first PublishEvent may have waited long for a subscriber:
		// count the interval from now, not from a stale tick.
		t.Reset(d.cfg.tick)
		select {
		case <-t.C:
		case <-d.ctx.Done():
			return
		}
	}
}

// writeTick writes the shared route's event number n. Most are "tick"
// events; every fifth is a "note" with multi-line data and every seventh has
// no event name, so the browser dispatches it as "message".
//
// Only the last Write's error needs returning: a failed Write spoils the
// whole event anyway (PublishEvent then sends nothing and returns the error).
func (d *demo) writeTick(ew httpsse.EventWriter, n int) error {
	id := strconv.Itoa(n)
	switch {
	case n%7 == 0:
		ew.WriteID(id)
		return ew.WriteData(fmt.Sprintf("event %d has no name, so EventSource calls it \"message\"", n))
	case n%5 == 0:
		ew.WriteEvent("note")
		ew.WriteID(id)
		return ew.WriteData("one WriteData with line breaks…\n…becomes several data: lines\n…and arrives as one string ✓")
	default:
		ew.WriteEvent("tick")
		ew.WriteID(id)
		return ew.WriteData(fmt.Sprintf(`{"n":%d,"watching":%d,"uptime":"%s"}`,
			n, d.clients.Load(), time.Since(d.started).Round(time.Second)))
	}
}

func (d *demo) publishHeartbeats() {
	t := time.NewTicker(d.cfg.heartbeat)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-d.ctx.Done():
			return
		}
		err := d.shared.PublishEvent(func(ew httpsse.EventWriter) error {
			ew.WriteEvent("heartbeat")
			return ew.WriteData(time.Now().UTC().Format(time.TimeOnly))
		})
		if errors.Is(err, httpsse.ErrClosed) {
			return
		}
	}
}

// serveStream is the original README's pattern: a new Route for each
// request, closed when the request ends, with its own heartbeat and its own
// publishing goroutine.
func (d *demo) serveStream(w http.ResponseWriter, r *http.Request) {
	route := httpsse.NewRoute()
	defer route.Close()
	// Shutting the demo down ends this stream too.
	stop := context.AfterFunc(d.ctx, func() { route.Close() })
	defer stop()

	// Send a heartbeat comment every 4.567 seconds.
	httpsse.HeartBeat(4567*time.Millisecond, route)

	// Publish from another goroutine: PublishEvent waits until
	// route.ServeHTTP below has attached this request.
	go d.loop(route, r.Header.Get("Last-Event-ID"))

	route.ServeHTTP(w, r)
}

// loop publishes the per-request stream's events until the route is closed.
// After cfg.streamRun events it closes the route itself: the browser then
// reconnects after the retry: time, sending Last-Event-ID, and the count goes
// on where it stopped.
func (d *demo) loop(route httpsse.Route, lastEventID string) {
	n, _ := strconv.Atoi(strings.TrimPrefix(lastEventID, "status-"))
	hello := "new stream: no Last-Event-ID"
	if lastEventID != "" {
		hello = fmt.Sprintf("reconnected with Last-Event-ID: %s", lastEventID)
	}
	err := route.PublishEvent(func(ew httpsse.EventWriter) error {
		ew.WriteRetry(d.cfg.retry)
		ew.WriteEvent("hello")
		return ew.WriteData(hello)
	})
	t := time.NewTicker(d.cfg.status)
	defer t.Stop()
	for i := 0; err == nil; i++ {
		if i == d.cfg.streamRun {
			err = route.PublishEvent(func(ew httpsse.EventWriter) error {
				ew.WriteEvent("bye")
				return ew.WriteData(fmt.Sprintf("the server ends this stream; EventSource reconnects in %s", d.cfg.retry))
			})
		} else {
			n++
			err = route.PublishEvent(func(ew httpsse.EventWriter) error {
				ew.WriteEvent("status")
				ew.WriteID(fmt.Sprintf("status-%d", n))
				return ew.WriteData(fmt.Sprintf("Hello world! #%d", n))
			})
		}
		select {
		case <-t.C:
		case <-d.ctx.Done():
			return
		}
		if i == d.cfg.streamRun {
			route.Close()
			return
		}
	}
	if !errors.Is(err, httpsse.ErrClosed) {
		log.Printf("publish: %v", err)
	}
}
