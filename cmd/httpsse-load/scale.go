package main

import (
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/reiver/go-httpsse"
)

// runScale: one shared Route, cfg.subscribers subscribers in the child process, cfg.events
// events each, every one delivered to every subscriber in order.
func runScale(cfg config) ([]result, error) {
	const sc = "scale"
	var rs []result
	route := httpsse.NewRoute()
	srv, err := startServer(route, 0, 0)
	if err != nil {
		return nil, err
	}
	defer srv.stop()

	baseGoroutines := runtime.NumGoroutine()
	baseMem := measureMemory()

	c, err := startChild("scale", srv.addr,
		"-subscribers="+strconv.Itoa(cfg.subscribers),
		"-events="+strconv.Itoa(cfg.events),
		"-dialers="+strconv.Itoa(cfg.dialers),
		"-source-addrs="+strconv.Itoa(cfg.sourceAddrs),
		"-v="+strconv.FormatBool(cfg.verbose))
	if err != nil {
		return nil, err
	}
	defer c.finish(30 * time.Second)

	connectStart := time.Now()
	r, err := c.await("connected", 5*time.Minute)
	if err != nil {
		return rs, err
	}
	connectTime := time.Since(connectStart)
	rs = append(rs, check(sc, "subscribers connected", r.N == cfg.subscribers && r.Failed == 0,
		fmt.Sprintf("%d of %d (%d failed%s)", r.N, cfg.subscribers, r.Failed, errSuffix(r.Err)), strconv.Itoa(cfg.subscribers)))
	rs = append(rs, figure(sc, "time to connect all subscribers", fmt.Sprintf("%s (open files allowed per process: %d)", ms(connectTime), openFileLimit())))
	logf(cfg, "scale: %d connected in %v", r.N, connectTime)

	// Idle memory: every subscriber has its response headers; nothing has been published.
	// Wait until the server runs a handler for every subscriber, then measure.
	deadline := time.Now().Add(30 * time.Second)
	for srv.handlersRunning() < r.N && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	idleMem := measureMemory()
	idleGoroutines := runtime.NumGoroutine()
	if r.N > 0 {
		per := (float64(idleMem.total()) - float64(baseMem.total())) / float64(r.N)
		heapPer := (float64(idleMem.heapInuse) - float64(baseMem.heapInuse)) / float64(r.N)
		stackPer := (float64(idleMem.stackInuse) - float64(baseMem.stackInuse)) / float64(r.N)
		rs = append(rs, figure(sc, "server memory per idle subscriber (HeapInuse+StackInuse)",
			fmt.Sprintf("%s (heap %s + stack %s)", kib(per), kib(heapPer), kib(stackPer))))
		rs = append(rs, figure(sc, "server goroutines per idle subscriber",
			strconv.FormatFloat(float64(idleGoroutines-baseGoroutines)/float64(r.N), 'f', 2, 64)))
	}

	// Make sure every subscriber is attached before the numbered events.
	if _, err := syncUntil(route, c, "synced", 2*time.Minute); err != nil {
		return rs, err
	}
	logf(cfg, "scale: all synced")

	start := time.Now()
	var maxPublish time.Duration
	for k := 1; k <= cfg.events; k++ {
		t := time.Now()
		if err := publishSeq(route, k, ""); err != nil {
			return rs, fmt.Errorf("PublishEvent %d: %w", k, err)
		}
		if d := time.Since(t); d > maxPublish {
			maxPublish = d
		}
	}
	publishTime := time.Since(start)
	r, err = c.await("received", 5*time.Minute)
	if err != nil {
		return rs, err
	}
	deliverTime := time.Since(start)
	total := int64(r.N) * int64(cfg.events)
	rs = append(rs, check(sc, "events delivered to every subscriber, in order, none lost",
		r.Failed == 0 && r.Events == int64(cfg.subscribers)*int64(cfg.events),
		fmt.Sprintf("%d of %d subscribers complete, %d events received (%d failed%s)", r.N, cfg.subscribers, r.Events, r.Failed, errSuffix(r.Err)),
		fmt.Sprintf("%d events", int64(cfg.subscribers)*int64(cfg.events))))
	rs = append(rs, figure(sc, fmt.Sprintf("time to publish %d events", cfg.events), ms(publishTime)+", slowest PublishEvent "+ms(maxPublish)))
	rs = append(rs, figure(sc, fmt.Sprintf("time to deliver %d events to %d subscribers", cfg.events, r.N),
		fmt.Sprintf("%s (%.0f events/s)", ms(deliverTime), float64(total)/deliverTime.Seconds())))

	// Close ends every stream cleanly; every handler returns and nothing is left behind.
	closeStart := time.Now()
	route.Close()
	r, err = c.await("ended", 2*time.Minute)
	if err != nil {
		return rs, err
	}
	rs = append(rs, check(sc, "Route.Close ends every stream cleanly (end of body, not a reset)",
		r.Clean == r.N && r.N == cfg.subscribers,
		fmt.Sprintf("%d clean, %d reset/error of %d%s", r.Clean, r.Reset, r.N, errSuffix(r.Err)), strconv.Itoa(cfg.subscribers)))
	rs = append(rs, figure(sc, "time for Route.Close to end every stream", ms(time.Since(closeStart))))
	c.finish(30 * time.Second)
	g := waitGoroutines(baseGoroutines, 10*time.Second)
	rs = append(rs, check(sc, "server goroutines after Close", g <= baseGoroutines,
		fmt.Sprintf("%d (baseline %d, with subscribers %d)", g, baseGoroutines, idleGoroutines), fmt.Sprintf("<= %d", baseGoroutines)))
	return rs, nil
}

func errSuffix(s string) string {
	if s == "" {
		return ""
	}
	return "; first error: " + s
}
