package httpsse

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// A quiet subscriber receives the keep-alive comment, of one Route or of several topics;
// the comment is not an event and is not counted as one.
func TestKeepAlive(t *testing.T) {
	checkNoLeaks(t)
	route := NewRoute(KeepAlive(50*time.Millisecond), WaitForSubscriber(false))
	topics := NewTopics(KeepAlive(50*time.Millisecond), Replay(5))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/route" {
			route.ServeHTTP(w, r)
			return
		}
		topics.Serve(w, r, "a", "b")
	}))
	defer srv.Close()
	defer route.Close()
	defer topics.Close()
	for _, path := range []string{"/route", "/topics"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(resp.Body)
		start := time.Now()
		comments := 0
		for comments < 3 {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if line == ": keep-alive\n" {
				comments++
			}
		}
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Errorf("%s: 3 keep-alives in %v: more often than every 50ms", path, d)
		}
		resp.Body.Close()
	}
	if st := StatsOf(route); st.Published != 0 {
		t.Errorf("Route: Published %d, want 0", st.Published)
	}
	if st := topics.Stats(); st.Published != 0 {
		t.Errorf("Topics: Published %d, want 0", st.Published)
	}
}

// A subscriber that receives events is sent no keep-alive.
func TestKeepAliveOnlyWhenQuiet(t *testing.T) {
	checkNoLeaks(t)
	// Events for longer than the keep-alive time, never apart for that long: a timer that
	// sent the comment regardless would send it at least once.
	route := NewRoute(KeepAlive(500*time.Millisecond), WaitForSubscriber(false))
	srv := httptest.NewServer(route)
	defer srv.Close()
	defer route.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 40 {
			route.PublishEvent(func(w EventWriter) error { return w.WriteData("x") })
			time.Sleep(20 * time.Millisecond)
		}
	}()
	r := bufio.NewReader(resp.Body)
	for events := 0; events < 40; {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		switch line {
		case ": keep-alive\n":
			t.Fatal("keep-alive sent to a subscriber receiving an event every 20ms")
		case "data: x\n":
			events++
		}
	}
	<-done
}

var loadQuiet = flag.Int("load.quiet", 200, "TestLoadKeepAliveGoroutines: quiet subscribers (.ci/heavy: 2,000)")

// KeepAlive costs no goroutine per subscriber: quiet subscribers of two topics have as many
// goroutines with it as without it.
func TestLoadKeepAliveGoroutines(t *testing.T) {
	checkNoLeaks(t)
	n := *loadQuiet
	count := func(opts ...RouteOption) int {
		topics := NewTopics(opts...)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			topics.Serve(w, r, "a", "b")
		}))
		defer srv.Close()
		defer topics.Close()
		client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: n + 10}}
		defer client.CloseIdleConnections()
		var bodies []*http.Response
		for range n {
			resp, err := client.Get(srv.URL)
			if err != nil {
				t.Fatal(err)
			}
			bodies = append(bodies, resp)
		}
		defer func() {
			for _, b := range bodies {
				b.Body.Close()
			}
		}()
		time.Sleep(700 * time.Millisecond) // a few keep-alive periods
		return runtime.NumGoroutine()
	}
	without := count()
	with := count(KeepAlive(250 * time.Millisecond))
	t.Logf("goroutines with %d quiet subscribers: %d without KeepAlive, %d with", n, without, with)
	if with > without+5 {
		t.Errorf("KeepAlive added %d goroutines for %d subscribers", with-without, n)
	}
}

// MaxTopics: a new name past the bound frees the least recently used topic without
// subscribers; when all have subscribers the name is refused, with ErrTooManyTopics for a
// publisher and 503 for a subscriber.
func TestMaxTopics(t *testing.T) {
	checkNoLeaks(t)
	topics := NewTopics(MaxTopics(3), Replay(5))
	defer topics.Close()
	srv := topicsServer(t, topics)
	for _, name := range []string{"a", "b", "c"} {
		publishTo(t, topics, name, name)
	}
	topics.Route("a") // a is now the most recently used; b the least
	publishTo(t, topics, "d", "d")
	if n := topics.Len(); n != 3 {
		t.Fatalf("Len %d, want 3", n)
	}
	if st := StatsOf(topics.Route("a")); st.Published != 1 {
		t.Errorf("a was freed (Published %d)", st.Published)
	}
	// b was freed: asking for it again frees c, the least recently used now.
	if st := StatsOf(topics.Route("b")); st.Published != 0 {
		t.Errorf("b was kept (Published %d)", st.Published)
	}

	// Subscribers on all three: a fourth name is refused.
	resp := openTopics(t, srv, "", "a", "b", "d")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	err := topics.Route("e").PublishEvent(func(w EventWriter) error { return w.WriteData("e") })
	if !errors.Is(err, ErrTooManyTopics) {
		t.Errorf("publishing to a fourth topic: %v, want ErrTooManyTopics", err)
	}
	t.Logf("the error: %v", err)
	rec := httptest.NewRecorder()
	topics.Route("e").ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "too many topics") {
		t.Errorf("the refused topic's ServeHTTP: %d %q, want 503", rec.Code, rec.Body.String())
	}
	resp = openTopics(t, srv, "", "e")
	body := make([]byte, 200)
	n, _ := resp.Body.Read(body)
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body[:n]), "too many topics") {
		t.Errorf("serving a fourth topic: %d %q, want 503", resp.StatusCode, body[:n])
	}
	if n := topics.Len(); n != 3 {
		t.Errorf("Len %d, want 3", n)
	}
}

// A flood of requests for ever new topic names holds no more than MaxTopics topics.
func TestMaxTopicsFlood(t *testing.T) {
	checkNoLeaks(t)
	const max, requests = 100, 3000
	topics := NewTopics(MaxTopics(max), Replay(10))
	defer topics.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("topic")
		topics.Route(name).PublishEvent(func(w EventWriter) error { return w.WriteData(strings.Repeat("x", 100)) })
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	client := srv.Client()
	for i := range requests {
		resp, err := client.Get(fmt.Sprintf("%s/?topic=flood-%d", srv.URL, i))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if n := topics.Len(); n > max {
			t.Fatalf("after %d requests: %d topics, over %d", i+1, n, max)
		}
	}
	if st := topics.Stats(); st.Published != requests {
		t.Errorf("Stats().Published %d, want %d (the freed topics' counts kept)", st.Published, requests)
	}
}

// Topics.Stats keeps the counts of the topics freed since: they only grow.
func TestTopicsStatsKeepFreed(t *testing.T) {
	checkNoLeaks(t)
	topics := NewTopics(TopicIdle(20 * time.Millisecond))
	defer topics.Close()
	for _, name := range []string{"a", "b", "c"} {
		publishTo(t, topics, name, name)
	}
	before := topics.Stats()
	deadline := time.Now().Add(5 * time.Second)
	for topics.Len() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if topics.Len() != 0 {
		t.Fatal("topics not freed")
	}
	if after := topics.Stats(); after.Published != before.Published || before.Published != 3 {
		t.Errorf("Published %d before the topics were freed, %d after; want 3 and 3", before.Published, after.Published)
	}
}

// Every Route with the same KeepAlive duration shares one timer, which stops when the last
// of them loses its last subscriber.
func TestKeepAliveOneTimer(t *testing.T) {
	checkNoLeaks(t)
	const d = 123 * time.Millisecond
	topics := NewTopics(KeepAlive(d))
	route := NewRoute(KeepAlive(d), WaitForSubscriber(false))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/route" {
			route.ServeHTTP(w, r)
			return
		}
		topics.Serve(w, r, "a", "b", "c")
	}))
	defer srv.Close()
	defer route.Close()
	defer topics.Close()
	clock := func() (*keepAliveClock, int) {
		keepAliveClocks.mu.Lock()
		defer keepAliveClocks.mu.Unlock()
		c := keepAliveClocks.clocks[d]
		if c == nil {
			return nil, 0
		}
		return c, len(c.routes)
	}
	var bodies []*http.Response
	for _, path := range []string{"/route", "/topics", "/topics"} {
		resp, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, resp)
	}
	if c, n := clock(); c == nil || n != 4 {
		t.Fatalf("one clock with the Route and the three topics expected; got %v with %d Routes", c, n)
	}
	for _, b := range bodies {
		bufio.NewReader(b.Body).ReadString('-') // a keep-alive came
		b.Body.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, _ := clock()
		if c == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the clock still runs after every subscriber left")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
