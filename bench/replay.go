package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ldes "github.com/launchdarkly/eventsource"
	r3 "github.com/r3labs/sse/v2"
	tmsse "github.com/tmaxmax/go-sse"

	"github.com/reiver/go-httpsse"
)

// Flags of the replay comparison (-only replay). The defaults are small; -replay-full sets the
// full sizes.
var (
	replayFull   = flag.Bool("replay-full", false, "replay: full sizes (1000 subscribers, k 1000, 3 rounds)")
	replaySubs   = flag.Int("replay-subs", 100, "replay: subscribers")
	replayK      = flag.Int("replay-k", 200, "replay: the event each subscriber reads to before disconnecting")
	replayGap    = flag.Int("replay-gap", 500, "replay: events published while the subscribers are away")
	replayAfter  = flag.Int("replay-after", 500, "replay: events published after they come back")
	replayRate   = flag.Int("replay-rate", 2000, "replay: events published per second")
	replayRounds = flag.Int("replay-rounds", 1, "replay: rounds")
)

// replayConfigFromFlags is the scenario the flags describe.
func replayConfigFromFlags() replayConfig {
	c := replayConfig{subs: *replaySubs, k: *replayK, gap: *replayGap, after: *replayAfter, rate: *replayRate,
		rounds: *replayRounds, timeout: time.Minute}
	if *replayFull {
		c.subs, c.k, c.rounds = 1000, 1000, 3
	}
	c.subs, c.k, c.gap, c.after, c.rate, c.rounds = max(c.subs, 1), max(c.k, 1), max(c.gap, 1), max(c.after, 1), max(c.rate, 1), max(c.rounds, 1)
	return c
}

// replayConfig is the scenario of the replay comparison: subs subscribers read up to event k,
// disconnect, and all come back at once with Last-Event-ID = the ID of event k when the
// publisher is gap events further on; publishing continues for after more events.
type replayConfig struct {
	subs, k, gap, after int
	rate                int // events per second
	rounds              int
	timeout             time.Duration
}

// retain is how many events each server is set up to keep: room for k to come late.
func (c replayConfig) retain() int { return 4 * (c.k + c.gap + c.after) }

// replayServer is one library's broadcaster with replay, set up to retain every event of a run.
type replayServer struct {
	handler http.Handler
	path    string
	// publish sends the event numbered seq (data = seq) with the ID the library needs.
	publish func(seq int) error
	close   func()
}

// replayLib is a library with replay.
type replayLib struct {
	name, setup string
	newServer   func(c replayConfig) *replayServer
}

var replayLibs = []*replayLib{
	{
		name:  "httpsse",
		setup: "NewRoute(Replay(retain), WaitForSubscriber(false)); ID = seq",
		newServer: func(c replayConfig) *replayServer {
			route := httpsse.NewRoute(httpsse.Replay(c.retain()), httpsse.WaitForSubscriber(false))
			return &replayServer{
				handler: route, path: "/events",
				publish: func(seq int) error {
					s := strconv.Itoa(seq)
					return route.PublishEvent(func(w httpsse.EventWriter) error {
						if err := w.WriteID(s); err != nil {
							return err
						}
						return w.WriteData(s)
					})
				},
				close: func() { _ = route.Close() },
			}
		},
	},
	{
		name:  "tmaxmax/go-sse",
		setup: "Server{Provider: &Joe{Replayer: NewFiniteReplayer(retain, false)}}; ID = seq",
		newServer: func(c replayConfig) *replayServer {
			rp, err := tmsse.NewFiniteReplayer(c.retain(), false)
			if err != nil {
				panic(err) // total is at least 2
			}
			srv := &tmsse.Server{Provider: &tmsse.Joe{Replayer: rp}}
			return &replayServer{
				handler: srv, path: "/events",
				publish: func(seq int) error {
					s := strconv.Itoa(seq)
					m := &tmsse.Message{ID: tmsse.ID(s)}
					m.AppendData(s)
					return srv.Publish(m)
				},
				close: func() { _ = srv.Shutdown(context.Background()) },
			}
		},
	},
	{
		name:  "r3labs/sse",
		setup: "New() (AutoReplay on by default), its EventLog keeps every event; IDs are set by the EventLog (0, 1, …)",
		newServer: func(c replayConfig) *replayServer {
			srv := r3.New()
			srv.CreateStream("s")
			return &replayServer{
				handler: srv, path: "/events?stream=s",
				publish: func(seq int) error {
					srv.Publish("s", &r3.Event{Data: []byte(strconv.Itoa(seq))})
					return nil
				},
				close: srv.Close,
			}
		},
	},
	{
		name: "launchdarkly/eventsource",
		setup: "NewServer() with BufferSize = retain (its default 128 disconnects a subscriber that falls behind), " +
			"Register(NewSliceRepository()), repo.Add then Publish as its example; ID = seq zero-padded to 10 digits " +
			"(SliceRepository orders IDs as strings)",
		newServer: func(c replayConfig) *replayServer {
			srv := ldes.NewServer()
			srv.BufferSize = c.retain()
			repo := ldes.NewSliceRepository()
			srv.Register("c", repo)
			return &replayServer{
				handler: srv.Handler("c"), path: "/events",
				publish: func(seq int) error {
					ev := ldEvent{id: fmt.Sprintf("%010d", seq), data: strconv.Itoa(seq)}
					repo.Add("c", ev)
					srv.Publish([]string{"c"}, ev)
					return nil
				},
				close: srv.Close,
			}
		},
	},
}

// replayEvent is one event as the raw reader saw it.
type replayEvent struct {
	name, id, data string
}

// readSSE reads an event stream with bufio, line by line, and calls fn for every event with data
// (and for every event with a type, such as httpsse's gap event). It is the same for every
// library. fn returns false to stop.
func readSSE(r io.Reader, fn func(ev replayEvent) bool) error {
	br := bufio.NewReaderSize(r, 16<<10)
	var ev replayEvent
	var data []string
	hasData := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		if line == "" {
			if hasData || ev.name != "" {
				ev.data = strings.Join(data, "\n")
				if !fn(ev) {
					return nil
				}
			}
			ev.name, data, hasData = "", data[:0], false
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.id = value // the last event ID persists across events, as in EventSource
		case "data":
			data = append(data, value)
			hasData = true
		case "event":
			ev.name = value
		}
	}
}

// subscriberResult is what one returning subscriber received.
type subscriberResult struct {
	lastID   string // the Last-Event-ID it sent
	seqs     []int  // the sequence numbers received after coming back, in order
	gaps     int    // events with a type (httpsse's gap event)
	caughtUp time.Duration
	done     time.Duration // until it had the last event published
	err      error
}

// replayRound is one round for one library.
type replayRound struct {
	results       []subscriberResult
	k             int
	catchUp, done time.Duration // the slowest subscriber's
	publishRate   float64       // events/s achieved by the publisher over the round
	phase2Rate    float64       // events/s achieved after the subscribers came back
	err           error
}

// runReplayRound runs the scenario once against a fresh server of l, in this process, on loopback.
func runReplayRound(l *replayLib, c replayConfig) replayRound {
	srv := l.newServer(c)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return replayRound{err: err}
	}
	hs := &http.Server{Handler: srv.handler}
	go func() { _ = hs.Serve(ln) }()
	defer func() {
		srv.close()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = hs.Shutdown(ctx)
		cancel()
		_ = hs.Close()
	}()
	url := "http://" + ln.Addr().String() + srv.path
	tr := &http.Transport{DisableKeepAlives: true, MaxIdleConnsPerHost: -1}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()

	get := func(ctx context.Context, lastID string) (*http.Response, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "text/event-stream")
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := client.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return nil, fmt.Errorf("status %s", resp.Status)
		}
		return resp, nil
	}

	// Phase 1: every subscriber connects and reads events. Some servers send the response
	// headers only with the first event, so a subscriber counts as attached once it has an event;
	// k is the first event published at or after c.k once every subscriber is attached. Each
	// subscriber reads to event k and disconnects.
	var (
		kSeq        atomic.Int64 // k, set before event k is published
		attached    atomic.Int64
		headReached = make(chan struct{}) // the publisher is at k+gap
		resumeNow   = make(chan struct{}) // the subscribers are gone
		pubErr      error
		pubDone     = make(chan struct{})
		pubCount    int
		pubStart    = time.Now()
		pubEnd      time.Time
		pubResumed  time.Time // when publishing went on after the subscribers came back
	)
	go func() {
		defer close(pubDone)
		interval := time.Second / time.Duration(c.rate)
		next := time.Now()
		k, last := 0, 0
		for seq := 1; k == 0 || seq <= last; seq++ {
			if k == 0 && seq >= c.k && attached.Load() == int64(c.subs) {
				k, last = seq, seq+c.gap+c.after
				kSeq.Store(int64(k))
			}
			if k != 0 && seq == k+c.gap+1 {
				close(headReached)
				select {
				case <-resumeNow: // the reconnection burst has begun
				case <-ctx.Done():
					return
				}
				next = time.Now()
				pubResumed = next
			}
			if k == 0 && seq > c.retain()-c.gap-c.after {
				pubErr = fmt.Errorf("not every subscriber attached by event %d", seq)
				return
			}
			if ctx.Err() != nil {
				return
			}
			if d := time.Until(next); d > 0 {
				time.Sleep(d)
			}
			next = next.Add(interval)
			if err := srv.publish(seq); err != nil {
				pubErr = err
				return
			}
			pubCount, pubEnd = seq, time.Now()
		}
	}()

	var wg sync.WaitGroup
	errs := make([]error, c.subs)
	lastIDs := make([]string, c.subs)
	for i := range c.subs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, scancel := context.WithCancel(ctx)
			defer scancel()
			resp, err := get(sctx, "")
			if err != nil {
				errs[i] = err
				return
			}
			defer resp.Body.Close()
			got, counted := false, false
			err = readSSE(resp.Body, func(ev replayEvent) bool {
				n, err := strconv.Atoi(ev.data)
				if err != nil || ev.name != "" {
					return true
				}
				if !counted {
					counted = true
					attached.Add(1)
				}
				if k := int(kSeq.Load()); k != 0 && n >= k {
					if n == k {
						lastIDs[i], got = ev.id, true
					}
					return false
				}
				return true
			})
			if !got {
				errs[i] = fmt.Errorf("phase 1: event k not received (%v)", err)
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		cancel()
		<-pubDone
		return replayRound{err: firstErrors(errs)}
	}
	k := int(kSeq.Load())
	// Phase 2: wait for the publisher to be gap events further on, then all come back at once.
	select {
	case <-headReached:
	case <-pubDone:
		return replayRound{err: fmt.Errorf("publisher stopped before event k+%d: %v", c.gap, pubErr)}
	case <-ctx.Done():
		<-pubDone
		return replayRound{err: fmt.Errorf("publisher did not reach event k+%d", c.gap)}
	}
	results := make([]subscriberResult, c.subs)
	start := time.Now()
	close(resumeNow)
	head, last := k+c.gap, k+c.gap+c.after
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &results[i]
			r.lastID = lastIDs[i]
			resp, err := get(ctx, r.lastID)
			if err != nil {
				r.err = err
				return
			}
			defer resp.Body.Close()
			err = readSSE(resp.Body, func(ev replayEvent) bool {
				if ev.name != "" {
					r.gaps++
					return true
				}
				n, err := strconv.Atoi(ev.data)
				if err != nil {
					return true
				}
				r.seqs = append(r.seqs, n)
				if n >= head && r.caughtUp == 0 {
					r.caughtUp = time.Since(start)
				}
				if n >= last {
					r.done = time.Since(start)
					return false
				}
				return true
			})
			if r.done == 0 {
				r.err = fmt.Errorf("stopped before event %d: %v", last, err)
			}
		}()
	}
	wg.Wait()
	cancel()
	<-pubDone
	round := replayRound{results: results, err: pubErr, k: k}
	round.publishRate = float64(pubCount) / pubEnd.Sub(pubStart).Seconds()
	if pubCount == last && !pubResumed.IsZero() {
		round.phase2Rate = float64(c.after) / pubEnd.Sub(pubResumed).Seconds()
	}
	for _, r := range results {
		round.catchUp = max(round.catchUp, r.caughtUp)
		round.done = max(round.done, r.done)
	}
	return round
}

// check compares what a returning subscriber received with k+1 … last, each exactly once.
func (r subscriberResult) check(k, last int) (missing, repeated int) {
	seen := make(map[int]int, len(r.seqs))
	for _, n := range r.seqs {
		seen[n]++
	}
	for n, times := range seen {
		if n <= k || times > 1 {
			repeated += times - 1
			if n <= k {
				repeated++
			}
		}
	}
	for n := k + 1; n <= last; n++ {
		if seen[n] == 0 {
			missing++
		}
	}
	return missing, repeated
}

// seam describes the start of what a subscriber received after coming back.
func (r subscriberResult) seam() string {
	var b strings.Builder
	fmt.Fprintf(&b, "Last-Event-ID %q → ", r.lastID)
	for i, n := range r.seqs {
		if i == 6 {
			b.WriteString(", …")
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

// problems lists the repeated and the missing sequence numbers, at most five of each.
func (r subscriberResult) problems(k, last int) string {
	seen := make(map[int]int, len(r.seqs))
	var rep, miss []string
	for _, n := range r.seqs {
		seen[n]++
		if (seen[n] > 1 || n <= k) && len(rep) < 5 {
			rep = append(rep, strconv.Itoa(n))
		}
	}
	for n := k + 1; n <= last && len(miss) < 5; n++ {
		if seen[n] == 0 {
			miss = append(miss, strconv.Itoa(n))
		}
	}
	join := func(xs []string) string {
		if len(xs) == 0 {
			return "none"
		}
		return strings.Join(xs, ", ")
	}
	return "repeated " + join(rep) + "; missing " + join(miss)
}

// firstBreak describes where the received sequence first leaves k+1, k+2, …, not counting
// event k sent again first.
func (r subscriberResult) firstBreak(k int) string {
	want := k + 1
	for i, n := range r.seqs {
		if i == 0 && n == k {
			continue
		}
		if n != want {
			lo := max(0, i-2)
			hi := min(len(r.seqs), i+3)
			parts := make([]string, 0, hi-lo)
			for _, x := range r.seqs[lo:hi] {
				parts = append(parts, strconv.Itoa(x))
			}
			return fmt.Sprintf("expected %d, got …%s…", want, strings.Join(parts, ", "))
		}
		want++
	}
	return "then in order"
}

type replaySummary struct {
	lib                          *replayLib
	subsTotal                    int
	missingSubs, repeatedSubs    int
	missingEvents, repeatedEvent int
	gapEvents                    int
	examples                     []string
	otherExample                 bool
	catchUps, dones, rates       []float64 // per round
	rates2                       []float64
	ks                           []int
	errs                         []string
}

func runReplay(c replayConfig, libs []string, logf func(string, ...any)) []replaySummary {
	var use []*replayLib
	for _, l := range replayLibs {
		if len(libs) == 0 || slices.Contains(libs, l.name) {
			use = append(use, l)
		}
	}
	sums := make([]replaySummary, len(use))
	for i, l := range use {
		sums[i].lib = l
	}
	for round := range c.rounds {
		for j := range use {
			i := (j + round) % len(use) // rotate the order
			l := use[i]
			s := &sums[i]
			r := runReplayRound(l, c)
			if r.err != nil {
				s.errs = append(s.errs, r.err.Error())
			}
			bad := 0
			for _, sr := range r.results {
				s.subsTotal++
				s.gapEvents += sr.gaps
				if sr.err != nil {
					bad++
					if len(s.errs) < 3 {
						s.errs = append(s.errs, sr.err.Error())
					}
				}
				m, rep := sr.check(r.k, r.k+c.gap+c.after)
				if m > 0 {
					s.missingSubs++
					s.missingEvents += m
				}
				if rep > 0 {
					s.repeatedSubs++
					s.repeatedEvent += rep
				}
				// Examples: the first subscriber with a problem, and the first whose problem is
				// more than event k sent again.
				if m > 0 || rep > 0 {
					ex := sr.seam() + " (k = " + strconv.Itoa(r.k) + "; " + sr.firstBreak(r.k) + "; " + sr.problems(r.k, r.k+c.gap+c.after) + ")"
					other := m > 0 || rep > 1 || count(sr.seqs, r.k) != 1
					if len(s.examples) == 0 || (!s.otherExample && other) {
						s.examples = append(s.examples, ex)
						s.otherExample = s.otherExample || other
					}
				}
			}
			if r.err == nil && bad == 0 {
				s.catchUps = append(s.catchUps, r.catchUp.Seconds()*1000)
				s.dones = append(s.dones, r.done.Seconds()*1000)
			}
			s.rates = append(s.rates, r.publishRate)
			s.rates2 = append(s.rates2, r.phase2Rate)
			s.ks = append(s.ks, r.k)
			logf("replay %s round %d: catch-up %v, all done %v, publisher %.0f ev/s, err %v",
				l.name, round+1, r.catchUp.Round(time.Millisecond), r.done.Round(time.Millisecond), r.publishRate, r.err)
		}
	}
	return sums
}

// count is how many times x is in xs.
func count(xs []int, x int) int {
	n := 0
	for _, y := range xs {
		if y == x {
			n++
		}
	}
	return n
}

// firstErrors joins the first three errors of errs and counts the others.
func firstErrors(errs []error) error {
	var some []error
	n := 0
	for _, err := range errs {
		if err != nil {
			if n < 3 {
				some = append(some, err)
			}
			n++
		}
	}
	if n > 3 {
		some = append(some, fmt.Errorf("and %d more", n-3))
	}
	return errors.Join(some...)
}

func printReplay(w io.Writer, c replayConfig, sums []replaySummary) (failed bool) {
	fmt.Fprintf(w, "## Replay: %d subscribers come back at once with Last-Event-ID\n\n", c.subs)
	fmt.Fprintf(w, "Server and subscribers in this one process, over loopback. Events numbered 1, 2, … (data = the number), "+
		"published at %d/s. Each subscriber reads to event k (the first event from %d on published once every subscriber "+
		"has received an event), disconnects; when event k+%d has been published they all come back at once with "+
		"Last-Event-ID = the ID of event k (as each received it) and read to event k+%d while publishing goes on. "+
		"Expected after coming back: k+1 … k+%d, each once. Readers: bufio over net/http's response body, the same for all. "+
		"Catch-up: from the reconnection burst until the slowest subscriber has event k+%d. Each server keeps "+
		"retain = %d events (more than a run publishes). Rounds: %d.\n\n",
		c.rate, c.k, c.gap, c.gap+c.after, c.gap+c.after, c.gap, c.retain(), c.rounds)
	fmt.Fprintf(w, "| library | k | subscribers missing events | subscribers with repeats | gap events | caught up (ms, median / max over rounds) | all had k+%d (ms, median / max) | publisher ev/s, round / after coming back (medians) |\n", c.gap+c.after)
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|\n")
	ms := func(xs []float64) string {
		if len(xs) == 0 {
			return "—"
		}
		return fmt.Sprintf("%.0f / %.0f", median(xs), slices.Max(xs))
	}
	for _, s := range sums {
		ks := make([]string, len(s.ks))
		for i, k := range s.ks {
			ks[i] = strconv.Itoa(k)
		}
		fmt.Fprintf(w, "| %s | %s | %d of %d (%d events) | %d of %d (%d events) | %d | %s | %s | %.0f / %.0f |\n",
			s.lib.name, strings.Join(ks, ", "), s.missingSubs, s.subsTotal, s.missingEvents, s.repeatedSubs, s.subsTotal, s.repeatedEvent,
			s.gapEvents, ms(s.catchUps), ms(s.dones), median(s.rates), median(s.rates2))
	}
	fmt.Fprintln(w)
	for _, s := range sums {
		fmt.Fprintf(w, "- %s: %s.", s.lib.name, s.lib.setup)
		for _, ex := range s.examples {
			fmt.Fprintf(w, " Example: %s.", ex)
		}
		if len(s.errs) > 0 {
			fmt.Fprintf(w, " Errors: %s.", strings.Join(s.errs, "; "))
		}
		fmt.Fprintln(w)
		if s.lib.name == subject && (s.missingSubs > 0 || s.repeatedSubs > 0 || len(s.errs) > 0) {
			failed = true
		}
	}
	fmt.Fprintln(w)
	return failed
}
