// Command bench measures httpsse against other Go SSE libraries in one run: parsing, fan-out
// over loopback and idle memory per subscriber. With -only servers it measures httpsse against
// the SSE servers deployed instead of a library (nginx with nchan, Centrifugo, Mercure), each
// run as processes of its own and set up by the bench (servers.go). See docs/performance.md in
// the repository.
//
// Usage:
//
//	go run . [-quick] [-rounds 3] [-svg ../docs/fanout.svg]
//	go run . -only servers [-servers httpsse,nginx+nchan,centrifugo,mercure] [-rounds 3]
//	go run . -only servers [-servers-protocols h1,h1tls,h2,h2c] [-servers-h2-client raw|net/http]
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"time"
)

func main() {
	var (
		childFlag = flag.Bool("child", false, "internal: run as the server process of one library")
		libFlag   = flag.String("lib", "", "internal: the library the child serves")
		quick     = flag.Bool("quick", false, "a short run (well under a minute) for CI: small corpora, few events and subscribers, one round")
		rounds    = flag.Int("rounds", 3, "rounds; each figure is the median over the rounds")
		events    = flag.Int("events", 2000, "fan-out: events published per run, at most")
		budget    = flag.Int("budget", 600000, "fan-out: deliveries per run, at most: a run publishes min(events, budget/subscribers) events")
		pRounds   = flag.Int("parse-rounds", 7, "parse: rounds (parsing is quick, so more rounds than the others)")
		subsFlag  = flag.String("subs", "100,1000", "fan-out: subscriber counts, comma-separated")
		idleSubs  = flag.Int("idle", 5000, "idle: subscribers")
		parseMiB  = flag.Int("parse-mib", 16, "parse: size of each corpus in MiB")
		only      = flag.String("only", "parse,fanout,latency,idle,probes", "tests to run, comma-separated (also: replay, servers)")
		inproc    = flag.Bool("inproc", false, "run each library's server in this process, beside the readers, instead of in a child process (the idle figures then count the readers' memory too)")
		latSubs   = flag.String("latency-subs", "1000,10000", "latency: subscriber counts, comma-separated")
		latEvents = flag.Int("latency-events", 2000, "latency: events per run")
		latRate   = flag.Int("latency-rate", 1000, "latency: events published a second")
		modesFlag = flag.String("modes", "burst,window", "fan-out: modes, comma-separated")
		svgPath   = flag.String("svg", "", "write a bar chart of fan-out deliveries/s to this SVG file")
		libsFlag  = flag.String("libs", "", "only these libraries, comma-separated (default all)")
		cpuProf   = flag.String("cpuprofile", "", "write a CPU profile of this process (parse; the fan-out and idle servers run in child processes)")

		serveFlag    = flag.Bool("serve-httpsse", false, "internal: run as the httpsse server of the servers part")
		serveAddr    = flag.String("serve-addr", "127.0.0.1:0", "internal: -serve-httpsse's cleartext address")
		serveTLSAddr = flag.String("serve-tls-addr", "", "internal: -serve-httpsse's TLS address")
		serveCert    = flag.String("serve-cert", "", "internal: -serve-httpsse's TLS certificate")
		serveKey     = flag.String("serve-key", "", "internal: -serve-httpsse's TLS key")
		serveH2C     = flag.Bool("serve-h2c", false, "internal: -serve-httpsse's cleartext listener also serves HTTP/2 with prior knowledge (h2c)")
		srvNames     = flag.String("servers", "", "servers part (-only servers): only these servers, comma-separated, of httpsse, nginx+nchan, centrifugo, mercure (default all)")
		srvSubs      = flag.Int("servers-subs", 1000, "servers part: subscribers of the fan-out and latency runs")
		srvIdle      = flag.Int("servers-idle", 5000, "servers part: subscribers of the idle-memory run (0: none)")
		srvEvents    = flag.Int("servers-events", 600, "servers part: events per fan-out run")
		srvPubs      = flag.String("servers-pubs", "1,4", "servers part: publishing connections of the fan-out runs, comma-separated")
		srvRates     = flag.String("servers-rates", "50,100", "servers part: events a second of the latency runs, comma-separated")
		srvLatSecs   = flag.Float64("servers-latency-seconds", 10, "servers part: seconds of publishing per latency run")
		srvH2        = flag.Bool("servers-h2", true, "servers part: also fan out over HTTP/2 (TLS); false drops h2 from -servers-protocols")
		srvProtos    = flag.String("servers-protocols", "h1,h2", "servers part: the fan-out's protocols, comma-separated, of h1 (HTTP/1.1), h1tls (HTTP/1.1 over TLS), h2 (HTTP/2 over TLS), h2c (HTTP/2 cleartext, prior knowledge; httpsse and nginx+nchan)")
		srvH2Client  = flag.String("servers-h2-client", "raw", "servers part: the HTTP/2 subscribers' client: raw (a Framer of golang.org/x/net in the subscriber's goroutine, as the HTTP/1.1 reader is raw) or net/http")
		srvInstall   = flag.Bool("servers-install", true, "servers part: install what is missing (apt-get for nginx and nchan, go install for Centrifugo)")
		nginxWorkers = flag.String("nginx-workers", "auto", "servers part: nginx's worker_processes (auto: one per CPU, as Debian's nginx.conf has it)")
	)
	flag.Parse()
	if *serveFlag {
		serveHTTPSSE(*serveAddr, *serveTLSAddr, *serveCert, *serveKey, *serveH2C)
		return
	}
	if *childFlag {
		childMain(*libFlag, os.Stdin, os.Stdout)
		os.Exit(0) // quit, or the parent went away: end at once, connections and all
	}
	if *inproc {
		inProcess = true
	}
	if *quick {
		*rounds, *pRounds, *events, *subsFlag, *idleSubs, *parseMiB = 1, 1, 300, "20,100", 300, 1
		*latSubs, *latEvents = "100", 200
		*srvSubs, *srvIdle, *srvEvents, *srvLatSecs = 100, 300, 200, 2
	}
	var subs []int
	for _, f := range strings.Split(*subsFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench: bad -subs %q\n", *subsFlag)
			os.Exit(2)
		}
		subs = append(subs, n)
	}
	modes := strings.Split(*modesFlag, ",")
	for _, m := range modes {
		if m != "burst" && m != "window" {
			fmt.Fprintf(os.Stderr, "bench: bad -modes %q: each must be burst or window\n", *modesFlag)
			os.Exit(2)
		}
	}
	tests := strings.Split(*only, ",")
	if *libsFlag != "" {
		var keep []*library
		for _, l := range libraries {
			if slices.Contains(strings.Split(*libsFlag, ","), l.name) {
				keep = append(keep, l)
			}
		}
		libraries = keep
	}
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		_ = pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	limit := raiseOpenFiles()

	out := os.Stdout
	logf := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
	}
	fmt.Fprintf(out, "# SSE libraries side by side\n\n")
	fmt.Fprintf(out, "%s, %s/%s, %d CPUs (GOMAXPROCS %d), open-files limit %d. Rounds: %d (parse: %d), medians. Started %s.\n\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), limit, *rounds, *pRounds,
		time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(out, "Libraries: %s.\n\n", libraryVersions())

	failed := false
	if slices.Contains(tests, "parse") {
		corpora := []*corpus{smallCorpus(*parseMiB << 20), mixedCorpus(*parseMiB << 20)}
		res := runParse(libraries, corpora, *pRounds, logf)
		failed = printParse(out, corpora, res) || failed
	}
	if slices.Contains(tests, "probes") {
		failed = printProbes(out, runProbes(libraries)) || failed
	}
	if slices.Contains(tests, "fanout") {
		res := runFanouts(libraries, subs, modes, *events, *budget, *rounds, logf)
		failed = printFanout(out, res) || failed
		if *svgPath != "" {
			if err := os.WriteFile(*svgPath, []byte(fanoutSVG(res)), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				failed = true
			}
		}
	}
	if slices.Contains(tests, "latency") {
		var ls []int
		for _, f := range strings.Split(*latSubs, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n <= 0 {
				fmt.Fprintf(os.Stderr, "bench: bad -latency-subs %q\n", *latSubs)
				os.Exit(2)
			}
			ls = append(ls, n)
		}
		failed = printLatency(out, runLatencies(libraries, ls, *latEvents, *latRate, *rounds, logf)) || failed
	}
	if slices.Contains(tests, "replay") { // not in the default -only: see replay.go
		c := replayConfigFromFlags()
		failed = printReplay(out, c, runReplay(c, nil, logf)) || failed
	}
	if slices.Contains(tests, "servers") { // not in the default -only: see servers.go
		cfg := &serversConfig{rounds: *rounds, subs: *srvSubs, idle: *srvIdle, events: *srvEvents, latSeconds: *srvLatSecs,
			install: *srvInstall, nginxWorkers: *nginxWorkers, h2Client: *srvH2Client}
		for _, p := range strings.Split(*srvProtos, ",") {
			p = strings.TrimSpace(p)
			if !slices.Contains([]string{"h1", "h1tls", "h2", "h2c"}, p) {
				fmt.Fprintf(os.Stderr, "bench: bad -servers-protocols %q\n", *srvProtos)
				os.Exit(2)
			}
			if p != "h2" || *srvH2 {
				cfg.protos = append(cfg.protos, p)
			}
		}
		if *srvH2Client != "raw" && *srvH2Client != "net/http" {
			fmt.Fprintf(os.Stderr, "bench: bad -servers-h2-client %q\n", *srvH2Client)
			os.Exit(2)
		}
		if *srvNames != "" {
			cfg.names = strings.Split(*srvNames, ",")
		}
		var err1, err2 error
		cfg.pubs, err1 = parseInts(*srvPubs)
		cfg.rates, err2 = parseInts(*srvRates)
		if err := errors.Join(err1, err2); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(2)
		}
		failed = printServers(out, cfg, runServers(cfg, logf)) || failed
	}
	if slices.Contains(tests, "idle") {
		libs := append(slices.Clone(libraries), referenceLib)
		var res []idleResult
		for _, l := range libs {
			r := runIdle(l, *idleSubs)
			logf("idle %s: %.0f B/subscriber %v", l.name, r.bytesPerSub, r.err)
			res = append(res, r)
		}
		failed = printIdle(out, res) || failed
	}
	if failed {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench: FAILED (errors, or httpsse lost events or mis-parsed; see above)")
		os.Exit(1)
	}
}

// subject is the library whose problems fail the run; the others' problems are findings.
const subject = "httpsse"

// fanoutSummary is the median over rounds for one library, mode and subscriber count.
type fanoutSummary struct {
	lib, mode            string
	subs, evs            int
	perSecond, cpuPerDel float64
	readerPerDel         float64
	// secMin, secMed and secMax are the seconds of the fastest, the median and the slowest
	// round: the spread that a median of deliveries/s hides.
	secMin, secMed, secMax float64
	lost, dropped          int64
	err                    error
}

func runFanouts(libs []*library, subs []int, modes []string, events, budget, rounds int, logf func(string, ...any)) []fanoutSummary {
	evsFor := func(s int) int { return max(1, min(events, budget/s)) }
	type key struct {
		lib  int
		mode string
		subs int
	}
	all := map[key][]fanoutResult{}
	for r := range rounds {
		for _, s := range subs {
			for _, mode := range modes {
				for i := range libs {
					li := (i + r) % len(libs)
					res := runFanout(libs[li], mode, s, evsFor(s))
					logf("fan-out round %d %s S=%d %s: %.0f deliveries/s in %.3f s, %.0f CPU-ns/delivery, lost %d, dropped %d, err %v; TCP:%v",
						r+1, mode, s, libs[li].name, res.perSecond(), res.seconds, res.cpuNs/float64(max(res.deliveries, 1)), res.lost, res.dropped, res.err, res.tcp)
					k := key{li, mode, s}
					all[k] = append(all[k], res)
				}
			}
		}
	}
	var out []fanoutSummary
	for _, mode := range modes {
		for _, s := range subs {
			for li, l := range libs {
				rs := all[key{li, mode, s}]
				sum := fanoutSummary{lib: l.name, mode: mode, subs: s, evs: evsFor(s)}
				var ps, cpu, rcpu, secs []float64
				for _, r := range rs {
					ps = append(ps, r.perSecond())
					if r.seconds > 0 {
						secs = append(secs, r.seconds)
					}
					if r.deliveries > 0 {
						cpu = append(cpu, r.cpuNs/float64(r.deliveries))
						rcpu = append(rcpu, r.readerNs/float64(r.deliveries))
					}
					sum.lost = max(sum.lost, r.lost)
					sum.dropped = max(sum.dropped, r.dropped)
					if r.err != nil && sum.err == nil {
						sum.err = r.err
					}
				}
				if sum.lost == 0 && sum.dropped == 0 && sum.err == nil {
					sum.perSecond = median(ps)
				}
				sum.cpuPerDel = median(cpu)
				sum.readerPerDel = median(rcpu)
				if len(secs) > 0 {
					sum.secMin, sum.secMed, sum.secMax = slices.Min(secs), median(secs), slices.Max(secs)
				}
				out = append(out, sum)
			}
		}
	}
	return out
}

// ratio formats v against best; "" when there is nothing to compare.
func ratio(v, best float64) string {
	if v == 0 || best == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", v/best)
}

func printParse(w io.Writer, corpora []*corpus, res []parseResult) (failed bool) {
	fmt.Fprintf(w, "## Parse\n\nEach corpus is read from memory in reads of at most 32 KiB; every library's events, names, ids and data are checked against the corpus's own. MB/s is wall-clock; CPU MB/s divides by the process's CPU time instead (GC and any goroutines of the library included, time taken by other processes on a shared machine not). Ratios are of MB/s to the best other library that parsed the corpus exactly.\n\n")
	for _, c := range corpora {
		fmt.Fprintf(w, "### %s: %.1f MiB, %d events, %d data bytes\n\n", c.name, float64(len(c.stream))/(1<<20), c.events, c.dataBytes)
		fmt.Fprintf(w, "| library | MB/s | CPU MB/s | ns/event | allocs/event | B/event | vs best peer | vs best peer, CPU | parsed correctly |\n|---|--:|--:|--:|--:|--:|--:|--:|---|\n")
		best, bestCPU := 0.0, 0.0
		for _, r := range res {
			if r.corpus == c.name && r.lib != subject && r.problem == "" {
				best = max(best, r.mbps)
				bestCPU = max(bestCPU, r.cpuMBps)
			}
		}
		for _, r := range res {
			if r.corpus != c.name {
				continue
			}
			ok, rt, rtCPU := "yes", ratio(r.mbps, best), ratio(r.cpuMBps, bestCPU)
			if r.problem != "" {
				ok, rt, rtCPU = "**no**: "+r.problem, "not ranked", "not ranked"
				if r.lib == subject {
					failed = true
				}
			}
			fmt.Fprintf(w, "| %s | %.1f | %.1f | %.0f | %.2f | %.0f | %s | %s | %s |\n", r.lib, r.mbps, r.cpuMBps, r.nsPerEvent, r.allocsPerEvent, r.bytesPerEvent, rt, rtCPU, ok)
		}
		fmt.Fprintln(w)
	}
	return failed
}

func printFanout(w io.Writer, res []fanoutSummary) (failed bool) {
	if len(res) == 0 {
		return false
	}
	fmt.Fprintf(w, "## Fan-out\n\n%s on 127.0.0.1; the same raw HTTP/1.1 reader (hand-written chunked decoding) for every subscriber. Events of about 100 bytes (E per run in the table); burst: published as fast as the library accepts them; window: at most %d events ahead of the slowest subscriber. Deliveries/s counts from the first publish to the last event received (the median round); the seconds of the fastest, the median and the slowest round follow, and slowest/median is their spread. CPU is the server process's (user+system, getrusage); reader CPU is the measuring process's, shown to tell when the readers, not the server, are the limit. A run with any lost event or dropped subscriber scores 0.\n\n", serverWhere(), window)
	fmt.Fprintf(w, "| mode | subscribers | E | library | deliveries/s | s min | s median | s max | slowest/median | CPU-ns/delivery | reader CPU-ns/delivery | lost events | dropped subscribers | vs best peer |\n|---|--:|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range res {
		best := 0.0
		for _, o := range res {
			if o.mode == r.mode && o.subs == r.subs && o.lib != subject {
				best = max(best, o.perSecond)
			}
		}
		note := ratio(r.perSecond, best)
		if r.err != nil {
			note = "error: " + r.err.Error()
			failed = true
		} else if (r.lost > 0 || r.dropped > 0) && r.lib == subject {
			failed = true
		}
		spread := "–"
		if r.secMed > 0 {
			spread = fmt.Sprintf("%.2f×", r.secMax/r.secMed)
		}
		fmt.Fprintf(w, "| %s | %d | %d | %s | %.0f | %.4f | %.4f | %.4f | %s | %.0f | %.0f | %d | %d | %s |\n", r.mode, r.subs, r.evs, r.lib, r.perSecond, r.secMin, r.secMed, r.secMax, spread, r.cpuPerDel, r.readerPerDel, r.lost, r.dropped, note)
	}
	fmt.Fprintln(w)
	return failed
}

func printIdle(w io.Writer, res []idleResult) (failed bool) {
	if len(res) == 0 {
		return false
	}
	fmt.Fprintf(w, "## Idle\n\n%d subscribers connected to the library's server, in its own process, each sent one event, then idle. Memory is the server process's (HeapInuse+StackInuse after GC, less the same before any subscriber) per subscriber.\n\n", res[0].subs)
	fmt.Fprintf(w, "| library | bytes/subscriber | heap | stack | goroutines/subscriber | vs best peer |\n|---|--:|--:|--:|--:|--:|\n")
	best := 0.0
	for _, r := range res {
		if r.lib != subject && r.lib != referenceLib.name && r.err == nil && (best == 0 || r.bytesPerSub < best) {
			best = r.bytesPerSub
		}
	}
	for _, r := range res {
		if r.err != nil {
			fmt.Fprintf(w, "| %s | | | | | error: %v |\n", r.lib, r.err)
			failed = true
			continue
		}
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.0f | %.2f | %s |\n", r.lib, r.bytesPerSub, r.heapPerSub, r.stackPerSub, r.goroutines, ratio(r.bytesPerSub, best))
	}
	fmt.Fprintln(w)
	return failed
}
