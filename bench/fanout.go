package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// child is a server process started from this binary with -child.
type child struct {
	cmd     *exec.Cmd
	mu      sync.Mutex // serializes writes to stdin
	stdin   io.WriteCloser
	replies chan string
	addr    string
	done    chan struct{} // in process: closed when childMain has returned
}

// inProcess is set by -inproc: startChild then runs the server loop in a goroutine of this
// process, so that the server and the readers share one Go runtime and its scheduler.
var inProcess bool

// serverWhere says where the servers run, for the tables' text.
func serverWhere() string {
	if inProcess {
		return "Each library's own server in this process, beside the readers (-inproc; CPU is then the readers' and the server's together),"
	}
	return "Each library's own server in its own process"
}

func startChild(l *library) (*child, error) {
	if inProcess {
		return startInProcess(l)
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-child", "-lib", l.name)
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
	c := &child{cmd: cmd, stdin: stdin, replies: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 64<<20) // "times" lines are long
		for sc.Scan() {
			c.replies <- sc.Text()
		}
		close(c.replies)
	}()
	r, err := c.reply(10 * time.Second)
	if err != nil {
		c.stop()
		return nil, err
	}
	addr, ok := strings.CutPrefix(r, "addr ")
	if !ok {
		c.stop()
		return nil, fmt.Errorf("child: %q", r)
	}
	c.addr = addr
	return c, nil
}

// startInProcess runs childMain in a goroutine, talking to it over pipes.
func startInProcess(l *library) (*child, error) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	c := &child{stdin: inW, replies: make(chan string, 16), done: make(chan struct{})}
	go func() {
		childMain(l.name, inR, outW)
		outW.Close()
		inR.Close()
		close(c.done)
	}()
	go func() {
		sc := bufio.NewScanner(outR)
		sc.Buffer(make([]byte, 64<<10), 64<<20)
		for sc.Scan() {
			c.replies <- sc.Text()
		}
		close(c.replies)
	}()
	r, err := c.reply(10 * time.Second)
	if err != nil {
		c.stop()
		return nil, err
	}
	addr, ok := strings.CutPrefix(r, "addr ")
	if !ok {
		c.stop()
		return nil, fmt.Errorf("child: %q", r)
	}
	c.addr = addr
	return c, nil
}

func (c *child) send(line string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, err := io.WriteString(c.stdin, line+"\n")
	return err
}

var errChildTimeout = errors.New("child: no answer")

func (c *child) reply(timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r, ok := <-c.replies:
		if !ok {
			return "", errors.New("child exited")
		}
		if strings.HasPrefix(r, "error") {
			return r, errors.New("child: " + r)
		}
		return r, nil
	case <-t.C:
		return "", errChildTimeout
	}
}

func (c *child) call(line string, timeout time.Duration) (string, error) {
	if err := c.send(line); err != nil {
		return "", err
	}
	return c.reply(timeout)
}

// stop ends the child first, so the server closes the connections (TIME_WAIT stays on its side).
func (c *child) stop() {
	_ = c.send("quit")
	if c.cmd == nil {
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
		}
		return
	}
	done := make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = c.cmd.Process.Kill()
		<-done
	}
}

// subscribers is a set of raw readers connected to one child.
type subscribers struct {
	readers []*rawReader
	warm    atomic.Int64 // readers that have had a warm-up event
	dropped atomic.Int64 // readers whose response ended or failed
	errs    sync.Map     // first errors, by reader index
	wg      sync.WaitGroup
}

// connect opens n readers to c concurrently and starts reading. Each reader calls onSeq for
// every numbered event; a reader whose response ends calls onEnd.
func connect(c *child, path string, n, bufSize int, onSeq func(r, seq int), onEnd func(r int)) (*subscribers, error) {
	s := &subscribers{readers: make([]*rawReader, n)}
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
				rr, err := dialRaw(c.addr, path, bufSize)
				if err != nil {
					dialErr.Store(err)
					return
				}
				s.readers[i] = rr
			}
		}()
	}
	dwg.Wait()
	if err, _ := dialErr.Load().(error); err != nil {
		s.close()
		return nil, fmt.Errorf("connecting subscribers: %w", err)
	}
	for i, rr := range s.readers {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			warm := false
			err := rr.run(func(p []byte) {
				rr.scan.feed(p, func(seq int) { onSeq(i, seq) }, func() {
					if !warm {
						warm = true
						s.warm.Add(1)
					}
				})
			})
			if err != nil {
				s.errs.LoadOrStore(i, err)
			}
			s.dropped.Add(1)
			if onEnd != nil {
				onEnd(i)
			}
		}()
	}
	return s, nil
}

func (s *subscribers) close() {
	for _, rr := range s.readers {
		if rr != nil {
			rr.conn.Close()
		}
	}
	s.wg.Wait()
}

// warmUp publishes warm-up events until every reader has had one, so that every subscription is
// in place before anything is measured.
func warmUp(c *child, s *subscribers, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for s.warm.Load() < int64(n) {
		if time.Now().After(deadline) {
			return fmt.Errorf("warm-up: %d of %d subscribers ready after %v (%d ended)", s.warm.Load(), n, timeout, s.dropped.Load())
		}
		if _, err := c.call("warm", 30*time.Second); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let the last warm-up events drain
	return nil
}

// fanoutResult is one fan-out run.
type fanoutResult struct {
	lib        string
	mode       string
	subs, evs  int
	deliveries int64   // events received, all subscribers together
	seconds    float64 // from the first publish to the last delivery
	cpuNs      float64 // server process CPU time
	readerNs   float64 // this process's CPU time: the readers
	lost       int64   // events not received (or received out of order)
	dropped    int64   // subscribers whose stream ended early
	err        error
	// tcp is the growth of the machine's TCP counters from the first publish to the last
	// delivery (see watchedCounters).
	tcp tcpCounters
}

func (r fanoutResult) perSecond() float64 {
	if r.lost > 0 || r.dropped > 0 || r.err != nil || r.seconds == 0 {
		return 0
	}
	return float64(r.deliveries) / r.seconds
}

// runFanout starts l's server in a child process, connects subs raw readers, and publishes evs
// events in mode "burst" (as fast as the library accepts them) or "window" (at most 32 events
// ahead of the slowest reader).
func runFanout(l *library, mode string, subs, evs int) (res fanoutResult) {
	res = fanoutResult{lib: l.name, mode: mode, subs: subs, evs: evs}
	c, err := startChild(l)
	if err != nil {
		res.err = err
		return res
	}
	var s *subscribers
	defer func() {
		c.stop() // first, so the server side closes the connections
		if s != nil {
			s.close()
		}
	}()

	arrived := make([]atomic.Int32, evs)
	var completed atomic.Int64 // highest event every reader has (or has passed)
	completed.Store(-1)
	notify := make(chan struct{}, 1) // wakes the acker; one pending wake-up is enough
	last := make([]int, subs)        // per reader: last event seen
	counts := make([]int64, subs)
	var lastDelivery atomic.Int64 // unix ns
	var delivered atomic.Int64
	var finished atomic.Int64
	pass := func(seq int) {
		if arrived[seq].Add(1) == int32(subs) {
			for {
				c := completed.Load()
				if int64(seq) <= c || completed.CompareAndSwap(c, int64(seq)) {
					break
				}
			}
			select {
			case notify <- struct{}{}:
			default:
			}
		}
	}
	// onSeq and onEnd for reader r run on r's goroutine only, so last, counts and done need no lock.
	for i := range last {
		last[i] = -1
	}
	done := make([]bool, subs)
	onSeq := func(r, seq int) {
		if seq < 0 || seq >= evs {
			return
		}
		if done[r] || seq <= last[r] {
			return
		}
		from := last[r] + 1
		last[r] = seq
		counts[r]++
		fin := seq == evs-1
		if fin {
			done[r] = true
		}
		for k := from; k <= seq; k++ { // skipped events count as passed, so the window goes on
			pass(k)
		}
		delivered.Add(1)
		if fin {
			lastDelivery.Store(time.Now().UnixNano())
			finished.Add(1)
		}
	}
	onEnd := func(r int) {
		if done[r] {
			return
		}
		done[r] = true
		from := last[r] + 1
		last[r] = evs
		for k := from; k < evs; k++ {
			pass(k)
		}
		finished.Add(1)
	}
	s, err = connect(c, l.path, subs, 64<<10, onSeq, onEnd)
	if err != nil {
		res.err = err
		return res
	}
	if err := warmUp(c, s, subs, 60*time.Second); err != nil {
		res.err = err
		return res
	}

	stopAck := make(chan struct{})
	defer close(stopAck)
	go func() {
		sent := int64(-1)
		for {
			select {
			case <-notify:
				if n := completed.Load(); n > sent {
					sent = n
					_ = c.send("ack " + strconv.FormatInt(n, 10))
				}
			case <-stopAck:
				return
			}
		}
	}()

	tcp0 := readTCPCounters()
	if d, err := time.ParseDuration(os.Getenv("BENCH_SS_AFTER")); err == nil {
		// Diagnosis: when the run is still going after d, show the sockets that still hold
		// data (ss -tin), to tell a stream held up in the kernel from a reader not reading.
		t := time.AfterFunc(d, func() {
			if finished.Load() < int64(subs) {
				out, _ := exec.Command("ss", "-tinHO", "state", "established", "dst", c.addr).CombinedOutput()
				out2, _ := exec.Command("ss", "-tinHO", "state", "established", "src", c.addr).CombinedOutput()
				fmt.Fprintf(os.Stderr, "ss after %v (%d of %d finished):\nto server:\n%s\nfrom server:\n%s\n", d, finished.Load(), subs, out, out2)
			}
		})
		defer t.Stop()
	}
	start, cpuStart := time.Now(), cpuTime()
	if err := c.send(fmt.Sprintf("run %s %d", mode, evs)); err != nil {
		res.err = err
		return res
	}
	// Wait until every reader has every event or has ended, or nothing moves for 5 seconds.
	const stall = 5 * time.Second
	prev, moved := int64(-1), time.Now()
	for finished.Load() < int64(subs) {
		time.Sleep(2 * time.Millisecond)
		if d := delivered.Load(); d != prev {
			prev, moved = d, time.Now()
		} else if time.Since(moved) > stall {
			break
		}
	}
	res.readerNs = float64(cpuTime() - cpuStart)
	if tcp0 != nil {
		res.tcp = readTCPCounters().since(tcp0)
	}
	res.deliveries = delivered.Load()
	res.lost = int64(subs)*int64(evs) - res.deliveries
	if t := lastDelivery.Load(); t > 0 {
		res.seconds = time.Unix(0, t).Sub(start).Seconds()
	}
	res.dropped = s.dropped.Load()
	if r, err := c.reply(stall); err != nil || r != "published" {
		if res.lost == 0 {
			res.err = fmt.Errorf("publisher: %q %v", r, err)
		}
		return res
	}
	r, err := c.call("stats", 10*time.Second)
	if err != nil {
		res.err = err
		return res
	}
	ns, _ := strconv.ParseInt(strings.TrimPrefix(r, "cpu "), 10, 64)
	res.cpuNs = float64(ns)
	return res
}

// idleResult is one idle run.
type idleResult struct {
	lib                     string
	subs                    int
	bytesPerSub, goroutines float64 // per subscriber
	heapPerSub, stackPerSub float64
	err                     error
}

// runIdle connects n readers to l's server in a child process, has one event sent to each, then
// reads the child's memory.
func runIdle(l *library, n int) (res idleResult) {
	res = idleResult{lib: l.name, subs: n}
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
	s, err = connect(c, l.path, n, 4<<10, func(int, int) {}, nil)
	if err != nil {
		res.err = err
		return res
	}
	if err := warmUp(c, s, n, 120*time.Second); err != nil {
		res.err = err
		return res
	}
	time.Sleep(300 * time.Millisecond)
	if d := s.dropped.Load(); d > 0 {
		res.err = fmt.Errorf("%d subscribers ended while idle", d)
		return res
	}
	r, err := c.call("mem", 30*time.Second)
	if err != nil {
		res.err = err
		return res
	}
	var heap, stack, g, bheap, bstack, bg float64
	if _, err := fmt.Sscanf(r, "mem %g %g %g %g %g %g", &heap, &stack, &g, &bheap, &bstack, &bg); err != nil {
		res.err = fmt.Errorf("child: %q: %w", r, err)
		return res
	}
	res.heapPerSub = (heap - bheap) / float64(n)
	res.stackPerSub = (stack - bstack) / float64(n)
	res.bytesPerSub = res.heapPerSub + res.stackPerSub
	res.goroutines = (g - bg) / float64(n)
	return res
}
