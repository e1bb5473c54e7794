package redisstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	httpsse "github.com/reiver/go-httpsse"
)

// TestPublishAndServe checks the basics: the entry's ID is the event's ID, the fields come
// through as written, WriteID is refused, and every Route on the stream sees the same.
func TestPublishAndServe(t *testing.T) {
	r := startRedis(t)
	a := NewRoute(r.client(t), "basics")
	defer a.Close()
	b := NewRoute(r.client(t), "basics") // as another process would
	defer b.Close()
	sa := subscribe(t, serve(t, a), "")
	sb := subscribe(t, serve(t, b), "")

	err := a.PublishEvent(func(w httpsse.EventWriter) error {
		w.WriteComment("not sent")
		w.WriteEvent("multi")
		w.WriteData("line one\nline two")
		w.WriteData("")
		return w.WriteRetry(1500 * time.Millisecond)
	})
	if err != nil {
		t.Fatalf("PublishEvent: %v", err)
	}
	err = b.PublishEvent(func(w httpsse.EventWriter) error {
		w.WriteData("x")
		return w.WriteID("mine")
	})
	if !errors.Is(err, errIDFromRedis) {
		t.Errorf("PublishEvent with WriteID = %v, want %v", err, errIDFromRedis)
	}
	if err := b.PublishEvent(nil); err == nil {
		t.Error("PublishEvent(nil) = nil, want an error")
	}
	if err := publishN(b, "", "plain", 1); err != nil {
		t.Fatal(err)
	}

	msgs, err := r.client(t).XRange(context.Background(), "basics", "-", "+").Result()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("XRANGE = %v, %v; want 2 entries", msgs, err)
	}
	if f := msgs[0].Values[entryField]; f != ": not sent\nevent: multi\ndata: line one\ndata: line two\ndata:\nretry: 1500\n" {
		t.Errorf("entry = %q", f)
	}
	want := []got{
		{id: msgs[0].ID, name: "multi", data: "line one\nline two\n"},
		{id: msgs[1].ID, data: "plain-0"},
	}
	checkSame(t, "subscriber of a", sa.waitFor(t, 2, 10*time.Second), want)
	checkSame(t, "subscriber of b", sb.waitFor(t, 2, 10*time.Second), want)
	if st := a.Stats(); st.Subscribers != 1 || st.Published != 2 {
		t.Errorf("Stats() = %+v, want 1 subscriber and 2 published", st)
	}
}

// TestResumeFromRedis checks that a subscriber that comes back to a Route which never had
// the events it missed (a process started later) receives them from Redis, then the live
// events, and that one whose ID the stream no longer holds gets the gap event.
func TestResumeFromRedis(t *testing.T) {
	r := startRedis(t)
	first := NewRoute(r.client(t), "resume")
	if err := publishN(first, "", "old", 30); err != nil {
		t.Fatal(err)
	}
	first.Close()
	all := streamEvents(t, r.client(t), "resume")

	later := NewRoute(r.client(t), "resume", Replay(4))
	defer later.Close()
	url := serve(t, later)
	if err := publishN(later, "", "new", 10); err != nil {
		t.Fatal(err)
	}
	all = streamEvents(t, r.client(t), "resume")
	tests := []struct {
		name string
		from int // index of the Last-Event-ID in all
	}{
		{"before the Route started", 9},
		{"the Route's start", 29},
		{"past the Route's memory", 31},
		{"in the Route's memory", 37},
		{"the last", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.from < 0 {
				tt.from = len(all) - 1
			}
			s := subscribe(t, url, all[tt.from].id)
			// Wait for the Route to have attached the subscriber: it has received its
			// backlog (at least the first event), or, when there is none, a moment.
			if tt.from+1 < len(all) {
				s.waitFor(t, 1, 10*time.Second)
			} else {
				time.Sleep(50 * time.Millisecond)
			}
			if err := publishN(later, "", "live-"+tt.name, 1); err != nil {
				t.Fatal(err)
			}
			want := streamEvents(t, r.client(t), "resume")
			checkSame(t, "returning subscriber", s.waitFor(t, len(want)-tt.from-1, 10*time.Second), want[tt.from+1:])
			all = want
		})
	}

	t.Run("not an entry ID", func(t *testing.T) {
		s := subscribe(t, url, "c2k4m0q8zt-17")
		evs := s.waitFor(t, 1, 10*time.Second)
		last := all[len(all)-1].id
		if evs[0] != (got{id: last, name: "gap", data: "c2k4m0q8zt-17"}) {
			t.Errorf("first event = %v, want the gap event with ID %s", evs[0], last)
		}
	})
}

// TestTrimmedGap checks that MaxLen trims the stream, and that a subscriber whose
// Last-Event-ID was trimmed away gets the gap event, then the live events.
func TestTrimmedGap(t *testing.T) {
	// Small nodes, so that approximate trimming trims often.
	r := startRedis(t, "--stream-node-max-entries", "8")
	route := NewRoute(r.client(t), "trimmed", MaxLen(20), Replay(4))
	defer route.Close()
	if err := publishN(route, "", "e", 200); err != nil {
		t.Fatal(err)
	}
	n, err := r.client(t).XLen(context.Background(), "trimmed").Result()
	if err != nil || n > 20+8 {
		t.Fatalf("XLEN = %d, %v; want about 20", n, err)
	}
	held := streamEvents(t, r.client(t), "trimmed")
	// An ID just before the oldest entry the stream holds: an entry trimmed away.
	var gone string
	oldest, _ := parseEntryID(held[0].id)
	if oldest.seq > 0 {
		gone = entryID{oldest.ms, oldest.seq - 1}.String()
	} else {
		gone = entryID{oldest.ms - 1, 0}.String()
	}

	s := subscribe(t, serve(t, route), gone)
	evs := s.waitFor(t, 1, 10*time.Second)
	last := held[len(held)-1].id
	if evs[0] != (got{id: last, name: "gap", data: gone}) {
		t.Fatalf("first event = %v, want the gap event with ID %s", evs[0], last)
	}
	if err := publishN(route, "", "live", 1); err != nil {
		t.Fatal(err)
	}
	after := streamEvents(t, r.client(t), "trimmed")
	checkSame(t, "subscriber after the gap", s.waitFor(t, 2, 10*time.Second)[1:], after[len(after)-1:])
	if st := route.Stats(); st.Gaps != 1 {
		t.Errorf("Stats().Gaps = %d, want 1", st.Gaps)
	}
}

// TestConnectionKilled kills the reading connection with CLIENT KILL, again and again,
// while events are published: the Route reconnects and resumes from the last entry it
// read, so the subscriber misses nothing.
func TestConnectionKilled(t *testing.T) {
	r := startRedis(t)
	route := NewRoute(r.client(t), "killed")
	defer route.Close()
	s := subscribe(t, serve(t, route), "")
	admin := r.client(t)

	done := make(chan error, 1)
	go func() { done <- publishN(route, "", "e", 300) }()
	kills := 0
	for deadline := time.Now().Add(20 * time.Second); kills < 5 && time.Now().Before(deadline); {
		for _, line := range r.readerConns(t) {
			id := strings.Fields(line)[0] // "id=N"
			if err := admin.Do(context.Background(), "CLIENT", "KILL", "ID", strings.TrimPrefix(id, "id=")).Err(); err == nil {
				kills++
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if kills < 5 {
		t.Fatalf("killed the reading connection %d times, want 5", kills)
	}
	want := streamEvents(t, admin, "killed")
	checkSame(t, "subscriber", s.waitFor(t, len(want), 20*time.Second), want)
}

// TestRedisRestart restarts Redis, on the same port, while events are published.
//
// With persistence (appendonly, fsync at every write) and a crash (SIGKILL), Redis comes
// back with every entry it acknowledged: the subscribers of two Routes (two processes)
// receive every event whose PublishEvent succeeded, in the same order, none repeated.
//
// Without persistence, Redis comes back empty: the Routes go on from where they were, and
// the subscribers receive, in order and none repeated, every event published after the
// restart, and every event acknowledged before it that the Routes had read.
func TestRedisRestart(t *testing.T) {
	for _, persist := range []bool{true, false} {
		t.Run(fmt.Sprintf("persistence=%v", persist), func(t *testing.T) {
			var r *redisServer
			if persist {
				r = startRedis(t, "--appendonly", "yes", "--appendfsync", "always")
			} else {
				r = startRedis(t)
			}
			a := NewRoute(r.client(t), "restart", PublishTimeout(500*time.Millisecond))
			defer a.Close()
			b := NewRoute(r.client(t), "restart")
			defer b.Close()
			sa := subscribe(t, serve(t, a), "")
			sb := subscribe(t, serve(t, b), "")

			var published []string
			publish := func(data string) error {
				return a.PublishEvent(func(w httpsse.EventWriter) error { return w.WriteData(data) })
			}
			for i := range 50 {
				if err := publish(fmt.Sprint("before-", i)); err != nil {
					t.Fatal(err)
				}
				published = append(published, fmt.Sprint("before-", i))
			}
			sa.waitFor(t, 50, 10*time.Second)
			sb.waitFor(t, 50, 10*time.Second)

			r.kill()
			err := publish("while down")
			if !errors.Is(err, ErrUnreachable) {
				t.Errorf("PublishEvent while Redis is down = %v, want an error wrapping ErrUnreachable", err)
			}
			r.restart()
			for i := range 50 {
				data := fmt.Sprint("after-", i)
				for try := 0; ; try++ {
					err := publish(data)
					if err == nil {
						break
					}
					if try == 50 {
						t.Fatalf("PublishEvent after the restart: %v", err)
					}
					time.Sleep(20 * time.Millisecond)
				}
				published = append(published, data)
			}
			for name, s := range map[string]*subscriber{"a": sa, "b": sb} {
				evs := s.waitFor(t, len(published), 20*time.Second)
				var data []string
				for i, ev := range evs {
					data = append(data, ev.data)
					if i > 0 {
						prev, _ := parseEntryID(evs[i-1].id)
						if cur, _ := parseEntryID(ev.id); !prev.less(cur) {
							t.Errorf("subscriber of %s: event %d has ID %s after %s", name, i, ev.id, evs[i-1].id)
						}
					}
				}
				if strings.Join(data, " ") != strings.Join(published, " ") {
					t.Errorf("subscriber of %s received %q,\nwant %q", name, data, published)
				}
			}
			if persist {
				checkSame(t, "subscriber of a", sa.received(), streamEvents(t, r.client(t), "restart"))
			}
		})
	}
}

// TestPublishUnreachable checks that PublishEvent fails, fast and saying so, when Redis
// cannot be reached, and that the Route still serves its subscribers.
func TestPublishUnreachable(t *testing.T) {
	r := startRedis(t)
	route := NewRoute(r.client(t), "unreachable", PublishTimeout(time.Second))
	defer route.Close()
	url := serve(t, route)
	r.stop()

	start := time.Now()
	err := publishN(route, "", "e", 1)
	took := time.Since(start)
	if !errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "httpsse: redis unreachable") {
		t.Errorf("PublishEvent = %v, want an error wrapping ErrUnreachable", err)
	}
	// Not a speed check: a generous bound that a hang would exceed.
	if took > 10*time.Second {
		t.Errorf("PublishEvent took %v with Redis unreachable", took)
	}

	s := subscribe(t, url, "")
	if err := httpsse.HeartBeat(10*time.Millisecond, route).Close(); err != nil {
		t.Fatal(err)
	}
	if err := route.PublishEvent(func(w httpsse.EventWriter) error { return w.WriteComment("local") }); err != nil {
		t.Errorf("comment-only PublishEvent with Redis down = %v, want nil (sent locally)", err)
	}
	select {
	case <-s.done:
		t.Errorf("the subscriber's stream ended: %v", s.err)
	default:
	}
}

// TestHeartBeatStaysLocal checks that a heartbeat on a Route reaches its subscribers and
// is not written to Redis.
func TestHeartBeatStaysLocal(t *testing.T) {
	r := startRedis(t)
	route := NewRoute(r.client(t), "heartbeat")
	defer route.Close()
	resp, err := http.Get(serve(t, route))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	hb := httpsse.HeartBeat(5*time.Millisecond, route)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	hb.Close()
	if err != nil || line != ": heartbeat\n" {
		t.Errorf("first line = %q, %v; want a heartbeat comment", line, err)
	}
	if n, err := r.client(t).Exists(context.Background(), "heartbeat").Result(); err != nil || n != 0 {
		t.Errorf("EXISTS heartbeat = %d, %v; want no stream in Redis", n, err)
	}
}

// TestClosed checks a closed Route: 204, ErrClosed, and other Routes on the stream unharmed.
func TestClosed(t *testing.T) {
	r := startRedis(t)
	other := NewRoute(r.client(t), "closed")
	defer other.Close()
	so := subscribe(t, serve(t, other), "")
	route := NewRoute(r.client(t), "closed")
	url := serve(t, route)
	s := subscribe(t, url, "")
	route.Close()
	route.Close()
	<-s.done
	if s.err != nil {
		t.Errorf("stream ended by Close with %v, want a clean end", s.err)
	}
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("GET on a closed Route = %d, want 204", resp.StatusCode)
	}
	if err := publishN(route, "", "e", 1); !errors.Is(err, httpsse.ErrClosed) {
		t.Errorf("PublishEvent on a closed Route = %v, want ErrClosed", err)
	}
	if err := publishN(other, "", "e", 1); err != nil {
		t.Fatal(err)
	}
	so.waitFor(t, 1, 10*time.Second)
}

// TestManyRoutesOneConnection checks that all the Routes of a client, on many streams,
// are read over one connection, which goes away with the last of them.
func TestManyRoutesOneConnection(t *testing.T) {
	r := startRedis(t)
	client := r.client(t)
	var routes []*Route
	for i := range 50 {
		routes = append(routes, NewRoute(client, fmt.Sprint("many-", i)))
	}
	url := serve(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var i int
		fmt.Sscan(req.URL.Query().Get("i"), &i)
		routes[i].ServeHTTP(w, req)
	}))
	var subs []*subscriber
	for i := range routes {
		subs = append(subs, subscribe(t, fmt.Sprintf("%s?i=%d", url, i), ""))
	}
	var wg sync.WaitGroup
	for i, route := range routes {
		wg.Go(func() {
			if err := publishN(route, "", fmt.Sprint("s", i), 3); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, s := range subs {
		checkSame(t, fmt.Sprint("subscriber ", i), s.waitFor(t, 3, 10*time.Second), streamEvents(t, client, fmt.Sprint("many-", i)))
	}
	if conns := r.readerConns(t); len(conns) != 1 {
		t.Errorf("reading connections = %d, want 1:\n%s", len(conns), strings.Join(conns, "\n"))
	}
	for _, route := range routes {
		route.Close()
	}
	waitNoReaderConn(t, r)
}

// waitNoReaderConn waits until Redis has no reading connection of this package left.
func waitNoReaderConn(t *testing.T, r *redisServer) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		conns := r.readerConns(t)
		if len(conns) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("reading connections left after Close:\n%s", strings.Join(conns, "\n"))
		}
	}
}

// TestOtherClients checks that a client other than *redis.Client (here a Ring of one
// shard), whose reading shares its pool, works.
func TestOtherClients(t *testing.T) {
	r := startRedis(t)
	ring := redis.NewRing(&redis.RingOptions{Addrs: map[string]string{"one": r.addr}})
	defer ring.Close()
	route := NewRoute(ring, "ring")
	defer route.Close()
	s := subscribe(t, serve(t, route), "")
	if err := publishN(route, "", "e", 5); err != nil {
		t.Fatal(err)
	}
	checkSame(t, "subscriber", s.waitFor(t, 5, 10*time.Second), streamEvents(t, r.client(t), "ring"))
}

// TestSameStreamTwice checks two Routes of one client on one stream, the second made
// later: one reading loop serves both, each from where it started.
func TestSameStreamTwice(t *testing.T) {
	r := startRedis(t)
	client := r.client(t)
	first := NewRoute(client, "twice")
	defer first.Close()
	s1 := subscribe(t, serve(t, first), "")
	if err := publishN(first, "", "early", 5); err != nil {
		t.Fatal(err)
	}
	s1.waitFor(t, 5, 10*time.Second)
	second := NewRoute(client, "twice")
	defer second.Close()
	s2 := subscribe(t, serve(t, second), "")
	if err := publishN(second, "", "late", 5); err != nil {
		t.Fatal(err)
	}
	all := streamEvents(t, client, "twice")
	checkSame(t, "subscriber of the first", s1.waitFor(t, 10, 10*time.Second), all)
	checkSame(t, "subscriber of the second", s2.waitFor(t, 5, 10*time.Second), all[5:])
	if n := readerFeeds(client); n != 2 {
		t.Errorf("feeds = %d, want 2", n)
	}
	if conns := r.readerConns(t); len(conns) != 1 {
		t.Errorf("reading connections = %d, want 1", len(conns))
	}
}

// TestWrongTypeKey checks that a stream whose key holds something else fails its own
// publishing, with Redis's reason, and does not stop the reading of the other streams;
// once the key is a stream again, it is read again.
func TestWrongTypeKey(t *testing.T) {
	r := startRedis(t)
	client := r.client(t)
	ctx := context.Background()
	if err := client.Set(ctx, "not-a-stream", "x", 0).Err(); err != nil {
		t.Fatal(err)
	}
	bad := NewRoute(client, "not-a-stream")
	defer bad.Close()
	good := NewRoute(client, "good")
	defer good.Close()
	sBad := subscribe(t, serve(t, bad), "")
	sGood := subscribe(t, serve(t, good), "")

	err := publishN(bad, "", "e", 1)
	if err == nil || errors.Is(err, ErrUnreachable) || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Errorf("PublishEvent on a key that is not a stream = %v, want Redis's WRONGTYPE", err)
	}
	if err := publishN(good, "", "e", 3); err != nil {
		t.Fatal(err)
	}
	checkSame(t, "subscriber of the good stream", sGood.waitFor(t, 3, 10*time.Second), streamEvents(t, client, "good"))

	if err := client.Del(ctx, "not-a-stream").Err(); err != nil {
		t.Fatal(err)
	}
	if err := publishN(bad, "", "again", 2); err != nil {
		t.Fatal(err)
	}
	checkSame(t, "subscriber of the repaired stream", sBad.waitFor(t, 2, 10*time.Second), streamEvents(t, client, "not-a-stream"))
}

// TestClientAhead checks a client that comes back with the ID of an entry that the Route
// may not have read yet (as when it comes from a process that had read further): it gets
// the events after that entry, none repeated.
func TestClientAhead(t *testing.T) {
	r := startRedis(t)
	admin := r.client(t)
	route := NewRoute(r.client(t), "ahead")
	defer route.Close()
	url := serve(t, route)
	ctx := context.Background()
	for i := range 20 {
		// Appended behind the Route's back, and named at once.
		id, err := admin.XAdd(ctx, &redis.XAddArgs{Stream: "ahead", Values: []interface{}{entryField, fmt.Sprintf("data: direct-%d\n", i)}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		s := subscribe(t, url, id)
		if err := publishN(route, "", fmt.Sprint("after-", i), 1); err != nil {
			t.Fatal(err)
		}
		evs := s.waitFor(t, 1, 10*time.Second)
		if evs[0].data != fmt.Sprint("after-", i, "-0") {
			t.Fatalf("round %d: first event after %s = %v, want after-%d-0", i, id, evs[0], i)
		}
		s.close()
	}
}

// trimmedStream publishes n events to the stream through a Route of a client of its own,
// trimmed to about maxLen entries (the server must have small nodes), and returns the events
// the stream still holds and an ID that it held once but has trimmed away.
func trimmedStream(t *testing.T, r *redisServer, stream string, n int, maxLen int64) (held []got, gone string) {
	t.Helper()
	writer := NewRoute(r.client(t), stream, MaxLen(maxLen))
	defer writer.Close()
	if err := publishN(writer, "", "e", n); err != nil {
		t.Fatal(err)
	}
	held = streamEvents(t, r.client(t), stream)
	if len(held) >= n {
		t.Fatalf("the stream holds %d of %d events, want it trimmed", len(held), n)
	}
	oldest, _ := parseEntryID(held[0].id)
	if oldest.seq > 0 {
		gone = entryID{oldest.ms, oldest.seq - 1}.String()
	} else {
		gone = entryID{oldest.ms - 1, 0}.String()
	}
	return held, gone
}

// TestFreshProcessResume checks a returning subscriber on a Route that has read nothing of
// its stream yet, as in a process just started or restarted, or a topic that this process
// has only published to, each on a client of its own as another process would have. A
// Last-Event-ID that the stream trimmed away gets the gap event with the ID of the stream's
// newest entry (the last event before the subscriber's live events), so that a client that
// reconnects right after it resumes exactly there; one that the stream holds gets the events
// after it from Redis; one that names the newest entry gets nothing again. Then every
// subscriber gets the next live event, once.
func TestFreshProcessResume(t *testing.T) {
	r := startRedis(t, "--stream-node-max-entries", "8")

	// The Routes of the states a process can be in, each made on a fresh client.
	states := []struct {
		name  string
		route func(t *testing.T, stream string) httpsse.Route
	}{
		{"fresh process", func(t *testing.T, stream string) httpsse.Route {
			route := NewRoute(r.client(t), stream, Replay(4))
			t.Cleanup(func() { route.Close() })
			return route
		}},
		{"restarted process", func(t *testing.T, stream string) httpsse.Route {
			before := NewRoute(r.client(t), stream, Replay(4))
			s := subscribe(t, serve(t, before), "")
			before.Close()
			<-s.done
			route := NewRoute(r.client(t), stream, Replay(4))
			t.Cleanup(func() { route.Close() })
			return route
		}},
		{"topic not read yet", func(t *testing.T, stream string) httpsse.Route {
			// The topic's Route exists (it was published to, here with a comment, which
			// goes nowhere), but has had no subscriber in this process.
			topics := NewTopics(r.client(t), "", Replay(4))
			t.Cleanup(func() { topics.Close() })
			route := topics.Route(stream)
			if err := route.PublishEvent(func(w httpsse.EventWriter) error { return w.WriteComment("x") }); err != nil {
				t.Fatal(err)
			}
			return route
		}},
	}
	requests := []struct {
		name   string
		lastID func(held []got, gone string) string
		want   func(held []got, gone, lastID string) []got // before the next live event
	}{
		{"trimmed",
			func(held []got, gone string) string { return gone },
			func(held []got, gone, lastID string) []got {
				return []got{{id: held[len(held)-1].id, name: "gap", data: lastID}}
			}},
		{"not an entry ID",
			func([]got, string) string { return "c2k4m0q8zt-17" },
			func(held []got, gone, lastID string) []got {
				return []got{{id: held[len(held)-1].id, name: "gap", data: lastID}}
			}},
		{"held in Redis",
			func(held []got, gone string) string { return held[3].id },
			func(held []got, gone, lastID string) []got { return held[4:] }},
		{"the newest",
			func(held []got, gone string) string { return held[len(held)-1].id },
			func([]got, string, string) []got { return nil }},
	}
	n := 0
	for _, st := range states {
		for _, req := range requests {
			n++
			stream := fmt.Sprint("fresh-", n)
			t.Run(st.name+"/"+req.name, func(t *testing.T) {
				held, gone := trimmedStream(t, r, stream, 200, 20)
				lastID := req.lastID(held, gone)
				before := req.want(held, gone, lastID)
				route := st.route(t, stream)
				s := subscribe(t, serve(t, route), lastID)
				if len(before) > 0 {
					checkSame(t, "returning subscriber", s.waitFor(t, len(before), 10*time.Second), before)
				}
				// Another process publishes the next event.
				other := NewRoute(r.client(t), stream)
				defer other.Close()
				if err := publishN(other, "", "live", 1); err != nil {
					t.Fatal(err)
				}
				all := streamEvents(t, r.client(t), stream)
				want := append(before, all[len(all)-1])
				checkSame(t, "returning subscriber", s.waitFor(t, len(want), 10*time.Second), want)
				time.Sleep(50 * time.Millisecond)
				checkSame(t, "returning subscriber, a moment later", s.received(), want)
			})
		}
	}
}
