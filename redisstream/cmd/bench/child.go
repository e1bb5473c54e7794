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
	mode, stream := parts[0], parts[2]
	client := redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: 32})
	ctx := context.Background()
	t := &tally{}
	stats := func() httpsse.Stats { return httpsse.Stats{} }

	var publish func(data string) error
	switch mode {
	case "redisstream", "single":
		var route httpsse.Route
		if mode == "single" {
			// One process, no Redis: a plain Route with Replay.
			route = httpsse.NewRoute(httpsse.Replay(redisstream.DefaultReplay))
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
		// The probes are spread among the others, so that they time every position in the
		// order in which the Route writes to its subscribers, not the last ones only.
		url := "http://" + l.Addr().String()
		for i := range subs {
			if probes > 0 && i%(subs/probes) == 0 && i/(subs/probes) < probes {
				c, err := httpsse.Dial(url, httpsse.Reconnect(false))
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
				continue
			}
			if err := countEvents(t, url); err != nil {
				report(result{Err: err.Error()})
				return
			}
		}
	case "roundtrip":
		// The floor of the Redis hop: XADD on one connection, a blocking XREAD on another,
		// one event at a time.
		reader := redis.NewClient(&redis.Options{Addr: redisAddr, PoolSize: 1})
		defer reader.Close()
		in := bufio.NewScanner(os.Stdin)
		report(result{Kind: "ready"})
		for in.Scan() {
			f := strings.Fields(in.Text())
			if len(f) < 2 || f[0] != "roundtrip" {
				return
			}
			n, _ := strconv.Atoi(f[1])
			lat, err := roundTrips(ctx, client, reader, stream, n)
			report(result{Kind: "phase", Count: n, Lat: lat, Err: errString(err)})
		}
		return
	default:
		report(result{Err: "unknown mode " + mode})
		return
	}
	report(result{Kind: "ready"})

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
			report(result{Kind: "expecting"}) // the publishing may start
			// Waited for aside, so that this process can publish meanwhile (mode local).
			go func() {
				select {
				case <-finished:
				case <-time.After(timeout):
					t.mu.Lock()
					msg := fmt.Sprintf("timed out waiting for the events of %s: %d of %d subscribers have them all (%+v): %.500s", f[1], t.done, t.subs, stats(), t.behind(t.total))
					t.mu.Unlock()
					report(result{Kind: "phase", Err: msg})
					return
				}
				t.mu.Lock()
				r := result{Kind: "phase", Count: n, FirstPub: t.first, LastRecv: t.last, Lat: t.lat}
				t.mu.Unlock()
				report(r)
			}()
		case "burst", "paced": // burst publishers phase n, paced rate phase n
			run := func() {
				start := time.Now()
				defer func() {
					if os.Getenv("BENCH_DEBUG") != "" {
						fmt.Fprintf(os.Stderr, "%s %s: published %s events in %v\n", mode, f[2], f[3], time.Since(start))
					}
				}()
				var err error
				if f[0] == "burst" {
					err = burst(publish, f[1], f[2], f[3])
				} else {
					err = paced(publish, f[1], f[2], f[3])
				}
				report(result{Kind: "published", Err: errString(err)})
			}
			// Aside, so that the commands go on being read.
			go run()
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

// roundTrips times n round trips of one event through Redis: from just before the XADD to
// the return of the XREAD that was waiting for it, in nanoseconds.
func roundTrips(ctx context.Context, client, reader *redis.Client, stream string, n int) ([]int64, error) {
	last := "$"
	lat := make([]int64, 0, n)
	for i := range n {
		got := make(chan error, 1)
		go func() {
			res, err := reader.XRead(ctx, &redis.XReadArgs{Streams: []string{stream, last}, Count: 1, Block: 5 * time.Second}).Result()
			if err == nil {
				last = res[0].Messages[0].ID
			}
			got <- err
		}()
		// Let the XREAD block first: wait until Redis counts a blocked client.
		for {
			info, err := client.Info(ctx, "clients").Result()
			if err != nil {
				return nil, err
			}
			if !strings.Contains(info, "blocked_clients:0") {
				break
			}
		}
		start := time.Now()
		if err := client.XAdd(ctx, &redis.XAddArgs{Stream: stream, MaxLen: redisstream.DefaultMaxLen, Approx: true, Values: []interface{}{"sse", fmt.Sprintf("data: %d", i)}}).Err(); err != nil {
			return nil, err
		}
		if err := <-got; err != nil {
			return nil, err
		}
		lat = append(lat, time.Since(start).Nanoseconds())
	}
	return lat, nil
}
