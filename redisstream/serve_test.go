package redisstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	httpsse "github.com/reiver/go-httpsse"
)

// multiClient is a client of Topics.Serve that reads the response's bytes itself, as a
// browser's EventSource does: it keeps the last event ID committed at each blank line
// (which the id-only block at a response's start sets too), sends it back on each
// reconnection, and records, for each topic, the events it received.
type multiClient struct {
	t      *testing.T
	topics []string
	lastID string
	got    map[string][]int // the numbers of the events received, per topic
	gaps   []string         // the data of the gap events received
	conns  int
}

func newMultiClient(t *testing.T, topics ...string) *multiClient {
	return &multiClient{t: t, topics: topics, got: map[string][]int{}}
}

// countingReader reads from r until it has read limit bytes, then reports io.EOF, as a
// cut connection does; it keeps what it read, and calls at (when not nil) once it has read
// atBytes bytes.
type countingReader struct {
	r       io.Reader
	limit   int64
	read    int64
	kept    bytes.Buffer
	atBytes int64
	at      func()
	// untilBlock ends the reading after the first blank line.
	untilBlock bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.read >= c.limit || c.untilBlock && bytes.Contains(c.kept.Bytes(), []byte("\n\n")) {
		return 0, io.EOF
	}
	if int64(len(p)) > c.limit-c.read {
		p = p[:c.limit-c.read]
	}
	n, err := c.r.Read(p)
	c.read += int64(n)
	c.kept.Write(p[:n])
	if c.at != nil && c.read >= c.atBytes {
		go c.at()
		c.at = nil
	}
	return n, err
}

// connect opens base+"/serve" for the client's topics, with its last event ID, and reads
// until it has read cut bytes (the first block only when cut < 0), the connection ends, or
// done reports true after an event.
// When kill is not nil it is called once killAt bytes have been read. It returns the status.
func (c *multiClient) connect(ctx context.Context, base string, cut int64, killAt int64, kill func(), done func() bool) int {
	c.t.Helper()
	q := url.Values{"topic": c.topics}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/serve?"+q.Encode(), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	if c.lastID != "" {
		req.Header.Set("Last-Event-ID", c.lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil && ctx.Err() != nil {
		return 0 // the connection's time ran out before its headers came: a cut too
	}
	if err != nil {
		c.t.Fatalf("connecting to %s: %v", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode
	}
	c.conns++
	body := &countingReader{r: resp.Body, limit: cut, atBytes: killAt, at: kill}
	if done == nil {
		done = func() bool { return false }
	}
	if cut < 0 {
		// Only the first block: the Decoder does not return it, having no data.
		body.limit = 1 << 30
		body.untilBlock = true
	}
	dec := httpsse.NewDecoder(body)
	for dec.Next() {
		var ev httpsse.Event
		if err := dec.Decode(&ev); err != nil {
			c.t.Fatal(err)
		}
		switch ev.EventName() {
		case "gap":
			c.gaps = append(c.gaps, ev.EventDataCollapsed())
		case "tick":
			data := ev.EventDataCollapsed()
			cut := strings.LastIndexByte(data, '/')
			topic, n := data[:max(cut, 0)], data[cut+1:]
			i, err := strconv.Atoi(n)
			if err != nil {
				c.t.Fatalf("event data %q", ev.EventDataCollapsed())
			}
			c.got[topic] = append(c.got[topic], i)
		default:
			c.t.Fatalf("event %q %q", ev.EventName(), ev.EventDataCollapsed())
		}
		if done() {
			break
		}
	}
	c.lastID = committedID(body.kept.Bytes(), c.lastID)
	return http.StatusOK
}

// committedID returns the last event ID that a client holds after receiving b: the one
// set at the last blank line, which a Decoder carries into the next event; or, when b holds
// no whole block that sets one, the ID it held before.
func committedID(b []byte, before string) string {
	end := bytes.LastIndex(b, []byte("\n\n"))
	if end < 0 {
		return before
	}
	dec := httpsse.NewDecoder(io.MultiReader(bytes.NewReader(b[:end+2]), strings.NewReader("data: probe\n\n")))
	id := ""
	for dec.Next() {
		var ev httpsse.Event
		_ = dec.Decode(&ev)
		id = ev.EventID()
	}
	if id == "" {
		return before
	}
	return id
}

// join connects to base without a last event ID, and keeps the ID that the response's
// first block sets: where the client joined each topic.
func (c *multiClient) join(ctx context.Context, base string) {
	c.t.Helper()
	c.lastID = ""
	if st := c.connect(ctx, base, -1, 0, nil, nil); st != http.StatusOK {
		c.t.Fatalf("joining at %s: status %d", base, st)
	}
	if !strings.HasPrefix(c.lastID, "~") {
		c.t.Fatalf("joining at %s: first block set the ID %q, want one of Serve's", base, c.lastID)
	}
}

// has reports whether the client has received n events of each topic.
func (c *multiClient) has(n map[string]int) bool {
	for topic, want := range n {
		if len(c.got[topic]) < want {
			return false
		}
	}
	return true
}

// check fails the test unless the client received events 0 to n-1 of each topic, each
// once, in order.
func (c *multiClient) check(who string, n map[string]int) {
	c.t.Helper()
	for _, topic := range c.topics {
		got := c.got[topic]
		ok := len(got) == n[topic]
		for i := 0; ok && i < len(got); i++ {
			ok = got[i] == i
		}
		if !ok {
			c.t.Errorf("%s: topic %s: received %d events, want 0 to %d in order, once each: %s", who, topic, len(got), n[topic]-1, firstDiff(got))
		}
	}
}

// firstDiff describes where got first departs from 0, 1, 2...
func firstDiff(got []int) string {
	for i, v := range got {
		if v != i {
			return fmt.Sprintf("event %d is %d (around: %v)", i, v, got[max(i-3, 0):min(i+4, len(got))])
		}
	}
	return "no departure, but a wrong count"
}

// publishTopics publishes n events, "topic/0" to "topic/<n-1>" of type tick, to each topic
// at full speed, a goroutine per topic, and returns how many it published to each.
func publishTopics(topics *Topics, names []string, from, n int) error {
	var wg sync.WaitGroup
	errs := make([]error, len(names))
	for k, name := range names {
		wg.Go(func() {
			route := topics.Route(name)
			for i := from; i < from+n; i++ {
				err := route.PublishEvent(func(w httpsse.EventWriter) error {
					_ = w.WriteEvent("tick")
					return w.WriteData(name + "/" + strconv.Itoa(i))
				})
				if err != nil {
					errs[k] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// TestServeProcesses serves a client of four topics with Topics.Serve from several server
// processes while the test publishes to every topic at full speed. The client's connection
// is cut at random points, and once by killing with SIGKILL the process it is connected to;
// each time it reconnects to a random live process (once to one started after the kill,
// which had read none of the streams) with the last event ID it holds, as EventSource
// does. It must receive every event of every topic exactly once, in each topic's order,
// and no gap event. The processes keep 16 events in memory, so most of what a reconnection
// missed comes from Redis.
func TestServeProcesses(t *testing.T) {
	r := startRedis(t)
	const prefix = "serve:"
	names := []string{"news", "user/1", "room/7", "doc"}
	const events = 1500 // per topic
	var procs []*child
	for range 3 {
		procs = append(procs, startTopicsChild(t, r, prefix))
	}
	publisher := NewTopics(r.client(t), prefix, MaxLen(1_000_000))
	defer publisher.Close()
	seed := rand.Uint64()
	t.Logf("seed of the cuts: %d", seed)
	rnd := rand.New(rand.NewPCG(seed, 0))

	c := newMultiClient(t, names...)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	// The first connection only takes the ID that sets where the client joined.
	c.join(ctx, procs[0].url)
	c.connect(ctx, procs[0].url, 1, 0, nil, nil) // cut inside the first block

	var published atomic.Bool
	var pubErr error
	go func() {
		pubErr = publishTopics(publisher, names, 0, events)
		published.Store(true)
	}()
	want := map[string]int{}
	for _, name := range names {
		want[name] = events
	}
	live := append([]*child(nil), procs...)
	killed, fresh := false, false
rounds:
	for round := 0; ; round++ {
		if ctx.Err() != nil {
			t.Fatalf("after %d connections: %v; received %v", c.conns, ctx.Err(), counts(c))
		}
		done := published.Load()
		if done && c.has(want) {
			break rounds
		}
		switch {
		case round == 6 && !done:
			// Cut by killing process A mid-stream.
			a := live[0]
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			c.connect(cctx, a.url, 1<<30, 200+rnd.Int64N(4000), a.kill, nil)
			cancel()
			a.kill() // if the bytes to kill at never came
			live = live[1:]
			killed = true
		case killed && !fresh:
			p := startTopicsChild(t, r, prefix)
			live = append(live, p)
			// Each cut connection ends after a while too: publishing may end before it
			// has read as far as its cut.
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			c.connect(cctx, p.url, 1+rnd.Int64N(16<<10), 0, nil, nil)
			cancel()
			fresh = true
		case done:
			// Publishing is over: the last connection reads to the end.
			if pubErr != nil {
				t.Fatal(pubErr)
			}
			last, cancel := context.WithTimeout(ctx, 20*time.Second)
			c.connect(last, live[rnd.IntN(len(live))].url, 1<<30, 0, nil, func() bool { return c.has(want) })
			cancel()
			break rounds
		default:
			cut := 1 + rnd.Int64N(16<<10)
			if round%5 == 0 {
				cut = 1 + rnd.Int64N(300) // within the first block, or the first events
			}
			cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			c.connect(cctx, live[rnd.IntN(len(live))].url, cut, 0, nil, nil)
			cancel()
		}
	}
	if !killed || !fresh {
		t.Errorf("publishing ended before the kill (killed %v, fresh process %v): publish more events", killed, fresh)
	}
	t.Logf("%d connections", c.conns)
	c.check("the client", want)
	if len(c.gaps) > 0 {
		t.Errorf("gap events %q, want none", c.gaps)
	}
}

func counts(c *multiClient) map[string]int {
	n := map[string]int{}
	for topic, got := range c.got {
		n[topic] = len(got)
	}
	return n
}

// seq returns from, from+1, ... to-1.
func seq(from, to int) []int {
	var s []int
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// expect fails the test unless the client received exactly the events want lists, per
// topic, and the gap events gaps.
func (c *multiClient) expect(who string, want map[string][]int, gaps ...string) {
	c.t.Helper()
	for _, topic := range c.topics {
		if got := c.got[topic]; fmt.Sprint(got) != fmt.Sprint(want[topic]) {
			c.t.Errorf("%s: topic %s: received %v, want %v", who, topic, got, want[topic])
		}
	}
	if fmt.Sprint(c.gaps) != fmt.Sprint(gaps) {
		c.t.Errorf("%s: gap events for %q, want %q", who, c.gaps, gaps)
	}
}

// clone returns a client that holds the same last event ID and has received nothing.
func (c *multiClient) clone() *multiClient {
	d := newMultiClient(c.t, c.topics...)
	d.lastID = c.lastID
	return d
}

// resume reconnects to base and reads until it has received want, for 10 s at most.
func (c *multiClient) resume(base string, want map[string][]int) {
	c.t.Helper()
	n := map[string]int{}
	for topic, evs := range want {
		n[topic] = len(evs)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if st := c.connect(ctx, base, 1<<30, 0, nil, func() bool { return c.has(n) }); st != http.StatusOK {
		c.t.Fatalf("reconnecting to %s: status %d", base, st)
	}
}

// positions returns the per-topic positions of a Last-Event-ID of Serve ("~KEY=ID,...").
func positions(t *testing.T, id string) []string {
	t.Helper()
	var ids []string
	for _, part := range strings.Split(strings.TrimPrefix(id, "~"), ",") {
		_, v, ok := strings.Cut(part, "=")
		if !ok {
			t.Fatalf("Last-Event-ID %q is not of Serve's form", id)
		}
		ids = append(ids, v)
	}
	return ids
}

// TestServeEmptyTopic checks the position of a topic that was empty when the client joined
// it ("0-0", the History's BeginID): a client that joined topic e, empty, in one process and
// received nothing of it, then reconnects to any process after entries were appended to
// e, receives exactly those entries: from a process that has read e since it was empty and
// holds them all in memory, from one that started after them (whose memory holds the last
// one, and Redis the rest, more than one XRANGE), and from the first one, whose memory
// has let the first ones go. Once e has been trimmed, the same reconnection gets the gap
// event for e, and the other topic resumes exactly.
func TestServeEmptyTopic(t *testing.T) {
	r := startRedis(t)
	const prefix = "empty:"
	admin := r.client(t)
	publisher := NewTopics(admin, prefix, MaxLen(1_000_000))
	defer publisher.Close()
	a, b := startTopicsChild(t, r, prefix), startTopicsChild(t, r, prefix)
	// b reads both topics from now on, through a subscriber of its own.
	subscribe(t, b.url+"/serve?topic=e&topic=f", "")
	if err := publishTopics(publisher, []string{"f"}, 0, 10); err != nil {
		t.Fatal(err)
	}

	c := newMultiClient(t, "e", "f")
	c.join(context.Background(), a.url)
	if pos := positions(t, c.lastID); pos[0] != "0-0" || pos[1] == "0-0" {
		t.Fatalf("joined at %q, want e at 0-0 and f at its last entry", pos)
	}
	if err := publishTopics(publisher, []string{"e"}, 0, 5); err != nil {
		t.Fatal(err)
	}
	if err := publishTopics(publisher, []string{"f"}, 10, 5); err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{"e": seq(0, 5), "f": seq(10, 15)}
	inMemory := c.clone()
	inMemory.resume(b.url, want)
	inMemory.expect("resumed on the process that read e from its start", want)

	if err := publishTopics(publisher, []string{"e"}, 5, 295); err != nil {
		t.Fatal(err)
	}
	want["e"] = seq(0, 300)
	fresh := c.clone()
	fresh.resume(startTopicsChild(t, r, prefix).url, want)
	fresh.expect("resumed on a process started after the events", want)
	first := c.clone()
	first.resume(a.url, want)
	first.expect("resumed on the process it joined at", want)

	if err := admin.XTrimMaxLen(context.Background(), prefix+"e", 10).Err(); err != nil {
		t.Fatal(err)
	}
	trimmed := c.clone()
	trimmed.resume(b.url, map[string][]int{"f": seq(10, 15)})
	// Then, with the ID that the gap event set, the next event of e.
	if err := publishTopics(publisher, []string{"e"}, 300, 1); err != nil {
		t.Fatal(err)
	}
	trimmed.resume(b.url, map[string][]int{"e": {300}, "f": seq(10, 15)})
	trimmed.expect("resumed after e was trimmed", map[string][]int{"e": {300}, "f": seq(10, 15)}, "e")
}

// TestServeTrimmedTopic cuts a client of three topics, then trims one topic's stream past
// the client's position in it while the others go on: reconnecting, to a process that
// read the topics all along or to one that never read them, the client gets the gap event
// whose data is the trimmed topic's name, then its live events, and the other topics
// resume exactly, from Redis (further back than the processes keep in memory). The ID after
// the gap resumes every topic exactly, with no second gap.
func TestServeTrimmedTopic(t *testing.T) {
	r := startRedis(t)
	const prefix = "trim:"
	admin := r.client(t)
	publisher := NewTopics(admin, prefix, MaxLen(1_000_000))
	defer publisher.Close()
	names := []string{"x", "y", "z"}
	a := startTopicsChild(t, r, prefix)
	c := newMultiClient(t, names...)
	c.join(context.Background(), a.url)
	if err := publishTopics(publisher, names, 0, 5); err != nil {
		t.Fatal(err)
	}
	before := map[string][]int{"x": seq(0, 5), "y": seq(0, 5), "z": seq(0, 5)}
	c.resume(a.url, before)
	c.expect("before the trimming", before)
	cut := c

	if err := publishTopics(publisher, []string{"x"}, 5, 100); err != nil {
		t.Fatal(err)
	}
	if err := publishTopics(publisher, []string{"y"}, 5, 30); err != nil {
		t.Fatal(err)
	}
	// Process a reads every entry before the trimming: a client there receives them live.
	// (Entries trimmed before a process has read them are lost to its memory without a
	// mark; see the note in the README's Figures.)
	readAll := cut.clone()
	readAll.resume(a.url, map[string][]int{"x": seq(5, 105), "y": seq(5, 35)})
	if err := admin.XTrimMaxLen(context.Background(), prefix+"x", 10).Err(); err != nil {
		t.Fatal(err)
	}
	b := startTopicsChild(t, r, prefix)
	for _, p := range []struct {
		who string
		url string
	}{{"the process that read the topics", a.url}, {"a process that never read them", b.url}} {
		c = cut.clone()
		c.resume(p.url, map[string][]int{"y": seq(5, 35)})
		c.expect(p.who, map[string][]int{"y": seq(5, 35)}, "x")
	}
	if err := publishTopics(publisher, []string{"x"}, 105, 1); err != nil {
		t.Fatal(err)
	}
	if err := publishTopics(publisher, []string{"z"}, 5, 1); err != nil {
		t.Fatal(err)
	}
	after := c.clone()
	after.resume(a.url, map[string][]int{"x": {105}, "z": {5}})
	after.expect("resumed with the ID after the gap", map[string][]int{"x": {105}, "z": {5}})
}

// serveTopics serves topics with Serve, the names taken from the query's topic values.
func serveTopics(t *testing.T, topics *Topics) string {
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		topics.Serve(w, req, req.URL.Query()["topic"]...)
	}))
}

// getStatus returns the status of a GET of url.
func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// TestServeMaxTopics checks RouteOptions(httpsse.MaxTopics(n)) on a Topics: with its
// topics all subscribed, a new one is refused (publishing fails with ErrTooManyTopics,
// Serve answers 503); once they are not, the least recently used one makes room. After
// Close, Serve answers 204.
func TestServeMaxTopics(t *testing.T) {
	r := startRedis(t)
	topics := NewTopics(r.client(t), "max:", RouteOptions(httpsse.MaxTopics(2)))
	url := serveTopics(t, topics)
	s := subscribe(t, url+"?topic=a&topic=b", "")
	if err := publishN(topics.Route("c"), "", "c", 1); !errors.Is(err, httpsse.ErrTooManyTopics) {
		t.Errorf("publishing to a third topic = %v, want ErrTooManyTopics", err)
	}
	if st := getStatus(t, url+"?topic=c"); st != http.StatusServiceUnavailable {
		t.Errorf("Serve of a third topic = %d, want 503", st)
	}
	if err := publishN(topics.Route("a"), "", "a", 1); err != nil {
		t.Fatal(err)
	}
	if ev := s.waitFor(t, 1, 10*time.Second)[0]; ev.data != "a-0" {
		t.Errorf("subscriber of a and b received %v, want a-0", ev)
	}
	s.close()
	for deadline := time.Now().Add(10 * time.Second); topics.Stats().Subscribers > 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the subscriber is still attached")
		}
	}
	if err := publishN(topics.Route("c"), "", "c", 1); err != nil {
		t.Errorf("publishing to a third topic once the others have no subscriber = %v", err)
	}
	if n := topics.Len(); n != 2 {
		t.Errorf("Len() = %d, want 2", n)
	}
	topics.Close()
	if st := getStatus(t, url+"?topic=a"); st != http.StatusNoContent {
		t.Errorf("Serve after Close = %d, want 204", st)
	}
}

// TestServeUnreachable: when Redis does not answer, Serve answers 503 within
// PublishTimeout rather than attach a subscriber whose position in the topic is unknown.
func TestServeUnreachable(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: freeAddr(t), MaxRetries: -1})
	defer client.Close()
	topics := NewTopics(client, "down:", PublishTimeout(200*time.Millisecond))
	defer topics.Close()
	url := serveTopics(t, topics)
	start := time.Now()
	if st := getStatus(t, url+"?topic=a&topic=b"); st != http.StatusServiceUnavailable {
		t.Errorf("Serve with Redis unreachable = %d, want 503", st)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Serve took %v to answer", d)
	}
}

// TestHistoryFromBeginning checks the History's answer for its BeginID, "0-0": every entry
// up to through, over several XRANGEs, when the stream has never lost one; nothing, but
// found, for a stream that does not exist; a gap once any entry was trimmed or deleted.
func TestHistoryFromBeginning(t *testing.T) {
	r := startRedis(t)
	client := r.client(t)
	ctx := context.Background()
	h := &history{client: client, stream: "begin", timeout: 5 * time.Second}
	if id := h.BeginID(); id != "0-0" {
		t.Fatalf("BeginID() = %q, want 0-0", id)
	}
	read := func(through string) ([]string, bool) {
		t.Helper()
		var ids []string
		found, err := h.EventsAfter(ctx, "0-0", through, func(fn func(httpsse.EventWriter) error) error {
			b, err := httpsse.AppendEvent(nil, fn)
			ids = append(ids, string(b))
			return err
		})
		if err != nil {
			t.Fatalf("EventsAfter(0-0, %s): %v", through, err)
		}
		return ids, found
	}
	if evs, found := read("9-0"); !found || len(evs) != 0 {
		t.Errorf("no stream: EventsAfter(0-0) = %d events, found %v; want none, found", len(evs), found)
	}
	for i := 1; i <= 300; i++ {
		if err := client.XAdd(ctx, &redis.XAddArgs{Stream: h.stream, ID: fmt.Sprint("1-", i), Values: []interface{}{entryField, fmt.Sprint("data: ", i)}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for _, through := range []int{300, 256, 100, 1} {
		evs, found := read(fmt.Sprint("1-", through))
		ok := found && len(evs) == through
		for i := 0; ok && i < through; i++ {
			ok = evs[i] == fmt.Sprintf("data: %d\nid: 1-%d\n\n", i+1, i+1)
		}
		if !ok {
			t.Errorf("EventsAfter(0-0, 1-%d) = %d events, found %v; want events 1 to %d", through, len(evs), found, through)
		}
	}
	if err := client.XDel(ctx, h.stream, "1-300").Err(); err != nil {
		t.Fatal(err)
	}
	if evs, found := read("1-10"); found || len(evs) != 0 {
		t.Errorf("an entry deleted: EventsAfter(0-0) = %d events, found %v; want a gap", len(evs), found)
	}
	h.stream = "begin-trimmed"
	for i := 1; i <= 5; i++ {
		client.XAdd(ctx, &redis.XAddArgs{Stream: h.stream, ID: fmt.Sprint("1-", i), Values: []interface{}{entryField, "data: x"}})
	}
	if err := client.XTrimMaxLen(ctx, h.stream, 3).Err(); err != nil {
		t.Fatal(err)
	}
	if evs, found := read("1-5"); found || len(evs) != 0 {
		t.Errorf("trimmed: EventsAfter(0-0) = %d events, found %v; want a gap", len(evs), found)
	}
}
