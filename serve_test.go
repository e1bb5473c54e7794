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
		{func() error { return a.PublishEvent(func(w EventWriter) error { return w.WriteComment("just a comment") }) },
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
	topics := NewTopics(Replay(1 << 16), ReplayMaxBytes(64<<20))
	srv := topicsServer(t, topics)
	names := []string{"alpha", "beta", "gamma"}
	const perTopic = 3000

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

