package httpsse

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	seamSubscribers = flag.Int("replay.subscribers", 100, "subscribers dropping and coming back in TestReplaySeamUnderLoad")
	seamEvents      = flag.Int("replay.events", 3000, "events published in TestReplaySeamUnderLoad")
)

// stream is one raw subscription: the exact bytes, event by event.
type stream struct {
	body io.ReadCloser
	br   *bufio.Reader
}

// openStream subscribes to url with the given Last-Event-ID ("" sends none).
func openStream(t *testing.T, client *http.Client, url, lastEventID string) *stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s with Last-Event-ID %q: %v", url, lastEventID, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("GET %s: status %d, want 200", url, resp.StatusCode)
	}
	s := &stream{body: resp.Body, br: bufio.NewReader(resp.Body)}
	t.Cleanup(func() { s.body.Close() })
	return s
}

// next returns the next block of the stream, up to and including its blank line.
func (s *stream) next() (string, error) {
	var b strings.Builder
	for {
		line, err := s.br.ReadString('\n')
		b.WriteString(line)
		if err != nil {
			return b.String(), err
		}
		if line == "\n" {
			return b.String(), nil
		}
	}
}

func (s *stream) mustNext(t *testing.T) string {
	t.Helper()
	ev, err := s.next()
	if err != nil {
		t.Fatalf("reading the stream: %q, %v", ev, err)
	}
	return ev
}

// publishID publishes an event with data and, unless id is "", that ID.
func publishID(t *testing.T, route Route, data, id string) {
	t.Helper()
	err := route.PublishEvent(func(w EventWriter) error {
		if id != "" {
			if err := w.WriteID(id); err != nil {
				return err
			}
		}
		return w.WriteData(data)
	})
	if err != nil {
		t.Fatalf("PublishEvent(%q, id %q) = %v", data, id, err)
	}
}

// assignedID matches the id line of an event whose ID the Route assigned.
var assignedID = regexp.MustCompile(`(?m)^id: ([0-9a-v]{13}-[0-9]+)$`)

func idOf(t *testing.T, ev string) string {
	t.Helper()
	for _, line := range strings.Split(ev, "\n") {
		if id, ok := strings.CutPrefix(line, "id: "); ok {
			return id
		}
	}
	t.Fatalf("event %q has no id", ev)
	return ""
}

// TestReplayExactBytes publishes on a Route with Replay(3) and checks, byte for byte, what
// subscribers coming back with each kind of Last-Event-ID receive before the live events.
func TestReplayExactBytes(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute(Replay(3), WaitForSubscriber(false))
	ts := startRoute(t, route)
	publishID(t, route, "a", "1")
	publishID(t, route, "b", "2")
	publishID(t, route, "c", "2") // two events with ID 2: replay starts after the latest
	publishID(t, route, "d", "3")
	publishID(t, route, "e", "4") // a is gone now (Replay(3) keeps c, d, e)

	tests := []struct {
		name, lastID string
		want         []string
	}{
		{"no Last-Event-ID", "", nil},
		{"the latest", "4", nil},
		{"one behind", "3", []string{"id: 4\ndata: e\n\n"}},
		{"several events with the ID", "2", []string{"id: 3\ndata: d\n\n", "id: 4\ndata: e\n\n"}},
		{"expired", "1", []string{"event: gap\ndata: 1\nid: 4\n\n"}},
		{"unknown", "zzz", []string{"event: gap\ndata: zzz\nid: 4\n\n"}},
		{"from before a restart", "q0d9k2v1mrt4a-17", []string{"event: gap\ndata: q0d9k2v1mrt4a-17\nid: 4\n\n"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := route.(*broadcaster).Stats().Subscribers
			s := openStream(t, ts.Client(), ts.URL, tt.lastID)
			waitSubscribers(t, route, before+1)
			live := "live " + tt.name
			publishID(t, route, live, "L")
			for _, want := range append(tt.want, "id: L\ndata: "+live+"\n\n") {
				if got := s.mustNext(t); got != want {
					t.Errorf("Last-Event-ID %q: got %q, want %q", tt.lastID, got, want)
				}
			}
			s.body.Close()
			waitSubscribers(t, route, before)
			publishID(t, route, "e", "4") // back to c/d/e... as the other cases expect
			publishID(t, route, "d", "3")
			publishID(t, route, "e", "4")
			publishID(t, route, "c", "2")
			publishID(t, route, "d", "3")
			publishID(t, route, "e", "4")
		})
	}
}

// A Route assigns an ID to every event that has none, never one that another Route (or an
// earlier run) assigned, and not to a block of comments.
func TestReplayAssignsIDs(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute(Replay(10), WaitForSubscriber(false))
	ts := startRoute(t, route)
	s := openStream(t, ts.Client(), ts.URL, "")
	waitSubscribers(t, route, 1)
	publishData(t, route, "x")
	if err := route.PublishEvent(func(w EventWriter) error { return w.WriteComment("only a comment") }); err != nil {
		t.Fatal(err)
	}
	if err := route.PublishEvent(func(w EventWriter) error { return w.WriteEvent("no-data") }); err != nil {
		t.Fatal(err)
	}
	first := s.mustNext(t)
	if !assignedID.MatchString(first) || !strings.HasPrefix(first, "data: x\nid: ") {
		t.Errorf("first event %q, want data: x and an assigned id", first)
	}
	if got := s.mustNext(t); got != ": only a comment\n\n" {
		t.Errorf("comment = %q, want it without an id", got)
	}
	third := s.mustNext(t)
	if !assignedID.MatchString(third) {
		t.Errorf("event without data %q has no assigned id", third)
	}
	id1, id3 := idOf(t, first), idOf(t, third)
	tag := id1[:strings.IndexByte(id1, '-')]
	if id1 == id3 || !strings.HasPrefix(id3, tag+"-") {
		t.Errorf("ids %q and %q: want distinct ids with one prefix", id1, id3)
	}

	other := NewRoute(Replay(10), WaitForSubscriber(false)).(*broadcaster)
	defer other.Close()
	if other.retain.tag == route.(*broadcaster).retain.tag {
		t.Errorf("two Routes share the ID prefix %q", other.retain.tag)
	}
	// The other Route does not know the first Route's IDs: a gap, not a replay.
	ts2 := startRoute(t, other)
	s2 := openStream(t, ts2.Client(), ts2.URL, id1)
	if got, want := s2.mustNext(t), "event: gap\ndata: "+id1+"\nid: \n\n"; got != want {
		t.Errorf("another Route's id: got %q, want %q", got, want)
	}
}

// Replay is bounded by count and by bytes; a Route without Replay ignores Last-Event-ID.
func TestReplayBounds(t *testing.T) {
	checkNoLeaks(t)
	tests := []struct {
		name    string
		opts    []RouteOption
		lastID  string
		replays []string // the data of the events replayed
		gap     bool
	}{
		{"count", []RouteOption{Replay(5)}, "5", []string{"6", "7", "8", "9"}, false},
		{"just before the oldest kept", []RouteOption{Replay(5)}, "4", []string{"5", "6", "7", "8", "9"}, false},
		{"count expired", []RouteOption{Replay(5)}, "3", nil, true},
		// Each event is "id: N\ndata: N\n\n", 14 bytes: 40 bytes keep two.
		{"bytes", []RouteOption{Replay(100), ReplayMaxBytes(40)}, "7", []string{"8", "9"}, false},
		{"bytes expired", []RouteOption{Replay(100), ReplayMaxBytes(40)}, "6", nil, true},
		{"gap off", []RouteOption{Replay(5), GapEvent("")}, "0", nil, false},
		{"gap renamed", []RouteOption{Replay(5), GapEvent("reload")}, "0", nil, true},
		{"no replay", nil, "4", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			route := NewRoute(append(tt.opts, WaitForSubscriber(false))...)
			ts := startRoute(t, route)
			for i := range 10 {
				publishID(t, route, strconv.Itoa(i), strconv.Itoa(i))
			}
			s := openStream(t, ts.Client(), ts.URL, tt.lastID)
			waitSubscribers(t, route, 1)
			publishID(t, route, "live", "L")
			var want []string
			if tt.gap {
				name := route.(*broadcaster).cfg.gapEvent
				want = append(want, "event: "+name+"\ndata: "+tt.lastID+"\nid: 9\n\n")
			}
			for _, d := range tt.replays {
				want = append(want, "id: "+d+"\ndata: "+d+"\n\n")
			}
			want = append(want, "id: L\ndata: live\n\n")
			for _, w := range want {
				if got := s.mustNext(t); got != w {
					t.Errorf("got %q, want %q", got, w)
				}
			}
		})
	}
}

// A gap before anything was published carries an empty ID, and a Route's retained bytes
// stay within the bounds however many events go through it.
func TestReplayMemoryBounded(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute(Replay(1000), ReplayMaxBytes(64<<10), WaitForSubscriber(false))
	defer route.Close()
	b := route.(*broadcaster)
	data := strings.Repeat("z", 500)
	for range 20000 {
		publishData(t, route, data)
	}
	b.mu.Lock()
	kept, logCap, indexed := len(b.retain.events)-b.retain.head, cap(b.log), len(b.retain.index)
	b.mu.Unlock()
	if kept > 130 || indexed != kept {
		t.Errorf("retained %d events, %d indexed; want about 64 KiB / 530 B = 123 of each", kept, indexed)
	}
	if logCap > 4*(64<<10) {
		t.Errorf("the log holds %d bytes for 64 KiB retained", logCap)
	}
}

// history is a History over a slice of events, as another log would serve them.
type history struct {
	mu     sync.Mutex
	ids    []string
	data   []string
	asked  [][2]string // after, through of each call
	err    error
	starts int // the Route's own events begin after ids[starts-1]
}

func (h *history) EventsAfter(ctx context.Context, after, through string, write func(func(EventWriter) error) error) (bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.asked = append(h.asked, [2]string{after, through})
	if h.err != nil {
		return false, h.err
	}
	from := -1
	for i, id := range h.ids {
		if id == after {
			from = i + 1
		}
	}
	if from < 0 {
		return false, nil
	}
	to := h.starts
	if through != "" {
		for i, id := range h.ids {
			if id == through {
				to = i + 1
			}
		}
	}
	for i := from; i < to; i++ {
		id, data := h.ids[i], h.data[i]
		if err := write(func(w EventWriter) error { w.WriteID(id); return w.WriteData(data) }); err != nil {
			return true, err
		}
	}
	return true, nil
}

// A Route with a History takes from it the events older than those it retains, up to the
// oldest it retains, with nothing missing or repeated at the seam.
func TestReplayFromHistory(t *testing.T) {
	checkNoLeaks(t)
	h := &history{}
	for i := range 20 {
		h.ids = append(h.ids, strconv.Itoa(i))
		h.data = append(h.data, "h"+strconv.Itoa(i))
	}
	h.starts = 10 // events 0-9 came before the Route; 10-19 it publishes itself
	route := NewRoute(Replay(4), ReplayFrom(h), WaitForSubscriber(false))
	ts := startRoute(t, route)
	for i := 10; i < 20; i++ {
		publishID(t, route, h.data[i], h.ids[i])
	}
	// The Route retains 16-19; the History gives 6-15.
	s := openStream(t, ts.Client(), ts.URL, "5")
	for i := 6; i < 20; i++ {
		if got, want := s.mustNext(t), fmt.Sprintf("id: %d\ndata: h%d\n\n", i, i); got != want {
			t.Fatalf("event %d: got %q, want %q", i, got, want)
		}
	}
	h.mu.Lock()
	asked := h.asked
	h.mu.Unlock()
	if len(asked) != 1 || asked[0] != [2]string{"5", "15"} {
		t.Errorf("EventsAfter calls (after, through) = %q, want [[5 15]]", asked)
	}
	if st := StatsOf(route); st.Replays != 1 || st.Gaps != 0 {
		t.Errorf("Stats = %+v, want 1 replay and no gap", st)
	}

	// An ID the History does not hold either: the gap event, with the latest ID.
	s = openStream(t, ts.Client(), ts.URL, "nope")
	if got, want := s.mustNext(t), "event: gap\ndata: nope\nid: 19\n\n"; got != want {
		t.Errorf("unknown id: got %q, want %q", got, want)
	}

	// An error of the History ends the response, so that the client retries.
	h.mu.Lock()
	h.err = errors.New("the log is down")
	h.mu.Unlock()
	s = openStream(t, ts.Client(), ts.URL, "5")
	if ev, err := s.next(); err != io.EOF || ev != "" {
		t.Errorf("History error: read %q, %v; want the end of the stream", ev, err)
	}
}

// A fresh Route with a History and nothing retained asks it for everything up to where its
// own events begin (through "").
func TestReplayFromHistoryFreshRoute(t *testing.T) {
	checkNoLeaks(t)
	h := &history{ids: []string{"a", "b", "c"}, data: []string{"A", "B", "C"}, starts: 3}
	route := NewRoute(Replay(4), ReplayFrom(h), WaitForSubscriber(false))
	ts := startRoute(t, route)
	s := openStream(t, ts.Client(), ts.URL, "a")
	waitSubscribers(t, route, 1)
	publishID(t, route, "D", "d")
	for _, want := range []string{"id: b\ndata: B\n\n", "id: c\ndata: C\n\n", "id: d\ndata: D\n\n"} {
		if got := s.mustNext(t); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	if h.asked[0] != [2]string{"a", ""} {
		t.Errorf("EventsAfter(after, through) = %q, want [a \"\"]", h.asked[0])
	}
}

// The seam under load: a publisher at full speed, subscribers dropping and coming back with
// their last ID, each one's whole sequence compared with what was published.
func TestReplaySeamUnderLoad(t *testing.T) {
	for _, proto := range []string{"HTTP/1.1", "HTTP/2"} {
		t.Run(proto, func(t *testing.T) {
			checkNoLeaks(t)
			testReplaySeam(t, proto == "HTTP/2", *seamSubscribers, *seamEvents)
		})
	}
}

func testReplaySeam(t *testing.T, h2 bool, subscribers, events int) {
	route := NewRoute(Replay(events), ReplayMaxBytes(64<<20), WaitForSubscriber(false))
	ts := httptest.NewUnstartedServer(route)
	if h2 {
		ts.EnableHTTP2 = true
		ts.StartTLS()
	} else {
		ts.Start()
	}
	defer ts.Close()
	defer route.Close()
	client := ts.Client()

	// Every subscriber comes back after the first event, as if it had read it.
	publishID(t, route, "0", "start")
	var wg sync.WaitGroup
	errs := make(chan error, subscribers)
	for i := range subscribers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- resubscribe(client, ts.URL, events, uint64(i))
		}()
	}
	for i := 1; i < events; i++ {
		if err := route.PublishEvent(func(w EventWriter) error { return w.WriteData(strconv.Itoa(i)) }); err != nil {
			t.Fatal(err)
		}
		if i%64 == 0 {
			time.Sleep(time.Millisecond) // let the subscribers come and go meanwhile
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	client.CloseIdleConnections()
	if st := StatsOf(route); st.Gaps != 0 || st.Replays == 0 {
		t.Errorf("Stats = %+v, want replays and no gap", st)
	}
}

// resubscribe reads the stream after the event with ID "start" (data 0) to the last
// (events-1), reconnecting after a random number of events with its last ID, and checks that
// the data it gets is 1, 2, 3 ... with nothing missing or repeated.
func resubscribe(client *http.Client, url string, events int, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 1))
	want, lastID, connections := 1, "start", 0
	for want < events {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		req.Header.Set("Last-Event-ID", lastID)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		connections++
		br := bufio.NewReader(resp.Body)
		for take := 1 + rng.IntN(200); take > 0 && want < events; take-- {
			ev, err := (&stream{br: br}).next()
			if err != nil {
				resp.Body.Close()
				return fmt.Errorf("connection %d: reading after %d: %v", connections, want, err)
			}
			var data, id string
			for _, line := range strings.Split(ev, "\n") {
				if v, ok := strings.CutPrefix(line, "data: "); ok {
					data = v
				} else if v, ok := strings.CutPrefix(line, "id: "); ok {
					id = v
				}
			}
			if data != strconv.Itoa(want) {
				return fmt.Errorf("connection %d (Last-Event-ID %q): got %q, want data %d", connections, lastID, ev, want)
			}
			want++
			lastID = id
		}
		resp.Body.Close()
	}
	return nil
}
