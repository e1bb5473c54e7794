// Command bench measures redisstream across processes: events per second, and latency from
// a publish in one process to delivery to the subscribers of the two others, with
// -subs subscribers (HTTP connections, httpsse clients) per process; and, as the physical
// limit, a bare go-redis loop on the same Redis: XADD in one process, a blocking XREAD loop
// in each process, and no HTTP. A third mode, local, gives the cost of the fan-out alone: each
// process publishes the same events to an [httpsse.Route] of its own (made as redisstream
// makes the one it feeds), with the same subscribers, and no Redis.
//
//	go run ./cmd/bench                       # from the redisstream directory
//	go run ./cmd/bench -subs 1000 -runs 3 -events 20000 -rate 1000
//
// Each run starts three processes (this command again, with -child) for each mode in turn
// (bare, local, redisstream), and measures two phases in each:
//
//   - throughput: the first process publishes -events events as fast as -publishers
//     goroutines can; the figure is events divided by the time from the first publish to
//     the last delivery in the slower of the two other processes (to every subscriber);
//   - latency: the first process publishes -latency-events events at -rate per second; the
//     figures are the median and 99th percentile, over every event and every subscriber of
//     the two other processes, of the time from just before the publish to the decoding of
//     the event by the subscriber.
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
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// result is what a receiving process reports for a phase.
type result struct {
	Count    int     // events received by every subscriber (or by the bare loop)
	FirstPub int64   // unix ns of the first publish of the phase
	LastRecv int64   // unix ns of the last delivery
	P50, P99 float64 // latency in milliseconds (latency phase)
	Err      string
}

func main() {
	subs := flag.Int("subs", 1000, "subscribers per process (redisstream mode)")
	events := flag.Int("events", 20000, "events of the throughput phase")
	publishers := flag.Int("publishers", 8, "publishing goroutines of the throughput phase")
	latencyEvents := flag.Int("latency-events", 2000, "events of the latency phase")
	rate := flag.Int("rate", 1000, "events per second of the latency phase")
	runs := flag.Int("runs", 3, "runs of each mode")
	redisAddr := flag.String("redis", "", "Redis address (default: start a redis-server of its own)")
	probes := flag.Int("probes", 10, "of the subscribers of a process, how many decode the events and time them (the others count them without parsing)")
	timeout := flag.Duration("timeout", time.Minute, "how long a phase may take")
	child := flag.String("child", "", "run as a process of the measure: mode,index (used by the command itself)")
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
	fmt.Printf("redisstream across 3 processes, Redis at %s, %d subscribers per process (redisstream mode)\n", *redisAddr, *subs)
	fmt.Printf("throughput: %d events, %d publishing goroutines; latency: %d events at %d/s\n\n", *events, *publishers, *latencyEvents, *rate)

	modes := []string{"bare", "local", "redisstream"}
	figures := map[string][][3]float64{} // mode → runs of (events/s, p50, p99)
	for run := 1; run <= *runs; run++ {
		for _, mode := range modes {
			stream := fmt.Sprintf("httpsse:bench:%d:%s:%d", os.Getpid(), mode, run)
			f, err := measure(mode, stream, *redisAddr, *subs, *probes, *events, *publishers, *latencyEvents, *rate)
			if err != nil {
				stopRedis() // log.Fatalf runs no deferred call
				log.Fatalf("run %d, %s: %v", run, mode, err)
			}
			fmt.Printf("run %d  %-12s %9.0f events/s   latency median %7.2f ms   p99 %7.2f ms\n", run, mode, f[0], f[1], f[2])
			figures[mode] = append(figures[mode], f)
		}
	}
	fmt.Println()
	for _, mode := range modes {
		fmt.Printf("%-12s events/s %s   median ms %s   p99 ms %s\n", mode, spread(figures[mode], 0), spread(figures[mode], 1), spread(figures[mode], 2))
	}
	for _, base := range []string{"bare", "local"} {
		var ratios [][3]float64
		for i := range figures[base] {
			ratios = append(ratios, [3]float64{figures["redisstream"][i][0] / figures[base][i][0]})
		}
		fmt.Printf("redisstream / %s, events/s, run by run: %s\n", base, spread(ratios, 0))
	}
}

// spread formats the median, min and max of one figure of the runs.
func spread(runs [][3]float64, i int) string {
	var v []float64
	for _, r := range runs {
		v = append(v, r[i])
	}
	slices.Sort(v)
	return fmt.Sprintf("%.4g (%.4g–%.4g)", v[len(v)/2], v[0], v[len(v)-1])
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

// measure runs one mode: three processes, the throughput phase, then the latency phase.
func measure(mode, stream, redisAddr string, subs, probes, events, publishers, latencyEvents, rate int) ([3]float64, error) {
	self, err := os.Executable()
	if err != nil {
		return [3]float64{}, err
	}
	var procs []*proc
	defer func() {
		for _, p := range procs {
			p.send("quit")
			_ = p.cmd.Wait()
		}
	}()
	for i := range 3 {
		cmd := exec.Command(self, "-child", fmt.Sprintf("%s,%d,%s", mode, i, stream), "-redis", redisAddr, "-subs", fmt.Sprint(subs), "-probes", fmt.Sprint(probes))
		cmd.Stderr = os.Stderr
		stdin, _ := cmd.StdinPipe()
		stdout, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			return [3]float64{}, err
		}
		p := &proc{cmd: cmd, in: bufio.NewWriter(stdin), out: bufio.NewScanner(stdout)}
		p.out.Buffer(nil, 1<<20)
		procs = append(procs, p)
		if _, err := p.receive(); err != nil { // ready
			return [3]float64{}, err
		}
	}
	phase := func(name string, n int, publish string) ([]result, error) {
		for _, p := range procs[1:] {
			p.send("expect %s %d", name, n)
			if _, err := p.receive(); err != nil {
				return nil, err
			}
		}
		if mode == "local" {
			// Without Redis, each process publishes to its own Route.
			for _, p := range procs[1:] {
				p.send("%s %s %d", publish, name, n)
			}
		}
		start := time.Now()
		procs[0].send("%s %s %d", publish, name, n)
		if _, err := procs[0].receive(); err != nil {
			return nil, err
		}
		if os.Getenv("BENCH_DEBUG") != "" {
			fmt.Printf("  %s %s: published in %v (%.0f/s)\n", mode, name, time.Since(start), float64(n)/time.Since(start).Seconds())
		}
		var rs []result
		for _, p := range procs[1:] {
			r, err := p.receive()
			if err != nil {
				return nil, err
			}
			rs = append(rs, r)
		}
		return rs, nil
	}
	rs, err := phase("throughput", events, fmt.Sprintf("burst %d", publishers))
	if err != nil {
		return [3]float64{}, err
	}
	var last int64
	for _, r := range rs {
		last = max(last, r.LastRecv)
	}
	perSecond := float64(events) / (float64(last-rs[0].FirstPub) / 1e9)
	rs, err = phase("latency", latencyEvents, fmt.Sprintf("paced %d", rate))
	if err != nil {
		return [3]float64{}, err
	}
	p50, p99 := 0.0, 0.0
	for _, r := range rs {
		p50 = math.Max(p50, r.P50)
		p99 = math.Max(p99, r.P99)
	}
	return [3]float64{perSecond, p50, p99}, nil
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
