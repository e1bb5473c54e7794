package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// latencyResult is one steady run: the time from the start of each publish to its receipt by
// each subscriber, over every (subscriber, event) pair.
type latencyResult struct {
	lib                string
	subs, evs, rate    int
	p50, p99, max      time.Duration
	received, expected int64
	err                error
}

// runLatency starts l's server, connects subs readers, publishes evs events at rate a second,
// and measures publish-to-receipt times.
func runLatency(l *library, subs, evs, rate int) (res latencyResult) {
	res = latencyResult{lib: l.name, subs: subs, evs: evs, rate: rate, expected: int64(subs) * int64(evs)}
	c, err := startChild(l)
	if err != nil {
		res.err = err
		return res
	}
	var s *subscribers
	defer func() {
		c.stop()
		if s != nil {
			s.close()
		}
	}()
	// recv[r][seq] is when reader r received event seq, in microseconds after base, plus one
	// (0: not received). Each reader writes only its own row.
	recv := make([][]int32, subs)
	for i := range recv {
		recv[i] = make([]int32, evs)
	}
	var base atomic.Int64
	var received atomic.Int64
	onSeq := func(r, seq int) {
		if seq < 0 || seq >= evs || recv[r][seq] != 0 {
			return
		}
		recv[r][seq] = int32((time.Now().UnixNano()-base.Load())/1e3) + 1
		received.Add(1)
	}
	s, err = connect(c, l.path, subs, 64<<10, onSeq, nil)
	if err != nil {
		res.err = err
		return res
	}
	if err := warmUp(c, s, subs, 120*time.Second); err != nil {
		res.err = err
		return res
	}
	base.Store(time.Now().UnixNano())
	if err := c.send(fmt.Sprintf("steady %d %d", evs, rate)); err != nil {
		res.err = err
		return res
	}
	publishFor := time.Duration(evs)*time.Second/time.Duration(rate) + 30*time.Second
	if r, err := c.reply(publishFor); err != nil || r != "published" {
		res.err = fmt.Errorf("publisher: %q %v", r, err)
		return res
	}
	line, err := c.reply(30 * time.Second)
	if err != nil {
		res.err = err
		return res
	}
	fields := strings.Fields(strings.TrimPrefix(line, "times"))
	if len(fields) != evs {
		res.err = fmt.Errorf("child: %d publish times for %d events", len(fields), evs)
		return res
	}
	pub := make([]int64, evs) // microseconds after base
	for i, f := range fields {
		t, _ := strconv.ParseInt(f, 10, 64)
		pub[i] = (t - base.Load()) / 1e3
	}
	// Wait until every event has arrived everywhere, or nothing moves for 5 seconds.
	prev, moved := int64(-1), time.Now()
	for received.Load() < res.expected && time.Since(moved) < 5*time.Second {
		time.Sleep(5 * time.Millisecond)
		if n := received.Load(); n != prev {
			prev, moved = n, time.Now()
		}
	}
	res.received = received.Load()
	lat := make([]int32, 0, res.received)
	for r := range recv {
		for seq, t := range recv[r] {
			if t != 0 {
				lat = append(lat, int32(int64(t-1)-pub[seq]))
			}
		}
	}
	if path := os.Getenv("BENCH_LATENCY_SERIES"); path != "" {
		writeLatencySeries(path+"."+strings.ReplaceAll(l.name, "/", "_"), recv, pub)
	}
	if len(lat) == 0 {
		res.err = fmt.Errorf("nothing received")
		return res
	}
	slices.Sort(lat)
	at := func(q float64) time.Duration {
		return time.Duration(lat[min(len(lat)-1, int(q*float64(len(lat))))]) * time.Microsecond
	}
	res.p50, res.p99, res.max = at(0.5), at(0.99), at(1)
	return res
}

// runLatencies runs every library at every subscriber count, rounds times, keeping each run.
func runLatencies(libs []*library, subs []int, evs, rate, rounds int, logf func(string, ...any)) [][]latencyResult {
	var all [][]latencyResult
	for _, s := range subs {
		for i := range libs {
			var rs []latencyResult
			for r := range rounds {
				res := runLatency(libs[i], s, evs, rate)
				logf("latency round %d S=%d %s: p50 %v p99 %v max %v, received %d of %d, err %v",
					r+1, s, res.lib, res.p50, res.p99, res.max, res.received, res.expected, res.err)
				rs = append(rs, res)
			}
			all = append(all, rs)
		}
	}
	return all
}

// printLatency prints each library's runs; it fails when httpsse lost an event.
func printLatency(w io.Writer, all [][]latencyResult) (failed bool) {
	if len(all) == 0 {
		return false
	}
	fmt.Fprintf(w, "## Latency\n\n%s on 127.0.0.1, the same raw reader for every subscriber. The server publishes E events of about 100 bytes at a steady R a second; each figure is the time from the start of a publish to the event's receipt by a subscriber, over every subscriber and event of a run (one row per run).\n\n", serverWhere())
	fmt.Fprintf(w, "| subscribers | E | R/s | library | median | p99 | max | received |\n|--:|--:|--:|---|--:|--:|--:|--:|\n")
	for _, rs := range all {
		for _, r := range rs {
			note := fmt.Sprintf("%d of %d", r.received, r.expected)
			if r.err != nil {
				note += ", error: " + r.err.Error()
			}
			if r.lib == subject && (r.err != nil || r.received != r.expected) {
				failed = true
			}
			fmt.Fprintf(w, "| %d | %d | %d | %s | %s | %s | %s | %s |\n", r.subs, r.evs, r.rate, r.lib, ms(r.p50), ms(r.p99), ms(r.max), note)
		}
	}
	fmt.Fprintln(w)
	return failed
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

// writeLatencySeries writes one line per event to path: its sequence number, when it was
// published (ms after the first publish), and its latency (ms) at the median, 99th percentile
// and maximum over the subscribers that received it. BENCH_LATENCY_SERIES asks for it.
func writeLatencySeries(path string, recv [][]int32, pub []int64) {
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	col := make([]int32, 0, len(recv))
	for seq := range pub {
		col = col[:0]
		for r := range recv {
			if t := recv[r][seq]; t != 0 {
				col = append(col, int32(int64(t-1)-pub[seq]))
			}
		}
		if len(col) == 0 {
			continue
		}
		slices.Sort(col)
		at := func(q float64) float64 { return float64(col[min(len(col)-1, int(q*float64(len(col))))]) / 1e3 }
		fmt.Fprintf(f, "%d %.1f %.2f %.2f %.2f\n", seq, float64(pub[seq]-pub[0])/1e3, at(0.5), at(0.99), at(1))
	}
}
