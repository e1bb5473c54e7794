package httpsse

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// topicsServer serves t.Serve with the topics of the query's "topic" values.
func topicsServer(t *testing.T, topics *Topics) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		topics.Serve(w, r, r.URL.Query()["topic"]...)
	}))
	t.Cleanup(func() {
		topics.Close()
		srv.Close()
	})
	return srv
}

// openTopics requests the topics with the Last-Event-ID, and returns the response.
func openTopics(t *testing.T, srv *httptest.Server, lastEventID string, names ...string) *http.Response {
	t.Helper()
	return openTopicsContext(t, context.Background(), srv, lastEventID, names...)
}

func openTopicsContext(t *testing.T, ctx context.Context, srv *httptest.Server, lastEventID string, names ...string) *http.Response {
	t.Helper()
	resp, err := requestTopics(ctx, srv, lastEventID, names...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func requestTopics(ctx context.Context, srv *httptest.Server, lastEventID string, names ...string) (*http.Response, error) {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = "topic=" + n
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/?"+strings.Join(q, "&"), nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	return srv.Client().Do(req)
}

// publishTo publishes one event with data to the topic.
func publishTo(t *testing.T, topics *Topics, topic, data string) {
	t.Helper()
	if err := topics.Route(topic).PublishEvent(func(w EventWriter) error { return w.WriteData(data) }); err != nil {
		t.Fatal(err)
	}
}

// readBlocks reads n blocks (up to and including each blank line) from r.
func readBlocks(t *testing.T, r *bufio.Reader, n int) string {
	t.Helper()
	var b strings.Builder
	for n > 0 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("after %q: %v", b.String(), err)
		}
		b.WriteString(line)
		if line == "\n" {
			n--
		}
	}
	return b.String()
}

// The exact bytes: the response starts with a block that sets the ID, each event carries the
// ID of every topic after its own fields, and a comment block goes as it is.
func TestServeExactBytes(t *testing.T) {
	checkNoLeaks(t)
	topics := NewTopics(Replay(10))
	srv := topicsServer(t, topics)
	a, b := topics.Route("a").(*broadcaster), topics.Route("b").(*broadcaster)
	tagA, tagB := a.retain.tag, b.retain.tag
	publishTo(t, topics, "a", "before")
	t.Logf("a %s, b %s", tagA, tagB)

	resp := openTopics(t, srv, "", "a", "b", "a")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ContentType {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	r := bufio.NewReader(resp.Body)
	ka, kb := topicKey("a"), topicKey("b")
	want := fmt.Sprintf("id: ~%s=%s-1,%s=%s-0\n\n", ka, tagA, kb, tagB)
	if got := readBlocks(t, r, 1); got != want {
		t.Fatalf("first block %q, want %q", got, want)
	}
	// Events of different topics have no order between them: one at a time.
	steps := []struct {
		publish func() error
		want    string
	}{
		{func() error { return b.PublishEvent(func(w EventWriter) error { return w.WriteData("one\ntwo") }) },
			"data: one\ndata: two\nid: %[4]s-1\nid: ~%[1]s=%[3]s-1,%[2]s=%[4]s-1\n\n"},
		{func() error { return a.PublishEvent(func(w EventWriter) error { return w.WriteData("three") }) },
			"data: three\nid: %[3]s-2\nid: ~%[1]s=%[3]s-2,%[2]s=%[4]s-1\n\n"},
		{func() error {
			return a.PublishEvent(func(w EventWriter) error { return w.WriteComment("just a comment") })
		},
			": just a comment\n\n"},
		{func() error {
			return b.PublishEvent(func(w EventWriter) error {
				w.WriteEvent("custom")
				w.WriteID("mine,=%")
				return w.WriteData("four")
			})
		}, "event: custom\nid: mine,=%%\ndata: four\nid: ~%[1]s=%[3]s-2,%[2]s=mine%%2C%%3D%%25\n\n"},
	}
	for i, step := range steps {
		if err := step.publish(); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf(step.want, ka, kb, tagA, tagB)
		if strings.Count(want, "%!") > 0 {
			want = step.want
		}
		if got := readBlocks(t, r, 1); got != want {
			t.Errorf("step %d: got %q, want %q", i, got, want)
		}
	}
}

// Requests that cannot be served are answered with the reason, and attach nothing.
func TestServeBadRequests(t *testing.T) {
	checkNoLeaks(t)
	topics := NewTopics(Replay(10))
	srv := topicsServer(t, topics)
	many := make([]string, MaxServeTopics+1)
	for i := range many {
		many[i] = fmt.Sprint("t", i)
	}
	for _, tc := range []struct {
		names  []string
		status int
		body   string
	}{
		{nil, 400, "httpsse: no topic to serve\n"},
		{many, 400, "httpsse: 33 topics asked for on one connection; at most 32 are served\n"},
	} {
		resp := openTopics(t, srv, "", tc.names...)
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.status || string(body) != tc.body {
			t.Errorf("%d topics: status %d, body %q; want %d, %q", len(tc.names), resp.StatusCode, body, tc.status, tc.body)
		}
	}
	if st := topics.Stats(); st.Subscribers != 0 {
		t.Errorf("%d subscribers attached", st.Subscribers)
	}
	if n := topics.Len(); n != 0 {
		t.Errorf("%d topics made", n)
	}
	topics.Close()
	resp := openTopics(t, srv, "", "a")
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("after Close: status %d, want 204", resp.StatusCode)
	}
}

// rawEvents reads events from a raw stream with the Decoder, and returns them with the last
// event ID in effect after the last block that arrived whole (what an EventSource holds).
type streamState struct {
	events []Event
	lastID string
}

func readState(body io.Reader) streamState {
	var st streamState
	dec := NewDecoder(body)
	for dec.Next() {
		var ev Event
		if dec.Decode(&ev) == nil {
			st.events = append(st.events, ev)
		}
	}
	st.lastID = string(dec.lastID)
	return st
}

// A client that cuts its connection at a random byte, while several topics are published at
// full speed, and comes back with the ID it holds, receives every event of every topic
// exactly once, in each topic's order.
func TestServeResumeAfterRandomCuts(t *testing.T) {
	checkNoLeaks(t)
	topics := NewTopics(Replay(1<<16), ReplayMaxBytes(64<<20))
	srv := topicsServer(t, topics)
	names := []string{"alpha", "beta", "gamma"}
	const perTopic = 1000

	// The first request is in before anything is published: its first block holds the
	// beginning of each topic.
	first := openTopics(t, srv, "", names...)
	var wg sync.WaitGroup
	for _, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perTopic {
				if err := topics.Route(name).PublishEvent(func(w EventWriter) error {
					w.WriteEvent(name)
					return w.WriteData(fmt.Sprint(i))
				}); err != nil {
					t.Error(err)
					return
				}
				if i%100 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	seen := map[string]int{}
	lastID := ""
	rng := rand.New(rand.NewPCG(1, 2))
	for round := 0; ; round++ {
		order := append([]string(nil), names...)
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		resp := first
		if round > 0 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+rng.IntN(50))*time.Millisecond)
			t.Cleanup(cancel)
			var err error
			if resp, err = requestTopics(ctx, srv, lastID, order...); err != nil {
				continue // cut before the headers came
			}
		}
		if resp.StatusCode != 200 {
			t.Fatalf("round %d: status %d", round, resp.StatusCode)
		}
		limit := int64(1 + rng.IntN(20000))
		st := readState(&cutReader{r: resp.Body, n: limit})
		resp.Body.Close()
		for _, ev := range st.events {
			name := ev.EventName()
			if name == "gap" {
				t.Fatalf("round %d: gap event %q", round, ev.EventDataCollapsed())
			}
			if want := fmt.Sprint(seen[name]); ev.EventDataCollapsed() != want {
				t.Fatalf("round %d: topic %s: event %q, want %q", round, name, ev.EventDataCollapsed(), want)
			}
			seen[name]++
		}
		if st.lastID != "" {
			lastID = st.lastID
		}
		done := true
		for _, name := range names {
			done = done && seen[name] == perTopic
		}
		if done {
			t.Logf("%d connections", round+1)
			break
		}
		if round > 10000 {
			t.Fatalf("not done after %d rounds: %v", round, seen)
		}
	}
	wg.Wait()
}

// cutReader reads n bytes from r, then reports the end of the stream.
type cutReader struct {
	r io.Reader
	n int64
}

func (c *cutReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

// connectTopics opens the topics. Without a Last-Event-ID it reads the response's first
// block, which sets its ID, and returns the ID; with one, the response may start with gap
// events, and it reads nothing.
func connectTopics(t *testing.T, srv *httptest.Server, lastEventID string, names ...string) (*http.Response, *Decoder, string) {
	t.Helper()
	resp := openTopics(t, srv, lastEventID, names...)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	r := bufio.NewReader(resp.Body)
	id := ""
	if lastEventID == "" {
		id = readID(t, r)
	}
	return resp, NewDecoder(r), id
}

// readID reads blocks until one that sets the ID, and returns the ID.
func readID(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	for {
		block := readBlocks(t, r, 1)
		if id, ok := eventID([]byte(block)); ok {
			return string(id)
		}
	}
}

// readEvents reads n events (blocks with data) and returns them as "type:data" (type
// "message" when none), with the ID after the last one.
func readEvents(t *testing.T, dec *Decoder, n int) ([]string, string) {
	t.Helper()
	var got []string
	lastID := ""
	for len(got) < n && dec.Next() {
		var ev Event
		dec.Decode(&ev)
		name := ev.EventName()
		if name == "" {
			name = "message"
		}
		got = append(got, name+":"+ev.EventDataCollapsed())
		lastID = ev.EventID()
	}
	if len(got) < n {
		t.Fatalf("got %q, then %v", got, dec.Err())
	}
	return got, lastID
}

// A topic whose point is no longer held gets the gap event, named after it, then its live
// events; the other topics resume exactly; a topic the earlier request did not have starts
// with its live events.
func TestServeGapPerTopic(t *testing.T) {
	checkNoLeaks(t)
	topics := NewTopics(Replay(3))
	srv := topicsServer(t, topics)
	resp, _, id := connectTopics(t, srv, "", "a", "b")
	resp.Body.Close()

	for i := range 5 {
		publishTo(t, topics, "a", fmt.Sprint("a", i))
	}
	publishTo(t, topics, "b", "b0")
	publishTo(t, topics, "c", "c-before")

	_, r, _ := connectTopics(t, srv, id, "c", "b", "a")
	got, _ := readEvents(t, r, 2)
	want := map[string]bool{"gap:a": true, "message:b0": true}
	for _, g := range got {
		if !want[g] {
			t.Errorf("unexpected event %q (all: %q)", g, got)
		}
	}
	publishTo(t, topics, "c", "c-live")
	publishTo(t, topics, "a", "a-live")
	got, last := readEvents(t, r, 2)
	if got[0] != "message:c-live" || got[1] != "message:a-live" {
		t.Errorf("live events %q", got)
	}
	if st := topics.Stats(); st.Gaps != 1 || st.Replays != 1 {
		t.Errorf("Stats %+v, want 1 gap (a) and 1 replay (b)", st)
	}

	// The ID after the gap resumes a exactly: no second gap.
	publishTo(t, topics, "a", "a-after")
	_, r2, _ := connectTopics(t, srv, last, "a", "b", "c")
	if got, _ := readEvents(t, r2, 1); got[0] != "message:a-after" {
		t.Errorf("after the gap: %q", got)
	}
}

// An ID that is not of the form (unknown, malformed, or of a single-topic Route) counts as
// unknown for every topic.
func TestServeForeignID(t *testing.T) {
	checkNoLeaks(t)
	topics := NewTopics(Replay(10))
	srv := topicsServer(t, topics)
	publishTo(t, topics, "a", "a0")
	single := topics.Route("a").(*broadcaster).retain.lastID
	key := topicKey("a")
	for _, id := range []string{
		"garbage",
		single, // a single-topic Route's own ID for that very topic
		"~",
		"~" + key,
		"~" + key + "=x,", // an empty part
		"~" + key + "=%zz",
		"~" + key + "=" + single + "," + key + "=" + single, // a key twice
		"~AAAAAA=" + single, // of the form, but naming none of the topics
		"~" + key + "=",     // listed, position not held
	} {
		resp, r, _ := connectTopics(t, srv, id, "a", "b")
		got, _ := readEvents(t, r, 1)
		if id == "~"+key+"=" {
			if got[0] != "gap:a" {
				t.Errorf("ID %q: got %q, want gap:a", id, got)
			}
		} else {
			more, _ := readEvents(t, r, 1)
			got = append(got, more...)
			if !(got[0] == "gap:a" && got[1] == "gap:b" || got[0] == "gap:b" && got[1] == "gap:a") {
				t.Errorf("ID %q: got %q, want a gap for each topic", id, got)
			}
		}
		resp.Body.Close()
	}
}

// Close ends the subscribers of several topics cleanly, after what was already published.
func TestServeClose(t *testing.T) {
	checkNoLeaks(t)
	topics := NewTopics()
	srv := topicsServer(t, topics)
	r := NewDecoder(openTopics(t, srv, "", "a", "b", "c").Body)
	for i := range 100 {
		publishTo(t, topics, []string{"a", "b", "c"}[i%3], fmt.Sprint(i))
	}
	topics.Close()
	n := 0
	for r.Next() {
		n++
	}
	if err := r.Err(); err != nil {
		t.Fatalf("body ended with %v, not cleanly", err)
	}
	if n != 100 {
		t.Errorf("%d events after Close, want 100", n)
	}
}

// A topic with a subscriber of several topics is not freed under it, and is freed once the
// subscriber has gone; a topic is made on first use.
func TestServeTopicsLiveWhileServed(t *testing.T) {
	checkNoLeaks(t)
	topics := NewTopics(TopicIdle(40*time.Millisecond), Replay(1))
	srv := topicsServer(t, topics)
	resp, r, _ := connectTopics(t, srv, "", "a", "b")
	if n := topics.Len(); n != 2 {
		t.Fatalf("Len %d, want 2", n)
	}
	if st := topics.Stats(); st.Subscribers != 2 {
		t.Errorf("Subscribers %d, want 2 (one in each topic)", st.Subscribers)
	}
	time.Sleep(200 * time.Millisecond)
	publishTo(t, topics, "b", "still here")
	if got, _ := readEvents(t, r, 1); got[0] != "message:still here" {
		t.Errorf("got %q", got)
	}
	resp.Body.Close()
	deadline := time.Now().Add(5 * time.Second)
	for topics.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := topics.Len(); n != 0 {
		t.Errorf("%d topics left after the subscriber went", n)
	}
}

// A subscriber of several topics that falls too far behind in one of them is dropped, and
// OnDrop hears of it once.
func TestServeDropped(t *testing.T) {
	checkNoLeaks(t)
	var mu sync.Mutex
	var drops []error
	topics := NewTopics(MaxQueuedBytes(64<<10), OnDrop(func(_ *http.Request, err error) {
		mu.Lock()
		drops = append(drops, err)
		mu.Unlock()
	}))
	srv := topicsServer(t, topics)
	openTopics(t, srv, "", "a", "b") // never read
	data := strings.Repeat("x", 4<<10)
	deadline := time.Now().Add(10 * time.Second)
	for topics.Stats().DroppedBehind == 0 && time.Now().Before(deadline) {
		publishTo(t, topics, "a", data)
	}
	for topics.Stats().Subscribers > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(drops) != 1 || drops[0] != ErrTooFarBehind {
		t.Errorf("OnDrop heard %v, want one ErrTooFarBehind", drops)
	}
}

// Serve works over HTTP/2.
func TestServeHTTP2(t *testing.T) {
	checkNoLeaks(t)
	topics := NewTopics(Replay(10))
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		topics.Serve(w, r, r.URL.Query()["topic"]...)
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	defer topics.Close()
	resp, r, id := connectTopics(t, srv, "", "a", "b")
	if resp.ProtoMajor != 2 {
		t.Fatalf("protocol %s", resp.Proto)
	}
	publishTo(t, topics, "a", "one")
	got, last := readEvents(t, r, 1)
	if got[0] != "message:one" || last == id {
		t.Errorf("got %q, ID %q", got, last)
	}
	resp.Body.Close()
	publishTo(t, topics, "b", "two")
	_, r2, _ := connectTopics(t, srv, last, "b", "a")
	if got, _ := readEvents(t, r2, 1); got[0] != "message:two" {
		t.Errorf("resumed with %q", got)
	}
}

// The ID stays well under the usual header limits at the most topics, with the Route's
// own IDs and with long names.
func TestServeIDSize(t *testing.T) {
	checkNoLeaks(t)
	topics := NewTopics(Replay(10))
	srv := topicsServer(t, topics)
	names := make([]string, MaxServeTopics)
	for i := range names {
		names[i] = fmt.Sprintf("organisation/%d/project/%d/document-with-a-long-name", i*7919, i)
		for range 1000 {
			topics.Route(names[i]).PublishEvent(func(w EventWriter) error { return w.WriteData("x") })
		}
	}
	_, _, id := connectTopics(t, srv, "", names...)
	if len(id) > 1024 {
		t.Errorf("ID of %d bytes at %d topics: %s", len(id), len(names), id)
	}
	t.Logf("ID at %d topics: %d bytes", len(names), len(id))
}

func TestEventID(t *testing.T) {
	for _, tc := range []struct {
		block, id string
		ok        bool
	}{
		{"data: x\nid: a-1\n\n", "a-1", true},
		{"id: only\n\n", "only", true},
		{"id: mine\ndata: x\n\n", "mine", true},
		{"id: first\ndata: id: not\nid: second\ndata: y\n\n", "second", true},
		{"id: \n\n", "", true},
		{": comment\n\n", "", false},
		{"data: x\n\n", "", false},
		{"data: id: x\n\n", "", false},
	} {
		id, ok := eventID([]byte(tc.block))
		if string(id) != tc.id || ok != tc.ok {
			t.Errorf("eventID(%q) = %q, %v; want %q, %v", tc.block, id, ok, tc.id, tc.ok)
		}
	}
}

// Subscribers of random sets of topics come and go while publishers publish, MaxTopics frees
// and refuses topics, and idle topics are freed; then Close. Every response is 200, 503
// (refused) or 204 (closed), nothing panics or races, and nothing is left running.
func TestServeChurn(t *testing.T) {
	checkNoLeaks(t)
	topics := NewTopics(Replay(8), MaxTopics(6), TopicIdle(30*time.Millisecond), KeepAlive(20*time.Millisecond))
	srv := topicsServer(t, topics)
	names := []string{"a", "b", "c", "d", "e", "f", "g", "h"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for p := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(p), 7))
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				topics.Route(names[rng.IntN(len(names))]).PublishEvent(func(w EventWriter) error { return w.WriteData(fmt.Sprint(i)) })
			}
		}()
	}
	statuses := map[int]int{}
	var mu sync.Mutex
	for c := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 9))
			lastID := ""
			for range 30 {
				var set []string
				for range 1 + rng.IntN(4) {
					set = append(set, names[rng.IntN(len(names))])
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(1+rng.IntN(30))*time.Millisecond)
				resp, err := requestTopics(ctx, srv, lastID, set...)
				if err == nil {
					mu.Lock()
					statuses[resp.StatusCode]++
					mu.Unlock()
					st := readState(resp.Body)
					if st.lastID != "" {
						lastID = st.lastID
					}
					resp.Body.Close()
				}
				cancel()
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	topics.Close()
	close(stop)
	wg.Wait()
	for status := range statuses {
		if status != 200 && status != 503 && status != 204 {
			t.Errorf("status %d in %v", status, statuses)
		}
	}
	t.Logf("statuses %v", statuses)
}
