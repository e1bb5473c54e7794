package main

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/reiver/go-httpsse"
)

// sourceAddr returns the loopback source address of subscriber i, one of n in turn:
// 127.0.0.2, 127.0.0.3, ..., 127.0.0.251, 127.0.1.2, ...
// Each source address has its own range of ephemeral ports, so n addresses allow n times
// as many connections to the one server address. n <= 0 lets the kernel choose.
func sourceAddr(i, n int) *net.TCPAddr {
	if n <= 0 {
		return nil
	}
	j := i % n
	return &net.TCPAddr{IP: net.IPv4(127, 0, byte(j/250), byte(2+j%250))}
}

// dialResume connects to the Route at addr from the source address local (nil: any),
// sending Last-Event-ID lastID when it is not empty, and returns once the response headers
// are in.
func dialResume(addr string, local *net.TCPAddr, role, lastID string, timeout time.Duration) (*subscriber, error) {
	d := net.Dialer{Timeout: timeout}
	if local != nil {
		d.LocalAddr = local
	}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	conn := c.(*net.TCPConn)
	conn.SetDeadline(time.Now().Add(timeout))
	header := ""
	if lastID != "" {
		header = "Last-Event-ID: " + lastID + "\r\n"
	}
	if _, err := fmt.Fprintf(conn, "GET /events?role=%s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n%s\r\n", role, addr, header); err != nil {
		conn.Close()
		return nil, err
	}
	br := bufio.NewReaderSize(conn, 4096)
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
	conn.SetDeadline(time.Time{})
	return &subscriber{conn: conn, body: resp.Body, dec: httpsse.NewDecoder(resp.Body)}, nil
}

// dialMany connects n subscribers, at most dialers at once, from n source addresses in
// turn; lastID gives each one's Last-Event-ID.
func dialMany(addr, role string, n, dialers, sources int, lastID func(i int) string, errs *firstError) ([]*subscriber, int) {
	subs := make([]*subscriber, n)
	var failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(dialers, 1))
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := withRetries(func() (*subscriber, error) {
				return dialResume(addr, sourceAddr(i, sources), role, lastID(i), 60*time.Second)
			})
			if err != nil {
				failed.Add(1)
				errs.set(fmt.Errorf("subscriber %d: %w", i, err))
				return
			}
			subs[i] = s
		}()
	}
	wg.Wait()
	return subs, int(failed.Load())
}

// seqTrail keeps the last few sequence numbers a subscriber received, to show the seam
// when a sequence is wrong.
type seqTrail struct {
	last [8]int
	n    int
}

func (t *seqTrail) add(k int) {
	t.last[t.n%len(t.last)] = k
	t.n++
}

func (t *seqTrail) String() string {
	var b []string
	for i := max(t.n-len(t.last), 0); i < t.n; i++ {
		b = append(b, strconv.Itoa(t.last[i%len(t.last)]))
	}
	return "[" + strings.Join(b, " ") + "]"
}

// childStorm is the subscriber process of the storm scenario. Commands on standard input:
// "disconnect", "reconnect L ID", "final F".
func childStorm(cfg config, out *emitter, in *bufio.Scanner) error {
	n := cfg.subscribers
	var errs firstError
	subs, failed := dialMany(cfg.addr, "storm", n, cfg.dialers, cfg.sourceAddrs, func(int) string { return "" }, &errs)
	out.emit(report{Kind: "connected", N: n - failed, Failed: failed, Err: errs.String()})

	// Phase 1: every subscriber reads live events until the parent says "disconnect"; each
	// must see consecutive sequence numbers from the first it receives.
	var (
		synced, bad atomic.Int64
		firstErrs   firstError
		stop        atomic.Bool
		wg          sync.WaitGroup
	)
	syncedSent := make(chan struct{})
	var syncOnce sync.Once
	markSynced := func() {
		if synced.Add(1) == int64(n) {
			syncOnce.Do(func() { close(syncedSent) })
		}
	}
	for i, s := range subs {
		if s == nil {
			markSynced()
			bad.Add(1)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			prev, isSynced := 0, false
			for {
				ev, err := s.next(0)
				if err != nil {
					if !stop.Load() {
						bad.Add(1)
						firstErrs.set(fmt.Errorf("subscriber %d before the storm: %w", i, err))
					}
					if !isSynced {
						markSynced()
					}
					return
				}
				k, err := strconv.Atoi(ev.EventDataCollapsed())
				if err == nil && prev != 0 && k != prev+1 {
					bad.Add(1)
					firstErrs.set(fmt.Errorf("subscriber %d before the storm: event %d after %d", i, k, prev))
				}
				prev = k
				if !isSynced {
					isSynced = true
					markSynced()
				}
			}
		}()
	}
	if n == 0 {
		syncOnce.Do(func() { close(syncedSent) })
	}
	<-syncedSent
	out.emit(report{Kind: "synced", N: n - int(bad.Load()), Failed: int(bad.Load()), Err: firstErrs.String()})

	if !waitCommand(in, "disconnect") {
		return errors.New("standard input closed before \"disconnect\"")
	}
	stop.Store(true)
	for _, s := range subs {
		if s != nil {
			s.close(false)
		}
	}
	wg.Wait()
	out.emit(report{Kind: "disconnected", N: n})

	args, ok := waitCommandArgs(in, "reconnect")
	if !ok || len(args) != 2 {
		return errors.New("no \"reconnect L ID\" command")
	}
	L, _ := strconv.Atoi(args[0])
	lastID := args[1]
	from, _ := strconv.Atoi(lastID)
	start := time.Now()

	// Phase 2: all reconnect at once. Each goroutine dials, then checks every event; it
	// records when it received L; after "final F" the parent's F is known and each one
	// reads until F.
	type state struct {
		caughtAt time.Duration // from start to event L; 0 until then
		last     atomic.Int64  // written by its reader only; atomic so that no lock is taken per event
		received atomic.Int64
		err      error
		trail    seqTrail
	}
	states := make([]state, n)
	var (
		mu     sync.Mutex
		cond   = sync.NewCond(&mu)
		final  = -1 // F, once known
		caught int
		rwg    sync.WaitGroup
	)
	dialers := cfg.stormDialers
	if dialers <= 0 {
		dialers = n // all at once
	}
	sem := make(chan struct{}, max(dialers, 1))
	for i := range n {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			st := &states[i]
			fail := func(err error) {
				mu.Lock()
				if st.err == nil {
					st.err = err
				}
				if st.caughtAt == 0 {
					caught++
				}
				cond.Broadcast()
				mu.Unlock()
			}
			sem <- struct{}{}
			s, err := withRetries(func() (*subscriber, error) {
				return dialResume(cfg.addr, sourceAddr(i, cfg.sourceAddrs), "storm", lastID, 60*time.Second)
			})
			<-sem
			if err != nil {
				fail(fmt.Errorf("subscriber %d (Last-Event-ID %s): reconnecting: %w", i, lastID, err))
				return
			}
			defer s.close(false)
			prev := from
			for {
				ev, err := s.next(0)
				if err != nil {
					mu.Lock()
					done := final >= 0 && prev == final
					mu.Unlock()
					if done {
						return // the parent closed the Route after the report
					}
					fail(fmt.Errorf("subscriber %d (Last-Event-ID %s): after event %d: %w; last received %s", i, lastID, prev, err, st.trail.String()))
					return
				}
				k, err := strconv.Atoi(ev.EventDataCollapsed())
				if ev.EventName() != "seq" || err != nil || k != prev+1 || ev.EventID() != strconv.Itoa(k) {
					where := "; the events received since reconnecting, last " + st.trail.String()
					if st.trail.n == 0 {
						where = ", as the first event after reconnecting"
					}
					fail(fmt.Errorf("subscriber %d (Last-Event-ID %s): event %q id %q data %q after %d (want %d)%s",
						i, lastID, ev.EventName(), ev.EventID(), ev.EventDataCollapsed(), prev, prev+1, where))
					return
				}
				st.trail.add(k)
				prev = k
				st.last.Store(int64(k))
				st.received.Add(1)
				if k == L {
					at := time.Since(start)
					mu.Lock()
					st.caughtAt = at
					caught++
					cond.Broadcast()
					mu.Unlock()
				}
			}
		}()
	}
	// Every subscriber caught up (or failed): report the times.
	mu.Lock()
	for caught < n {
		cond.Wait()
	}
	var times []time.Duration
	var fails int
	var ferr firstError
	for i := range states {
		if states[i].err != nil || states[i].caughtAt == 0 {
			fails++
			ferr.set(states[i].err)
			continue
		}
		times = append(times, states[i].caughtAt)
	}
	mu.Unlock()
	slices.Sort(times)
	r := report{Kind: "caughtup", N: len(times), Failed: fails, Err: ferr.String()}
	if len(times) > 0 {
		r.MaxGapMS = float64(times[len(times)-1]) / 1e6
		r.Extra = fmt.Sprintf("min %s, median %s, 99th percentile %s, max %s",
			ms(times[0]), ms(times[len(times)/2]), ms(times[len(times)*99/100]), ms(times[len(times)-1]))
	}
	out.emit(r)

	args, ok = waitCommandArgs(in, "final")
	if !ok || len(args) != 1 {
		return errors.New("no \"final F\" command")
	}
	F, _ := strconv.Atoi(args[0])
	mu.Lock()
	final = F
	mu.Unlock()
	// Wait until every subscriber has received F or failed; the parent closes the Route
	// after this report, which ends every stream.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		done := 0
		mu.Lock()
		for i := range states {
			if states[i].err != nil || states[i].last.Load() == int64(F) {
				done++
			}
		}
		mu.Unlock()
		if done >= n || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var fr report
	fr.Kind = "final"
	var ferr2 firstError
	mu.Lock()
	for i := range states {
		fr.Events += states[i].received.Load()
		switch {
		case states[i].err != nil:
			fr.Failed++
			ferr2.set(states[i].err)
		case states[i].last.Load() != int64(F):
			fr.Failed++
			ferr2.set(fmt.Errorf("subscriber %d (Last-Event-ID %s): reached %d of final %d", i, lastID, states[i].last.Load(), F))
		default:
			fr.N++
		}
	}
	mu.Unlock()
	fr.Err = ferr2.String()
	out.emit(fr)
	return nil
}

// waitCommand reads lines until one equal to cmd, and reports whether it came.
func waitCommand(in *bufio.Scanner, cmd string) bool {
	_, ok := waitCommandArgs(in, cmd)
	return ok
}

// waitCommandArgs reads lines until one whose first word is cmd and returns the others.
func waitCommandArgs(in *bufio.Scanner, cmd string) ([]string, bool) {
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) > 0 && f[0] == cmd {
			return f[1:], true
		}
	}
	return nil, false
}
