package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reiver/go-httpsse"
)

func numCPU() int { return runtime.GOMAXPROCS(0) }

// server is the server side of a scenario: one shared Route on an http.Server on loopback.
type server struct {
	route httpsse.Route
	srv   *http.Server
	ln    net.Listener
	addr  string
	done  chan struct{} // closed when Serve has returned

	mu       sync.Mutex
	ended    map[string][]time.Time // when ServeHTTP returned, by the request's role query value
	inFlight int
}

// startServer serves route at /events on a loopback port. A positive serverTimeout sets the
// http.Server's ReadTimeout and WriteTimeout; a positive sndbuf sets SO_SNDBUF on every
// accepted connection.
func startServer(route httpsse.Route, serverTimeout time.Duration, sndbuf int) (*server, error) {
	var ln net.Listener
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	if sndbuf > 0 {
		ln = sndbufListener{ln, sndbuf}
	}
	s := &server{route: route, ln: ln, addr: ln.Addr().String(), done: make(chan struct{}), ended: map[string][]time.Time{}}
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       serverTimeout,
		WriteTimeout:      serverTimeout,
		// Silence the server's log of accept errors and the like; checks report failures.
		ErrorLog: nil,
	}
	if ownListener {
		ln = httpsse.NewListener(ln, s.srv)
	}
	go func() {
		defer close(s.done)
		s.srv.Serve(ln)
	}()
	if ownListener {
		// The listener starts its accepting goroutine at the first Accept; one connection
		// makes sure it runs before a scenario counts its baseline of goroutines.
		if c, err := net.Dial("tcp", s.addr); err == nil {
			c.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s, nil
}

// ownListener serves the streams with httpsse.NewListener instead of net/http (-listener).
var ownListener bool

// sndbufListener sets the send buffer of the connections it accepts. Linux grows the send
// buffer of a loopback socket up to 4 MiB (net.ipv4.tcp_wmem), which a subscriber that stops
// reading would absorb before the Route notices anything; a fixed buffer makes the scenario
// measure the Route rather than the kernel.
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

// ServeHTTP serves the Route at /events and records when each subscriber's ServeHTTP
// returned, by the value of its "role" query parameter.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/events" {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	s.inFlight++
	s.mu.Unlock()
	s.route.ServeHTTP(w, r)
	now := time.Now()
	role := r.URL.Query().Get("role")
	s.mu.Lock()
	s.inFlight--
	if role == "slow" || role == "fast" {
		// Only these are looked at; recording every churn cycle would grow the heap.
		s.ended[role] = append(s.ended[role], now)
	}
	s.mu.Unlock()
}

func (s *server) endedTimes(role string) []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.ended[role]...)
}

func (s *server) handlersRunning() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inFlight
}

// stop closes the Route, then shuts the server down.
func (s *server) stop() {
	s.route.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		s.srv.Close()
	}
	<-s.done
}

// memory is the part of the heap and of the stacks in use, after two garbage collections so
// that sync.Pool caches are emptied.
type memory struct {
	heapAlloc  uint64 // bytes of live objects
	heapInuse  uint64 // bytes of spans in use, which includes fragmentation
	stackInuse uint64
}

func (m memory) total() uint64 { return m.heapInuse + m.stackInuse }

func measureMemory() memory {
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memory{heapAlloc: ms.HeapAlloc, heapInuse: ms.HeapInuse, stackInuse: ms.StackInuse}
}

func heapInuseNow() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// waitGoroutines polls until at most want goroutines run or the timeout passes, and returns
// the last count.
func waitGoroutines(want int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		n := runtime.NumGoroutine()
		if n <= want || time.Now().After(deadline) {
			return n
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// report is one line the child writes on its standard output, as JSON.
type report struct {
	Kind     string  `json:"kind"`
	N        int     `json:"n"`
	Failed   int     `json:"failed"`
	Err      string  `json:"err,omitempty"`
	Events   int64   `json:"events,omitempty"`
	MaxGapMS float64 `json:"max_gap_ms,omitempty"`
	StallMS  float64 `json:"stall_ms,omitempty"` // the subscriber process's worst scheduling stall
	Clean    int     `json:"clean,omitempty"`
	Reset    int     `json:"reset,omitempty"`
	Extra    string  `json:"extra,omitempty"`
}

// child is the subscriber process as the parent sees it.
type child struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	reports chan report
	exited  chan error

	finishOnce sync.Once
	finishErr  error
}

func startChild(mode string, addr string, args ...string) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, append([]string{"-child=" + mode, "-addr=" + addr}, args...)...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, stdin: stdin, reports: make(chan report, 64), exited: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			var r report
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				fmt.Fprintf(os.Stderr, "httpsse-load: child said %q\n", sc.Text())
				continue
			}
			c.reports <- r
		}
		close(c.reports)
		c.exited <- cmd.Wait()
	}()
	return c, nil
}

// await returns the next report of the given kind, skipping progress reports.
func (c *child) await(kind string, timeout time.Duration) (report, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		select {
		case r, ok := <-c.reports:
			if !ok {
				return report{}, fmt.Errorf("subscriber process ended before reporting %q", kind)
			}
			if r.Kind == kind {
				return r, nil
			}
			if r.Kind == "fatal" {
				return r, fmt.Errorf("subscriber process: %s", r.Err)
			}
		case <-t.C:
			return report{}, fmt.Errorf("no %q report from the subscriber process within %v", kind, timeout)
		}
	}
}

// tell sends a command line to the child.
func (c *child) tell(cmd string) { fmt.Fprintln(c.stdin, cmd) }

// finish closes the child's standard input, which tells it to exit, and waits for it.
// It may be called more than once.
func (c *child) finish(timeout time.Duration) error {
	c.finishOnce.Do(func() {
		c.stdin.Close()
		select {
		case c.finishErr = <-c.exited:
		case <-time.After(timeout):
			c.cmd.Process.Kill()
			c.finishErr = errors.New("subscriber process did not exit; killed")
		}
	})
	return c.finishErr
}

// withRetries calls dial up to five times, 100 ms apart, until it succeeds: a full accept
// queue can refuse a connection while thousands are being opened at once.
func withRetries[T any](dial func() (T, error)) (T, error) {
	var s T
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		if s, err = dial(); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return s, err
}

// subscriber is a raw HTTP/1.1 subscriber: a TCP connection, the response, and a Decoder on
// its body. It lets the scenarios control the socket (receive buffer, reset on close).
type subscriber struct {
	conn *net.TCPConn
	body io.ReadCloser
	dec  *httpsse.Decoder
}

// dialSubscriber connects to the Route at addr and returns once the response headers are in.
// A positive rcvbuf sets SO_RCVBUF before connecting, so the TCP window stays that small.
func dialSubscriber(addr, role string, rcvbuf int, timeout time.Duration) (*subscriber, error) {
	d := net.Dialer{Timeout: timeout}
	if rcvbuf > 0 {
		d.Control = setReceiveBuffer(rcvbuf)
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := c.(*net.TCPConn)
	if rcvbuf > 0 {
		conn.SetReadBuffer(rcvbuf) // where setReceiveBuffer cannot do it before connecting
	}
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := fmt.Fprintf(conn, "GET /events?role=%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n", role, addr); err != nil {
		conn.Close()
		return nil, err
	}
	bufSize := 4096
	br := bufio.NewReaderSize(conn, bufSize)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading response headers: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		conn.Close()
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != httpsse.ContentType {
		resp.Body.Close()
		conn.Close()
		return nil, fmt.Errorf("Content-Type %q", resp.Header.Get("Content-Type"))
	}
	conn.SetDeadline(time.Time{})
	return &subscriber{conn: conn, body: resp.Body, dec: httpsse.NewDecoder(resp.Body)}, nil
}

// next reads the next event, giving up after timeout (0: no limit).
func (s *subscriber) next(timeout time.Duration) (httpsse.Event, error) {
	if timeout > 0 {
		s.conn.SetReadDeadline(time.Now().Add(timeout))
	}
	var ev httpsse.Event
	if !s.dec.Next() {
		if err := s.dec.Err(); err != nil {
			return ev, err
		}
		return ev, io.EOF
	}
	err := s.dec.Decode(&ev)
	return ev, err
}

// close ends the connection, with a FIN (clean) or with an RST (SO_LINGER 0).
func (s *subscriber) close(reset bool) {
	if reset {
		s.conn.SetLinger(0)
	}
	s.conn.Close()
}

// publishSeq publishes the event "seq" with id and data k, padded to size bytes of data.
func publishSeq(route httpsse.Route, k int, pad string) error {
	return route.PublishEvent(func(w httpsse.EventWriter) error {
		s := strconv.Itoa(k)
		if err := w.WriteEvent("seq"); err != nil {
			return err
		}
		if err := w.WriteID(s); err != nil {
			return err
		}
		return w.WriteData(s + pad)
	})
}

func publishSync(route httpsse.Route) error {
	return route.PublishEvent(func(w httpsse.EventWriter) error {
		if err := w.WriteEvent("sync"); err != nil {
			return err
		}
		return w.WriteData("sync")
	})
}

// syncUntil publishes a "sync" event every interval until the child reports kind (every
// subscriber has received one, so every subscriber is attached to the Route).
func syncUntil(route httpsse.Route, c *child, kind string, timeout time.Duration) (report, error) {
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			publishSync(route)
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	r, err := c.await(kind, timeout)
	close(stop)
	if err == nil {
		// On error the publisher may still wait for a first subscriber; closing the Route
		// ends that wait.
		wg.Wait()
	}
	return r, err
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
}

func mib(n float64) string {
	return strconv.FormatFloat(n/(1<<20), 'f', 2, 64) + " MiB"
}

func kib(n float64) string {
	return strconv.FormatFloat(n/(1<<10), 'f', 1, 64) + " KiB"
}

// stallMeter measures how late this process's goroutines run: it sleeps a millisecond again
// and again and keeps the largest oversleep. On a machine shared with other work, a
// process can be kept off the CPU for hundreds of milliseconds; the checks on gaps and
// latencies allow for what this process (and the subscriber process) measured, so that they
// fail for stalls the Route causes, not for ones the machine does.
type stallMeter struct {
	stop chan struct{}
	done chan struct{}
	max  atomic.Int64
}

func startStallMeter() *stallMeter {
	m := &stallMeter{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			start := time.Now()
			select {
			case <-m.stop:
				return
			case <-time.After(time.Millisecond):
			}
			if late := int64(time.Since(start) - time.Millisecond); late > m.max.Load() {
				m.max.Store(late)
			}
		}
	}()
	return m
}

// reset forgets what was measured so far.
func (m *stallMeter) reset() { m.max.Store(0) }

// worst returns the largest stall measured.
func (m *stallMeter) worst() time.Duration { return time.Duration(m.max.Load()) }

func (m *stallMeter) close() {
	close(m.stop)
	<-m.done
}
