package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// emitter writes reports to the parent, one JSON object per line.
type emitter struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (e *emitter) emit(r report) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.enc.Encode(r)
}

// firstError keeps the first error of many goroutines.
type firstError struct {
	mu  sync.Mutex
	err error
}

func (f *firstError) set(err error) {
	f.mu.Lock()
	if f.err == nil {
		f.err = err
	}
	f.mu.Unlock()
}

func (f *firstError) String() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		return ""
	}
	return f.err.Error()
}

func runChild(cfg config) error {
	out := &emitter{enc: json.NewEncoder(os.Stdout)}
	in := bufio.NewScanner(os.Stdin)
	var err error
	switch cfg.child {
	case "scale":
		err = childScale(cfg, out)
	case "churn":
		err = childChurn(cfg, out)
	case "slow":
		err = childSlow(cfg, out, in)
	case "storm":
		err = childStorm(cfg, out, in)
	case "h2":
		err = childH2(cfg, out, in)
	default:
		err = fmt.Errorf("unknown mode %q", cfg.child)
	}
	if err != nil {
		out.emit(report{Kind: "fatal", Err: err.Error()})
		return err
	}
	// Wait for the parent to close our standard input.
	for in.Scan() {
	}
	return nil
}

// dialAll connects n subscribers with at most dialers connection attempts at once.
func dialAll(addr, role string, n, dialers, rcvbuf int, errs *firstError) ([]*subscriber, int) {
	subs := make([]*subscriber, n)
	var failed atomic.Int64
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(dialers, 1)) // bounds concurrent connection attempts
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, err := withRetries(func() (*subscriber, error) {
				return dialSubscriber(addr, role, rcvbuf, 30*time.Second)
			})
			if err != nil {
				failed.Add(1)
				errs.set(err)
				return
			}
			subs[i] = s
		}()
	}
	wg.Wait()
	var ok []*subscriber
	for _, s := range subs {
		if s != nil {
			ok = append(ok, s)
		}
	}
	return ok, int(failed.Load())
}

func childScale(cfg config, out *emitter) error {
	var errs firstError
	// From several loopback source addresses: 100,000 subscribers need more than one
	// address's ephemeral ports.
	all, failed := dialMany(cfg.addr, "scale", cfg.subscribers, cfg.dialers, cfg.sourceAddrs, func(int) string { return "" }, &errs)
	var subs []*subscriber
	for _, s := range all {
		if s != nil {
			subs = append(subs, s)
		}
	}
	n := len(subs)
	out.emit(report{Kind: "connected", N: n, Failed: failed, Err: errs.String()})

	var (
		mu                       sync.Mutex
		synced, complete, bad    int
		ended, clean, reset      int
		events                   int64
		syncedSent, receivedSent bool
		recvErrs                 firstError
	)
	// progress is called with mu held after any change.
	progress := func() {
		if !syncedSent && synced == n {
			syncedSent = true
			out.emit(report{Kind: "synced", N: synced})
		}
		if !receivedSent && complete+bad == n {
			receivedSent = true
			out.emit(report{Kind: "received", N: complete, Failed: bad, Events: events, Err: recvErrs.String()})
		}
		if ended == n {
			out.emit(report{Kind: "ended", N: n, Clean: clean, Reset: reset, Err: recvErrs.String()})
		}
	}
	for i, s := range subs {
		go func() {
			last := 0
			isSynced, isDone := false, false
			var got int64
			for {
				ev, err := s.next(0)
				if err != nil {
					mu.Lock()
					ended++
					if errors.Is(err, io.EOF) {
						clean++
					} else {
						reset++
					}
					if !isDone {
						bad++
						events += got
						recvErrs.set(fmt.Errorf("subscriber %d ended after %d events: %w", i, last, err))
					} else if !errors.Is(err, io.EOF) {
						recvErrs.set(fmt.Errorf("subscriber %d: end of stream: %w", i, err))
					}
					if !isSynced {
						synced++ // do not wait for it forever; it is counted as bad
					}
					progress()
					mu.Unlock()
					s.close(false)
					return
				}
				switch ev.EventName() {
				case "sync":
					if !isSynced {
						isSynced = true
						mu.Lock()
						synced++
						progress()
						mu.Unlock()
					}
				case "seq":
					if isDone {
						continue
					}
					k, _ := strconv.Atoi(ev.EventDataCollapsed())
					got++
					if k != last+1 || ev.EventID() != strconv.Itoa(k) {
						isDone = true
						mu.Lock()
						bad++
						events += got
						recvErrs.set(fmt.Errorf("subscriber %d: event %q (id %q) after %d", i, ev.EventDataCollapsed(), ev.EventID(), last))
						progress()
						mu.Unlock()
						continue
					}
					last = k
					if k == cfg.events {
						isDone = true
						mu.Lock()
						complete++
						events += got
						progress()
						mu.Unlock()
					}
				}
			}
		}()
	}
	return nil
}

func childChurn(cfg config, out *emitter) error {
	stalls := startStallMeter()
	defer stalls.close()
	var (
		next         atomic.Int64
		ok, failed   atomic.Int64
		clean, reset atomic.Int64
		maxFirst     atomic.Int64 // nanoseconds from dial to first event, the largest seen
		errs         firstError
		wg           sync.WaitGroup
	)
	stopProgress := make(chan struct{})
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-t.C:
				out.emit(report{Kind: "progress", N: int(ok.Load()), Failed: int(failed.Load())})
			}
		}
	}()
	cycle := func(i int) error {
		mode := i % 4
		start := time.Now()
		if mode == 3 {
			// Send the request and reset the connection at once, before any response.
			c, err := net.DialTimeout("tcp", cfg.addr, 10*time.Second)
			if err != nil {
				return err
			}
			fmt.Fprintf(c, "GET /events?role=churn HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", cfg.addr)
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
			reset.Add(1)
			return nil
		}
		s, err := dialSubscriber(cfg.addr, "churn", 0, 10*time.Second)
		if err != nil {
			return err
		}
		if mode != 2 {
			if _, err := s.next(10 * time.Second); err != nil {
				s.close(true)
				return fmt.Errorf("receiving: %w", err)
			}
			d := int64(time.Since(start))
			for {
				cur := maxFirst.Load()
				if d <= cur || maxFirst.CompareAndSwap(cur, d) {
					break
				}
			}
		}
		if mode == 1 {
			s.close(true)
			reset.Add(1)
		} else {
			s.close(false)
			clean.Add(1)
		}
		return nil
	}
	for range max(cfg.workers, 1) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= cfg.cycles {
					return
				}
				if err := cycle(i); err != nil {
					failed.Add(1)
					errs.set(fmt.Errorf("cycle %d: %w", i, err))
					if strings.Contains(err.Error(), "address not available") {
						time.Sleep(10 * time.Millisecond)
					}
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stopProgress)
	out.emit(report{Kind: "done", N: int(ok.Load()), Failed: int(failed.Load()), Clean: int(clean.Load()), Reset: int(reset.Load()),
		MaxGapMS: float64(maxFirst.Load()) / 1e6, StallMS: float64(stalls.worst()) / 1e6, Err: errs.String()})
	return nil
}

func childSlow(cfg config, out *emitter, in *bufio.Scanner) error {
	stalls := startStallMeter()
	defer stalls.close()
	var errs firstError
	slow, failedSlow := dialAll(cfg.addr, "slow", cfg.slow, cfg.dialers, cfg.rcvbuf, &errs)
	fast, failedFast := dialAll(cfg.addr, "fast", cfg.fast, cfg.dialers, 0, &errs)
	out.emit(report{Kind: "connected", N: len(slow) + len(fast), Failed: failedSlow + failedFast, Err: errs.String()})

	var (
		mu         sync.Mutex
		synced     int
		syncedSent bool
		total      = len(slow) + len(fast)
	)
	markSynced := func() {
		mu.Lock()
		synced++
		if synced == total && !syncedSent {
			syncedSent = true
			stalls.reset() // from now on the parent publishes the measured events
			out.emit(report{Kind: "synced", N: synced})
		}
		mu.Unlock()
	}
	// The slow subscribers read until their first sync event, then stop reading.
	slowWait := make(chan struct{}) // closed when the parent asks for the report
	var slowClean, slowReset atomic.Int64
	var slowWG sync.WaitGroup
	for _, s := range slow {
		slowWG.Add(1)
		go func() {
			defer slowWG.Done()
			for {
				ev, err := s.next(0)
				if err != nil {
					markSynced()
					slowReset.Add(1)
					return
				}
				if ev.EventName() == "sync" {
					break
				}
			}
			markSynced()
			<-slowWait
			// Read what is left to see how the server ended the stream.
			for {
				_, err := s.next(10 * time.Second)
				if err != nil {
					if errors.Is(err, io.EOF) {
						slowClean.Add(1)
					} else {
						slowReset.Add(1)
					}
					s.close(false)
					return
				}
			}
		}()
	}

	type fastStat struct {
		last   int
		maxGap time.Duration
		err    error
	}
	stats := make([]fastStat, len(fast))
	var fastMu sync.Mutex
	for i, s := range fast {
		go func() {
			isSynced := false
			var lastAt time.Time
			for {
				ev, err := s.next(0)
				if err != nil {
					if !isSynced {
						markSynced()
					}
					fastMu.Lock()
					if stats[i].err == nil {
						stats[i].err = err
					}
					fastMu.Unlock()
					s.close(false)
					return
				}
				now := time.Now()
				switch ev.EventName() {
				case "sync":
					if !isSynced {
						isSynced = true
						markSynced()
					}
				case "seq":
					k, _ := strconv.Atoi(strings.TrimRight(ev.EventDataCollapsed(), "x"))
					fastMu.Lock()
					if stats[i].err == nil {
						if k != stats[i].last+1 {
							stats[i].err = fmt.Errorf("event %d after %d", k, stats[i].last)
						} else {
							if stats[i].last > 0 {
								if gap := now.Sub(lastAt); gap > stats[i].maxGap {
									stats[i].maxGap = gap
								}
							}
							stats[i].last = k
						}
					}
					fastMu.Unlock()
					lastAt = now
				}
			}
		}()
	}

	// Wait for "report N": N events were published.
	var published int
	for in.Scan() {
		if n, ok := strings.CutPrefix(in.Text(), "report "); ok {
			published, _ = strconv.Atoi(n)
			break
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		fastMu.Lock()
		waiting := 0
		for _, st := range stats {
			if st.err == nil && st.last < published {
				waiting++
			}
		}
		fastMu.Unlock()
		if waiting == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	var r report
	r.Kind = "fast"
	var ferr firstError
	fastMu.Lock()
	for i, st := range stats {
		r.Events += int64(st.last)
		if st.err != nil || st.last != published {
			r.Failed++
			ferr.set(fmt.Errorf("fast subscriber %d: %d of %d events, error %v", i, st.last, published, st.err))
		} else {
			r.N++
		}
		if ms := float64(st.maxGap) / 1e6; ms > r.MaxGapMS {
			r.MaxGapMS = ms
		}
	}
	fastMu.Unlock()
	r.Err = ferr.String()
	r.StallMS = float64(stalls.worst()) / 1e6
	out.emit(r)

	close(slowWait)
	slowWG.Wait()
	out.emit(report{Kind: "slowended", N: len(slow), Clean: int(slowClean.Load()), Reset: int(slowReset.Load())})
	return nil
}
