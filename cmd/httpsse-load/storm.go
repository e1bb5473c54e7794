package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reiver/go-httpsse"
)

// runStorm: a resume storm. The server (this process) serves a Route with Replay; a
// publisher publishes the events 1, 2, 3, ... steadily (ID and data the sequence number).
// cfg.subscribers subscribers in the child process connect and read, then all disconnect;
// while publishing goes on, they all reconnect at once, each with Last-Event-ID L-back,
// where L is the last event published when the parent gave the order to reconnect (the live
// edge of the reconnect). A subscriber has caught up when it has received event L; every
// sequence after the reconnect must be L-back+1, L-back+2, ... with nothing missing or
// repeated, through the final event F published after every subscriber caught up.
func runStorm(cfg config) ([]result, error) {
	const sc = "storm"
	var rs []result
	back := cfg.stormBack
	// Replay holds far more than back events, so that L-back is still retained however
	// long the reconnect takes; ReplayMaxBytes is raised so that the count, not the bytes,
	// bounds what is kept.
	replay := max(cfg.stormReplay, 2*back)
	route := httpsse.NewRoute(httpsse.Replay(replay), httpsse.ReplayMaxBytes(64<<20), httpsse.WaitForSubscriber(false))
	srv, err := startServer(route, 0, 0)
	if err != nil {
		return nil, err
	}
	defer srv.stop()

	// The publisher: one event every cfg.stormEvery, until stopped.
	var last atomic.Int64
	var pubErr firstError
	stopPub := make(chan struct{})
	var pubWG sync.WaitGroup
	pubWG.Add(1)
	go func() {
		defer pubWG.Done()
		t := time.NewTicker(cfg.stormEvery)
		defer t.Stop()
		for {
			k := int(last.Load()) + 1
			if err := publishSeq(route, k, ""); err != nil {
				pubErr.set(fmt.Errorf("PublishEvent %d: %w", k, err))
				return
			}
			last.Store(int64(k))
			if k <= back+10 {
				// The first events go at once, so that Replay holds more than back of
				// them before anyone connects, whatever the rate.
				select {
				case <-stopPub:
					return
				default:
				}
				continue
			}
			select {
			case <-stopPub:
				return
			case <-t.C:
			}
		}
	}()
	stopPublisher := func() {
		select {
		case <-stopPub:
		default:
			close(stopPub)
		}
		pubWG.Wait()
	}
	defer stopPublisher()

	// Replay holds more than back events before anyone connects.
	for last.Load() < int64(back)+10 {
		time.Sleep(10 * time.Millisecond)
	}

	c, err := startChild("storm", srv.addr,
		"-subscribers="+strconv.Itoa(cfg.subscribers),
		"-dialers="+strconv.Itoa(cfg.dialers),
		"-storm-dialers="+strconv.Itoa(cfg.stormDialers),
		"-source-addrs="+strconv.Itoa(cfg.sourceAddrs),
		"-v="+strconv.FormatBool(cfg.verbose))
	if err != nil {
		return nil, err
	}
	defer c.finish(30 * time.Second)

	r, err := c.await("connected", 5*time.Minute)
	if err != nil {
		return rs, err
	}
	rs = append(rs, check(sc, "subscribers connected", r.N == cfg.subscribers && r.Failed == 0,
		fmt.Sprintf("%d of %d (%d failed%s)", r.N, cfg.subscribers, r.Failed, errSuffix(r.Err)), strconv.Itoa(cfg.subscribers)))
	if r.N == 0 {
		return rs, fmt.Errorf("no subscriber connected")
	}
	r, err = c.await("synced", 5*time.Minute)
	if err != nil {
		return rs, err
	}
	rs = append(rs, check(sc, "every subscriber received live events in sequence before disconnecting", r.Failed == 0,
		fmt.Sprintf("%d in sequence, %d failed%s", r.N, r.Failed, errSuffix(r.Err)), "0 failed"))
	logf(cfg, "storm: %d subscribers reading; disconnecting them", r.N)

	c.tell("disconnect")
	if _, err := c.await("disconnected", 2*time.Minute); err != nil {
		return rs, err
	}
	deadline := time.Now().Add(time.Minute)
	for srv.handlersRunning() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := srv.handlersRunning(); n > 0 {
		return rs, fmt.Errorf("%d handlers still running a minute after every subscriber disconnected", n)
	}
	time.Sleep(cfg.stormPause) // publishing goes on while nobody listens

	// The storm. Measure the server process from here until every subscriber caught up.
	measureMemory() // start from a collected heap, as a long-running server would be
	rssBefore := procStatus("VmRSS")
	peakReset := resetPeakRSS()
	cpu0 := processCPU()
	childCPU0 := childCPU(c)
	L := int(last.Load())
	start := time.Now()
	c.tell("reconnect " + strconv.Itoa(L) + " " + strconv.Itoa(L-back))
	r, err = c.await("caughtup", 5*time.Minute)
	if err != nil {
		return rs, err
	}
	parentTime := time.Since(start)
	cpu := processCPU() - cpu0
	childCPU := childCPU(c) - childCPU0
	if r.Err != "" {
		fmt.Fprintf(os.Stderr, "httpsse-load storm: %s\n", r.Err)
	}
	peak := procStatus("VmHWM")
	published := int(last.Load()) - L
	rs = append(rs, check(sc, fmt.Sprintf("every subscriber came back with Last-Event-ID L-%d and received event L", back),
		r.N == cfg.subscribers && r.Failed == 0,
		fmt.Sprintf("%d of %d caught up (%d failed%s)", r.N, cfg.subscribers, r.Failed, errSuffix(r.Err)), strconv.Itoa(cfg.subscribers)))
	rs = append(rs, figure(sc, "time until every subscriber received event L (child's clock, from the order to reconnect)",
		fmt.Sprintf("%s; per subscriber %s (L = %d; %d events published meanwhile)", ms(time.Duration(r.MaxGapMS*float64(time.Millisecond))), r.Extra, L, published)))
	rs = append(rs, figure(sc, "the same, on the server's clock (order sent to report received)", ms(parentTime)))
	rs = append(rs, figure(sc, "server process CPU time during the storm (user+system, getrusage)",
		fmt.Sprintf("%s (%.2f cores on average)", ms(cpu), cpu.Seconds()/parentTime.Seconds())))
	rs = append(rs, figure(sc, "subscriber process CPU time during the storm (/proc/PID/stat)",
		fmt.Sprintf("%s (%.2f cores on average)", ms(childCPU), childCPU.Seconds()/parentTime.Seconds())))
	peakNote := "VmHWM reset at the start of the storm"
	if !peakReset {
		peakNote = "VmHWM could not be reset: the peak since the process started"
	}
	rs = append(rs, figure(sc, "server process peak RSS during the storm",
		fmt.Sprintf("%s (%s; VmRSS before the storm %s)", mib(float64(peak)), peakNote, mib(float64(rssBefore)))))

	// Keep publishing a little after the catch-up, then the final event F: every
	// subscriber must receive L-back+1 .. F exactly.
	time.Sleep(cfg.stormPause)
	stopPublisher()
	if err := pubErr.String(); err != "" {
		return rs, fmt.Errorf("publisher: %s", err)
	}
	F := int(last.Load())
	c.tell("final " + strconv.Itoa(F))
	r, err = c.await("final", 5*time.Minute)
	if err != nil {
		return rs, err
	}
	if r.Err != "" {
		fmt.Fprintf(os.Stderr, "httpsse-load storm: %s\n", r.Err)
	}
	rs = append(rs, check(sc, "every sequence exact from L-back+1 through the final event F (nothing missing or repeated)",
		r.N == cfg.subscribers && r.Failed == 0,
		fmt.Sprintf("%d of %d exact through F = %d, %d events received (%d failed%s)", r.N, cfg.subscribers, F, r.Events, r.Failed, errSuffix(r.Err)),
		fmt.Sprintf("%d events", int64(cfg.subscribers)*int64(F-(L-back)))))
	st := httpsse.StatsOf(route)
	rs = append(rs, check(sc, "Route stats: every resume found in Replay, nobody dropped",
		st.Gaps == 0 && st.DroppedBehind == 0 && st.DroppedTimeout == 0 && st.Replays == uint64(cfg.subscribers),
		fmt.Sprintf("%d replays, %d gaps, %d dropped behind, %d dropped on timeout, %d events published", st.Replays, st.Gaps, st.DroppedBehind, st.DroppedTimeout, st.Published),
		fmt.Sprintf("%d replays, 0 gaps, 0 dropped", cfg.subscribers)))
	return rs, nil
}

// childCPU returns the user and system CPU time the subscriber process has used so far,
// from /proc/PID/stat; 0 where there is no /proc.
func childCPU(c *child) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(c.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0
	}
	// The fields after the command name, which is in parentheses: utime and stime are the
	// 12th and 13th of them, in clock ticks (100 a second on Linux).
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}
