// Command bench measures what redisstream costs its users: three processes with -subs
// subscribers each behind redisstream, against one process with three times as many
// subscribers on a plain [httpsse.Route] with [httpsse.Replay] and no Redis; and, as the
// floor of the Redis hop, the bare round trip of one event through Redis (XADD on one
// connection, returned by the XREAD blocked on another).
//
//	go run ./cmd/bench                       # from the redisstream directory
//	go run ./cmd/bench -subs 1000 -rounds 5
//
// Each round measures three modes in turn, each with processes of its own (this command
// again, with -child):
//
//   - roundtrip: one process times -roundtrips round trips, one event at a time;
//   - single: one process serves 3×subs subscribers and publishes to its Route;
//   - redisstream: three processes serve subs subscribers each, and the first publishes
//     (PublishEvent: an XADD), so every event goes through Redis to all three.
//
// The subscribers are HTTP connections on loopback, read in the serving process: -probes
// per process decode the events with httpsse.Dial and time them, the others count them
// without parsing. Two phases in single and redisstream:
//
//   - throughput: -events events published as fast as -publishers goroutines can; the
//     figure is deliveries per second: events × subscribers, divided by the time from the
//     first publish to the last delivery, to every subscriber;
//   - latency: -latency-events events published at -rate per second; the figures are the
//     median and 99th percentile of the time from just before the publish to the decoding
//     by a probe, over every event and every probe.
//
// It prints each round's figures with the load average, then the median (min–max) over the
// rounds, and checks them against the targets: redisstream's deliveries per second at least
// 0.8 of single's, and its p99 within 2 ms of single's p99 plus the round trip's.
//
// Without -redis it starts a redis-server of its own (no persistence) on a free port. With
// BENCH_CPUPROFILE=dir in the environment each process writes its CPU profile there.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

// result is what a process reports: that it is ready ("ready"), expecting a phase
// ("expecting"), done publishing ("published"), or what its subscribers received in a
// phase ("phase").
type result struct {
	Kind     string
	Count    int     // events received by every subscriber
	FirstPub int64   // unix ns of the first publish of the phase
	LastRecv int64   // unix ns of the last delivery
	Lat      []int64 // latencies in ns (latency phase, roundtrip)
	Err      string
}

// figures are one mode's figures of a round.
type figures struct {
	perSecond float64 // deliveries per second
	p50, p99  float64 // ms
}

func main() {
	subs := flag.Int("subs", 1000, "subscribers per redisstream process (single has three times as many)")
	events := flag.Int("events", 3000, "events of the throughput phase")
	publishers := flag.Int("publishers", 8, "publishing goroutines of the throughput phase")
	latencyEvents := flag.Int("latency-events", 500, "events of the latency phase")
	rate := flag.Int("rate", 50, "events per second of the latency phase")
	roundtrips := flag.Int("roundtrips", 2000, "round trips of mode roundtrip")
	rounds := flag.Int("rounds", 5, "rounds of the three modes")
	redisAddr := flag.String("redis", "", "Redis address (default: start a redis-server of its own)")
	probes := flag.Int("probes", 10, "of the subscribers of a process, how many decode the events and time them (the others count them without parsing)")
	timeout := flag.Duration("timeout", 2*time.Minute, "how long a phase may take")
	child := flag.String("child", "", "run as a process of the measure: mode,index,stream (used by the command itself)")
	flag.Parse()

	if *child != "" {
		runChild(*child, *redisAddr, *subs, *probes, *timeout)
		return
	}
	stopRedis := func() {}
	if *redisAddr == "" {
		addr, stop, err := startRedis()
		if err != nil {
			log.Fatal(err)
		}
		stopRedis = stop
		defer stop()
		*redisAddr = addr
	}
	fmt.Printf("Redis at %s; %s; %d CPUs\n", *redisAddr, runtime.Version(), runtime.NumCPU())
	fmt.Printf("single: 1 process, %d subscribers; redisstream: 3 processes, %d subscribers each; %d probes per process\n", 3**subs, *subs, *probes)
	fmt.Printf("throughput: %d events, %d publishing goroutines; latency: %d events at %d/s; roundtrip: %d\n\n", *events, *publishers, *latencyEvents, *rate, *roundtrips)

	var rt, single, rs, rsPub []figures
	fail := func(format string, args ...interface{}) {
		stopRedis() // log.Fatalf runs no deferred call
		log.Fatalf(format, args...)
	}
	for round := 1; round <= *rounds; round++ {
		stream := fmt.Sprintf("httpsse:bench:%d:%d", os.Getpid(), round)
		load := loadAverage()
		f, err := measureRoundTrip(stream+":rt", *redisAddr, *roundtrips)
		if err != nil {
			fail("round %d, roundtrip: %v", round, err)
		}
		rt = append(rt, f)
		fmt.Printf("round %d  load %s\n  roundtrip                                median %6.2f ms   p99 %6.2f ms\n", round, load, f.p50, f.p99)
		for _, mode := range []string{"single", "redisstream", "redisstream-publisher"} {
			f, err := measure(mode, stream+":"+mode, *redisAddr, *subs, *probes, *events, *publishers, *latencyEvents, *rate)
			if err != nil {
				fail("round %d, %s: %v", round, mode, err)
			}
			fmt.Printf("  %-21s %10.0f deliveries/s   median %6.2f ms   p99 %6.2f ms\n", mode, f.perSecond, f.p50, f.p99)
			switch mode {
			case "single":
				single = append(single, f)
			case "redisstream":
				rs = append(rs, f)
			default:
				rsPub = append(rsPub, f)
			}
		}
		fmt.Printf("  load after the round %s\n", loadAverage())
	}

	fmt.Printf("\nover %d rounds, median (min–max):\n", *rounds)
	fmt.Printf("%-21s median %s ms, p99 %s ms\n", "roundtrip", spread(rt, func(f figures) float64 { return f.p50 }), spread(rt, func(f figures) float64 { return f.p99 }))
	for _, m := range []struct {
		name string
		f    []figures
	}{{"single", single}, {"redisstream", rs}, {"redisstream-publisher", rsPub}} {
		fmt.Printf("%-21s deliveries/s %s, median %s ms, p99 %s ms\n", m.name,
			spread(m.f, func(f figures) float64 { return f.perSecond }),
			spread(m.f, func(f figures) float64 { return f.p50 }),
			spread(m.f, func(f figures) float64 { return f.p99 }))
	}
	// Round by round: each ratio and margin compares figures measured a minute apart at most.
	for _, m := range []struct {
		name string
		f    []figures
	}{{"redisstream", rs}, {"redisstream-publisher", rsPub}} {
		var ratio, margin []figures
		for i := range m.f {
			ratio = append(ratio, figures{perSecond: m.f[i].perSecond / single[i].perSecond})
			margin = append(margin, figures{p99: m.f[i].p99 - (single[i].p99 + rt[i].p99)})
		}
		fmt.Printf("%s / single, deliveries/s, round by round: %s (target: at least 0.8)\n", m.name, spread(ratio, func(f figures) float64 { return f.perSecond }))
		fmt.Printf("%s p99 - (single p99 + roundtrip p99), round by round: %s ms (target: at most 2)\n", m.name, spread(margin, func(f figures) float64 { return f.p99 }))
	}
}

// spread formats the median, min and max of one figure of the rounds.
func spread(rounds []figures, of func(figures) float64) string {
	var v []float64
	for _, f := range rounds {
		v = append(v, of(f))
	}
	slices.Sort(v)
	return fmt.Sprintf("%.4g (%.4g–%.4g)", v[len(v)/2], v[0], v[len(v)-1])
}

// loadAverage returns the load averages of the machine (Linux), or "?".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// percentiles returns the median and 99th percentile of latencies in ns, in ms.
func percentiles(lat []int64) (p50, p99 float64) {
	if len(lat) == 0 {
		return 0, 0
	}
	slices.Sort(lat)
	return float64(lat[len(lat)/2]) / 1e6, float64(lat[len(lat)*99/100]) / 1e6
}

// proc is a process of the measure.
type proc struct {
	cmd *exec.Cmd
	in  *bufio.Writer
	out *bufio.Scanner
}

func (p *proc) send(format string, args ...interface{}) {
	fmt.Fprintf(p.in, format+"\n", args...)
	p.in.Flush()
}

func (p *proc) receive() (result, error) {
	if !p.out.Scan() {
		return result{}, fmt.Errorf("process ended: %v", p.out.Err())
	}
	var r result
	if err := json.Unmarshal(p.out.Bytes(), &r); err != nil {
		return r, fmt.Errorf("process said %q", p.out.Text())
	}
	if r.Err != "" {
		return r, fmt.Errorf("process: %s", r.Err)
	}
	return r, nil
}

// start starts the processes of a mode and waits until they are ready.
func start(mode, stream, redisAddr string, n, subs, probes int) ([]*proc, func(), error) {
	self, err := os.Executable()
	if err != nil {
		return nil, nil, err
	}
	var procs []*proc
	stop := func() {
		for _, p := range procs {
			p.send("quit")
			_ = p.cmd.Wait()
		}
	}
	for i := range n {
		cmd := exec.Command(self, "-child", fmt.Sprintf("%s,%d,%s", mode, i, stream), "-redis", redisAddr, "-subs", fmt.Sprint(subs), "-probes", fmt.Sprint(probes))
		cmd.Stderr = os.Stderr
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			stop()
			return nil, nil, err
		}
		p := &proc{cmd: cmd, in: bufio.NewWriter(stdin), out: bufio.NewScanner(stdout)}
		p.out.Buffer(nil, 64<<20)
		procs = append(procs, p)
		if _, err := p.receive(); err != nil { // ready
			stop()
			return nil, nil, err
		}
	}
	return procs, stop, nil
}

// measureRoundTrip runs mode roundtrip.
func measureRoundTrip(stream, redisAddr string, n int) (figures, error) {
	procs, stop, err := start("roundtrip", stream, redisAddr, 1, 0, 0)
	if err != nil {
		return figures{}, err
	}
	defer stop()
	procs[0].send("roundtrip %d", n)
	r, err := procs[0].receive()
	if err != nil {
		return figures{}, err
	}
	p50, p99 := percentiles(r.Lat)
	return figures{p50: p50, p99: p99}, nil
}

// measure runs mode single (one process with 3×subs subscribers, which publishes),
// redisstream (three processes with subs each, the first of which publishes) or
// redisstream-publisher (the same three, and a fourth process, without subscribers, that
// publishes): the throughput phase, then the latency phase.
func measure(mode, stream, redisAddr string, subs, probes, events, publishers, latencyEvents, rate int) (figures, error) {
	n := 3
	if mode == "single" {
		n, subs, probes = 1, 3*subs, 3*probes
	}
	child := mode
	if mode == "redisstream-publisher" {
		child = "redisstream"
	}
	procs, stop, err := start(child, stream, redisAddr, n, subs, probes)
	if err != nil {
		return figures{}, err
	}
	defer stop()
	receivers, publisher := procs, procs[0]
	if mode == "redisstream-publisher" {
		more, stopMore, err := start(child, stream, redisAddr, 1, 0, 0)
		if err != nil {
			return figures{}, err
		}
		defer stopMore()
		publisher = more[0]
		procs = append(procs, publisher)
	}
	phase := func(name string, count int, publish string) ([]result, error) {
		for _, p := range receivers {
			p.send("expect %s %d", name, count)
			if _, err := p.receive(); err != nil {
				return nil, err
			}
		}
		publisher.send("%s %s %d", publish, name, count)
		var rs []result
		for i, p := range procs {
			// A receiver reports its phase, the publisher that it published.
			want := 0
			if i < len(receivers) {
				want++
			}
			if p == publisher {
				want++
			}
			for range want {
				r, err := p.receive()
				if err != nil {
					return nil, err
				}
				if r.Kind == "phase" {
					rs = append(rs, r)
				}
			}
		}
		return rs, nil
	}
	rs, err := phase("throughput", events, fmt.Sprintf("burst %d", publishers))
	if err != nil {
		return figures{}, err
	}
	first, last := rs[0].FirstPub, int64(0)
	for _, r := range rs {
		first = min(first, r.FirstPub)
		last = max(last, r.LastRecv)
	}
	f := figures{perSecond: float64(events) * float64(len(receivers)*subs) / (float64(last-first) / 1e9)}
	rs, err = phase("latency", latencyEvents, fmt.Sprintf("paced %d", rate))
	if err != nil {
		return figures{}, err
	}
	var lat []int64
	for _, r := range rs {
		lat = append(lat, r.Lat...)
	}
	f.p50, f.p99 = percentiles(lat)
	return f, nil
}

// startRedis starts a redis-server on a free loopback port, with a temporary directory.
func startRedis() (addr string, stop func(), err error) {
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("redis-server is not installed (Debian: apt-get install redis-server); or pass -redis host:port")
	}
	dir, err := os.MkdirTemp("", "httpsse-bench-redis-")
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr = l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(path, "--port", port, "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no",
		"--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			fmt.Fprintf(conn, "PING\r\n")
			line, _ := bufio.NewReader(conn).ReadString('\n')
			conn.Close()
			if strings.HasPrefix(line, "+PONG") {
				return addr, stop, nil
			}
		}
		if time.Since(start) > 10*time.Second {
			stop()
			return "", nil, fmt.Errorf("redis-server on %s does not answer", addr)
		}
	}
}
