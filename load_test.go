package httpsse_test

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/reiver/go-httpsse"
)

// The tests in this file are small versions of the scenarios of cmd/httpsse-load, so that
// their behaviour is pinned in every test run: a shared Route with many subscribers, a storm
// of connects and disconnects, and subscribers that stop reading. The flags make them bigger;
// the full-size figures come from `go run ./cmd/httpsse-load`.

var (
	loadSubscribers = flag.Int("load.subscribers", 200, "TestLoadScale: subscribers on one Route")
	loadEvents      = flag.Int("load.events", 100, "TestLoadScale: events to every subscriber")
	loadCycles      = flag.Int("load.cycles", 2000, "TestLoadChurn: connect/receive/disconnect cycles")
	loadSlow        = flag.Int("load.slow", 4, "TestLoadSlowSubscribers: subscribers that stop reading")
	loadFast        = flag.Int("load.fast", 4, "TestLoadSlowSubscribers: subscribers that keep reading")
)

// loadServer serves a Route at /events on loopback and counts the handlers that run.
type loadServer struct {
	route   httpsse.Route
	ts      *httptest.Server
	addr    string
	running atomic.Int64

	mu    sync.Mutex
	ended map[string][]time.Time // when ServeHTTP returned, by the role query parameter
}

// newLoadServer starts the server. A positive sndbuf sets the send buffer of each accepted
// connection (Linux grows a loopback socket's up to 4 MiB, which would hide a stalled
// subscriber for a long time); a positive serverTimeout sets the http.Server's ReadTimeout
// and WriteTimeout, which must not end healthy streams.
func newLoadServer(t *testing.T, route httpsse.Route, sndbuf int, serverTimeout time.Duration) *loadServer {
	t.Helper()
	s := &loadServer{route: route, ended: map[string][]time.Time{}}
	s.ts = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.running.Add(1)
		defer s.running.Add(-1)
		route.ServeHTTP(w, r)
		if role := r.URL.Query().Get("role"); role == "slow" || role == "fast" {
			s.mu.Lock()
			s.ended[role] = append(s.ended[role], time.Now())
			s.mu.Unlock()
		}
	}))
	if sndbuf > 0 {
		s.ts.Listener = sndbufListener{s.ts.Listener, sndbuf}
	}
	s.ts.Config.ReadTimeout = serverTimeout
	s.ts.Config.WriteTimeout = serverTimeout
	s.ts.Start()
	s.addr = s.ts.Listener.Addr().String()
	t.Cleanup(func() {
		route.Close()
		s.ts.Close()
	})
	return s
}

func (s *loadServer) endedTimes(role string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.ended[role]...)
}

type sndbufListener struct {
	net.Listener
	size int
}

func (l sndbufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(l.size)
	}
	return c, err
}

// loadSubscriber is a raw HTTP/1.1 subscriber whose socket the test controls.
type loadSubscriber struct {
	conn *net.TCPConn
	dec  *httpsse.Decoder
}

// dialLoadSubscriber connects and returns once the response headers are in. A positive
// rcvbuf shrinks the socket's receive buffer.
func dialLoadSubscriber(addr, role string, rcvbuf int) (*loadSubscriber, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	conn := c.(*net.TCPConn)
	if rcvbuf > 0 {
		conn.SetReadBuffer(rcvbuf)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /events?role=%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", role, addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); resp.StatusCode != http.StatusOK || mt != httpsse.ContentType {
		conn.Close()
		return nil, fmt.Errorf("response %s, Content-Type %q", resp.Status, resp.Header.Get("Content-Type"))
	}
	conn.SetDeadline(time.Time{})
	return &loadSubscriber{conn: conn, dec: httpsse.NewDecoder(resp.Body)}, nil
}

// next returns the next event; io.EOF at a clean end of the stream.
func (s *loadSubscriber) next(timeout time.Duration) (httpsse.Event, error) {
	var ev httpsse.Event
	if timeout > 0 {
		s.conn.SetReadDeadline(time.Now().Add(timeout))
	}
	if !s.dec.Next() {
		if err := s.dec.Err(); err != nil {
			return ev, err
		}
		return ev, io.EOF
	}
	err := s.dec.Decode(&ev)
	return ev, err
}

func (s *loadSubscriber) close(reset bool) {
	if reset {
		s.conn.SetLinger(0)
	}
	s.conn.Close()
}

func publishNumbered(route httpsse.Route, name string, k int, pad string) error {
	return route.PublishEvent(func(w httpsse.EventWriter) error {
		w.WriteEvent(name)
		w.WriteID(strconv.Itoa(k))
		return w.WriteData(strconv.Itoa(k) + pad)
	})
}

// publishSyncUntil publishes "sync" events until done is closed, so that the test knows
// every subscriber is attached once each has seen one.
func publishSyncUntil(route httpsse.Route, done <-chan struct{}) {
	for k := 0; ; k++ {
		select {
		case <-done:
			return
		default:
		}
		publishNumbered(route, "sync", k, "")
		time.Sleep(20 * time.Millisecond)
	}
}

// stallMeter measures how late this process's goroutines run: it sleeps a millisecond
// again and again and keeps the largest oversleep. On a machine shared with other work (and
// under the race detector) a process can be kept off the CPU for hundreds of milliseconds;
// the checks on gaps and latencies allow for what it measured, so that they fail for stalls
// the Route causes, not for ones the machine does.
func stallMeter() (stop func() time.Duration) {
	var worst atomic.Int64
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			start := time.Now()
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			if late := int64(time.Since(start) - time.Millisecond); late > worst.Load() {
				worst.Store(late)
			}
		}
	}()
	return func() time.Duration {
		close(done)
		<-finished
		return time.Duration(worst.Load())
	}
}

// waitForGoroutines waits until at most want goroutines run, and fails with the stacks of
// the goroutines when that does not happen in time.
func waitForGoroutines(t *testing.T, want int, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%s: %d goroutines, want at most %d (the baseline)\n%s", what, n, want, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestLoadScale(t *testing.T) {
	n, events := *loadSubscribers, *loadEvents
	if testing.Short() {
		n = min(n, 50)
	}
	base := runtime.NumGoroutine()
	route := httpsse.NewRoute()
	srv := newLoadServer(t, route, 0, 0)

	subs := make([]*loadSubscriber, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := dialLoadSubscriber(srv.addr, "scale", 0)
			if err != nil {
				errs <- err
				return
			}
			subs[i] = s
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("connecting %d subscribers: %v", n, err)
	}

	// Every subscriber reads until it has all the numbered events, then until the end of
	// the stream, and reports what went wrong.
	var synced sync.WaitGroup
	synced.Add(n)
	results := make(chan error, n)
	for i, s := range subs {
		go func() {
			last, isSynced := 0, false
			for {
				ev, err := s.next(0)
				if err != nil {
					if !isSynced {
						synced.Done()
					}
					if last == events && errors.Is(err, io.EOF) {
						results <- nil
					} else {
						results <- fmt.Errorf("subscriber %d: after %d events: %v", i, last, err)
					}
					s.close(false)
					return
				}
				switch ev.EventName() {
				case "sync":
					if !isSynced {
						isSynced = true
						synced.Done()
					}
				case "seq":
					if ev.EventDataCollapsed() != strconv.Itoa(last+1) || ev.EventID() != strconv.Itoa(last+1) {
						results <- fmt.Errorf("subscriber %d: event %q (id %q) after %d", i, ev.EventDataCollapsed(), ev.EventID(), last)
						s.close(false)
						return
					}
					last++
				}
			}
		}()
	}
	stopSync := make(chan struct{})
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		publishSyncUntil(route, stopSync)
	}()
	synced.Wait()
	close(stopSync)
	<-syncDone

	start := time.Now()
	for k := 1; k <= events; k++ {
		if err := publishNumbered(route, "seq", k, ""); err != nil {
			t.Fatalf("PublishEvent(%d) = %v", k, err)
		}
	}
	// Close after the last event: every subscriber gets all of them, then a clean end.
	route.Close()
	for range n {
		select {
		case err := <-results:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("subscribers still reading 30 s after Close")
		}
	}
	t.Logf("%d events to %d subscribers, then Close: %v", events, n, time.Since(start))
	srv.ts.Close()
	waitForGoroutines(t, base, "after Close")
}

func TestLoadChurn(t *testing.T) {
	cycles := *loadCycles
	if testing.Short() {
		cycles = min(cycles, 400)
	}
	route := httpsse.NewRoute()
	srv := newLoadServer(t, route, 0, 0)

	stopPublish := make(chan struct{})
	publishDone := make(chan struct{})
	go func() {
		defer close(publishDone)
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for k := 1; ; k++ {
			select {
			case <-stopPublish:
				return
			case <-t.C:
			}
			if publishNumbered(route, "tick", k, "") != nil {
				return
			}
		}
	}()
	defer func() {
		close(stopPublish)
		route.Close()
		<-publishDone
	}()
	// A first subscriber lets the publisher run at full rate; then the baseline.
	if s, err := dialLoadSubscriber(srv.addr, "warmup", 0); err == nil {
		s.next(5 * time.Second)
		s.close(false)
	}
	time.Sleep(50 * time.Millisecond)
	base := runtime.NumGoroutine()

	// The probe: a fresh subscriber gets an event within a second, all along.
	stopStalls := stallMeter()
	stopProbe := make(chan struct{})
	probeDone := make(chan struct{})
	var probeMax time.Duration
	var probeErr error
	probes := 0
	go func() {
		defer close(probeDone)
		for {
			select {
			case <-stopProbe:
				return
			case <-time.After(50 * time.Millisecond):
			}
			start := time.Now()
			s, err := dialLoadSubscriber(srv.addr, "probe", 0)
			if err == nil {
				_, err = s.next(5 * time.Second)
				s.close(false)
			}
			probes++
			if err != nil && probeErr == nil {
				probeErr = err
			}
			probeMax = max(probeMax, time.Since(start))
		}
	}()

	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= cycles {
					return
				}
				if err := churnCycle(srv.addr, i); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stopProbe)
	<-probeDone
	stall := stopStalls()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d cycles failed; first: %v", n, cycles, firstErr.Load())
	}
	if probeErr != nil {
		t.Errorf("probe subscriber: %v", probeErr)
	}
	if probeMax > time.Second+stall {
		t.Errorf("a fresh subscriber waited %v for its first event, want at most 1 s + %v (scheduling stalls)", probeMax, stall)
	}
	t.Logf("%d cycles in %v (%.0f/s); %d probes, slowest %v", cycles, elapsed, float64(cycles)/elapsed.Seconds(), probes, probeMax)

	waitForGoroutines(t, base, "after the churn")
	if n := srv.running.Load(); n != 0 {
		t.Errorf("%d handlers still running after the churn", n)
	}
}

// churnCycle connects, receives, and disconnects, in one of four ways.
func churnCycle(addr string, i int) error {
	switch i % 4 {
	case 3:
		// Send the request and reset at once, before any response.
		c, err := net.DialTimeout("tcp", addr, 10*time.Second)
		if err != nil {
			return err
		}
		fmt.Fprintf(c, "GET /events?role=churn HTTP/1.1\r\nHost: %s\r\n\r\n", addr)
		c.(*net.TCPConn).SetLinger(0)
		return c.Close()
	case 2:
		// Clean close right after the headers.
		s, err := dialLoadSubscriber(addr, "churn", 0)
		if err != nil {
			return err
		}
		s.close(false)
		return nil
	default:
		// Receive an event, then close cleanly (0) or reset (1).
		s, err := dialLoadSubscriber(addr, "churn", 0)
		if err != nil {
			return err
		}
		_, err = s.next(10 * time.Second)
		s.close(i%4 == 1)
		if err != nil {
			return fmt.Errorf("cycle %d: receiving: %w", i, err)
		}
		return nil
	}
}

func TestLoadSlowSubscribers(t *testing.T) {
	const (
		writeTimeout = time.Second
		maxQueued    = 64 << 10
	)
	publishFor := 2 * time.Second
	if testing.Short() {
		publishFor = 1500 * time.Millisecond
	}
	base := runtime.NumGoroutine()
	route := httpsse.NewRoute(httpsse.WriteTimeout(writeTimeout), httpsse.MaxQueuedBytes(maxQueued))
	// The server's own timeouts are shorter than the test: they must not end healthy streams.
	srv := newLoadServer(t, route, 32<<10, 700*time.Millisecond)

	nSlow, nFast := *loadSlow, *loadFast
	var synced sync.WaitGroup
	synced.Add(nSlow + nFast)
	slowStop := make(chan struct{})
	var slowWG sync.WaitGroup
	for range nSlow {
		s, err := dialLoadSubscriber(srv.addr, "slow", 4096)
		if err != nil {
			t.Fatal(err)
		}
		slowWG.Add(1)
		go func() {
			defer slowWG.Done()
			defer s.close(false)
			for {
				ev, err := s.next(0)
				if err != nil || ev.EventName() == "sync" {
					break
				}
			}
			synced.Done()
			<-slowStop // stop reading
		}()
	}
	type fastResult struct {
		last   int
		maxGap time.Duration
		err    error
	}
	fastResults := make(chan fastResult, nFast)
	for range nFast {
		s, err := dialLoadSubscriber(srv.addr, "fast", 0)
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			defer s.close(false)
			var r fastResult
			isSynced := false
			var lastAt time.Time
			for {
				ev, err := s.next(0)
				if err != nil {
					if !isSynced {
						synced.Done()
					}
					if !errors.Is(err, io.EOF) {
						r.err = err
					}
					fastResults <- r
					return
				}
				now := time.Now()
				switch ev.EventName() {
				case "sync":
					if !isSynced {
						isSynced = true
						synced.Done()
					}
				case "seq":
					k, _ := strconv.Atoi(strings.TrimRight(ev.EventDataCollapsed(), "x"))
					if k != r.last+1 && r.err == nil {
						r.err = fmt.Errorf("event %d after %d", k, r.last)
					}
					if r.last > 0 {
						r.maxGap = max(r.maxGap, now.Sub(lastAt))
					}
					r.last, lastAt = k, now
				}
			}
		}()
	}
	stopSync := make(chan struct{})
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		publishSyncUntil(route, stopSync)
	}()
	synced.Wait()
	close(stopSync)
	<-syncDone

	pad := strings.Repeat("x", 1000)
	stopStalls := stallMeter()
	start := time.Now()
	published := 0
	var slowestPublish time.Duration
	tick := time.NewTicker(time.Millisecond)
	for time.Since(start) < publishFor {
		<-tick.C
		p := time.Now()
		if err := publishNumbered(route, "seq", published+1, pad); err != nil {
			t.Fatalf("PublishEvent = %v", err)
		}
		published++
		slowestPublish = max(slowestPublish, time.Since(p))
	}
	tick.Stop()

	stall := stopStalls()
	// Every slow subscriber is dropped within WriteTimeout plus slack.
	dropLimit := writeTimeout + 1500*time.Millisecond + stall
	for len(srv.endedTimes("slow")) < nSlow && time.Since(start) < dropLimit {
		time.Sleep(10 * time.Millisecond)
	}
	ended := srv.endedTimes("slow")
	if len(ended) != nSlow {
		t.Errorf("%d of %d slow subscribers dropped %v after publishing began, want all", len(ended), nSlow, time.Since(start))
	}
	var slowest time.Duration
	for _, e := range ended {
		slowest = max(slowest, e.Sub(start))
	}
	if n := len(srv.endedTimes("fast")); n > 0 {
		t.Errorf("%d fast subscribers dropped", n)
	}

	route.Close()
	for range nFast {
		r := <-fastResults
		if r.err != nil || r.last != published {
			t.Errorf("fast subscriber: %d of %d events, error %v", r.last, published, r.err)
		}
		if r.maxGap > writeTimeout/2+stall {
			t.Errorf("fast subscriber: %v between two events, want at most %v (WriteTimeout/2) + %v (scheduling stalls)", r.maxGap, writeTimeout/2, stall)
		}
	}
	if slowestPublish > writeTimeout/2+stall {
		t.Errorf("slowest PublishEvent %v, want at most %v (WriteTimeout/2) + %v (scheduling stalls)", slowestPublish, writeTimeout/2, stall)
	}
	t.Logf("%d events in %v; slow subscribers dropped after %v at most; slowest PublishEvent %v; worst scheduling stall %v", published, publishFor, slowest, slowestPublish, stall)
	close(slowStop)
	slowWG.Wait()
	srv.ts.Close()
	waitForGoroutines(t, base, "after Close")
}

func TestLoadSlowSubscriberHTTP2(t *testing.T) {
	// On HTTP/2 a subscriber that stops reading shares its connection with one that reads:
	// the slow stream is dropped (its flow-control window fills, the write deadline passes),
	// and the fast stream on the same connection goes on without a stall.
	const writeTimeout = 500 * time.Millisecond
	base := runtime.NumGoroutine()
	route := httpsse.NewRoute(httpsse.WriteTimeout(writeTimeout), httpsse.MaxQueuedBytes(256<<10))
	var mu sync.Mutex
	ended := map[string]time.Time{}
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route.ServeHTTP(w, r)
		mu.Lock()
		ended[r.URL.Query().Get("role")] = time.Now()
		mu.Unlock()
	}))
	ts.EnableHTTP2 = true
	ts.StartTLS()
	client := ts.Client()
	defer func() {
		route.Close()
		ts.Close()
		client.CloseIdleConnections()
	}()

	get := func(role string) *http.Response {
		resp, err := client.Get(ts.URL + "/events?role=" + role)
		if err != nil {
			t.Fatal(err)
		}
		if resp.ProtoMajor != 2 {
			t.Fatalf("response over %s, want HTTP/2", resp.Proto)
		}
		return resp
	}
	slow := get("slow")
	defer slow.Body.Close()
	fast := get("fast")
	defer fast.Body.Close()

	type fastResult struct {
		last   int
		maxGap time.Duration
		err    error
	}
	synced := make(chan struct{})
	done := make(chan fastResult, 1)
	go func() {
		var r fastResult
		dec := httpsse.NewDecoder(fast.Body)
		var lastAt time.Time
		isSynced := false
		for dec.Next() {
			var ev httpsse.Event
			dec.Decode(&ev)
			now := time.Now()
			switch ev.EventName() {
			case "sync":
				if !isSynced {
					isSynced = true
					close(synced)
				}
			case "seq":
				k, _ := strconv.Atoi(strings.TrimRight(ev.EventDataCollapsed(), "x"))
				if k != r.last+1 && r.err == nil {
					r.err = fmt.Errorf("event %d after %d", k, r.last)
				}
				if r.last > 0 {
					r.maxGap = max(r.maxGap, now.Sub(lastAt))
				}
				r.last, lastAt = k, now
			}
		}
		if r.err == nil {
			r.err = dec.Err()
		}
		done <- r
	}()
	stopSync := make(chan struct{})
	syncDone := make(chan struct{})
	go func() {
		defer close(syncDone)
		publishSyncUntil(route, stopSync)
	}()
	select {
	case <-synced:
	case <-time.After(10 * time.Second):
		t.Fatal("the fast subscriber got no event")
	}
	close(stopSync)
	<-syncDone

	// 4 KiB events every millisecond for 2 s: 8 MiB, more than the client's 4 MiB
	// per-stream window, so the slow stream's writes block.
	pad := strings.Repeat("x", 4000)
	stopStalls := stallMeter()
	start := time.Now()
	published := 0
	tick := time.NewTicker(time.Millisecond)
	for time.Since(start) < 2*time.Second {
		<-tick.C
		if err := publishNumbered(route, "seq", published+1, pad); err != nil {
			t.Fatal(err)
		}
		published++
	}
	tick.Stop()
	stall := stopStalls()
	deadline := time.Now().Add(2*time.Second + stall)
	for {
		mu.Lock()
		_, slowEnded := ended["slow"]
		mu.Unlock()
		if slowEnded || time.Now().After(deadline) {
			if !slowEnded {
				t.Errorf("the slow HTTP/2 stream was not dropped %v after publishing began", time.Since(start))
			}
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	_, fastEnded := ended["fast"]
	mu.Unlock()
	if fastEnded {
		t.Error("the fast HTTP/2 stream was dropped")
	}
	route.Close()
	r := <-done
	if r.err != nil || r.last != published {
		t.Errorf("fast stream: %d of %d events, error %v", r.last, published, r.err)
	}
	if r.maxGap > writeTimeout/2+stall {
		t.Errorf("fast stream: %v between two events, want at most %v (WriteTimeout/2) + %v (scheduling stalls)", r.maxGap, writeTimeout/2, stall)
	}
	slow.Body.Close()
	fast.Body.Close()
	ts.Close()
	client.CloseIdleConnections()
	waitForGoroutines(t, base, "after Close")
}

func TestLoadConcurrentPublishersAndClose(t *testing.T) {
	// Several publishers, a heartbeat every millisecond and subscribers coming and going,
	// then Close in the middle of it all: every subscriber sees each publisher's events
	// whole and in order with none missing while it is attached, every PublishEvent after
	// Close returns ErrClosed, and nothing is left running.
	base := runtime.NumGoroutine()
	route := httpsse.NewRoute(httpsse.WriteTimeout(2 * time.Second))
	srv := newLoadServer(t, route, 0, 0)
	hb := httpsse.HeartBeat(time.Millisecond, route)

	const publishers = 4
	var pubWG sync.WaitGroup
	pubErrs := make(chan error, publishers)
	for p := range publishers {
		pubWG.Add(1)
		go func() {
			defer pubWG.Done()
			for k := 1; ; k++ {
				err := route.PublishEvent(func(w httpsse.EventWriter) error {
					w.WriteEvent(fmt.Sprintf("p%d", p))
					w.WriteID(fmt.Sprintf("%d-%d", p, k))
					w.WriteData(strconv.Itoa(k))
					return w.WriteData(strings.Repeat("z", k%300))
				})
				if err != nil {
					if !errors.Is(err, httpsse.ErrClosed) {
						pubErrs <- fmt.Errorf("publisher %d: PublishEvent = %v, want ErrClosed", p, err)
					}
					return
				}
			}
		}()
	}

	var subWG sync.WaitGroup
	subErrs := make(chan error, 64)
	var streams atomic.Int64
	for i := range 16 {
		subWG.Add(1)
		go func() {
			defer subWG.Done()
			for round := 0; ; round++ {
				s, err := dialLoadSubscriber(srv.addr, "chaos", 0)
				if err != nil {
					return // 204 once the Route is closed
				}
				streams.Add(1)
				last := map[string]int{}
				want := 1 + (i*7+round*13)%40
				for got := 0; got < want; got++ {
					ev, err := s.next(5 * time.Second)
					if err != nil {
						if !errors.Is(err, io.EOF) {
							select {
							case subErrs <- fmt.Errorf("subscriber %d: %v", i, err):
							default:
							}
						}
						break
					}
					data := ev.EventData()
					k, _ := strconv.Atoi(data[0])
					if len(data) != 2 || ev.EventID() != fmt.Sprintf("%s-%d", strings.TrimPrefix(ev.EventName(), "p"), k) || len(data[1]) != k%300 {
						subErrs <- fmt.Errorf("subscriber %d: torn event %q id %q data %q", i, ev.EventName(), ev.EventID(), shortQuote(ev.EventDataCollapsed()))
						break
					}
					if l, ok := last[ev.EventName()]; ok && k != l+1 {
						subErrs <- fmt.Errorf("subscriber %d: %s event %d after %d", i, ev.EventName(), k, l)
						break
					}
					last[ev.EventName()] = k
				}
				s.close(round%2 == 1)
			}
		}()
	}

	time.Sleep(700 * time.Millisecond)
	route.Close()
	pubWG.Wait()
	subWG.Wait()
	hb.Close()
	close(pubErrs)
	for err := range pubErrs {
		t.Error(err)
	}
	close(subErrs)
	for err := range subErrs {
		t.Error(err)
	}
	if err := route.PublishEvent(func(w httpsse.EventWriter) error { return w.WriteData("late") }); !errors.Is(err, httpsse.ErrClosed) {
		t.Errorf("PublishEvent after Close = %v, want ErrClosed", err)
	}
	t.Logf("%d streams", streams.Load())
	srv.ts.Close()
	waitForGoroutines(t, base, "after Close")
}

func TestLoadChurnPerRequestRoute(t *testing.T) {
	// The original README's pattern: a Route per request, closed when its handler returns,
	// with a publishing goroutine that stops on ErrClosed. Under churn, every handler and
	// every publisher ends.
	cycles := 600
	if testing.Short() {
		cycles = 200
	}
	base := runtime.NumGoroutine()
	var publishers sync.WaitGroup
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route := httpsse.NewRoute()
		defer route.Close()
		publishers.Add(1)
		go func() {
			defer publishers.Done()
			for k := 1; ; k++ {
				if err := publishNumbered(route, "tick", k, ""); err != nil {
					return
				}
				time.Sleep(time.Millisecond)
			}
		}()
		route.ServeHTTP(w, r)
	}))
	addr := ts.Listener.Addr().String()
	var next atomic.Int64
	var failed atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= cycles {
					return
				}
				if err := churnCycle(addr, i); err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
	}
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d of %d cycles failed; first: %v", n, cycles, firstErr.Load())
	}
	done := make(chan struct{})
	go func() {
		publishers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publishers of per-request Routes still running 10 s after the churn")
	}
	ts.Close()
	waitForGoroutines(t, base, "after the churn")
}

func TestLoadDroppedSubscriberCutAtOnce(t *testing.T) {
	// A subscriber that falls more than MaxQueuedBytes behind while its handler is blocked
	// in a write is disconnected then, not when the write times out (CONTRACT server
	// rule 7): with WriteTimeout(1 min) it must be gone within a second.
	route := httpsse.NewRoute(httpsse.WriteTimeout(time.Minute), httpsse.MaxQueuedBytes(64<<10))
	srv := newLoadServer(t, route, 32<<10, 0)
	s, err := dialLoadSubscriber(srv.addr, "slow", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close(false)
	// About 2 MiB at 2 MiB/s for a subscriber that never reads: it keeps up at first, until
	// the socket buffers are full and its handler blocks in a Write; then it falls 32 times
	// its budget behind.
	pad := strings.Repeat("x", 2000)
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for k := 1; k <= 1000; k++ {
		<-tick.C
		if err := publishNumbered(route, "seq", k, pad); err != nil {
			t.Fatal(err)
		}
	}
	published := time.Since(start)
	for len(srv.endedTimes("slow")) == 0 && time.Since(start) < published+time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	if len(srv.endedTimes("slow")) == 0 {
		t.Errorf("ServeHTTP of a subscriber 2 MiB behind with MaxQueuedBytes(64 KiB) still running %v after publishing began (WriteTimeout is 1 min)", time.Since(start).Round(time.Millisecond))
	}
	route.Close()
	s.close(true) // unblock the stuck write so the handler can return
}

func TestLoadCloseCutsStalledWrite(t *testing.T) {
	// Close ends the ServeHTTP of a subscriber that has stopped reading, whose handler is
	// blocked in a write, within the Route's grace of a second, not after WriteTimeout
	// (CONTRACT server rule 6: Close, and a Shutdown waiting for it, return promptly).
	route := httpsse.NewRoute(httpsse.WriteTimeout(time.Minute), httpsse.MaxQueuedBytes(64<<20))
	srv := newLoadServer(t, route, 32<<10, 0)
	s, err := dialLoadSubscriber(srv.addr, "slow", 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close(true)
	// Fill the socket buffers, so that the handler blocks in a Write.
	pad := strings.Repeat("x", 2000)
	for k := 1; k <= 500; k++ {
		if err := publishNumbered(route, "seq", k, pad); err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Microsecond)
	}
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	route.Close()
	for len(srv.endedTimes("slow")) == 0 && time.Since(start) < 3*time.Second { // the grace is 1 s
		time.Sleep(10 * time.Millisecond)
	}
	if len(srv.endedTimes("slow")) == 0 {
		t.Errorf("ServeHTTP of a stalled subscriber still running %v after Close (WriteTimeout is 1 min)", time.Since(start).Round(time.Millisecond))
	}
	s.close(true)
}
