//go:build unix

package main

// Browser tests of Topics.Serve: Chromium's own EventSource reads several topics on one
// connection and carries their one Last-Event-ID back across cuts.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/reiver/go-httpsse"
)

// topicsPage opens one EventSource on /e2e/topics and records every event it dispatches, as
// [type, data, lastEventId], and the last event ID it had each time its stream was lost. It
// acknowledges (POST /e2e/ack) once it has 3 events of each of ackTypes, and reports when a
// "done" event has come from each topic.
const topicsPage = `<!doctype html>
<meta charset="utf-8">
<title>httpsse e2e topics</title>
<script>
"use strict";
const params = new URLSearchParams(location.search);
const topics = Number(params.get("topics")), ackTypes = (params.get("ack") || "").split(",").filter(Boolean);
const got = [], held = [], counts = {};
let opens = 0, dones = 0, acked = false, lastID = "";
const es = new EventSource("/e2e/topics");
function record(e) {
  got.push([e.type, e.data, e.lastEventId]);
  lastID = e.lastEventId;
  counts[e.type] = (counts[e.type] || 0) + 1;
  if (!acked && ackTypes.length && ackTypes.every((t) => counts[t] >= 3)) { acked = true; fetch("/e2e/ack", {method: "POST"}); }
}
for (const type of ["t0", "t1", "t2", "gap"]) es.addEventListener(type, record);
es.addEventListener("done", (e) => {
  record(e);
  if (++dones === topics) {
    es.close();
    fetch("/e2e/report", {method: "POST", body: JSON.stringify({got, held, opens})});
  }
});
es.onopen = () => { opens++; };
es.onerror = () => { held.push(lastID); };
</script>
`

// connKey is the context key under which the test servers keep each request's connection.
type connKey struct{}

// topicsStream serves a Topics' names on one connection (Topics.Serve), and lets the test
// cut the latest response from the server's side: by ending the handler, or by closing the
// connection under it, wherever its writing is. Each request is announced on arrivals.
type topicsStream struct {
	topics   *httpsse.Topics
	names    []string
	arrivals chan arrival
	mu       sync.Mutex
	cancel   context.CancelFunc
	conn     net.Conn
}

func (s *topicsStream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	s.mu.Lock()
	s.cancel, s.conn = cancel, r.Context().Value(connKey{}).(net.Conn)
	s.mu.Unlock()
	select {
	case s.arrivals <- arrival{"page", r.Header.Get("Last-Event-ID"), len(r.Header.Values("Last-Event-ID")) > 0, r.ProtoMajor}:
	default:
	}
	s.topics.Serve(w, r.WithContext(ctx), s.names...)
}

// cut ends the latest response: with hard, by closing its TCP connection.
func (s *topicsStream) cut(hard bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if hard {
		s.conn.Close()
	} else {
		s.cancel()
	}
}

func (s *topicsStream) next(t *testing.T, b *browser, d time.Duration) arrival {
	t.Helper()
	select {
	case a := <-s.arrivals:
		return a
	case <-b.exited:
		t.Fatalf("chromium exited; its output:\n%s", b.out.tail())
	case <-time.After(d):
		t.Fatalf("no request within %s; chromium's output:\n%s", d, b.out.tail())
	}
	return arrival{}
}

// startTopicsServer serves the page and the stream over HTTP/1.1, keeping each request's
// connection in its context.
func startTopicsServer(t *testing.T, topics *httpsse.Topics, names []string) (*httptest.Server, *topicsStream, *reports, chan struct{}) {
	stream := &topicsStream{topics: topics, names: names, arrivals: make(chan arrival, 64)}
	acks := make(chan struct{}, 1)
	mux := http.NewServeMux()
	rp := newReports(t, mux)
	mux.HandleFunc("GET /e2e/", servePage(topicsPage))
	mux.Handle("GET /e2e/topics", stream)
	mux.HandleFunc("POST /e2e/ack", func(http.ResponseWriter, *http.Request) {
		select {
		case acks <- struct{}{}:
		default:
		}
	})
	ts := httptest.NewUnstartedServer(mux)
	ts.Config.ConnContext = func(ctx context.Context, c net.Conn) context.Context { return context.WithValue(ctx, connKey{}, c) }
	ts.Listener = httpsse.NewListener(ts.Listener, ts.Config) // as the demo serves them
	ts.Start()
	t.Cleanup(ts.Close)
	return ts, stream, rp, acks
}

// topicsReport is what topicsPage reports.
type topicsReport struct {
	Got   [][3]string // type, data, lastEventId
	Held  []string
	Opens int
}

// topicSeq returns the number of a topic's own event ID, which the Route assigned
// ("<tag>-<number>"), and its tag.
func topicSeq(id string) (string, int, bool) {
	i := strings.LastIndexByte(id, '-')
	if i < 0 {
		return "", 0, false
	}
	n, err := strconv.Atoi(id[i+1:])
	return id[:i], n, err == nil
}

// TestBrowserTopicsResume has one EventSource in Chromium read three topics of a Topics with
// Replay while each is published at full speed, and cuts its connection several times at
// random points, by ending the handler or by closing the TCP connection under it. Each
// reconnection's Last-Event-ID must be the one the page held, of the combined form for the
// three topics; the page must get every event of each topic once, in order; and each event's
// ID must hold its own topic's ID and leave the others' as they were.
func TestBrowserTopicsResume(t *testing.T) {
	needChromium(t)
	names := []string{"room/lobby", "user/ada", "doc/42 ✓"}
	topics := httpsse.NewTopics(httpsse.Replay(100000))
	t.Cleanup(func() { topics.Close() })
	ts, stream, rp, _ := startTopicsServer(t, topics, names)

	b := startBrowser(t, ts.URL+"/e2e/?topics=3")
	var headers []string
	a := stream.next(t, b, 20*time.Second)
	headers = append(headers, a.lastEventID)
	// The topics' first events are live for the page: it gets every one.
	for deadline := time.Now().Add(5 * time.Second); topics.Stats().Subscribers != 3; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Subscribers = %d, want 3 (one in each topic)", topics.Stats().Subscribers)
		}
	}

	var (
		wg        sync.WaitGroup
		stop      = make(chan struct{})
		published [3]int
	)
	for k, name := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				err := topics.Route(name).PublishEvent(func(ew httpsse.EventWriter) error {
					ew.WriteRetry(200 * time.Millisecond)
					ew.WriteEvent("t" + strconv.Itoa(k))
					return ew.WriteData(strconv.Itoa(i))
				})
				if err != nil {
					t.Errorf("PublishEvent(%s, %d) = %v", name, i, err)
					return
				}
				published[k] = i + 1
				if i%2 == 1 {
					time.Sleep(time.Millisecond) // bursts of 2: about 1,000 events a second per topic
				}
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	stopped := false
	stopPublishers := func() {
		if !stopped {
			stopped = true
			close(stop)
			wg.Wait()
		}
	}
	t.Cleanup(stopPublishers)

	const cuts = 8
	for c := range cuts {
		time.Sleep(time.Duration(150+rand.IntN(450)) * time.Millisecond)
		hard := c%2 == 1
		stream.cut(hard)
		a := stream.next(t, b, 10*time.Second)
		headers = append(headers, a.lastEventID)
		t.Logf("cut %d (%s): Chromium came back with Last-Event-ID %s", c+1, map[bool]string{false: "handler ended", true: "TCP connection closed"}[hard], a.lastEventID)
	}
	time.Sleep(200 * time.Millisecond)
	stopPublishers()
	for k, name := range names {
		if err := topics.Route(name).PublishEvent(func(ew httpsse.EventWriter) error {
			ew.WriteEvent("done")
			// The topic's index too: two topics may have published as many events.
			return ew.WriteData(fmt.Sprintf("%d:%d", k, published[k]))
		}); err != nil {
			t.Fatalf("PublishEvent(%s, done) = %v", name, err)
		}
	}
	var got topicsReport
	rp.wait(b, 60*time.Second, &got)

	if headers[0] != "" {
		t.Errorf("first request sent Last-Event-ID %q, want none", headers[0])
	}
	if got.Opens != cuts+1 || len(got.Held) != cuts {
		t.Errorf("EventSource opened %d times, lost its stream %d times; want %d and %d", got.Opens, len(got.Held), cuts+1, cuts)
	}
	for i, h := range headers[1:] {
		if _, ok := topicIDs(h, names...); !ok {
			t.Errorf("reconnection %d sent Last-Event-ID %q, want ~KEY=ID for each of %q", i+1, h, names)
		}
		if i < len(got.Held) && h != got.Held[i] {
			t.Errorf("reconnection %d sent Last-Event-ID %q, want the page's last event ID when its stream was lost, %q", i+1, h, got.Held[i])
		}
	}

	// Every event of each topic once, in order; and each event's ID holds its topic's own
	// ID (the Route's, numbered from 1) and the others' unchanged.
	next := [3]int{}
	var tags [3]string
	var prev map[string]string
	bad := 0
	fail := func(format string, args ...any) {
		t.Helper()
		if bad++; bad <= 10 {
			t.Errorf(format, args...)
		}
	}
	dones := 0
	for j, ev := range got.Got {
		typ, data, id := ev[0], ev[1], ev[2]
		ids, ok := topicIDs(id, names...)
		if !ok {
			fail("event %d (%s %s): ID %q is not of the combined form", j, typ, data, id)
			continue
		}
		k := -1
		switch typ {
		case "t0", "t1", "t2":
			k = int(typ[1] - '0')
		case "done":
			for kk := range names {
				if data == fmt.Sprintf("%d:%d", kk, published[kk]) && next[kk] == published[kk] {
					k = kk
				}
			}
			dones++
		default:
			fail("event %d: type %q, want t0, t1, t2 or done", j, typ)
			continue
		}
		if k < 0 {
			fail("event %d: done %s, but no topic has all its %v events yet (%v)", j, data, published, next)
			continue
		}
		tag, n, ok := topicSeq(ids[names[k]])
		if tags[k] == "" {
			tags[k] = tag
		}
		if typ != "done" && (data != strconv.Itoa(next[k])) {
			fail("event %d of %s: data %s, want %d (each event once, in order)", j, names[k], data, next[k])
		}
		if !ok || tag != tags[k] || n != next[k]+1 {
			fail("event %d of %s (data %s): its ID %q holds %q for the topic, want %s-%d", j, names[k], data, id, ids[names[k]], tags[k], next[k]+1)
		}
		for kk, other := range names {
			if kk != k && prev != nil && ids[other] != prev[other] {
				fail("event %d of %s: its ID %q changed %s's ID from %q", j, names[k], id, other, prev[other])
			}
		}
		if typ != "done" {
			next[k]++
		}
		prev = ids
	}
	if bad > 10 {
		t.Errorf("... %d faults in all", bad)
	}
	if next != published || dones != 3 {
		t.Errorf("the page got %v events of the topics and %d done events, want %v and 3", next, dones, published)
	}
	st := topics.Stats()
	t.Logf("%v events published to %q; %d events on the page; Stats %+v", published, names, len(got.Got), st)
	if st.Gaps != 0 {
		t.Errorf("Stats = %+v, want no gap", st)
	}
}

// TestBrowserTopicsGap cuts an EventSource of two topics, one of which keeps too few events
// for what was published while the page was away: Chromium's EventSource gets that topic's
// gap event, whose data names the topic, and then its live events; the other topic resumes
// exactly.
func TestBrowserTopicsGap(t *testing.T) {
	needChromium(t)
	const keep = 5
	names := []string{"room/lobby", "user/ada"}
	topics := httpsse.NewTopics(httpsse.Replay(keep))
	t.Cleanup(func() { topics.Close() })
	ts, stream, rp, acks := startTopicsServer(t, topics, names)

	published := [2]int{}
	publish := func(k, n int) {
		t.Helper()
		for range n {
			i := published[k]
			if err := topics.Route(names[k]).PublishEvent(func(ew httpsse.EventWriter) error {
				ew.WriteRetry(300 * time.Millisecond)
				ew.WriteEvent("t" + strconv.Itoa(k))
				return ew.WriteData(strconv.Itoa(i))
			}); err != nil {
				t.Fatalf("PublishEvent(%s, %d) = %v", names[k], i, err)
			}
			published[k]++
		}
	}
	attached := func() {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); topics.Stats().Subscribers != 2; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("Subscribers = %d, want 2 (one in each topic)", topics.Stats().Subscribers)
			}
		}
	}
	b := startBrowser(t, ts.URL+"/e2e/?topics=2&ack=t0,t1")
	stream.next(t, b, 20*time.Second)
	attached()
	publish(0, 3)
	publish(1, 3)
	select {
	case <-acks:
	case <-time.After(10 * time.Second):
		t.Fatal("the page did not get 3 events of each topic")
	}
	stream.cut(false)
	publish(0, 20) // more than the topic keeps
	publish(1, 2)
	back := stream.next(t, b, 10*time.Second)
	ids, ok := topicIDs(back.lastEventID, names...)
	if !ok {
		t.Fatalf("Chromium came back with Last-Event-ID %q, want ~KEY=ID for each of %q", back.lastEventID, names)
	}
	for _, name := range names {
		if _, n, _ := topicSeq(ids[name]); n != 3 {
			t.Errorf("Last-Event-ID %q holds %q for %s, want its third event", back.lastEventID, ids[name], name)
		}
	}
	attached()
	publish(0, 2)
	publish(1, 2)
	for _, name := range names {
		if err := topics.Route(name).PublishEvent(func(ew httpsse.EventWriter) error {
			ew.WriteEvent("done")
			return ew.WriteData(name)
		}); err != nil {
			t.Fatal(err)
		}
	}
	var got topicsReport
	rp.wait(b, 30*time.Second, &got)

	var seen [2][]string
	var gaps []string
	for _, ev := range got.Got {
		switch ev[0] {
		case "t0", "t1":
			k := int(ev[0][1] - '0')
			seen[k] = append(seen[k], ev[1])
		case "gap":
			gaps = append(gaps, ev[1])
			ids, _ := topicIDs(ev[2], names...)
			// The gap event's ID resumes the topic at the last event published before its
			// live ones: the 23rd.
			if _, n, _ := topicSeq(ids[names[0]]); n != 23 {
				t.Errorf("gap event's ID %q holds %q for %s, want its 23rd event", ev[2], ids[names[0]], names[0])
			}
		}
	}
	t.Logf("Chromium came back with Last-Event-ID %s; the page saw %q, gaps %q", back.lastEventID, seen, gaps)
	if want := []string{names[0]}; fmt.Sprint(gaps) != fmt.Sprint(want) {
		t.Errorf("gap events with data %q, want one, naming %q", gaps, names[0])
	}
	if want := "[0 1 2 23 24]"; fmt.Sprint(seen[0]) != want {
		t.Errorf("%s: the page saw %v, want %s (the events before the cut, then the live ones)", names[0], seen[0], want)
	}
	if want := "[0 1 2 3 4 5 6]"; fmt.Sprint(seen[1]) != want {
		t.Errorf("%s: the page saw %v, want %s (every event once, in order)", names[1], seen[1], want)
	}
	if st := topics.Stats(); st.Gaps != 1 || st.Replays != 1 {
		t.Errorf("Stats = %+v, want Gaps 1 (%s), Replays 1 (%s)", st, names[0], names[1])
	}
}
