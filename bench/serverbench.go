package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/reiver/go-httpsse"
)

// serversConfig is the servers part's configuration, from the -servers-* flags.
type serversConfig struct {
	names      []string
	rounds     int
	subs       int     // subscribers of the fan-out and latency runs
	idle       int     // subscribers of the idle run
	events     int     // events per fan-out run
	pubs       []int   // publishing connections of the fan-out runs
	rates      []int   // events a second of the latency runs
	latSeconds float64 // seconds of publishing per latency run
	// protos are the fan-out's protocols: h1 (HTTP/1.1, which the latency runs use too),
	// h1tls (HTTP/1.1 over TLS), h2 (HTTP/2 over TLS), h2c (HTTP/2 in cleartext).
	protos       []string
	h2Client     string // the HTTP/2 subscribers' client: "raw" (h2Reader) or "net/http"
	install      bool
	nginxWorkers string
}

// clientTLS is the subscribers' and publishers' TLS configuration. The servers' certificates
// are self-signed ones that the bench made a moment before for 127.0.0.1, so they are not
// verified.
func clientTLS([]byte) *tls.Config {
	return &tls.Config{InsecureSkipVerify: true} //nolint:gosec // loopback, a certificate the bench made
}

// serveHTTPSSE is the httpsse server of the servers part (-serve-httpsse): one shared Route at
// GET /events, and POST /publish, whose body becomes the data of one event on it. With tlsAddr
// it also serves TLS there, HTTP/2 and HTTP/1.1.
//
// With BENCH_SERVE_CPUPROFILE set, it writes a CPU profile of its whole life there, and with
// BENCH_SERVE_TRACE an execution trace, both ended by the interrupt that stops it.
func serveHTTPSSE(addr, tlsAddr, certFile, keyFile string, h2c bool) {
	raiseOpenFiles()
	if os.Getenv("BENCH_SERVE_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 1
	}
	if n, err := strconv.Atoi(os.Getenv("BENCH_SERVE_GOMAXPROCS")); err == nil && n > 0 {
		runtime.GOMAXPROCS(n) // for experiments: the default is the machine's CPUs
	}
	var stops []func()
	if path := os.Getenv("BENCH_SERVE_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if path := os.Getenv("BENCH_SERVE_TRACE"); path != "" {
		if f, err := os.Create(path); err == nil && trace.Start(f) == nil {
			stops = append(stops, func() { trace.Stop(); f.Close() })
		}
	}
	if path := os.Getenv("BENCH_SERVE_HEAPPROFILE"); path != "" {
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			for range usr1 {
				writeHeapProfile(path)
			}
		}()
	}
	sig := make(chan os.Signal, 1) // signal.Notify does not block: one is enough
	signal.Notify(sig, os.Interrupt)
	go func() {
		<-sig
		for _, stop := range stops {
			stop()
		}
		os.Exit(0)
	}()
	route := httpsse.NewRoute(httpsse.WaitForSubscriber(false))
	mux := http.NewServeMux()
	mux.Handle("GET /events", route)
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := route.PublishEvent(func(ew httpsse.EventWriter) error { return ew.WriteData(string(b)) }); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	errs := make(chan error, 2) // one for each listener
	go func() {
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		if h2c {
			srv.Protocols = new(http.Protocols)
			srv.Protocols.SetHTTP1(true)
			srv.Protocols.SetUnencryptedHTTP2(true)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			errs <- err
			return
		}
		// The listener of httpsse's own serves the HTTP/1.1 event streams, net/http the rest
		// (the publishes, h2c); BENCH_SERVE_NETHTTP=1 leaves them all to net/http, for
		// comparison.
		if os.Getenv("BENCH_SERVE_NETHTTP") == "" {
			ln = httpsse.NewListener(ln, srv)
		}
		errs <- srv.Serve(ln)
	}()
	if tlsAddr != "" {
		go func() {
			srv := &http.Server{Addr: tlsAddr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
			errs <- srv.ListenAndServeTLS(certFile, keyFile)
		}()
	}
	fmt.Fprintln(os.Stderr, "bench -serve-httpsse:", <-errs)
	os.Exit(1)
}

// dataScanner finds events in an event stream and reads from each event's data lines (their
// first 4 KiB) either a sequence number ("seq":N anywhere in the line, so inside a server's own JSON envelope too) or
// the marker "warm".
type dataScanner struct {
	line    []byte
	seq     int
	hasSeq  bool
	hasWarm bool
}

var seqKey = []byte(`"seq":`)

func (s *dataScanner) feed(p []byte, onSeq func(int), onWarm func()) {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i]
		}
		if len(s.line)+len(seg) <= 4096 {
			s.line = append(s.line, seg...)
		}
		if i < 0 {
			return
		}
		p = p[i+1:]
		l := bytes.TrimSuffix(s.line, []byte("\r"))
		s.line = s.line[:0]
		if len(l) == 0 {
			switch {
			case s.hasSeq:
				onSeq(s.seq)
			case s.hasWarm:
				onWarm()
			}
			s.hasSeq, s.hasWarm = false, false
			continue
		}
		if !bytes.HasPrefix(l, []byte("data:")) {
			continue
		}
		if j := bytes.Index(l, seqKey); j >= 0 {
			n := 0
			for _, c := range l[j+len(seqKey):] {
				if c < '0' || c > '9' {
					break
				}
				n = n*10 + int(c-'0')
			}
			s.seq, s.hasSeq = n, true
		} else if bytes.Contains(l, []byte(`"warm"`)) {
			s.hasWarm = true
		}
	}
}

// subSet is a set of subscribers to one server, each read by a goroutine of its own.
type subSet struct {
	n       int
	closers []func()
	wg      sync.WaitGroup
	warmed  []bool // by reader; each reader writes its own
	warm    atomic.Int64
	ended   atomic.Int64
	firstEr atomic.Pointer[error] // the first reader's error
	onSeq   atomic.Pointer[func(r, seq int)]
	// writes counts the server's writes that the readers saw: chunks of HTTP/1.1 responses,
	// DATA frames of HTTP/2 ones (not with net/http's client, which hides them).
	writes atomic.Int64
}

// connectSubs opens n subscriptions to p with the protocol proto (h2c and h2 with the
// client h2Client), and starts reading them.
func connectSubs(p *serverProc, n int, proto, h2Client string, bufSize int) (*subSet, error) {
	ss := &subSet{n: n, closers: make([]func(), n), warmed: make([]bool, n)}
	noop := func(int, int) {}
	ss.onSeq.Store(&noop)
	bodies := make([]func(func([]byte)) error, n)
	var next atomic.Int64
	var dialErr atomic.Value
	var dwg sync.WaitGroup
	for range 32 {
		dwg.Add(1)
		go func() {
			defer dwg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || dialErr.Load() != nil {
					return
				}
				if proto == "h2c" || proto == "h2" && h2Client == "raw" {
					hr, err := dialH2Raw(p.subAddr, p.subPath, proto == "h2", bufSize)
					if err != nil {
						dialErr.Store(fmt.Errorf("subscriber %d: %w", i, err))
						return
					}
					hr.frames = &ss.writes
					ss.closers[i] = func() { hr.conn.Close() }
					bodies[i] = hr.run
					continue
				}
				if proto == "h2" {
					body, closeFn, err := dialH2Sub(p.subAddr, p.subPath)
					if err != nil {
						dialErr.Store(fmt.Errorf("subscriber %d: %w", i, err))
						return
					}
					ss.closers[i] = closeFn
					bodies[i] = func(fn func([]byte)) error {
						buf := make([]byte, 16<<10)
						for {
							k, err := body.Read(buf)
							if k > 0 {
								fn(buf[:k])
							}
							if err != nil {
								return err
							}
						}
					}
					continue
				}
				rr, err := dialRawTLS(p.subAddr, p.subPath, bufSize, proto == "h1tls")
				if err != nil {
					dialErr.Store(fmt.Errorf("subscriber %d: %w", i, err))
					return
				}
				rr.chunks = &ss.writes
				ss.closers[i] = func() { rr.conn.Close() }
				bodies[i] = rr.run
			}
		}()
	}
	dwg.Wait()
	if err, _ := dialErr.Load().(error); err != nil {
		ss.close()
		return nil, err
	}
	for i := range n {
		ss.wg.Add(1)
		go func() {
			defer ss.wg.Done()
			var sc dataScanner
			onWarm := func() {
				if !ss.warmed[i] {
					ss.warmed[i] = true
					ss.warm.Add(1)
				}
			}
			onSeq := func(seq int) { (*ss.onSeq.Load())(i, seq) }
			err := bodies[i](func(b []byte) { sc.feed(b, onSeq, onWarm) })
			if err != nil {
				ss.firstEr.CompareAndSwap(nil, &err)
			}
			ss.ended.Add(1)
		}()
	}
	return ss, nil
}

func (ss *subSet) firstErr() error {
	if p := ss.firstEr.Load(); p != nil {
		return *p
	}
	return nil
}

func (ss *subSet) close() {
	for _, c := range ss.closers {
		if c != nil {
			c()
		}
	}
	ss.wg.Wait()
}

// dialH2Sub opens one subscription over a TLS connection of its own, with HTTP/2, as a browser
// tab does.
func dialH2Sub(addr, path string) (io.Reader, func(), error) {
	tr := &http.Transport{TLSClientConfig: clientTLS(nil), ForceAttemptHTTP2: true, DisableCompression: true, MaxConnsPerHost: 1}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, "https://"+addr+path, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return nil, nil, err
	}
	closeFn := func() { resp.Body.Close(); tr.CloseIdleConnections() }
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
		closeFn()
		return nil, nil, fmt.Errorf("response %s over %s, want 200 over HTTP/2", resp.Status, resp.Proto)
	}
	return resp.Body, closeFn, nil
}

// warmSubs publishes warm-up events until every subscriber has had one.
func warmSubs(pb *publisher, ss *subSet, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for ss.warm.Load() < int64(ss.n) {
		if time.Now().After(deadline) {
			return fmt.Errorf("warm-up: %d of %d subscribers ready after %v (%d ended, first error %v)", ss.warm.Load(), ss.n, timeout, ss.ended.Load(), ss.firstErr())
		}
		if err := pb.publish(`{"warm":1}`); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // let the last warm-up events drain
	return nil
}

// serverFanout is one fan-out run.
type serverFanout struct {
	deliveries int64
	seconds    float64
	cpu        time.Duration // the server's processes
	benchCPU   time.Duration // this process: readers and publishers
	writes     int64         // the server's writes that the readers saw; 0 when unknown
	lost       int64
	err        error
}

// runServerFanout publishes evs events (sequence numbers base to base+evs-1) over pubs
// keep-alive connections at once, each as fast as the server answers, and waits until every
// subscriber has every event or nothing arrives for 5 seconds.
func runServerFanout(p *serverProc, ss *subSet, base, evs, pubs int) (res serverFanout) {
	n := ss.n
	words := (evs + 63) / 64
	seen := make([]uint64, n*words)
	counts := make([]int32, n)
	var delivered, finished, last atomic.Int64
	onSeq := func(r, seq int) {
		i := seq - base
		if i < 0 || i >= evs {
			return
		}
		w := &seen[r*words+i/64]
		if *w&(1<<(i%64)) != 0 {
			return
		}
		*w |= 1 << (i % 64)
		counts[r]++
		delivered.Add(1)
		if counts[r] == int32(evs) {
			last.Store(time.Now().UnixNano())
			finished.Add(1)
		}
	}
	ss.onSeq.Store(&onSeq)
	noop := func(int, int) {}
	defer ss.onSeq.Store(&noop)

	pbs := make([]*publisher, pubs)
	for k := range pbs {
		pbs[k] = newPublisher(p, nil)
		defer pbs[k].close()
		if err := pbs[k].publish(`{"warm":1}`); err != nil { // opens its connection
			res.err = err
			return res
		}
	}
	time.Sleep(100 * time.Millisecond)
	st0, err := readProcStats(p.pid())
	if err != nil {
		res.err = err
		return res
	}
	start, bench0, writes0 := time.Now(), cpuTime(), ss.writes.Load()
	var pubErr atomic.Pointer[error] // the first publisher's error
	for k, pb := range pbs {
		go func() {
			for i := k; i < evs; i += pubs {
				if err := pb.publish(payload(base + i)); err != nil {
					pubErr.CompareAndSwap(nil, &err)
					return
				}
			}
		}()
	}
	const stall = 5 * time.Second
	prev, moved := int64(-1), time.Now()
	for finished.Load() < int64(n) && pubErr.Load() == nil {
		time.Sleep(2 * time.Millisecond)
		if d := delivered.Load(); d != prev {
			prev, moved = d, time.Now()
		} else if time.Since(moved) > stall {
			break
		}
	}
	st1, err := readProcStats(p.pid())
	res.benchCPU = cpuTime() - bench0
	res.writes = ss.writes.Load() - writes0
	if err != nil {
		res.err = err
		return res
	}
	res.cpu = st1.cpu - st0.cpu
	res.deliveries = delivered.Load()
	res.lost = int64(n)*int64(evs) - res.deliveries
	if t := last.Load(); t > 0 {
		res.seconds = time.Unix(0, t).Sub(start).Seconds()
	}
	if e := pubErr.Load(); e != nil {
		res.err = *e
	} else if res.lost > 0 {
		res.err = fmt.Errorf("%d of %d deliveries missing after %v without progress (%d subscribers ended)", res.lost, int64(n)*int64(evs), stall, ss.ended.Load())
	}
	return res
}

// serverLatency is one latency run.
type serverLatency struct {
	p50, p99, max      time.Duration
	rate               float64       // events a second the publisher reached
	cpu                time.Duration // the server's processes, from the first publish to the end
	received, expected int64
	err                error
}

// runServerLatency publishes evs events at rate a second over one keep-alive connection and
// measures, for every subscriber and event, the time from the start of the event's POST to the
// event's arrival.
// latencyPublishers is the number of connections the latency runs publish over.
const latencyPublishers = 4

func runServerLatency(p *serverProc, ss *subSet, base, evs, rate int) (res serverLatency) {
	n := ss.n
	res.expected = int64(n) * int64(evs)
	recv := make([]int32, n*evs) // µs after t0, plus one; 0: not received
	var received atomic.Int64
	var t0 time.Time
	onSeq := func(r, seq int) {
		i := seq - base
		if i < 0 || i >= evs || recv[r*evs+i] != 0 {
			return
		}
		recv[r*evs+i] = int32(time.Since(t0)/time.Microsecond) + 1
		received.Add(1)
	}
	// The publishing connections: each POST goes out at its time on one that is free, so
	// that a server whose answer to a POST takes longer than the interval is still sent the
	// rate (it answers when it has fanned the event out, as nchan does).
	free := make(chan *publisher, latencyPublishers)
	for range latencyPublishers {
		pb := newPublisher(p, nil)
		defer pb.close()
		if err := pb.publish(`{"warm":1}`); err != nil {
			res.err = err
			return res
		}
		free <- pb
	}
	var pubErr atomic.Value
	var inFlight sync.WaitGroup
	time.Sleep(100 * time.Millisecond)
	st0, err := readProcStats(p.pid())
	if err != nil {
		res.err = err
		return res
	}
	t0 = time.Now()
	ss.onSeq.Store(&onSeq)
	noop := func(int, int) {}
	defer ss.onSeq.Store(&noop)
	pub := make([]int64, evs) // µs after t0
	interval := time.Second / time.Duration(rate)
	for i := range evs {
		if d := time.Until(t0.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		pb := <-free // waits only when every connection is busy: the rate then falls
		pub[i] = int64(time.Since(t0) / time.Microsecond)
		inFlight.Go(func() {
			if err := pb.publish(payload(base + i)); err != nil {
				pubErr.CompareAndSwap(nil, err)
			}
			free <- pb
		})
	}
	inFlight.Wait()
	if err, _ := pubErr.Load().(error); err != nil {
		res.err = err
		return res
	}
	if evs > 1 {
		res.rate = float64(evs-1) / (float64(pub[evs-1]-pub[0]) / 1e6)
	}
	prev, moved := int64(-1), time.Now()
	for received.Load() < res.expected && time.Since(moved) < 5*time.Second {
		time.Sleep(5 * time.Millisecond)
		if k := received.Load(); k != prev {
			prev, moved = k, time.Now()
		}
	}
	res.received = received.Load()
	if st1, err := readProcStats(p.pid()); err == nil {
		res.cpu = st1.cpu - st0.cpu
	}
	lat := make([]int32, 0, res.received)
	for r := range n {
		for i := range evs {
			if t := recv[r*evs+i]; t != 0 {
				lat = append(lat, int32(int64(t-1)-pub[i]))
			}
		}
	}
	if len(lat) == 0 {
		res.err = errors.New("nothing received")
		return res
	}
	slices.Sort(lat)
	at := func(q float64) time.Duration {
		return time.Duration(lat[min(len(lat)-1, int(q*float64(len(lat))))]) * time.Microsecond
	}
	res.p50, res.p99, res.max = at(0.5), at(0.99), at(1)
	if res.received < res.expected {
		res.err = fmt.Errorf("received %d of %d", res.received, res.expected)
	}
	return res
}

// figures collects one measure's values over the rounds, for one server.
type figures struct {
	vals []float64
	errs []string
}

func (f *figures) add(v float64, err error) {
	if err != nil {
		f.errs = append(f.errs, err.Error())
		return
	}
	f.vals = append(f.vals, v)
}

// usable reports whether every round gave a value.
func (f *figures) usable() bool { return f != nil && len(f.vals) > 0 && len(f.errs) == 0 }

func (f *figures) med() float64 {
	if !f.usable() {
		return 0
	}
	return median(f.vals)
}

// spread formats min / median / max with format.
func (f *figures) spread(format string) string {
	if f == nil {
		return "–"
	}
	if len(f.errs) > 0 {
		return "**failed**: " + shortErr(f.errs[0])
	}
	if len(f.vals) == 0 {
		return "–"
	}
	return fmt.Sprintf(format+" / "+format+" / "+format, slices.Min(f.vals), median(f.vals), slices.Max(f.vals))
}

func shortErr(s string) string {
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}

// serverResults holds every measure of every server.
type serverResults struct {
	names    []string          // servers in order
	versions map[string]string // server: version, or "unavailable: why"
	avail    map[string]bool
	figs     map[string]*figures // key: server + "|" + measure
	loads    []string            // load average at the start and end of each round
}

func (sr *serverResults) fig(server, measure string) *figures {
	k := server + "|" + measure
	f := sr.figs[k]
	if f == nil {
		f = &figures{}
		sr.figs[k] = f
	}
	return f
}

func (sr *serverResults) get(server, measure string) *figures { return sr.figs[server+"|"+measure] }

// runServers sets up every server, then runs the rounds; each round runs every available
// server in a rotated order: fan-out and latency over HTTP/1.1, idle memory, fan-out over
// HTTP/2.
func runServers(cfg *serversConfig, logf func(string, ...any)) *serverResults {
	sr := &serverResults{versions: map[string]string{}, avail: map[string]bool{}, figs: map[string]*figures{}}
	var kinds []*serverKind
	bins := map[string]string{}
	for _, k := range serverKinds() {
		if len(cfg.names) > 0 && !slices.Contains(cfg.names, k.name) {
			continue
		}
		kinds = append(kinds, k)
		sr.names = append(sr.names, k.name)
		bin, v, err := k.setup(cfg)
		if err != nil {
			sr.versions[k.name] = "unavailable: " + err.Error()
			logf("servers: %s unavailable: %v", k.name, err)
			continue
		}
		sr.versions[k.name], sr.avail[k.name], bins[k.name] = v, true, bin
		logf("servers: %s: %s (%s)", k.name, v, bin)
	}
	evs := cfg.events
	seqBase := 0
	nextBase := func(n int) int { b := seqBase; seqBase += n + 1000; return b }
	for r := range cfg.rounds {
		sr.loads = append(sr.loads, fmt.Sprintf("round %d: %s", r+1, loadAverage()))
		for i := range kinds {
			k := kinds[(i+r)%len(kinds)]
			if !sr.avail[k.name] {
				continue
			}
			bin := bins[k.name]
			// HTTP/1.1: fan-out, then latency, on the same subscribers.
			// fanouts runs the fan-out of each number of publishing connections.
			fanouts := func(p *serverProc, ss *subSet, err error, proto, label string) {
				for _, pubs := range cfg.pubs {
					m := fmt.Sprintf("fan %s %d", proto, pubs)
					if err != nil {
						sr.fig(k.name, m).add(0, err)
						sr.fig(k.name, m+" cpu").add(0, err)
						continue
					}
					res := runServerFanout(p, ss, nextBase(evs), evs, pubs)
					recordFanout(sr, k.name, m, res)
					logf("servers round %d %s %s %d publishing: %.0f deliveries/s, %.2f µs CPU/delivery, bench %.2f µs/delivery, %.2f deliveries/write, err %v",
						r+1, k.name, label, pubs, perSec(res), usPer(res.cpu, res.deliveries), usPer(res.benchCPU, res.deliveries), perWrite(res), res.err)
				}
			}
			// HTTP/1.1, which the latency runs use too; left out, for experiments, when
			// -servers-protocols has no h1 or there is nothing to run.
			h1 := func(fn func(*serverProc, *subSet, error)) {
				if slices.Contains(cfg.protos, "h1") && cfg.subs > 0 && len(cfg.pubs)+len(cfg.rates) > 0 {
					session(k, bin, "h1", cfg.subs, cfg, fn)
				}
			}
			h1(func(p *serverProc, ss *subSet, err error) {
				fanouts(p, ss, err, "h1", "HTTP/1.1")
				for _, rate := range cfg.rates {
					m := fmt.Sprintf("lat %d", rate)
					if err != nil {
						sr.fig(k.name, m+" p50").add(0, err)
						continue
					}
					n := max(2, int(float64(rate)*cfg.latSeconds))
					res := runServerLatency(p, ss, nextBase(n), n, rate)
					sr.fig(k.name, m+" p50").add(ms64(res.p50), res.err)
					sr.fig(k.name, m+" p99").add(ms64(res.p99), res.err)
					sr.fig(k.name, m+" max").add(ms64(res.max), res.err)
					sr.fig(k.name, m+" rate").add(res.rate, res.err)
					sr.fig(k.name, m+" cpu").add(usPer(res.cpu, res.received), res.err)
					logf("servers round %d %s latency %d/s (reached %.1f/s): median %v p99 %v max %v, %.1f µs CPU/delivery, err %v",
						r+1, k.name, rate, res.rate, res.p50, res.p99, res.max, usPer(res.cpu, res.received), res.err)
				}
			})
			// Idle memory: a fresh server, its RSS with no subscriber, then with cfg.idle.
			if cfg.idle > 0 {
				res, base, err := runServerIdle(k, bin, cfg)
				sr.fig(k.name, "idle").add(res, err)
				sr.fig(k.name, "idle base").add(base, err)
				logf("servers round %d %s idle: %.0f B/subscriber (RSS with none %.1f MB), err %v", r+1, k.name, res, base/1e6, err)
			}
			for _, proto := range cfg.protos {
				if proto == "h1" || proto == "h2c" && !k.h2c || cfg.subs == 0 || len(cfg.pubs) == 0 {
					continue
				}
				session(k, bin, proto, cfg.subs, cfg, func(p *serverProc, ss *subSet, err error) {
					fanouts(p, ss, err, proto, protoLabel(proto))
				})
			}
		}
		sr.loads[len(sr.loads)-1] += " → " + loadAverage()
	}
	return sr
}

func recordFanout(sr *serverResults, name, m string, res serverFanout) {
	sr.fig(name, m).add(perSec(res), res.err)
	sr.fig(name, m+" cpu").add(usPer(res.cpu, res.deliveries), res.err)
	sr.fig(name, m+" bench").add(usPer(res.benchCPU, res.deliveries), res.err)
	if res.writes > 0 {
		sr.fig(name, m+" per write").add(perWrite(res), res.err)
	}
}

// perWrite is the deliveries per write of the server that the readers saw: how much the
// server coalesced (0 when unknown).
func perWrite(res serverFanout) float64 {
	if res.writes == 0 {
		return 0
	}
	return float64(res.deliveries) / float64(res.writes)
}

func perSec(res serverFanout) float64 {
	if res.seconds == 0 {
		return 0
	}
	return float64(res.deliveries) / res.seconds
}

func usPer(d time.Duration, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(d) / 1e3 / float64(n)
}

func ms64(d time.Duration) float64 { return float64(d) / 1e6 }

// session starts k's server, connects n subscribers with the protocol proto and warms them
// up, calls fn, and stops everything. fn gets the error instead when any step failed.
func session(k *serverKind, bin string, proto string, n int, cfg *serversConfig, fn func(*serverProc, *subSet, error)) {
	dir, err := os.MkdirTemp("", "bench-"+strings.ReplaceAll(k.name, "+", "-"))
	if err != nil {
		fn(nil, nil, err)
		return
	}
	defer os.RemoveAll(dir)
	p, err := k.start(bin, dir, proto, cfg)
	if err != nil {
		fn(nil, nil, fmt.Errorf("start: %w", err))
		return
	}
	defer p.stop()
	ss, err := connectSubs(p, n, proto, cfg.h2Client, 64<<10)
	if err != nil {
		fn(nil, nil, err)
		return
	}
	defer ss.close()
	pb := newPublisher(p, nil)
	defer pb.close()
	if err := warmSubs(pb, ss, 60*time.Second); err != nil {
		fn(nil, nil, err)
		return
	}
	fn(p, ss, nil)
}

// runServerIdle starts k's server, reads its RSS, connects cfg.idle HTTP/1.1 subscribers, has
// one event sent to each, waits, and reads the RSS again. It returns bytes per subscriber and
// the RSS with no subscriber.
func runServerIdle(k *serverKind, bin string, cfg *serversConfig) (perSub, base float64, err error) {
	dir, err := os.MkdirTemp("", "bench-idle")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	p, err := k.start(bin, dir, "h1", cfg)
	if err != nil {
		return 0, 0, fmt.Errorf("start: %w", err)
	}
	defer p.stop()
	pb := newPublisher(p, nil)
	defer pb.close()
	// One publish before the first reading, so that the publishing path's memory is in both.
	if err := pb.publish(`{"warm":1}`); err != nil {
		return 0, 0, err
	}
	time.Sleep(time.Second)
	st0, err := readProcStats(p.pid())
	if err != nil {
		return 0, 0, err
	}
	ss, err := connectSubs(p, cfg.idle, "h1", "", 4<<10)
	if err != nil {
		return 0, 0, err
	}
	defer ss.close()
	if err := warmSubs(pb, ss, 120*time.Second); err != nil {
		return 0, 0, err
	}
	time.Sleep(2 * time.Second)
	if e := ss.ended.Load(); e > 0 {
		return 0, 0, fmt.Errorf("%d subscribers ended while idle: %v", e, ss.firstErr())
	}
	st1, err := readProcStats(p.pid())
	if err != nil {
		return 0, 0, err
	}
	if os.Getenv("BENCH_SERVE_HEAPPROFILE") != "" && k.name == "httpsse" {
		_ = p.cmd.Process.Signal(syscall.SIGUSR1) // the profile, with the subscribers still there
		time.Sleep(3 * time.Second)
	}
	return float64(st1.rss-st0.rss) / float64(cfg.idle), float64(st0.rss), nil
}

// bestOther is the best median of measure among the servers other than name: the highest when
// higher is better, else the lowest.
func (sr *serverResults) bestOther(name, measure string, higher bool) (float64, string) {
	best, who := 0.0, ""
	for _, o := range sr.names {
		f := sr.get(o, measure)
		if o == name || !f.usable() {
			continue
		}
		v := f.med()
		if who == "" || (higher && v > best) || (!higher && v < best) {
			best, who = v, o
		}
	}
	return best, who
}

func (sr *serverResults) vsBest(name, measure string, higher bool) string {
	f := sr.get(name, measure)
	best, who := sr.bestOther(name, measure, higher)
	if !f.usable() || who == "" || best == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f× (%s)", f.med()/best, who)
}

// printServers prints the servers part; it fails when httpsse failed a run.
func printServers(w io.Writer, cfg *serversConfig, sr *serverResults) (failed bool) {
	fmt.Fprintf(w, "## Against the servers\n\nEach server in processes of its own on 127.0.0.1, set up by the bench; every event (about 100 bytes of JSON) published with one HTTP POST over a keep-alive connection; %d subscribers read by this process, each on a connection of its own (HTTP/1.1: the raw reader of the fan-out test, cleartext, or over TLS for \"HTTP/1.1 TLS\"; HTTP/2: %s, over TLS, or cleartext with prior knowledge for \"HTTP/2 h2c\"). Each figure is min / median / max over %d rounds; \"vs best other\" divides the median by the best median of the other servers in this run. Server CPU is utime+stime of the server's processes (/proc/PID/stat, nginx's master and workers together); bench CPU is this process's (readers and publishers). Load average (1, 5, 15 min) at the start → end of each round: %s.\n\n",
		cfg.subs, h2ClientLabel(cfg.h2Client), cfg.rounds, strings.Join(sr.loads, "; "))
	fmt.Fprintf(w, "| server | version and setup |\n|---|---|\n")
	for _, n := range sr.names {
		fmt.Fprintf(w, "| %s | %s |\n", n, strings.ReplaceAll(sr.versions[n], "|", "/"))
	}
	fmt.Fprintln(w)

	fmt.Fprintf(w, "### Fan-out\n\n%d events per run, published over P keep-alive connections at once, each as fast as the server answers; deliveries/s from the first POST to the last delivery. A run with an event missing is a failure. Deliveries/write is how many events the server sent in each write, as the readers saw them (HTTP/1.1 chunks, HTTP/2 DATA frames; not with net/http's client).\n\n", cfg.events)
	fmt.Fprintf(w, "| protocol | P | server | deliveries/s | vs best other | server CPU µs/delivery | vs best other | bench CPU µs/delivery | deliveries/write |\n|---|--:|---|--:|--:|--:|--:|--:|--:|\n")
	for _, proto := range cfg.protos {
		for _, pubs := range cfg.pubs {
			m := fmt.Sprintf("fan %s %d", proto, pubs)
			for _, n := range sr.names {
				if !sr.avail[n] {
					continue
				}
				f := sr.get(n, m)
				if f == nil {
					continue
				}
				if n == subject && len(f.errs) > 0 {
					failed = true
				}
				fmt.Fprintf(w, "| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", protoLabel(proto), pubs, n, f.spread("%.0f"), sr.vsBest(n, m, true),
					sr.get(n, m+" cpu").spread("%.2f"), sr.vsBest(n, m+" cpu", false), sr.get(n, m+" bench").spread("%.2f"), sr.get(n, m+" per write").spread("%.2f"))
			}
		}
	}
	fmt.Fprintln(w)
	for _, proto := range cfg.protos {
		if proto == "h1" {
			continue
		}
		var parts []string
		for _, n := range sr.names {
			for _, pubs := range cfg.pubs {
				h1, other := sr.get(n, fmt.Sprintf("fan h1 %d", pubs)), sr.get(n, fmt.Sprintf("fan %s %d", proto, pubs))
				if h1.usable() && other.usable() {
					parts = append(parts, fmt.Sprintf("%s P=%d %.2f×", n, pubs, other.med()/h1.med()))
				}
			}
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "%s against HTTP/1.1, the same server in the same run (median deliveries/s): %s.\n\n", protoLabel(proto), strings.Join(parts, ", "))
		}
	}

	fmt.Fprintf(w, "### Latency\n\nR events a second for %.0f s, each POST sent at its time on whichever of %d keep-alive connections is free (so a server that answers a POST only once it has fanned the event out is still sent R a second), %d subscribers over HTTP/1.1; each figure is the time from the start of an event's POST to its arrival, over every subscriber and event of a round (min / median / max of the rounds' figures). \"reached\" is the publishing rate achieved.\n\n", cfg.latSeconds, latencyPublishers, cfg.subs)
	fmt.Fprintf(w, "| R/s | server | median ms | p99 ms | max ms | p99 vs best other | reached events/s | server CPU µs/delivery |\n|--:|---|--:|--:|--:|--:|--:|--:|\n")
	for _, rate := range cfg.rates {
		m := fmt.Sprintf("lat %d", rate)
		for _, n := range sr.names {
			if !sr.avail[n] {
				continue
			}
			f := sr.get(n, m+" p50")
			if f == nil {
				continue
			}
			if n == subject && len(f.errs) > 0 {
				failed = true
			}
			fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s |\n", rate, n, f.spread("%.2f"), sr.get(n, m+" p99").spread("%.2f"),
				sr.get(n, m+" max").spread("%.1f"), sr.vsBest(n, m+" p99", false), sr.get(n, m+" rate").spread("%.1f"), sr.get(n, m+" cpu").spread("%.1f"))
		}
	}
	fmt.Fprintln(w)

	if cfg.idle > 0 {
		fmt.Fprintf(w, "### Idle memory\n\n%d HTTP/1.1 subscribers to a fresh server, each sent one event, then idle for 2 s: (RSS with them − RSS with none) / %d, RSS being VmRSS of the server's processes (/proc/PID/status). The Go servers' RSS includes heap not yet collected; nothing forces a GC.\n\n", cfg.idle, cfg.idle)
		fmt.Fprintf(w, "| server | bytes/subscriber | vs best other | RSS with no subscriber, MB |\n|---|--:|--:|--:|\n")
		for _, n := range sr.names {
			if !sr.avail[n] {
				continue
			}
			f := sr.get(n, "idle")
			if n == subject && f != nil && len(f.errs) > 0 {
				failed = true
			}
			b := sr.get(n, "idle base")
			base := "–"
			if b.usable() {
				base = fmt.Sprintf("%.1f", b.med()/1e6)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", n, f.spread("%.0f"), sr.vsBest(n, "idle", false), base)
		}
		fmt.Fprintln(w)
	}
	return failed
}

func h2ClientLabel(c string) string {
	if c == "net/http" {
		return "net/http's client"
	}
	return "a raw reader of frames (golang.org/x/net/http2's Framer)"
}

func protoLabel(p string) string {
	switch p {
	case "h1tls":
		return "HTTP/1.1 TLS"
	case "h2":
		return "HTTP/2"
	case "h2c":
		return "HTTP/2 h2c"
	}
	return "HTTP/1.1"
}

// parseInts parses a comma-separated list of positive integers.
func parseInts(s string) ([]int, error) {
	var out []int
	if strings.TrimSpace(s) == "" {
		return nil, nil // none
	}
	for _, f := range strings.Split(s, ",") {
		var n int
		if _, err := fmt.Sscanf(strings.TrimSpace(f), "%d", &n); err != nil || n <= 0 {
			return nil, fmt.Errorf("bad list %q", s)
		}
		out = append(out, n)
	}
	sort.Ints(out)
	return out, nil
}

// writeHeapProfile writes, on SIGUSR1, a heap profile of everything in use after a GC to path, and the
// runtime's heap and stack figures to path+".txt" (BENCH_SERVE_HEAPPROFILE; the bench sets
// runtime.MemProfileRate = 1 in that case, so the profile is exact).
func writeHeapProfile(path string) {
	runtime.GC()
	if f, err := os.Create(path); err == nil {
		_ = pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	_ = os.WriteFile(path+".txt", fmt.Appendf(nil, "HeapInuse %d\nStackInuse %d\nGoroutines %d\n", ms.HeapInuse, ms.StackInuse, runtime.NumGoroutine()), 0o644)
}
