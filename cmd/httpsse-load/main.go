// Command httpsse-load runs the httpsse reliability scenarios against a real HTTP server on
// loopback and prints a table of results. It exits with status 1 when any check fails.
//
// Usage:
//
//	go run ./cmd/httpsse-load -scenario=all
//	go run ./cmd/httpsse-load -scenario=scale -subscribers=10000 -events=100
//	go run ./cmd/httpsse-load -scenario=churn -cycles=100000
//	go run ./cmd/httpsse-load -scenario=slow -slow=100 -fast=100 -duration=5s
//	go run ./cmd/httpsse-load -scenario=storm -subscribers=10000 -storm-back=1000
//	go run ./cmd/httpsse-load -scenario=h2 -subscribers=1000 -h2-streams=100
//
// The server side (one shared [httpsse.Route] mounted on an [http.Server]) runs in this
// process; the subscribers run in a second process, this same program started again with
// the -child flag, so that the server's memory and goroutine figures hold only the server,
// and so that each process stays under the limit of open files.
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"
)

// config holds every flag; the child receives the ones it needs on its command line.
type config struct {
	scenario string
	child    string
	addr     string

	subscribers int
	events      int
	dialers     int

	cycles       int
	workers      int
	publishEvery time.Duration
	probeEvery   time.Duration

	slow          int
	fast          int
	duration      time.Duration
	eventSize     int
	writeTimeout  time.Duration
	maxQueued     int
	rcvbuf        int
	sndbuf        int
	serverTimeout time.Duration

	stormBack    int
	stormReplay  int
	stormEvery   time.Duration
	stormPause   time.Duration
	stormDialers int
	sourceAddrs  int

	h2Protocols string
	h2Streams   int
	h2Burst     int
	h2Rounds    int
	h2EventSize int
	h2Proto     string
	h2Cert      string

	h2WriteTimeout time.Duration

	verbose      bool
	memprofile   string
	cpuprofile   string
	mutexprofile string
	blockprofile string
}

func main() {
	var cfg config
	flag.StringVar(&cfg.scenario, "scenario", "all", "scenario to run: scale, churn, slow, storm, h2, or all (scale, churn and slow)")
	flag.StringVar(&cfg.child, "child", "", "internal: run as the subscriber process of this scenario")
	flag.BoolVar(&ownListener, "listener", false, "scale, churn, slow and storm: serve the streams with httpsse.NewListener instead of net/http alone")
	flag.StringVar(&cfg.addr, "addr", "", "internal: the server's address, for -child")

	flag.IntVar(&cfg.subscribers, "subscribers", 10000, "scale, storm and h2: concurrent subscribers on one shared Route (h2: 1000 unless given)")
	flag.IntVar(&cfg.events, "events", 100, "scale: events published to all subscribers")
	flag.IntVar(&cfg.dialers, "dialers", 200, "scale and slow: concurrent connection attempts")

	flag.IntVar(&cfg.cycles, "cycles", 100000, "churn: connect/receive/disconnect cycles")
	flag.IntVar(&cfg.workers, "workers", 32, "churn: concurrent cycles")
	flag.DurationVar(&cfg.publishEvery, "publish-every", time.Millisecond, "churn: interval between published events")
	flag.DurationVar(&cfg.probeEvery, "probe-every", 250*time.Millisecond, "churn: interval between fresh probe subscribers")

	flag.IntVar(&cfg.slow, "slow", 100, "slow: subscribers that stop reading")
	flag.IntVar(&cfg.fast, "fast", 100, "slow: subscribers that read at full speed")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "slow: how long events are published")
	flag.IntVar(&cfg.eventSize, "event-size", 1024, "slow: bytes of data per event")
	flag.DurationVar(&cfg.writeTimeout, "write-timeout", time.Second, "slow: the Route's WriteTimeout")
	flag.IntVar(&cfg.maxQueued, "max-queued", 256<<10, "slow: the Route's MaxQueuedBytes")
	flag.IntVar(&cfg.rcvbuf, "rcvbuf", 4096, "slow: SO_RCVBUF of the subscribers that stop reading")
	flag.IntVar(&cfg.sndbuf, "sndbuf", 64<<10, "slow: SO_SNDBUF of the server's connections (0: the kernel's autotuning, up to 4 MiB on Linux)")
	flag.DurationVar(&cfg.serverTimeout, "server-timeout", 2*time.Second, "slow: the http.Server's ReadTimeout and WriteTimeout, which must not end healthy streams")

	flag.IntVar(&cfg.stormBack, "storm-back", 1000, "storm: how many events back the returning subscribers' Last-Event-ID is")
	flag.IntVar(&cfg.stormReplay, "storm-replay", 100000, "storm: the Route's Replay(n) (at least twice -storm-back)")
	flag.DurationVar(&cfg.stormEvery, "storm-every", 10*time.Millisecond, "storm: interval between published events")
	flag.DurationVar(&cfg.stormPause, "storm-pause", time.Second, "storm: publishing time with nobody connected before the reconnect, and after the catch-up before the final event")
	flag.IntVar(&cfg.stormDialers, "storm-dialers", 0, "storm: concurrent reconnection attempts (0: all subscribers at once)")
	flag.IntVar(&cfg.sourceAddrs, "source-addrs", 8, "storm and scale: loopback source addresses the subscribers connect from (127.0.0.2, ...), each with its own ephemeral ports; 0: 127.0.0.1 only")

	flag.StringVar(&cfg.h2Protocols, "h2-protocols", "h1,h2", "h2: the protocols to run, in order: h1 (cleartext HTTP/1.1, a connection per subscriber), h2 (HTTP/2 over TLS, -h2-streams streams per connection), h2c (the same HTTP/2 without TLS)")
	flag.IntVar(&cfg.h2Streams, "h2-streams", 100, "h2: subscribers (streams) per HTTP/2 connection")
	flag.IntVar(&cfg.h2Burst, "h2-burst", 200, "h2: events published at once in each burst round")
	flag.IntVar(&cfg.h2Rounds, "h2-rounds", 5, "h2: rounds of one event, then rounds of a burst")
	flag.IntVar(&cfg.h2EventSize, "h2-event-size", 100, "h2: bytes of data per event")
	flag.DurationVar(&cfg.h2WriteTimeout, "h2-write-timeout", 0, "h2: the Route's WriteTimeout (0: its default, 10s; negative: no write deadline)")
	flag.StringVar(&cfg.h2Proto, "h2-proto", "", "internal: the protocol of the h2 subscriber process")
	flag.StringVar(&cfg.h2Cert, "h2-cert", "", "internal: the server's certificate (base64 DER) for the h2 subscriber process")

	flag.BoolVar(&cfg.verbose, "v", false, "log progress to stderr")
	flag.StringVar(&cfg.memprofile, "memprofile", "", "write a heap profile of the server process to this file at the end")
	flag.StringVar(&cfg.mutexprofile, "mutexprofile", "", "write a profile of the server process's contended mutexes (the whole run) to this file")
	flag.StringVar(&cfg.blockprofile, "blockprofile", "", "write a profile of where the server process's goroutines waited (the whole run) to this file")
	flag.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write a CPU profile of the server process (the whole run) to this file")
	flag.Parse()
	if cfg.scenario == "h2" && cfg.child == "" && !flagGiven("subscribers") {
		cfg.subscribers = 1000
	}

	// Each subscriber holds one socket in each process; the slow scenario's and the
	// others' counts are far smaller.
	need := uint64(max(cfg.subscribers, cfg.slow+cfg.fast)) + 1024
	raiseOpenFileLimit(need, cfg.verbose)
	switch {
	case cfg.child == "h2":
		need = h2OpenFiles(cfg, cfg.h2Proto)
	case cfg.scenario == "h2" && cfg.child == "":
		// HTTP/2 needs a descriptor per connection only; runH2 leaves HTTP/1.1 out, saying
		// so, when its descriptor per subscriber does not fit.
		need = h2OpenFiles(cfg, "h2")
	}
	if have := openFileLimit(); have != 0 && have < need && cfg.child == "" && cfg.scenario != "churn" {
		fmt.Fprintf(os.Stderr, "httpsse-load: %d subscribers need about %d open files in each process, and the limit is %d (the hard limit could not be raised: that needs root with CAP_SYS_RESOURCE); run with fewer -subscribers or raise the hard limit (ulimit -Hn)\n",
			max(cfg.subscribers, cfg.slow+cfg.fast), need, have)
		os.Exit(2)
	}

	if cfg.child != "" {
		if err := runChild(cfg); err != nil {
			fmt.Fprintf(os.Stderr, "httpsse-load child %s: %v\n", cfg.child, err)
			os.Exit(1)
		}
		return
	}

	var scenarios []string
	switch cfg.scenario {
	case "all":
		scenarios = []string{"scale", "churn", "slow"}
	case "scale", "churn", "slow", "storm", "h2":
		scenarios = []string{cfg.scenario}
	default:
		fmt.Fprintf(os.Stderr, "httpsse-load: unknown -scenario %q (want scale, churn, slow, storm, h2 or all)\n", cfg.scenario)
		os.Exit(2)
	}

	if cfg.cpuprofile != "" {
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "httpsse-load: %v\n", err)
			os.Exit(2)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "httpsse-load: %v\n", err)
			os.Exit(2)
		}
	}
	if cfg.mutexprofile != "" {
		runtime.SetMutexProfileFraction(1)
	}
	if cfg.blockprofile != "" {
		runtime.SetBlockProfileRate(int(time.Millisecond)) // waits of a millisecond or more, and a sample of shorter ones
	}
	var results []result
	for _, name := range scenarios {
		logf(cfg, "scenario %s: start", name)
		start := time.Now()
		var rs []result
		var err error
		switch name {
		case "scale":
			rs, err = runScale(cfg)
		case "churn":
			rs, err = runChurn(cfg)
		case "slow":
			rs, err = runSlow(cfg)
		case "storm":
			rs, err = runStorm(cfg)
		case "h2":
			rs, err = runH2(cfg)
		}
		if err != nil {
			rs = append(rs, result{scenario: name, check: "scenario ran to the end", value: err.Error(), ok: false})
		}
		rs = append(rs, result{scenario: name, check: "wall time", value: time.Since(start).Round(time.Millisecond).String(), ok: true, info: true})
		results = append(results, rs...)
		if cfg.verbose {
			m := measureMemory()
			logf(cfg, "scenario %s: done in %v; live heap now %d bytes, heap in use %d, goroutines %d", name, time.Since(start).Round(time.Millisecond), m.heapAlloc, m.heapInuse, runtime.NumGoroutine())
		}
	}
	if cfg.cpuprofile != "" {
		pprof.StopCPUProfile()
	}
	if cfg.memprofile != "" {
		if err := writeHeapProfile(cfg.memprofile); err != nil {
			fmt.Fprintf(os.Stderr, "httpsse-load: %v\n", err)
		}
	}
	if cfg.mutexprofile != "" {
		if err := writeProfile("mutex", cfg.mutexprofile); err != nil {
			fmt.Fprintf(os.Stderr, "httpsse-load: %v\n", err)
		}
	}
	if cfg.blockprofile != "" {
		if err := writeProfile("block", cfg.blockprofile); err != nil {
			fmt.Fprintf(os.Stderr, "httpsse-load: %v\n", err)
		}
	}
	if !printResults(os.Stdout, results) {
		os.Exit(1)
	}
}

// result is one row of the table: a check with its measured value and its limit, or a
// figure reported for information (info).
type result struct {
	scenario string
	check    string
	value    string
	limit    string
	ok       bool
	info     bool
}

func check(scenario, name string, ok bool, value, limit string) result {
	return result{scenario: scenario, check: name, value: value, limit: limit, ok: ok}
}

func figure(scenario, name, value string) result {
	return result{scenario: scenario, check: name, value: value, ok: true, info: true}
}

// printResults prints the table and reports whether every check passed.
func printResults(f *os.File, results []result) bool {
	fmt.Fprintf(f, "\nhttpsse-load results (GOMAXPROCS=%d, %s)\n\n", numCPU(), time.Now().UTC().Format(time.RFC3339))
	tw := tabwriter.NewWriter(f, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tCHECK\tVALUE\tLIMIT\tRESULT")
	pass, fail := 0, 0
	for _, r := range results {
		status := "PASS"
		switch {
		case r.info:
			status = "-"
		case !r.ok:
			status = "FAIL"
			fail++
		default:
			pass++
		}
		limit := r.limit
		if limit == "" {
			limit = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.scenario, r.check, oneLine(r.value), limit, status)
	}
	tw.Flush()
	fmt.Fprintf(f, "\n%d passed, %d failed\n", pass, fail)
	return fail == 0
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 160 {
		s = s[:157] + "..."
	}
	return s
}

func logf(cfg config, format string, args ...any) {
	if cfg.verbose {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
}

// flagGiven reports whether the flag was set on the command line.
func flagGiven(name string) bool {
	given := false
	flag.Visit(func(f *flag.Flag) {
		if f.Name == name {
			given = true
		}
	})
	return given
}

func writeProfile(name, file string) error {
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	return pprof.Lookup(name).WriteTo(f, 0)
}

func writeHeapProfile(name string) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.WriteHeapProfile(f)
}
