package main

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"hash/fnv"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/reiver/go-httpsse"
)

// topicKey is the key of a topic's name in the Last-Event-ID of a response of
// Topics.Serve, computed as the server does (topicsid.go) and as the page does
// (index.html), so that the tests can read each topic's own ID from it.
func topicKey(name string) string {
	h := fnv.New64a()
	h.Write([]byte(name))
	x := h.Sum64()
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], x)
	return base64.RawURLEncoding.EncodeToString(b[:])[:6]
}

var combinedIDForm = regexp.MustCompile(`^~[A-Za-z0-9_-]{6}=[!-~]*(,[A-Za-z0-9_-]{6}=[!-~]*)*$`)

// topicIDs reads a Last-Event-ID of Topics.Serve ("~KEY=ID,KEY=ID") into a map from topic
// name to that topic's own ID, for the names given. It reports false when id is not of that
// form, or does not hold exactly those topics.
func topicIDs(id string, names ...string) (map[string]string, bool) {
	if !combinedIDForm.MatchString(id) {
		return nil, false
	}
	byKey := map[string]string{}
	for _, part := range strings.Split(id[1:], ",") {
		key, v, _ := strings.Cut(part, "=")
		u, err := url.PathUnescape(v)
		if err != nil {
			return nil, false
		}
		byKey[key] = u
	}
	if len(byKey) != len(names) {
		return nil, false
	}
	out := map[string]string{}
	for _, name := range names {
		v, ok := byKey[topicKey(name)]
		if !ok {
			return nil, false
		}
		out[name] = v
	}
	return out, true
}

// TestDemoTopics reads the page's stream, /topics, with our Client: the shared topic's
// events and the user's notifications on one connection, each carrying one Last-Event-ID
// that holds both topics' own IDs. A cut from the server makes the Client come back with
// that ID; both topics resume exactly, and the notification the server sends after the cut
// arrives once, by replay.
func TestDemoTopics(t *testing.T) {
	ts, closer := startDemo(t, fastDemoConfig)
	run := closer.(*demo).boot
	const client, user = "topics-1", "ada"
	c, err := httpsse.Dial(ts.URL+"/topics?user="+user+"&client="+client, httpsse.ReconnectDelay(150*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	events := make(chan httpsse.Event, 4096)
	go func() {
		defer close(events)
		for c.Next() {
			var ev httpsse.Event
			if c.Decode(&ev) == nil {
				events <- ev
			}
		}
	}()
	names := []string{sharedTopic, userTopic(user)}
	var (
		seqs  []uint64
		notes []string
		last  map[string]string
	)
	read := func() httpsse.Event {
		t.Helper()
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("stream ended: %v", c.Err())
			}
			ids, ok := topicIDs(ev.EventID(), names...)
			if !ok {
				t.Fatalf("event %q has ID %q, want ~KEY=ID,KEY=ID for %v", ev.EventName(), ev.EventID(), names)
			}
			switch ev.EventName() {
			case "notification":
				notes = append(notes, ev.EventDataCollapsed())
				if last != nil && ids[sharedTopic] != last[sharedTopic] {
					t.Errorf("notification changed the shared topic's ID: %q after %q", ev.EventID(), last[sharedTopic])
				}
			case "gap":
				t.Fatalf("gap event %q", ev.EventDataCollapsed())
			default:
				seqs = append(seqs, seqOf(t, run, ids[sharedTopic]))
				if last != nil && ids[userTopic(user)] != last[userTopic(user)] {
					t.Errorf("shared event changed the user topic's ID: %q after %q", ev.EventID(), last[userTopic(user)])
				}
			}
			last = ids
			return ev
		case <-time.After(5 * time.Second):
			t.Fatal("no event for 5s")
		}
		return httpsse.Event{}
	}
	read()
	if code, body := post(t, ts.URL+"/notify", url.Values{"user": {user}, "text": {"first"}}); code != http.StatusOK {
		t.Fatalf("POST /notify = %d %s", code, body)
	}
	for len(notes) == 0 {
		read()
	}
	code, body := post(t, ts.URL+"/cut?client="+client, nil)
	if code != http.StatusOK || !strings.Contains(body, `"cut":1`) {
		t.Fatalf("POST /cut = %d %s, want 200 and one response cut", code, body)
	}
	var back *clientStats
	waitFor(t, "the client to come back with Last-Event-ID", func() bool {
		back = getStats(t, ts, client).Client
		return back != nil && back.LastEventID != ""
	})
	ids, ok := topicIDs(back.LastEventID, names...)
	if !ok {
		t.Fatalf("the client came back with Last-Event-ID %q, want both topics' IDs", back.LastEventID)
	}
	if back.UserBackAt != 2 {
		t.Errorf("the user's topic had %d events when the client came back, want 2 (one sent after the cut)", back.UserBackAt)
	}
	sent := seqOf(t, run, ids[sharedTopic])
	for seqs[len(seqs)-1] < back.BackAt+3 || len(notes) < 2 {
		read()
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("shared events %v: want each number once, in order (Last-Event-ID %d, came back at %d)", seqs, sent, back.BackAt)
		}
	}
	if len(notes) != 2 || notes[0] != "first" || !strings.HasPrefix(notes[1], "sent by the server while your stream was cut") {
		t.Errorf("notifications %q, want first and the one sent while cut", notes)
	}
	t.Logf("came back with Last-Event-ID %s: %d shared events replayed, and the notification", back.LastEventID, back.BackAt-sent)
	st := getStats(t, ts, client)
	if st.Shared.Replays != 1 || st.Shared.Gaps != 0 || st.All.Replays != 2 || st.All.Gaps != 0 {
		t.Errorf("Stats: shared %+v, all %+v; want one replay in each topic, no gap", st.Shared, st.All)
	}
}

// TestDemoTopicsLongCut holds the client away longer than the shared topic keeps events:
// the shared topic gets the gap event, whose data names it, and the user's topic resumes
// exactly.
func TestDemoTopicsLongCut(t *testing.T) {
	cfg := fastDemoConfig
	cfg.replay = 3
	cfg.longCut = 300 * time.Millisecond
	ts, _ := startDemo(t, cfg)
	const client, user = "topics-2", "grace"
	c, err := httpsse.Dial(ts.URL+"/topics?user="+user+"&client="+client, httpsse.ReconnectDelay(0))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	next(t, c)
	if code, body := post(t, ts.URL+"/cut?client="+client+"&long=1", nil); code != http.StatusOK {
		t.Fatalf("POST /cut?long=1 = %d %s, want 200", code, body)
	}
	var gaps, notes []string
	for len(notes) == 0 {
		ev := next(t, c)
		switch ev.EventName() {
		case "gap":
			gaps = append(gaps, ev.EventDataCollapsed())
		case "notification":
			notes = append(notes, ev.EventDataCollapsed())
		}
	}
	if len(gaps) != 1 || gaps[0] != sharedTopic || !strings.HasPrefix(notes[0], "sent by the server while your stream was cut") {
		t.Errorf("gaps %q, notifications %q; want one gap naming %q, and the notification sent while cut", gaps, notes, sharedTopic)
	}
}

func TestDemoTopicsErrors(t *testing.T) {
	ts, _ := startDemo(t, fastDemoConfig)
	for _, path := range []string{"/topics?user=a%20b", "/topics?user=" + strings.Repeat("x", maxUserLen+1), "/topics?user=ada&client=a/b"} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("GET %s = %d, want 400", path, resp.StatusCode)
		}
	}
}

// TestDemoKeepAlive: a quiet subscriber of a notification topic gets the keep-alive comment.
func TestDemoKeepAlive(t *testing.T) {
	cfg := fastDemoConfig
	cfg.keepAlive = 100 * time.Millisecond
	ts, _ := startDemo(t, cfg)
	resp, err := http.Get(ts.URL + "/notify?user=quiet")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		got <- line
	}()
	start := time.Now()
	select {
	case line := <-got:
		if line != ": keep-alive\n" {
			t.Errorf("quiet subscriber got %q, want the keep-alive comment", line)
		}
		t.Logf("keep-alive after %s", time.Since(start).Round(time.Millisecond))
	case <-time.After(5 * time.Second):
		t.Fatal("no keep-alive within 5s")
	}
}

func TestClickableURL(t *testing.T) {
	for _, tt := range []struct{ asked, listening, want string }{
		{"localhost:8080", "127.0.0.1:8080", "http://localhost:8080"},
		{"localhost:8080", "[::1]:8080", "http://localhost:8080"},
		{":8080", "[::]:8080", "http://localhost:8080"},
		{"0.0.0.0:9000", "0.0.0.0:9000", "http://localhost:9000"},
		{"[::]:9000", "[::]:9000", "http://localhost:9000"},
		{"127.0.0.1:0", "127.0.0.1:41234", "http://127.0.0.1:41234"},
		{"[::1]:9000", "[::1]:9000", "http://[::1]:9000"},
		{"192.0.2.7:80", "192.0.2.7:80", "http://192.0.2.7:80"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", tt.listening)
		if err != nil {
			t.Fatal(err)
		}
		if got := clickableURL(tt.asked, addr); got != tt.want {
			t.Errorf("clickableURL(%q, %s) = %q, want %q", tt.asked, tt.listening, got, tt.want)
		}
	}
}
