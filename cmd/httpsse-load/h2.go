package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/reiver/go-httpsse"
)

// runH2: the same fan-out over HTTP/1.1 and over HTTP/2, one after the other, at the same
// size. Over HTTP/1.1 every subscriber has a cleartext connection of its own, as in the scale
// scenario; over HTTP/2 (TLS on loopback, as a browser speaks it) the subscribers are streams,
// cfg.h2Streams of them sharing each connection, as the streams of many browser tabs share a
// proxy's connection to the server. For each protocol: the server's idle memory per
// subscriber, the time to deliver one event to all, a burst of cfg.h2Burst events to all, the
// server's CPU per delivery, and Close of all; every subscriber must receive every event in
// order.
func runH2(cfg config) ([]result, error) {
	var rs []result
	var runs []h2Run
	load := loadAverage()
	for _, proto := range strings.Split(cfg.h2Protocols, ",") {
		proto = strings.TrimSpace(proto)
		if proto != "h1" && proto != "h2" && proto != "h2c" {
			return rs, fmt.Errorf("unknown protocol %q in -h2-protocols (want h1, h2 or h2c)", proto)
		}
		if need := h2OpenFiles(cfg, proto); openFileLimit() != 0 && openFileLimit() < need {
			rs = append(rs, figure("h2", protoName(proto)+": not run",
				fmt.Sprintf("%d subscribers need about %d open files in each process, and the limit is %d", cfg.subscribers, need, openFileLimit())))
			continue
		}
		logf(cfg, "h2: %s: start", protoName(proto))
		run, prs, err := runH2Protocol(cfg, proto)
		rs = append(rs, prs...)
		if err != nil {
			return rs, fmt.Errorf("%s: %w", protoName(proto), err)
		}
		runs = append(runs, run)
	}
	printH2Table(os.Stdout, cfg, runs, load)
	return rs, nil
}

// h2OpenFiles returns the open files that each process needs for the subscribers over proto:
// one a subscriber over HTTP/1.1, one a connection over HTTP/2.
func h2OpenFiles(cfg config, proto string) uint64 {
	if proto == "h1" {
		return uint64(cfg.subscribers) + 1024
	}
	return uint64(h2Connections(cfg.subscribers, cfg.h2Streams)) + 1024
}

// h2Connections returns how many connections n subscribers take at streams per connection.
func h2Connections(n, streams int) int {
	streams = max(streams, 1)
	return (n + streams - 1) / streams
}

func protoName(proto string) string {
	switch proto {
	case "h1":
		return "HTTP/1.1"
	case "h2c":
		return "HTTP/2 cleartext"
	}
	return "HTTP/2"
}

// h2Run is what one protocol's run measured.
type h2Run struct {
	proto       string
	subscribers int
	conns       int64 // connections the server accepted
	connect     time.Duration

	heapPer, stackPer, rssPer, goroutinesPer float64
	childRSSPer                              float64

	single []time.Duration // time to deliver one event to all, by round
	burst  []time.Duration // time to deliver the burst to all, by round

	deliveries         int64 // in the burst rounds
	serverCPU, subsCPU time.Duration
	close              time.Duration
}

// protoServer is a server with the counts that tell which protocol the subscribers spoke.
type protoServer struct {
	*server
	accepted atomic.Int64 // connections accepted
	overH2   atomic.Int64 // requests that came over HTTP/2
	certDER  []byte       // the server's certificate, over TLS
}

// startProtoServer serves route at /events on a loopback port: over cleartext HTTP/1.1 for
// "h1"; for "h2" over TLS with a self-signed certificate made now, with HTTP/2 only and at
// least streams concurrent streams allowed per connection; for "h2c" the same HTTP/2 without
// TLS (prior knowledge, as a proxy may speak to the server behind it), which tells TLS's cost
// apart from HTTP/2's.
func startProtoServer(route httpsse.Route, proto string, streams int) (*protoServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ps := &protoServer{server: &server{route: route, ln: ln, addr: ln.Addr().String(), done: make(chan struct{}), ended: map[string][]time.Time{}}}
	ps.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ProtoMajor == 2 {
				ps.overH2.Add(1)
			}
			ps.server.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				ps.accepted.Add(1)
			}
		},
	}
	var p http.Protocols
	// net/http allows 250 streams per connection unless told otherwise.
	ps.srv.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: max(streams, 250)}
	switch proto {
	case "h1":
		p.SetHTTP1(true)
	case "h2c":
		p.SetUnencryptedHTTP2(true)
	}
	if proto != "h2" {
		ps.srv.Protocols = &p
		go func() {
			defer close(ps.done)
			ps.srv.Serve(ln)
		}()
		return ps, nil
	}
	cert, err := selfSignedCert()
	if err != nil {
		ln.Close()
		return nil, err
	}
	ps.certDER = cert.Certificate[0]
	p.SetHTTP2(true) // and not HTTP/1.1: a client that does not speak HTTP/2 fails, which the checks see
	ps.srv.Protocols = &p
	ps.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	go func() {
		defer close(ps.done)
		ps.srv.ServeTLS(ln, "", "")
	}()
	return ps, nil
}

// selfSignedCert makes an ECDSA P-256 certificate for 127.0.0.1, valid for a day.
func selfSignedCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "httpsse-load"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// h2Pad returns the padding that makes an event's data about size bytes: its sequence number,
// then "x"s.
func h2Pad(size int) string {
	return strings.Repeat("x", max(size-6, 0))
}

// runH2Protocol runs the fan-out over one protocol.
func runH2Protocol(cfg config, proto string) (h2Run, []result, error) {
	const sc = "h2"
	name := protoName(proto)
	run := h2Run{proto: proto}
	var rs []result
	var opts []httpsse.RouteOption
	if cfg.h2WriteTimeout != 0 {
		opts = append(opts, httpsse.WriteTimeout(cfg.h2WriteTimeout))
	}
	route := httpsse.NewRoute(opts...)
	srv, err := startProtoServer(route, proto, cfg.h2Streams)
	if err != nil {
		return run, nil, err
	}
	defer srv.stop()

	baseGoroutines := runtime.NumGoroutine()
	baseMem := measureMemory()
	baseRSS := procStatus("VmRSS")

	args := []string{
		"-subscribers=" + strconv.Itoa(cfg.subscribers),
		"-dialers=" + strconv.Itoa(cfg.dialers),
		"-source-addrs=" + strconv.Itoa(cfg.sourceAddrs),
		"-h2-proto=" + proto,
		"-h2-streams=" + strconv.Itoa(cfg.h2Streams),
		"-v=" + strconv.FormatBool(cfg.verbose),
	}
	if srv.certDER != nil {
		args = append(args, "-h2-cert="+base64.StdEncoding.EncodeToString(srv.certDER))
	}
	c, err := startChild("h2", srv.addr, args...)
	if err != nil {
		return run, rs, err
	}
	defer c.finish(30 * time.Second)

	connectStart := time.Now()
	r, err := c.await("connected", 5*time.Minute)
	if err != nil {
		return run, rs, err
	}
	run.connect = time.Since(connectStart)
	run.subscribers = r.N
	rs = append(rs, check(sc, name+": subscribers connected", r.N == cfg.subscribers && r.Failed == 0,
		fmt.Sprintf("%d of %d (%d failed%s)", r.N, cfg.subscribers, r.Failed, errSuffix(r.Err)), strconv.Itoa(cfg.subscribers)))
	if r.N == 0 {
		return run, rs, fmt.Errorf("no subscriber connected")
	}
	if n, err := strconv.ParseFloat(r.Extra, 64); err == nil {
		run.childRSSPer = n / float64(r.N)
	}
	logf(cfg, "h2: %s: %d connected in %v", name, r.N, run.connect)

	// Idle memory: every subscriber has its response headers; nothing has been published.
	deadline := time.Now().Add(30 * time.Second)
	for srv.handlersRunning() < r.N && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	idleMem := measureMemory()
	idleRSS := procStatus("VmRSS")
	idleGoroutines := runtime.NumGoroutine()
	n := float64(r.N)
	run.heapPer = (float64(idleMem.heapInuse) - float64(baseMem.heapInuse)) / n
	run.stackPer = (float64(idleMem.stackInuse) - float64(baseMem.stackInuse)) / n
	run.rssPer = (float64(idleRSS) - float64(baseRSS)) / n
	run.goroutinesPer = float64(idleGoroutines-baseGoroutines) / n
	run.conns = srv.accepted.Load()

	wantConns := int64(cfg.subscribers)
	wantH2 := int64(0)
	if proto != "h1" {
		wantConns = int64(h2Connections(cfg.subscribers, cfg.h2Streams))
		wantH2 = int64(cfg.subscribers)
	}
	rs = append(rs, check(sc, name+": connections the server accepted (http.Server.ConnState)", run.conns == wantConns,
		strconv.FormatInt(run.conns, 10), strconv.FormatInt(wantConns, 10)))
	rs = append(rs, check(sc, name+": requests that came over HTTP/2 (Request.ProtoMajor)", srv.overH2.Load() == wantH2,
		strconv.FormatInt(srv.overH2.Load(), 10), strconv.FormatInt(wantH2, 10)))
	rs = append(rs, figure(sc, name+": server memory per idle subscriber",
		fmt.Sprintf("HeapInuse %s + StackInuse %s; RSS %s; %.2f goroutines", kib(run.heapPer), kib(run.stackPer), kib(run.rssPer), run.goroutinesPer)))

	// Every subscriber is attached before the numbered events.
	if err := syncEvery(route, c, 10*time.Second, 5*time.Minute); err != nil {
		return run, rs, err
	}
	logf(cfg, "h2: %s: all synced", name)

	pad := h2Pad(cfg.h2EventSize)
	k := 0
	// round publishes events more events and returns the time until every subscriber has
	// received the last of them, on this process's clock (publish to the report's arrival).
	round := func(events int) (time.Duration, error) {
		last := k + events
		c.tell("expect " + strconv.Itoa(last))
		if _, err := c.await("armed", time.Minute); err != nil {
			return 0, err
		}
		start := time.Now()
		for k < last {
			k++
			if err := publishSeq(route, k, pad); err != nil {
				return 0, fmt.Errorf("PublishEvent %d: %w", k, err)
			}
		}
		published := time.Since(start)
		r, err := c.await("reached", 5*time.Minute)
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		logf(cfg, "h2: %s: events %d to %d published in %v, delivered to all in %v", name, last-events+1, last, published, d)
		if r.Failed != 0 {
			fmt.Fprintf(os.Stderr, "httpsse-load h2: %s: %s\n", name, r.Err)
			return 0, fmt.Errorf("event %d: %d of %d subscribers received it, %d failed%s", last, r.N, run.subscribers, r.Failed, errSuffix(r.Err))
		}
		return d, nil
	}
	for range max(cfg.h2Rounds, 1) {
		d, err := round(1)
		if err != nil {
			return run, rs, err
		}
		run.single = append(run.single, d)
	}
	cpu0, childCPU0 := processCPU(), childCPU(c)
	for range max(cfg.h2Rounds, 1) {
		d, err := round(cfg.h2Burst)
		if err != nil {
			return run, rs, err
		}
		run.burst = append(run.burst, d)
		run.deliveries += int64(run.subscribers) * int64(cfg.h2Burst)
	}
	run.serverCPU, run.subsCPU = processCPU()-cpu0, childCPU(c)-childCPU0
	rs = append(rs, figure(sc, name+": time to deliver one event to all", spread(run.single)))
	rs = append(rs, figure(sc, fmt.Sprintf("%s: time to deliver a burst of %d events to all", name, cfg.h2Burst), spread(run.burst)))

	// Close ends every stream cleanly; every subscriber has exactly 1..k.
	c.tell("closing")
	if _, err := c.await("closing", time.Minute); err != nil {
		return run, rs, err
	}
	closeStart := time.Now()
	route.Close()
	r, err = c.await("ended", 2*time.Minute)
	if err != nil {
		return run, rs, err
	}
	run.close = time.Since(closeStart)
	for _, e := range []string{r.Err, r.Extra} {
		if e != "" {
			fmt.Fprintf(os.Stderr, "httpsse-load h2: %s: %s\n", name, e)
		}
	}
	rs = append(rs, check(sc, name+": every sequence exact (1 to the last event, in order, nothing after it)",
		r.N == cfg.subscribers && r.Failed == 0,
		fmt.Sprintf("%d of %d exact through %d, %d events received (%d failed%s)", r.N, cfg.subscribers, k, r.Events, r.Failed, errSuffix(r.Err)),
		fmt.Sprintf("%d events", int64(cfg.subscribers)*int64(k))))
	rs = append(rs, check(sc, name+": Route.Close ends every stream cleanly (end of body, not a reset)",
		r.Clean == cfg.subscribers,
		fmt.Sprintf("%d clean, %d reset/error of %d%s", r.Clean, r.Reset, r.N+r.Failed, errSuffix(r.Extra)), strconv.Itoa(cfg.subscribers)))
	rs = append(rs, figure(sc, name+": time for Route.Close to end every stream", ms(run.close)))
	c.finish(30 * time.Second)
	g := waitGoroutines(baseGoroutines, 10*time.Second)
	rs = append(rs, check(sc, name+": server goroutines after Close", g <= baseGoroutines,
		fmt.Sprintf("%d (baseline %d, with subscribers %d)", g, baseGoroutines, idleGoroutines), fmt.Sprintf("<= %d", baseGoroutines)))
	return run, rs, nil
}

// syncEvery publishes a "sync" event, then another every interval, until the child reports
// that every subscriber has received one. Every subscriber is attached once its response
// headers are in, so the first one is enough unless something went wrong; the scale
// scenario's syncUntil publishes every 100 ms, which at 100,000 HTTP/2 streams kept the
// server from delivering them at all.
func syncEvery(route httpsse.Route, c *child, interval, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if err := publishSync(route); err != nil {
			return fmt.Errorf("publishing the sync event: %w", err)
		}
		_, err := c.await("synced", min(interval, time.Until(deadline)))
		if err == nil {
			return nil
		}
		if strings.HasPrefix(err.Error(), "subscriber process") || time.Now().After(deadline) {
			return err
		}
	}
}

// spread returns the minimum, median and maximum of ds.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "-"
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return fmt.Sprintf("%s / %s / %s", ms(s[0]), ms(s[len(s)/2]), ms(s[len(s)-1]))
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// printH2Table prints the protocols side by side.
func printH2Table(w io.Writer, cfg config, runs []h2Run, load string) {
	if len(runs) == 0 {
		return
	}
	fmt.Fprintf(w, "\nh2: %d subscribers; HTTP/1.1 cleartext, a connection each; HTTP/2 over TLS 1.3 (HTTP/2 cleartext: without TLS), %d streams a connection; %d rounds; burst %d events of %d bytes of data\nload average (1, 5, 15 min) at the start %s, at the end %s\n\n",
		cfg.subscribers, cfg.h2Streams, max(cfg.h2Rounds, 1), cfg.h2Burst, cfg.h2EventSize, load, loadAverage())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label string, f func(r h2Run) string) {
		fmt.Fprint(tw, label)
		for _, r := range runs {
			fmt.Fprint(tw, "\t"+f(r))
		}
		fmt.Fprintln(tw)
	}
	row("", func(r h2Run) string { return protoName(r.proto) })
	row("subscribers", func(r h2Run) string { return strconv.Itoa(r.subscribers) })
	row("connections accepted by the server", func(r h2Run) string { return strconv.FormatInt(r.conns, 10) })
	row("time to connect all", func(r h2Run) string { return ms(r.connect) })
	row("server HeapInuse per idle subscriber", func(r h2Run) string { return kib(r.heapPer) })
	row("server StackInuse per idle subscriber", func(r h2Run) string { return kib(r.stackPer) })
	row("server RSS per idle subscriber", func(r h2Run) string { return kib(r.rssPer) })
	row("server goroutines per idle subscriber", func(r h2Run) string { return strconv.FormatFloat(r.goroutinesPer, 'f', 2, 64) })
	row("subscriber process RSS per subscriber", func(r h2Run) string { return kib(r.childRSSPer) })
	row("one event to all: min / median / max", func(r h2Run) string { return spread(r.single) })
	row(fmt.Sprintf("burst of %d to all: min / median / max", cfg.h2Burst), func(r h2Run) string { return spread(r.burst) })
	row("burst deliveries/s at the median round", func(r h2Run) string {
		per := float64(r.subscribers) * float64(cfg.h2Burst)
		return strconv.FormatFloat(per/median(r.burst).Seconds(), 'f', 0, 64)
	})
	row("server CPU per delivery (burst rounds)", func(r h2Run) string { return us(r.serverCPU, r.deliveries) })
	row("subscriber process CPU per delivery", func(r h2Run) string { return us(r.subsCPU, r.deliveries) })
	row("Route.Close of all", func(r h2Run) string { return ms(r.close) })
	tw.Flush()
}

// us returns d divided by n, in microseconds.
func us(d time.Duration, n int64) string {
	if n == 0 {
		return "-"
	}
	return strconv.FormatFloat(float64(d)/float64(n)/1e3, 'f', 2, 64) + " µs"
}

// loadAverage returns the 1-, 5- and 15-minute load averages of /proc/loadavg.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
