package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/reiver/go-httpsse"
)

var fastDemoConfig = demoConfig{
	tick:      20 * time.Millisecond,
	heartbeat: 50 * time.Millisecond,
	replay:    64,
	longCut:   time.Second,
	status:    20 * time.Millisecond,
	streamRun: 3,
	retry:     30 * time.Millisecond,
}

// startDemo serves the demo's handler on a loopback port. Like main, it
// serves the streams with httpsse.NewListener and closes the demo from RegisterOnShutdown.
func startDemo(t *testing.T, cfg demoConfig) (*httptest.Server, io.Closer) {
	t.Helper()
	handler, closer := newDemo(cfg)
	ts := httptest.NewUnstartedServer(handler)
	ts.Config.RegisterOnShutdown(func() { closer.Close() })
	ts.Listener = httpsse.NewListener(ts.Listener, ts.Config)
	ts.Start()
	t.Cleanup(ts.Close)
	t.Cleanup(func() { closer.Close() })
	return ts, closer
}

// next reads one event from c, or fails the test.
func next(t *testing.T, c httpsse.Client) httpsse.Event {
	t.Helper()
	if !c.Next() {
		t.Fatalf("Next() = false, Err() = %v", c.Err())
	}
	var ev httpsse.Event
	if err := c.Decode(&ev); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	return ev
}

func TestDemoPage(t *testing.T) {
	ts, _ := startDemo(t, fastDemoConfig)
	resp, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("GET / Content-Type = %q, want text/html; charset=utf-8", ct)
	}
	for _, s := range []string{`new EventSource(`, `"/topics?user="`, `"&client="`, `"/stream"`, `"/cut?client="`, `"/stats?client="`, `"/answer?q="`} {
		if !strings.Contains(string(body), s) {
			t.Errorf("GET / lacks %s", s)
		}
	}
	// Self-contained: nothing is loaded from elsewhere.
	for _, s := range []string{"http://", "https://", "<script src", "<link rel=\"stylesheet\""} {
		if strings.Contains(string(body), s) {
			t.Errorf("GET / contains %q; the page must be self-contained", s)
		}
	}
	resp, err = http.Get(ts.URL + "/nothing-here")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing-here = %d, want 404", resp.StatusCode)
	}
}

func TestDemoSharedEvents(t *testing.T) {
	ts, _ := startDemo(t, fastDemoConfig)
	c, err := httpsse.Dial(ts.URL+"/events", httpsse.Reconnect(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seen := map[string]bool{}
	for i := 0; i < 40 && len(seen) < 4; i++ {
		ev := next(t, c)
		seen[ev.EventName()] = true
		if ev.EventName() == "note" && len(ev.EventData()) != 3 {
			t.Errorf("note event data = %q, want 3 lines", ev.EventData())
		}
	}
	for _, name := range []string{"tick", "note", "", "heartbeat"} {
		if !seen[name] {
			t.Errorf("no %q event among the first 40 of /events", name)
		}
	}
}

// TestDemoStreamResumes follows the per-request stream through the server's
// end of it: the client reconnects after the retry: time with Last-Event-ID,
// and the count goes on.
func TestDemoStreamResumes(t *testing.T) {
	ts, _ := startDemo(t, fastDemoConfig)
	c, err := httpsse.Dial(ts.URL + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []string
	for len(got) < 11 {
		ev := next(t, c)
		got = append(got, ev.EventName()+" "+ev.EventID()+" "+ev.EventDataCollapsed())
	}
	retry := fastDemoConfig.retry
	want := []string{
		"hello  new stream: no Last-Event-ID",
		"status status-1 Hello world! #1",
		"status status-2 Hello world! #2",
		"status status-3 Hello world! #3",
		fmt.Sprintf("bye status-3 the server ends this stream; EventSource reconnects in %s", retry),
		"hello status-3 reconnected with Last-Event-ID: status-3",
		"status status-4 Hello world! #4",
		"status status-5 Hello world! #5",
		"status status-6 Hello world! #6",
		fmt.Sprintf("bye status-6 the server ends this stream; EventSource reconnects in %s", retry),
		"hello status-6 reconnected with Last-Event-ID: status-6",
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %q, want %q", i, got[i], want[i])
		}
	}
}

// TestDemoShutdown checks main's graceful shutdown: with streams open,
// Shutdown returns promptly and each stream ends cleanly.
func TestDemoShutdown(t *testing.T) {
	cfg := fastDemoConfig
	cfg.streamRun = 1 << 30
	ts, _ := startDemo(t, cfg)
	var clients []httpsse.Client
	for _, path := range []string{"/events", "/topics?user=ada", "/stream"} {
		c, err := httpsse.Dial(ts.URL+path, httpsse.Reconnect(false))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		next(t, c)
		clients = append(clients, c)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	if err := ts.Config.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown with open streams: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Shutdown took %s, want it prompt", d)
	}
	for i, c := range clients {
		for c.Next() {
		}
		if err := c.Err(); err != nil {
			t.Errorf("stream %d after Shutdown: Err() = %v, want a clean end", i, err)
		}
	}
}

// getStats reads the demo's /stats, as the page does.
func getStats(t *testing.T, ts *httptest.Server, client string) demoStats {
	t.Helper()
	resp, err := http.Get(ts.URL + "/stats?client=" + client)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("GET /stats Content-Type = %q, want application/json", ct)
	}
	var st demoStats
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("GET /stats: %v", err)
	}
	return st
}

// post sends a POST and returns the status and body.
func post(t *testing.T, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// seqOf returns the event number of a shared route's event ID of this run.
func seqOf(t *testing.T, run, id string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(strings.TrimPrefix(id, run+"-"), 10, 64)
	if err != nil || !strings.HasPrefix(id, run+"-") {
		t.Fatalf("event ID %q is not %s-<number>", id, run)
	}
	return n
}

// waitFor polls f every 10ms until it is true, or fails the test after 5s.
func waitFor(t *testing.T, what string, f func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !f(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 5s for %s", what)
		}
	}
}

// TestDemoCutResumes cuts a client's shared stream from the server, as the
// page's button does, while the demo goes on publishing: our Client
// reconnects by itself with Last-Event-ID, and the route replays what it
// missed, so the client sees every event once, in order.
func TestDemoCutResumes(t *testing.T) {
	ts, closer := startDemo(t, fastDemoConfig)
	run := closer.(*demo).boot
	const client = "resume-1"
	c, err := httpsse.Dial(ts.URL+"/events?client="+client, httpsse.ReconnectDelay(150*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The Client reconnects inside Next: read in a goroutine of its own.
	ids := make(chan string, 1024) // more than the test reads: the reader never blocks
	go func() {
		defer close(ids)
		for c.Next() {
			var ev httpsse.Event
			if c.Decode(&ev) == nil {
				ids <- ev.EventID()
			}
		}
	}()
	var seqs []uint64
	read := func() {
		t.Helper()
		select {
		case id, ok := <-ids:
			if !ok {
				t.Fatalf("stream ended: %v", c.Err())
			}
			seqs = append(seqs, seqOf(t, run, id))
		case <-time.After(5 * time.Second):
			t.Fatal("no event for 5s")
		}
	}
	for range 3 {
		read()
	}

	code, body := post(t, ts.URL+"/cut?client="+client, nil)
	if code != http.StatusOK || !strings.Contains(body, `"cut":1`) {
		t.Fatalf("POST /cut = %d %s, want 200 and one response cut", code, body)
	}
	// The Client reconnects after 150ms; then /stats says which event was the
	// route's last when it came back.
	var back *clientStats
	waitFor(t, "the client to come back with Last-Event-ID", func() bool {
		back = getStats(t, ts, client).Client
		return back != nil && back.LastEventID != ""
	})
	sent := seqOf(t, run, back.LastEventID)
	if back.BackAt < sent+3 {
		t.Fatalf("the client came back at event %d with Last-Event-ID %d: want several events published while it was away", back.BackAt, sent)
	}
	for seqs[len(seqs)-1] < back.BackAt+3 {
		read()
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("events %v: want each number once, in order (Last-Event-ID %d, came back at %d)", seqs, sent, back.BackAt)
		}
	}
	t.Logf("cut after event %d, came back at %d: %d events replayed", sent, back.BackAt, back.BackAt-sent)
	if st := getStats(t, ts, client).Shared; st.Replays != 1 || st.Gaps != 0 || st.Subscribers != 1 {
		t.Errorf("shared route Stats = %+v, want Replays 1, Gaps 0, Subscribers 1", st)
	}
}

// TestDemoCutLongGap cuts a client's stream "for longer": the server holds its
// reconnection past what the route keeps, so it comes back to a gap event
// that names the Last-Event-ID it sent and carries the ID to resume from.
func TestDemoCutLongGap(t *testing.T) {
	cfg := fastDemoConfig
	cfg.replay = 3
	cfg.longCut = 300 * time.Millisecond
	ts, closer := startDemo(t, cfg)
	run := closer.(*demo).boot
	const client = "gap-1"
	c, err := httpsse.Dial(ts.URL+"/events?client="+client, httpsse.ReconnectDelay(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	last := next(t, c)
	if code, body := post(t, ts.URL+"/cut?client="+client+"&long=1", nil); code != http.StatusOK {
		t.Fatalf("POST /cut?long=1 = %d %s, want 200", code, body)
	}
	ev := next(t, c)
	for ev.EventName() != "gap" {
		last = ev
		ev = next(t, c)
	}
	if got := ev.EventDataCollapsed(); got != last.EventID() {
		t.Errorf("gap event data = %q, want the Last-Event-ID sent, %q", got, last.EventID())
	}
	from := seqOf(t, run, ev.EventID())
	if lost := from - seqOf(t, run, last.EventID()); lost <= uint64(cfg.replay) {
		t.Errorf("gap after %s resumes after %s: %d events lost, want more than the %d kept", last.EventID(), ev.EventID(), lost, cfg.replay)
	}
	if got := seqOf(t, run, next(t, c).EventID()); got != from+1 {
		t.Errorf("first event after the gap is %d, want %d", got, from+1)
	}
	if st := getStats(t, ts, client).Shared; st.Gaps != 1 {
		t.Errorf("shared route Stats = %+v, want Gaps 1", st)
	}

	// An ID from an earlier run of the demo is not mistaken for one of this run.
	req, _ := http.NewRequest("GET", ts.URL+"/events", nil)
	req.Header.Set("Last-Event-ID", "earlierrun-5")
	c2, err := httpsse.DialRequest(req, httpsse.Reconnect(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if ev := next(t, c2); ev.EventName() != "gap" || ev.EventDataCollapsed() != "earlierrun-5" || !strings.HasPrefix(ev.EventID(), run+"-") {
		t.Errorf("Last-Event-ID of an earlier run: first event %q id %q data %q, want a gap with data earlierrun-5 and an ID of this run", ev.EventName(), ev.EventID(), ev.EventDataCollapsed())
	}
}

func TestDemoCutErrors(t *testing.T) {
	ts, _ := startDemo(t, fastDemoConfig)
	tests := []struct {
		name, path string
		code       int
		want       string
	}{
		{"no client", "/cut", http.StatusBadRequest, "demo: client must be"},
		{"bad client", "/cut?client=a/b", http.StatusBadRequest, "demo: client must be"},
		{"long client", "/cut?client=" + strings.Repeat("x", maxClientLen+1), http.StatusBadRequest, "demo: client must be"},
		{"nobody to cut", "/cut?client=nobody", http.StatusOK, `"cut":0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := post(t, ts.URL+tt.path, nil)
			if code != tt.code || !strings.Contains(body, tt.want) {
				t.Errorf("POST %s = %d %q, want %d and %q", tt.path, code, body, tt.code, tt.want)
			}
		})
	}
	resp, err := http.Get(ts.URL + "/events?client=a%20b")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET /events?client=a%%20b = %d, want 400", resp.StatusCode)
	}
}

// TestDemoNotifications subscribes two users to their topics: each gets its
// own notifications only, and sending never waits for a subscriber.
func TestDemoNotifications(t *testing.T) {
	ts, _ := startDemo(t, fastDemoConfig)
	dial := func(user string) httpsse.Client {
		c, err := httpsse.Dial(ts.URL+"/notify?user="+user, httpsse.Reconnect(false))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ada, alan := dial("ada"), dial("alan")
	waitFor(t, "two topic subscribers", func() bool { return getStats(t, ts, "").All.Subscribers == 2 })

	send := func(user, text string) {
		t.Helper()
		code, body := post(t, ts.URL+"/notify", url.Values{"user": {user}, "text": {text}})
		if code != http.StatusOK {
			t.Fatalf("POST /notify user=%s = %d %s, want 200", user, code, body)
		}
	}
	send("ada", "for ada\nover two lines")
	send("nobody", "nobody listens") // must not block
	send("alan", "for alan")
	for _, tt := range []struct {
		c    httpsse.Client
		want string
	}{{ada, "for ada\nover two lines"}, {alan, "for alan"}} {
		ev := next(t, tt.c)
		if ev.EventName() != "notification" || strings.Join(ev.EventData(), "\n") != tt.want || ev.EventID() == "" {
			t.Errorf("notification: event %q id %q data %q, want notification with an ID and %q", ev.EventName(), ev.EventID(), ev.EventData(), tt.want)
		}
	}
	st := getStats(t, ts, "")
	// The topics are the three users' and the shared one, whose events count too.
	if notes := st.All.Published - st.Shared.Published; st.Topics != 4 || notes != 3 || st.All.Subscribers != 2 {
		t.Errorf("/stats topics %d, all %+v, shared %+v: want 4 topics, 3 notifications published, 2 subscribers", st.Topics, st.All, st.Shared)
	}

	for _, tt := range []struct {
		name string
		form url.Values
		want string
	}{
		{"no user", url.Values{"text": {"x"}}, "demo: user must be"},
		{"bad user", url.Values{"user": {"a b"}, "text": {"x"}}, "demo: user must be"},
		{"no text", url.Values{"user": {"ada"}, "text": {"  "}}, "demo: text must be"},
		{"long text", url.Values{"user": {"ada"}, "text": {strings.Repeat("x", maxTextLen+1)}}, "demo: text must be"},
	} {
		if code, body := post(t, ts.URL+"/notify", tt.form); code != http.StatusBadRequest || !strings.Contains(body, tt.want) {
			t.Errorf("POST /notify %s = %d %q, want 400 and %q", tt.name, code, body, tt.want)
		}
	}
	resp, err := http.Get(ts.URL + "/notify?user=")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("GET /notify?user= = %d, want 400", resp.StatusCode)
	}
}

// TestDemoStats reads /stats as the page does: the shared route's counts
// move as subscribers come and events are published.
func TestDemoStats(t *testing.T) {
	ts, _ := startDemo(t, fastDemoConfig)
	c, err := httpsse.Dial(ts.URL+"/events?client=stats-1", httpsse.Reconnect(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	next(t, c)
	// The publisher records the number of an event once PublishEvent has returned, which can
	// be after the event has arrived here.
	st := getStats(t, ts, "stats-1")
	for deadline := time.Now().Add(5 * time.Second); st.Seq == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		st = getStats(t, ts, "stats-1")
	}
	if st.Shared.Subscribers != 1 || st.Shared.Published == 0 || st.Seq == 0 || st.Replay != fastDemoConfig.replay {
		t.Errorf("/stats = %+v, want 1 subscriber, events published, replay %d", st, fastDemoConfig.replay)
	}
	if st.Client == nil || st.Client.LastEventID != "" || st.Client.BackAt > st.Seq {
		t.Errorf("/stats client = %+v, want the open response, with no Last-Event-ID", st.Client)
	}
	if st := getStats(t, ts, "someone-else"); st.Client != nil {
		t.Errorf("/stats?client=someone-else client = %+v, want none", st.Client)
	}
	c.Close()
	waitFor(t, "no subscribers", func() bool { return getStats(t, ts, "").Shared.Subscribers == 0 })
}

// setAnswerDelay sets the time between two words of /answer for the test.
func setAnswerDelay(t *testing.T, d time.Duration) {
	t.Helper()
	old := answerDelay
	answerDelay = d
	t.Cleanup(func() { answerDelay = old })
}

// GET /answer streams the answer word by word through NewStream, then "done".
func TestDemoAnswer(t *testing.T) {
	setAnswerDelay(t, time.Millisecond)
	ts, _ := startDemo(t, fastDemoConfig)
	c, err := httpsse.Dial(ts.URL+"/answer?q="+url.QueryEscape("Why is the sky blue?"), httpsse.Reconnect(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var text strings.Builder
	words := 0
	for {
		ev := next(t, c)
		if ev.EventName() == "done" {
			if got, want := ev.EventDataCollapsed(), strconv.Itoa(words); got != want {
				t.Errorf("done event data = %q, want the number of words, %s", got, want)
			}
			break
		}
		if ev.EventName() != "word" {
			t.Fatalf("event %q, want word or done", ev.String())
		}
		text.WriteString(ev.EventDataCollapsed())
		words++
	}
	if want := strings.Join(answerWords("Why is the sky blue?"), " "); text.String() != want {
		t.Errorf("answer = %q, want %q", text.String(), want)
	}
	if !strings.HasPrefix(text.String(), "You asked: “Why is the sky blue?”.") {
		t.Errorf("answer = %q, want it to start with the question", text.String())
	}
	if c.Next() || c.Err() != nil {
		t.Errorf("after done: Next() = true or Err() = %v, want a clean end", c.Err())
	}

	resp, err := http.Get(ts.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `"/answer?q="`) {
		t.Error("GET / lacks the answer panel's \"/answer?q=\"")
	}
}

func TestDemoAnswerBadQuestion(t *testing.T) {
	ts, _ := startDemo(t, fastDemoConfig)
	for _, q := range []string{"", "q=", "q=%20%20", "q=%FF", "q=" + strings.Repeat("é", maxQuestionLen+1)} {
		resp, err := http.Get(ts.URL + "/answer?" + q)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "demo: q must be a question") {
			t.Errorf("GET /answer?%.20s = %d %q, want 400 with the reason", q, resp.StatusCode, body)
		}
	}
	resp, err := http.Get(ts.URL + "/answer?q=" + url.QueryEscape(strings.Repeat("é", maxQuestionLen)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("a question of %d characters: status %d, want 200", maxQuestionLen, resp.StatusCode)
	}
}

// The answer stops as soon as the page goes away, or the demo is closed: the handler
// returns long before the answer would have been complete.
func TestDemoAnswerStops(t *testing.T) {
	setAnswerDelay(t, 200*time.Millisecond) // an answer of some 50 words takes 10 s
	for _, by := range []string{"client", "demo"} {
		t.Run(by, func(t *testing.T) {
			_, closer := newDemo(fastDemoConfig)
			defer closer.Close()
			d := closer.(*demo)
			returned := make(chan struct{})
			ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				defer close(returned)
				d.serveAnswer(w, r)
			}))
			defer ts.Close()
			c, err := httpsse.Dial(ts.URL+"/?q=hi", httpsse.Reconnect(false))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if ev := next(t, c); ev.EventName() != "word" || ev.EventDataCollapsed() != "You" {
				t.Fatalf("first event %q, want the word You", ev.String())
			}
			start := time.Now()
			if by == "client" {
				c.Close()
			} else {
				closer.Close()
			}
			select {
			case <-returned:
			case <-time.After(5 * time.Second):
				t.Fatalf("the answer went on after the %s ended", by)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("the answer stopped %v after the %s ended", d, by)
			}
		})
	}
}
