package main

import (
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reiver/go-httpsse"
)

// runChurn: cfg.cycles connect/receive/disconnect cycles against a shared Route that
// publishes all along, a fresh probe subscriber every cfg.probeEvery, then goroutines and
// heap back to their baseline.
func runChurn(cfg config) ([]result, error) {
	const sc = "churn"
	var rs []result
	route := httpsse.NewRoute()
	srv, err := startServer(route, 0, 0)
	if err != nil {
		return nil, err
	}
	defer srv.stop()

	// The publisher runs before, during and after the churn: it is part of the baseline.
	stopPublish := make(chan struct{})
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	var published atomic.Int64
	go func() {
		defer pubWG.Done()
		t := time.NewTicker(cfg.publishEvery)
		defer t.Stop()
		for k := 1; ; k++ {
			select {
			case <-stopPublish:
				return
			case <-t.C:
			}
			if err := publishSeq(route, k, ""); err != nil {
				return
			}
			published.Store(int64(k))
		}
	}()
	defer func() {
		close(stopPublish)
		route.Close() // ends a PublishEvent that waits for a first subscriber
		pubWG.Wait()
	}()

	// Let the first subscriber in, so the publisher runs at full rate from now on, then take
	// the baseline.
	if s, err := dialSubscriber(srv.addr, "warmup", 0, 10*time.Second); err == nil {
		s.next(5 * time.Second)
		s.close(false)
	}
	time.Sleep(200 * time.Millisecond)
	baseGoroutines := runtime.NumGoroutine()
	baseMem := measureMemory()

	c, err := startChild("churn", srv.addr,
		"-cycles="+strconv.Itoa(cfg.cycles),
		"-workers="+strconv.Itoa(cfg.workers),
		"-v="+strconv.FormatBool(cfg.verbose))
	if err != nil {
		return nil, err
	}
	defer c.finish(30 * time.Second)

	stalls := startStallMeter()

	// Probe: a fresh subscriber must receive an event within a second, all along.
	stopProbe := make(chan struct{})
	probeDone := make(chan struct{})
	var probes, probeFails int
	var probeMax time.Duration
	var probeErr string
	go func() {
		defer close(probeDone)
		t := time.NewTicker(cfg.probeEvery)
		defer t.Stop()
		for {
			select {
			case <-stopProbe:
				return
			case <-t.C:
			}
			start := time.Now()
			s, err := dialSubscriber(srv.addr, "probe", 0, 5*time.Second)
			if err == nil {
				_, err = s.next(5 * time.Second)
				s.close(false)
			}
			d := time.Since(start)
			probes++
			if err != nil {
				probeFails++
				if probeErr == "" {
					probeErr = err.Error()
				}
			}
			if d > probeMax {
				probeMax = d
			}
		}
	}()

	// Sample the server's memory while the churn goes on.
	var maxHeap uint64
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			if h := heapInuseNow(); h > maxHeap {
				maxHeap = h
			}
			select {
			case <-stopProbe:
				return
			case <-t.C:
			}
		}
	}()

	start := time.Now()
	r, err := c.await("done", 30*time.Minute)
	churnTime := time.Since(start)
	close(stopProbe)
	<-probeDone
	if err != nil {
		return rs, err
	}
	logf(cfg, "churn: %d cycles in %v", r.N, churnTime)

	rs = append(rs, check(sc, "cycles completed (connect, receive, disconnect)", r.N == cfg.cycles && r.Failed == 0,
		fmt.Sprintf("%d of %d (%d clean closes, %d resets, %d failed%s)", r.N, cfg.cycles, r.Clean, r.Reset, r.Failed, errSuffix(r.Err)), strconv.Itoa(cfg.cycles)))
	rs = append(rs, figure(sc, "cycle rate", fmt.Sprintf("%.0f cycles/s over %s, %d events published", float64(r.N)/churnTime.Seconds(), ms(churnTime), published.Load())))
	rs = append(rs, figure(sc, "slowest cycle from dial to first event", strconv.FormatFloat(r.MaxGapMS, 'f', 1, 64)+" ms"))
	serverStall := stalls.worst()
	stalls.close()
	rs = append(rs, figure(sc, "worst scheduling stall during the churn (machine load, not the Route)",
		fmt.Sprintf("server process %s, subscriber process %s", ms(serverStall), strconv.FormatFloat(r.StallMS, 'f', 1, 64)+" ms")))
	rs = append(rs, check(sc, "fresh probe subscriber served (dial to first event)", probeFails == 0 && probeMax <= time.Second+serverStall && probes > 0,
		fmt.Sprintf("max %s over %d probes (%d failed%s)", ms(probeMax), probes, probeFails, errSuffix(probeErr)), "<= 1000 ms"+stallNote(serverStall)))
	if err := c.finish(30 * time.Second); err != nil {
		rs = append(rs, check(sc, "subscriber process exited", false, err.Error(), ""))
	}

	g := waitGoroutines(baseGoroutines, 10*time.Second)
	rs = append(rs, check(sc, "server goroutines back to baseline", g <= baseGoroutines,
		fmt.Sprintf("%d (baseline %d)", g, baseGoroutines), fmt.Sprintf("<= %d", baseGoroutines)))
	handlers := srv.handlersRunning()
	rs = append(rs, check(sc, "handlers still running after the churn", handlers == 0, strconv.Itoa(handlers), "0"))
	after := measureMemory()
	// Live objects must be back to the baseline; spans in use may stay a little above it
	// (fragmentation, size classes kept by the runtime), but nothing that grows per cycle.
	allocLimit := baseMem.heapAlloc + 1<<20
	rs = append(rs, check(sc, "server live heap (HeapAlloc) back to baseline", after.heapAlloc <= allocLimit,
		fmt.Sprintf("%s (baseline %s)", mib(float64(after.heapAlloc)), mib(float64(baseMem.heapAlloc))), "<= baseline + 1 MiB"))
	heapLimit := baseMem.heapInuse + 4<<20
	rs = append(rs, check(sc, "server heap in use (HeapInuse) back to baseline", after.heapInuse <= heapLimit,
		fmt.Sprintf("%s (baseline %s, peak heap+stack during churn %s)", mib(float64(after.heapInuse)), mib(float64(baseMem.heapInuse)), mib(float64(maxHeap))),
		"<= baseline + 4 MiB"))
	rs = append(rs, figure(sc, "server stacks in use after / baseline", fmt.Sprintf("%s / %s", mib(float64(after.stackInuse)), mib(float64(baseMem.stackInuse)))))
	return rs, nil
}
