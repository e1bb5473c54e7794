package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	httpsse "github.com/reiver/go-httpsse"
	"github.com/reiver/go-httpsse/redisstream"
)

// tally gathers what the subscribers of a process received in the current phase.
type tally struct {
	mu       sync.Mutex
	phase    string
	want     int // events each subscriber must receive
	subs     int // subscribers
	done     int // subscribers that have received them all
	total    int // events of all the phases so far
	first    int64
	last     int64
	lat      []int64
	finished chan struct{}
	counts   []*atomic.Int64 // events each subscriber has received, for diagnostics
}

func (t *tally) newCount() *atomic.Int64 {
	c := new(atomic.Int64)
	t.mu.Lock()
	t.counts = append(t.counts, c)
	t.mu.Unlock()
	return c
}

// behind describes the subscribers that have fewer than want events.
func (t *tally) behind(want int) string {
	var b []string
	for i, c := range t.counts {
		if n := c.Load(); n < int64(want) {
			b = append(b, fmt.Sprintf("subscriber %d has %d", i, n))
		}
	}
	return strings.Join(b, ", ")
}

func (t *tally) expect(phase string, n int) <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.phase, t.want, t.done, t.first, t.last, t.lat = phase, n, 0, math64, 0, nil
	t.total += n
	t.finished = make(chan struct{})
	return t.finished
}

// finish counts a subscriber that has received every event of the phase. It is called
// with mu held.
func (t *tally) finish(now int64) {
	t.done++
	t.last = max(t.last, now)
	if t.done == t.subs {
		close(t.finished)
	}
}

// countEvents reads a stream's bytes without parsing them, counting the events by their
// blank lines (an event's fields never hold one), as a cheap subscriber: the server does
// the same work for it as for any other.
func countEvents(t *tally, url string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	go func() {
		defer resp.Body.Close()
		buf := make([]byte, 32<<10)
		n, completed := 0, 0
		prevLF := false
		count := t.newCount()
		for {
			k, err := resp.Body.Read(buf)
			if k > 0 {
				p := buf[:k]
				if prevLF && p[0] == '\n' {
					n++
				}
				n += bytes.Count(p, []byte("\n\n"))
				prevLF = p[len(p)-1] == '\n'
				count.Store(int64(n))
				now := time.Now().UnixNano()
				t.mu.Lock()
				if n >= t.total && completed < t.total {
					completed = t.total
					t.finish(now)
				}
				t.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	return nil
}

const math64 = int64(^uint64(0) >> 1)

// counter is one subscriber's view of the current phase.
type counter struct {
	t     *tally
	phase string
	want  int
	n     int
	first int64
	lat   []int64
	count *atomic.Int64
}

// event counts one event whose data is "phase seq unixnano".
func (c *counter) event(data string, now int64) {
	f := strings.Fields(data)
	if len(f) != 3 {
		return
	}
	ts, _ := strconv.ParseInt(f[2], 10, 64)
	if f[0] != c.phase {
		c.t.mu.Lock()
		c.phase, c.want, c.n, c.first, c.lat = f[0], c.t.want, 0, math64, nil
		if c.t.phase != f[0] {
			c.want = -1 // not expected
		}
		c.t.mu.Unlock()
	}
	c.n++
	c.count.Add(1)
	c.first = min(c.first, ts)
	if c.phase == "latency" {
		c.lat = append(c.lat, now-ts)
	}
	if c.n == c.want {
		c.t.mu.Lock()
		c.t.first = min(c.t.first, c.first)
		c.t.lat = append(c.t.lat, c.lat...)
		c.t.finish(now)
		c.t.mu.Unlock()
		c.lat = nil
	}
}

var reportMu sync.Mutex

// report writes r on standard output, as one line of JSON.
func report(r result) {
	b, _ := json.Marshal(r)
	reportMu.Lock()
	defer reportMu.Unlock()
	fmt.Printf("%s\n", b)
}

// runChild is one process of the measure. spec is "mode,index,stream".
// Of its subscribers, probes decode the events (and time them); the others count them.
func runChild(spec, redisAddr string, subs, probes int, timeout time.Duration) {
	probes = min(probes, subs)
	if dir := os.Getenv("BENCH_CPUPROFILE"); dir != "" {
		f, err := os.Create(filepath.Join(dir, strings.ReplaceAll(spec, ":", "_")+".pprof"))
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	parts := strings.SplitN(spec, ",", 3)
	mode, index, stream := parts[0], parts[1], parts[2]
	client := redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: 32})
	ctx := context.Background()
	t := &tally{}
	stats := func() httpsse.Stats { return httpsse.Stats{} }

	var publish func(data string) error
	switch mode {
	case "redisstream", "local":
		var route httpsse.Route
		if mode == "local" {
			// The fan-out alone: the Route redisstream serves with, without Redis.
			route = httpsse.NewRoute(httpsse.Replay(redisstream.DefaultReplay), httpsse.WaitForSubscriber(false))
		} else {
			route = redisstream.NewRoute(client, stream)
		}
		defer route.Close()
		stats = func() httpsse.Stats { return httpsse.StatsOf(route) }
		publish = func(data string) error {
			return route.PublishEvent(func(w httpsse.EventWriter) error { return w.WriteData(data) })
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			report(result{Err: err.Error()})
			return
		}
		srv := &http.Server{Handler: route}
		go srv.Serve(l)
		defer srv.Close()
		t.subs = subs
		for range subs - probes {
			if err := countEvents(t, "http://"+l.Addr().String()); err != nil {
				report(result{Err: err.Error()})
				return
			}
		}
		for range probes {
			c, err := httpsse.Dial("http://"+l.Addr().String(), httpsse.Reconnect(false))
			if err != nil {
				report(result{Err: err.Error()})
				return
			}
			defer c.Close()
			go func() {
				cn := &counter{t: t, count: t.newCount()}
				for c.Next() {
					var ev httpsse.Event
					if c.Decode(&ev) == nil {
						cn.event(ev.EventDataCollapsed(), time.Now().UnixNano())
					}
				}
			}()
		}
	case "bare":
		publish = func(data string) error {
			return client.XAdd(ctx, &redis.XAddArgs{Stream: stream, MaxLen: redisstream.DefaultMaxLen, Approx: true, Values: []interface{}{"sse", data}}).Err()
		}
		reader := redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: 1})
		defer reader.Close()
		last := "0-0"
		if msgs, err := client.XRevRangeN(ctx, stream, "+", "-", 1).Result(); err == nil && len(msgs) > 0 {
			last = msgs[0].ID
		}
		t.subs = 1
		var stop atomic.Bool
		defer stop.Store(true)
		go func() {
			cn := &counter{t: t, count: t.newCount()}
			for !stop.Load() {
				res, err := reader.XRead(ctx, &redis.XReadArgs{Streams: []string{stream, last}, Count: 512, Block: time.Second}).Result()
				if err != nil {
					continue
				}
				now := time.Now().UnixNano()
				for _, m := range res[0].Messages {
					last = m.ID
					data, _ := m.Values["sse"].(string)
					cn.event(data, now)
				}
			}
		}()
	default:
		report(result{Err: "unknown mode " + mode})
		return
	}
	report(result{}) // ready

	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		if len(f) == 0 || f[0] == "quit" {
			return
		}
		switch f[0] {
		case "expect": // expect phase n
			n, _ := strconv.Atoi(f[2])
			finished := t.expect(f[1], n)
			report(result{}) // expecting: the publishing may start
			// Waited for aside, so that this process can publish meanwhile (mode local).
			go func() {
				select {
				case <-finished:
				case <-time.After(timeout):
					t.mu.Lock()
					msg := fmt.Sprintf("timed out waiting for the events of %s: %d of %d subscribers have them all (%+v): %.500s", f[1], t.done, t.subs, stats(), t.behind(t.total))
					t.mu.Unlock()
					report(result{Err: msg})
					return
				}
				t.mu.Lock()
				r := result{Count: n, FirstPub: t.first, LastRecv: t.last}
				if len(t.lat) > 0 {
					slices.Sort(t.lat)
					r.P50 = float64(t.lat[len(t.lat)/2]) / 1e6
					r.P99 = float64(t.lat[len(t.lat)*99/100]) / 1e6
				}
				t.mu.Unlock()
				report(r)
			}()
		case "burst", "paced": // burst publishers phase n, paced rate phase n
			run := func() {
				var err error
				if f[0] == "burst" {
					err = burst(publish, f[1], f[2], f[3])
				} else {
					err = paced(publish, f[1], f[2], f[3])
				}
				if index == "0" {
					report(result{Err: errString(err)})
				} else if err != nil {
					fmt.Fprintln(os.Stderr, err)
				}
			}
			// Only the first process reports; the others (in mode local) publish meanwhile.
			if index == "0" {
				run()
			} else {
				go run()
			}
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// burst publishes n events as fast as p goroutines can.
func burst(publish func(string) error, publishers, phase, count string) error {
	p, _ := strconv.Atoi(publishers)
	n, _ := strconv.Atoi(count)
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range p {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				if err := publish(fmt.Sprintf("%s %d %d", phase, i, time.Now().UnixNano())); err != nil {
					failed.Store(err)
					return
				}
			}
		})
	}
	wg.Wait()
	err, _ := failed.Load().(error)
	return err
}

// paced publishes n events at rate per second.
func paced(publish func(string) error, perSecond, phase, count string) error {
	rate, _ := strconv.Atoi(perSecond)
	n, _ := strconv.Atoi(count)
	start := time.Now()
	for i := range n {
		// Publish event i at start + i/rate, without drifting.
		time.Sleep(time.Until(start.Add(time.Duration(i) * time.Second / time.Duration(rate))))
		if err := publish(fmt.Sprintf("%s %d %d", phase, i, time.Now().UnixNano())); err != nil {
			return err
		}
	}
	return nil
}
