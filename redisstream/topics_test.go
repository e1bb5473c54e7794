package redisstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	httpsse "github.com/reiver/go-httpsse"
)

// topicsHandler serves the topic named by the path.
func topicsHandler(t *Topics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		t.Route(strings.TrimPrefix(req.URL.Path, "/")).ServeHTTP(w, req)
	})
}

// readerFeeds returns how many streams the reading loop of client reads now.
func readerFeeds(client interface{}) int {
	readersMu.Lock()
	defer readersMu.Unlock()
	for c, rd := range readers {
		if c == client {
			rd.mu.Lock()
			defer rd.mu.Unlock()
			return len(rd.feeds)
		}
	}
	return 0
}

// TestTopics checks many topics in one process: one reading connection for all, each
// subscriber gets its topic's events only, a topic without subscribers here is not read,
// idle topics are freed, and Close.
func TestTopics(t *testing.T) {
	r := startRedis(t)
	client := r.client(t)
	topics := NewTopics(client, "room:", TopicIdle(100*time.Millisecond))
	url := serve(t, topicsHandler(topics))

	const n, subscribed = 100, 30
	subs := map[string]*subscriber{}
	for i := range subscribed {
		name := fmt.Sprint("t", i)
		subs[name] = subscribe(t, url+"/"+name, "")
	}
	for i := range n {
		name := fmt.Sprint("t", i)
		if err := publishN(topics.Route(name), "", name, 2); err != nil {
			t.Fatal(err)
		}
	}
	for name, s := range subs {
		checkSame(t, "subscriber of "+name, s.waitFor(t, 2, 10*time.Second), streamEvents(t, client, "room:"+name))
	}
	if conns := r.readerConns(t); len(conns) != 1 {
		t.Errorf("reading connections = %d, want 1", len(conns))
	}
	if got := readerFeeds(client); got != subscribed {
		t.Errorf("streams read = %d, want %d (only the topics with subscribers)", got, subscribed)
	}
	if st := topics.Stats(); st.Subscribers != subscribed || st.Published != 2*subscribed {
		t.Errorf("Stats() = %+v, want %d subscribers and %d published", st, subscribed, 2*subscribed)
	}

	// Without subscribers and publishing, every topic is freed, and the reading stops.
	for _, s := range subs {
		s.close()
	}
	for deadline := time.Now().Add(10 * time.Second); topics.Len() > 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d topics left after they went idle", topics.Len())
		}
	}
	waitNoReaderConn(t, r)

	// A subscriber coming back finds its events in Redis.
	first := streamEvents(t, client, "room:t1")[0].id
	s := subscribe(t, url+"/t1", first)
	if err := publishN(topics.Route("t1"), "", "again", 1); err != nil {
		t.Fatal(err)
	}
	checkSame(t, "returning subscriber", s.waitFor(t, 2, 10*time.Second), streamEvents(t, client, "room:t1")[1:])

	topics.Close()
	topics.Close()
	<-s.done
	if err := publishN(topics.Route("t1"), "", "x", 1); !errors.Is(err, httpsse.ErrClosed) {
		t.Errorf("PublishEvent after Close = %v, want ErrClosed", err)
	}
	resp, err := http.Get(url + "/t1")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("GET after Close = %d, want 204", resp.StatusCode)
	}
	waitNoReaderConn(t, r)
}

// TestCloseFreesEverything runs rounds of many topics with subscribers and events, then
// Close, and checks that goroutines and heap come back to where they were.
func TestCloseFreesEverything(t *testing.T) {
	r := startRedis(t)
	client := r.client(t)
	round := func() {
		// Nothing of a round is kept for the test's cleanup, so that it can be freed.
		topics := NewTopics(client, "free:", Replay(100))
		ts := httptest.NewServer(topicsHandler(topics))
		defer ts.Close()
		var subs []*subscriber
		for i := range 50 {
			s, err := trySubscribe(fmt.Sprintf("%s/t%d", ts.URL, i), "")
			if err != nil {
				t.Fatal(err)
			}
			defer s.close()
			subs = append(subs, s)
		}
		for i := range 50 {
			if err := publishN(topics.Route(fmt.Sprint("t", i)), "", strings.Repeat("x", 1000), 20); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range subs {
			s.waitFor(t, 20, 10*time.Second)
		}
		topics.Close()
		for _, s := range subs {
			<-s.done
		}
	}
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	goroutines := runtime.NumGoroutine()
	round()
	if leaked := libraryLeaks(5 * time.Second); leaked != "" {
		t.Fatalf("goroutines left after Close:\n%s", leaked)
	}
	base := heap()
	for range 3 {
		round()
	}
	if leaked := libraryLeaks(5 * time.Second); leaked != "" {
		t.Fatalf("goroutines left after Close:\n%s", leaked)
	}
	waitNoReaderConn(t, r)
	if n := runtime.NumGoroutine(); n > goroutines+5 {
		t.Errorf("goroutines: %d before, %d after", goroutines, n)
	}
	// Each round held 50 topics × 20 events of 1 kB (about 1 MB retained), and 50
	// subscribers: three more rounds must not leave that behind.
	if after := heap(); after > base+512<<10 {
		t.Errorf("heap: %d bytes after the first round, %d after three more", base, after)
	}
}

// namedConns returns how many connections Redis has from clients named name.
func (s *redisServer) namedConns(t testing.TB, name string) int {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.addr})
	defer c.Close()
	list, err := c.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	n := 0
	for line := range strings.Lines(list) {
		if strings.Contains(line, " name="+name+" ") {
			n++
		}
	}
	return n
}

// TestTopicsBurstConnections checks that new topics share the process's Redis connections:
// a hundred subscribers arriving at once on a hundred new topics cost no more connections
// than one subscriber on one new topic. Each subscriber gets the event that another process
// publishes to its topic right after the subscriber's response headers arrived, once, and
// nothing from before.
func TestTopicsBurstConnections(t *testing.T) {
	r := startRedis(t)
	// The process under test, whose connections are named; the publishing process's are not.
	client := redis.NewClient(&redis.Options{Addr: r.addr, ClientName: "burst"})
	t.Cleanup(func() { client.Close() })
	topics := NewTopics(client, "burst:")
	defer topics.Close()
	url := serve(t, topicsHandler(topics))
	publisher := NewTopics(r.client(t), "burst:")
	defer publisher.Close()

	// Each topic holds an event from before its subscriber came.
	for i := range 102 {
		if err := publishN(publisher.Route(fmt.Sprint("t", i)), "", "before", 1); err != nil {
			t.Fatal(err)
		}
	}
	subscribeAndPublish := func(topic string) (*subscriber, error) {
		s, err := trySubscribe(url+"/"+topic, "")
		if err != nil {
			return nil, err
		}
		return s, publishN(publisher.Route(topic), "", "after-"+topic, 1)
	}
	check := func(s *subscriber, topic string) {
		t.Helper()
		all := streamEvents(t, r.client(t), "burst:"+topic)
		checkSame(t, "subscriber of "+topic, s.waitFor(t, 1, 10*time.Second), all[len(all)-1:])
	}

	// The process reads one topic; then one new topic comes.
	for _, topic := range []string{"t100", "t101"} {
		s, err := subscribeAndPublish(topic)
		if err != nil {
			t.Fatal(err)
		}
		defer s.close()
		check(s, topic)
	}
	one := r.namedConns(t, "burst")

	subs := make([]*subscriber, 100)
	errs := make([]error, 100)
	var wg sync.WaitGroup
	for i := range subs {
		wg.Go(func() { subs[i], errs[i] = subscribeAndPublish(fmt.Sprint("t", i)) })
	}
	wg.Wait()
	for i, s := range subs {
		if s != nil {
			defer s.close()
		}
		if errs[i] != nil {
			t.Fatalf("subscriber %d: %v", i, errs[i])
		}
	}
	for i, s := range subs {
		check(s, fmt.Sprint("t", i))
	}
	time.Sleep(50 * time.Millisecond)
	for i, s := range subs {
		topic := fmt.Sprint("t", i)
		all := streamEvents(t, r.client(t), "burst:"+topic)
		checkSame(t, "subscriber of "+topic+", a moment later", s.received(), all[len(all)-1:])
	}
	if burst := r.namedConns(t, "burst"); burst > one {
		l, _ := r.client(t).ClientList(context.Background()).Result()
		t.Errorf("connections of the process: %d after a burst of 100 new topics, %d with one topic\n%s", burst, one, l)
	}
}
