package httpsse

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTakeWhilePublishing runs subscribers' take, which holds no lock, against a publisher
// publishing as fast as it can, through log growth, compactions and drops: every subscriber
// must get the events from its first one on, each once and in order, with no byte torn; a
// dropped subscriber must get an exact prefix and then be told it was dropped. Fast
// subscribers take as soon as they can, slow ones pause now and then, and stuck ones take
// nothing until publishing is over, by when they are far more than MaxQueuedBytes behind. Run
// it with -race.
func TestTakeWhilePublishing(t *testing.T) {
	const (
		events = 20000
		fast   = 6
		slow   = 4
		stuck  = 2
		all    = fast + slow + stuck
	)
	r := newBroadcaster(config([]RouteOption{WaitForSubscriber(false), MaxQueuedBytes(32 << 10)}))
	publishedAll := make(chan struct{})

	type result struct {
		name    string
		stuck   bool
		got     []int
		dropped bool
		err     error
	}
	results := make(chan result, all)
	var attached sync.WaitGroup
	for i := range all {
		attached.Add(1)
		go func() {
			rec := httptest.NewRecorder()
			s := &subscriber{out: &output{w: rec, rc: *http.NewResponseController(rec)}}
			ok := r.attach(s, "", nil)
			attached.Done()
			res := result{name: fmt.Sprintf("subscriber %d", i), stuck: i >= fast+slow}
			if !ok {
				res.err = fmt.Errorf("not attached")
				results <- res
				return
			}
			if res.stuck {
				<-publishedAll
			}
			var buf strings.Builder
			for {
				p, published, ok := r.take(s)
				if !ok {
					res.dropped = s.dropped.Load()
					break
				}
				if len(p) == 0 {
					<-published
					continue
				}
				buf.Write(p)
				if i >= fast && i < fast+slow && len(p)%7 == 0 {
					time.Sleep(time.Millisecond) // slow: falls behind now and then
				}
			}
			r.detach(s)
			res.got, res.err = parseSeq(buf.String())
			results <- res
		}()
	}
	attached.Wait()
	for i := range events {
		if err := r.PublishEvent(func(w EventWriter) error { return w.WriteData(strconv.Itoa(i)) }); err != nil {
			t.Fatalf("PublishEvent(%d) = %v", i, err)
		}
		if i%500 == 0 {
			time.Sleep(100 * time.Microsecond) // let the fast ones keep up, mostly
		}
	}
	close(publishedAll)
	r.Close()

	drops := 0
	for range all {
		res := <-results
		if res.err != nil {
			t.Errorf("%s: %v", res.name, res.err)
			continue
		}
		for k, n := range res.got {
			if n != res.got[0]+k {
				t.Errorf("%s: event %d is %d, want %d", res.name, k, n, res.got[0]+k)
				break
			}
		}
		if res.dropped {
			drops++
			continue
		}
		if res.stuck {
			t.Errorf("%s: took nothing while %d events were published, and was not dropped", res.name, events)
		}
		if len(res.got) == 0 || res.got[len(res.got)-1] != events-1 {
			t.Errorf("%s: not dropped, but got %d events ending before %d", res.name, len(res.got), events-1)
		}
	}
	t.Logf("%d of %d subscribers dropped", drops, all)
}

// parseSeq parses a stream of "data: N\n\n" events.
func parseSeq(s string) ([]int, error) {
	var got []int
	for s != "" {
		ev, rest, ok := strings.Cut(s, "\n\n")
		if !ok {
			return got, fmt.Errorf("torn event %q at the end", ev)
		}
		n, err := strconv.Atoi(strings.TrimPrefix(ev, "data: "))
		if err != nil || !strings.HasPrefix(ev, "data: ") {
			return got, fmt.Errorf("event %q after %d events", ev, len(got))
		}
		got = append(got, n)
		s = rest
	}
	return got, nil
}

// deadlineWriter is a ResponseWriter that records the write deadlines set on it.
type deadlineWriter struct {
	httptest.ResponseRecorder
	mu        sync.Mutex
	deadlines []time.Time
}

func (w *deadlineWriter) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.deadlines = append(w.deadlines, t)
	return nil
}

func (w *deadlineWriter) cutBefore(t time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range w.deadlines {
		if !d.IsZero() && d.Before(t) {
			return true
		}
	}
	return false
}

// After Close's grace, only the subscribers that may still be writing are cut: one behind
// the head, and one busy (between waking and waiting). One that has taken everything and
// waits is left alone: on HTTP/2 a deadline that passes resets its stream, although it has
// nothing left to send.
func TestCloseCutsOnlyStragglers(t *testing.T) {
	r := newBroadcaster(config([]RouteOption{WaitForSubscriber(false), WriteTimeout(-1)}))
	attach := func() (*subscriber, *deadlineWriter) {
		w := &deadlineWriter{}
		s := &subscriber{out: &output{w: w, rc: *http.NewResponseController(w)}}
		if !r.attach(s, "", nil) {
			t.Fatal("attach failed")
		}
		return s, w
	}
	waiting, waitingW := attach()
	behind, behindW := attach()
	busy, busyW := attach()
	if err := r.PublishEvent(func(w EventWriter) error { return w.WriteData("x") }); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*subscriber{waiting, busy} {
		if p, _, ok := r.take(s); !ok || string(p) != "data: x\n\n" {
			t.Fatalf("take = %q, %v", p, ok)
		}
	}
	waiting.busy.Store(false)
	behind.busy.Store(false)
	busy.busy.Store(true)

	r.cutStragglers()
	after := time.Now().Add(time.Millisecond)
	for _, c := range []struct {
		name string
		w    *deadlineWriter
		cut  bool
	}{{"waiting at the head", waitingW, false}, {"behind", behindW, true}, {"busy", busyW, true}} {
		if got := c.w.cutBefore(after); got != c.cut {
			t.Errorf("%s: cut = %v, want %v", c.name, got, c.cut)
		}
	}
}

// When the last subscriber leaves after Close, the grace timer is stopped at once, so that it
// does not hold the Route, and its log, for the rest of the grace.
func TestCloseGraceTimerStopped(t *testing.T) {
	route := NewRoute(WaitForSubscriber(false))
	ts := startRoute(t, route)
	s := openStream(t, ts.Client(), ts.URL, "")
	waitSubscribers(t, route, 1)
	publishData(t, route, "x")
	if got := s.mustNext(t); got != "data: x\n\n" {
		t.Fatalf("got %q", got)
	}
	route.Close()
	waitSubscribers(t, route, 0)
	b := route.(*broadcaster)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.graceTimer != nil {
		t.Error("the grace timer is still set after the last subscriber left")
	}
}
