package main

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/reiver/go-httpsse"
)

// runSlow: cfg.slow subscribers stop reading while cfg.fast read at full speed and events
// are published for cfg.duration. The slow ones must be dropped within a bounded time and
// memory, the fast ones must get every event without a stall.
func runSlow(cfg config) ([]result, error) {
	const sc = "slow"
	var rs []result
	route := httpsse.NewRoute(httpsse.WriteTimeout(cfg.writeTimeout), httpsse.MaxQueuedBytes(cfg.maxQueued))
	srv, err := startServer(route, cfg.serverTimeout, cfg.sndbuf)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	baseGoroutines := runtime.NumGoroutine()

	c, err := startChild("slow", srv.addr,
		"-slow="+strconv.Itoa(cfg.slow),
		"-fast="+strconv.Itoa(cfg.fast),
		"-rcvbuf="+strconv.Itoa(cfg.rcvbuf),
		"-dialers="+strconv.Itoa(cfg.dialers),
		"-v="+strconv.FormatBool(cfg.verbose))
	if err != nil {
		return nil, err
	}
	defer c.finish(30 * time.Second)

	r, err := c.await("connected", 2*time.Minute)
	if err != nil {
		return rs, err
	}
	rs = append(rs, check(sc, "subscribers connected", r.N == cfg.slow+cfg.fast && r.Failed == 0,
		fmt.Sprintf("%d slow + fast (%d failed%s)", r.N, r.Failed, errSuffix(r.Err)), strconv.Itoa(cfg.slow+cfg.fast)))
	if _, err := syncUntil(route, c, "synced", time.Minute); err != nil {
		return rs, err
	}
	before := measureMemory()

	// Sample the server's memory while publishing.
	var peak uint64
	stopSample := make(chan struct{})
	var sampleWG sync.WaitGroup
	sampleWG.Add(1)
	go func() {
		defer sampleWG.Done()
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			if h := heapInuseNow(); h > peak {
				peak = h
			}
			select {
			case <-stopSample:
				return
			case <-t.C:
			}
		}
	}()

	pad := strings.Repeat("x", max(cfg.eventSize-8, 0))
	stalls := startStallMeter()
	start := time.Now()
	var maxPublish time.Duration
	published := 0
	t := time.NewTicker(time.Millisecond)
	for time.Since(start) < cfg.duration {
		<-t.C
		p := time.Now()
		if err := publishSeq(route, published+1, pad); err != nil {
			t.Stop()
			stalls.close()
			close(stopSample)
			return rs, fmt.Errorf("PublishEvent %d: %w", published+1, err)
		}
		published++
		if d := time.Since(p); d > maxPublish {
			maxPublish = d
		}
	}
	t.Stop()
	publishTime := time.Since(start)
	serverStall := stalls.worst()
	stalls.close()
	c.tell("report " + strconv.Itoa(published))
	fr, err := c.await("fast", time.Minute)
	close(stopSample)
	sampleWG.Wait()
	if err != nil {
		return rs, err
	}
	rate := float64(published) * float64(cfg.eventSize) / publishTime.Seconds()
	rs = append(rs, figure(sc, "settings", fmt.Sprintf("WriteTimeout %v, MaxQueuedBytes %d, slow SO_RCVBUF %d, server SO_SNDBUF %d, http.Server Read/WriteTimeout %v",
		cfg.writeTimeout, cfg.maxQueued, cfg.rcvbuf, cfg.sndbuf, cfg.serverTimeout)))
	rs = append(rs, figure(sc, "published", fmt.Sprintf("%d events of %d bytes in %s (%s/s)", published, cfg.eventSize, ms(publishTime), kib(rate))))

	// Slow subscribers: every one dropped, within the bound.
	ended := srv.endedTimes("slow")
	var slowest time.Duration
	for _, e := range ended {
		if d := e.Sub(start); d > slowest {
			slowest = d
		}
	}
	// A slow subscriber is over its budget once MaxQueuedBytes more than the socket
	// buffers hold has been published (the kernel doubles SO_SNDBUF and SO_RCVBUF), and
	// its write times out after WriteTimeout: whichever comes first, plus a second.
	budget := time.Duration(float64(cfg.maxQueued+2*cfg.sndbuf+2*cfg.rcvbuf) / rate * float64(time.Second))
	if cfg.sndbuf <= 0 {
		budget += time.Duration(4 << 20 / rate * float64(time.Second)) // Linux's largest send buffer
	}
	dropLimit := budget
	if cfg.writeTimeout > 0 && cfg.writeTimeout < dropLimit {
		dropLimit = cfg.writeTimeout
	}
	dropLimit += time.Second + serverStall
	rs = append(rs, check(sc, "slow subscribers dropped", len(ended) == cfg.slow,
		fmt.Sprintf("%d of %d", len(ended), cfg.slow), strconv.Itoa(cfg.slow)))
	rs = append(rs, check(sc, "time to drop the last slow subscriber", len(ended) > 0 && slowest <= dropLimit,
		ms(slowest), "<= min(WriteTimeout, budget time) + 1 s"+stallNote(serverStall)+" = "+ms(dropLimit)))

	// Fast subscribers: none dropped, every event, in order, no stall.
	fastEnded := len(srv.endedTimes("fast"))
	rs = append(rs, check(sc, "fast subscribers got every event in order, none dropped", fr.N == cfg.fast && fr.Failed == 0 && fastEnded == 0,
		fmt.Sprintf("%d of %d complete, %d dropped by the server%s", fr.N, cfg.fast, fastEnded, errSuffix(fr.Err)), strconv.Itoa(cfg.fast)))
	gapLimit := cfg.writeTimeout / 2
	if gapLimit <= 0 {
		gapLimit = 500 * time.Millisecond
	}
	gap := time.Duration(fr.MaxGapMS * float64(time.Millisecond))
	clientStall := time.Duration(fr.StallMS * float64(time.Millisecond))
	rs = append(rs, figure(sc, "worst scheduling stall while publishing (machine load, not the Route)",
		fmt.Sprintf("server process %s, subscriber process %s", ms(serverStall), ms(clientStall))))
	rs = append(rs, check(sc, "max inter-event gap of fast subscribers", gap <= gapLimit+serverStall+clientStall,
		ms(gap)+" (events every 1 ms)", "<= "+ms(gapLimit)+" (WriteTimeout/2)"+stallNote(serverStall+clientStall)))
	rs = append(rs, check(sc, "slowest PublishEvent", maxPublish <= gapLimit+serverStall, ms(maxPublish), "<= "+ms(gapLimit)+stallNote(serverStall)))
	memLimit := uint64(cfg.slow+cfg.fast)*uint64(cfg.maxQueued) + 16<<20
	growth := float64(peak) - float64(before.total())
	rs = append(rs, check(sc, "server memory growth while slow subscribers pile up (peak HeapInuse+StackInuse)", peak <= before.total()+memLimit,
		fmt.Sprintf("%s (peak %s, before %s)", mib(growth), mib(float64(peak)), mib(float64(before.total()))),
		"<= subscribers x MaxQueuedBytes + 16 MiB = "+mib(float64(memLimit))))

	sr, err := c.await("slowended", time.Minute)
	if err == nil {
		rs = append(rs, figure(sc, "how slow subscribers saw the drop", fmt.Sprintf("%d end of body, %d error/reset", sr.Clean, sr.Reset)))
	}
	route.Close()
	c.finish(30 * time.Second)
	g := waitGoroutines(baseGoroutines, 10*time.Second)
	rs = append(rs, check(sc, "server goroutines after Close", g <= baseGoroutines,
		fmt.Sprintf("%d (baseline %d)", g, baseGoroutines), fmt.Sprintf("<= %d", baseGoroutines)))
	return rs, nil
}

// stallNote names the scheduling stalls a limit allows for, when there were any worth naming.
func stallNote(d time.Duration) string {
	if d < time.Millisecond {
		return ""
	}
	return " + stalls " + ms(d)
}
