package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/reiver/go-httpsse"
)

//go:embed index.html
var indexHTML []byte

// demoConfig holds the demo's timings, so that tests can run it fast.
type demoConfig struct {
	tick      time.Duration // shared topic: time between two events
	heartbeat time.Duration // shared topic: time between two "heartbeat" events
	replay    int           // every topic: how many events it keeps for returning subscribers
	longCut   time.Duration // how long "cut for longer" keeps a page away
	keepAlive time.Duration // every topic: a quiet subscriber gets a comment after this long
	status    time.Duration // per-request stream: time between two "status" events
	streamRun int           // per-request stream: "status" events before the server ends the stream
	retry     time.Duration // per-request stream: the reconnection time sent with retry:
}

var defaultDemoConfig = demoConfig{
	tick:      1500 * time.Millisecond,
	heartbeat: 5 * time.Second,
	replay:    12,
	longCut:   20 * time.Second,
	keepAlive: 15 * time.Second,
	status:    1 * time.Second,
	streamRun: 6,
	retry:     2 * time.Second,
}

// Limits of what a page may send.
const (
	maxClientLen = 64  // the client token of /topics?client=, /events?client= and /cut?client=
	maxUserLen   = 32  // a user name of /topics?user= and /notify?user=
	maxTextLen   = 280 // a notification's text
	maxAway      = 256 // pages kept away by "cut for longer" at once
)

// The demo's topics, all of one Topics with Replay and KeepAlive: the shared stream, which
// every tab sees, and one topic per user for notifications.
const sharedTopic = "shared"

func userTopic(user string) string { return "user/" + user }

// demo serves the page, its event streams and their controls:
//
//	GET  /                         the page (index.html, embedded)
//	GET  /topics?user=U&client=C   the topics "shared" and "user/U" on one connection (Topics.Serve):
//	                               the page's one EventSource for both
//	GET  /events?client=C          the topic "shared" alone, as a Route
//	POST /cut?client=C             ends the /topics and /events responses of the page whose token is C
//	GET  /stream                   a new Route per request (the original README's pattern)
//	GET  /notify?user=U            the topic "user/U" alone, as a Route
//	POST /notify                   publishes a notification (form fields user and text)
//	GET  /stats?client=C           StatsOf the shared topic and of all the topics, as JSON
//	GET  /answer?q=Q               a made-up answer to Q, word by word, through NewStream (answer.go)
type demo struct {
	cfg     demoConfig
	topics  *httpsse.Topics
	boot    string        // this run's part of the shared topic's event IDs
	seq     atomic.Uint64 // number of the last event published on the shared topic
	started time.Time

	mu    sync.Mutex
	conns map[string][]*sharedConn // the open /topics and /events responses, by client token
	away  map[string]time.Time     // tokens whose next request waits until then ("cut for longer")

	ctx    context.Context // done once the demo is closed
	cancel context.CancelFunc
	wg     sync.WaitGroup // the shared topic's publisher, and notifications sent after cuts
	once   sync.Once
}

// sharedConn is one open /topics or /events response.
type sharedConn struct {
	cancel      context.CancelFunc // ends the response (what /cut calls)
	cut         atomic.Bool        // /cut ended it
	user        string             // the user of a /topics response, or ""
	lastEventID string             // the Last-Event-ID the browser sent
	backAt      uint64             // the shared topic's last event number when the request arrived
	userBackAt  uint64             // the user's topic's last event number then (its Published)
}

// newDemo starts the demo's publisher and returns its handler, and a Closer
// that ends every stream and stops the publisher. Close it on shutdown:
//
//	srv.RegisterOnShutdown(func() { closer.Close() })
func newDemo(cfg demoConfig) (http.Handler, io.Closer) {
	var b [4]byte
	rand.Read(b[:])
	d := &demo{
		cfg: cfg,
		// Every topic keeps its last events, so that a page that lost its stream gets
		// what it missed when EventSource reconnects with Last-Event-ID (one ID for all
		// the topics of a /topics response); publishing never waits for a subscriber;
		// and a quiet subscriber gets a comment now and then, so that proxies keep its
		// connection open.
		topics:  httpsse.NewTopics(httpsse.Replay(cfg.replay), httpsse.KeepAlive(cfg.keepAlive)),
		boot:    strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])),
		started: time.Now(),
		conns:   make(map[string][]*sharedConn),
		away:    make(map[string]time.Time),
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())

	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.publish()
	}()

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", serveIndex)
	mux.HandleFunc("GET /topics", d.serveTopics)
	mux.HandleFunc("GET /events", d.serveShared)
	mux.HandleFunc("POST /cut", d.serveCut)
	mux.HandleFunc("GET /stream", d.serveStream)
	mux.HandleFunc("GET /notify", d.serveNotifications)
	mux.HandleFunc("POST /notify", d.serveSend)
	mux.HandleFunc("GET /stats", d.serveStats)
	mux.HandleFunc("GET /answer", d.serveAnswer)
	return mux, d
}

// Close ends every stream of the demo and waits for its publisher.
func (d *demo) Close() error {
	d.once.Do(func() {
		d.cancel()
		d.topics.Close()
		d.wg.Wait()
	})
	return nil
}

func serveIndex(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(indexHTML)
}

// validToken reports whether s is a client token or user name the demo
// accepts: 1 to max letters, digits, '-' or '_'.
func validToken(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for _, c := range s {
		if c != '-' && c != '_' && (c > unicode.MaxASCII || !unicode.IsLetter(c) && !unicode.IsDigit(c)) {
			return false
		}
	}
	return true
}

// shared returns the shared topic's Route. (A Topics' Route is asked for each time: see
// Topics.)
func (d *demo) shared() httpsse.Route { return d.topics.Route(sharedTopic) }

// serveTopics serves the page's one EventSource: the shared topic and the user's
// notifications on one connection. Its one Last-Event-ID says how far the page got in each
// topic, so a reconnection resumes both.
func (d *demo) serveTopics(w http.ResponseWriter, r *http.Request) {
	names := []string{sharedTopic}
	user := r.URL.Query().Get("user")
	if user != "" {
		if !validToken(user, maxUserLen) {
			http.Error(w, fmt.Sprintf("demo: user must be 1 to %d letters, digits, '-' or '_'", maxUserLen), http.StatusBadRequest)
			return
		}
		names = append(names, userTopic(user))
	}
	c, r, ok := d.cuttable(w, r, user)
	if !ok {
		return
	}
	d.topics.Serve(w, r, names...)
	if c != nil && c.cut.Load() && user != "" {
		d.sendWhileAway(user)
	}
}

// sendWhileAway sends a notification to the user whose stream /cut has just ended, so that
// the page sees the user's topic resume too, not only the shared one: it is published after
// the response ended, so it reaches the page only through the reconnection.
func (d *demo) sendWhileAway(user string) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		err := d.topics.Route(userTopic(user)).PublishEvent(func(ew httpsse.EventWriter) error {
			ew.WriteEvent("notification")
			return ew.WriteData(fmt.Sprintf("sent by the server while your stream was cut (shared #%d)", d.seq.Load()))
		})
		if err != nil && !errors.Is(err, httpsse.ErrClosed) {
			log.Printf("notification after a cut: %v", err)
		}
	}()
}

// serveShared serves the shared topic alone, as a Route: what the page read before
// /topics, and what curl and examples/client read.
func (d *demo) serveShared(w http.ResponseWriter, r *http.Request) {
	if _, r, ok := d.cuttable(w, r, ""); ok {
		d.shared().ServeHTTP(w, r)
	}
}

// cuttable prepares a /topics or /events request of a page (?client=) for /cut: the
// response is served with a context of its own, which /cut cancels, so that the handler
// ends the response as if the client had gone, and the browser reconnects with
// Last-Event-ID. It returns the request to serve, and the open response's record (nil
// without ?client=); false when the request was answered already or has ended.
func (d *demo) cuttable(w http.ResponseWriter, r *http.Request, user string) (*sharedConn, *http.Request, bool) {
	client := r.URL.Query().Get("client")
	if client == "" {
		return nil, r, true
	}
	if !validToken(client, maxClientLen) {
		http.Error(w, fmt.Sprintf("demo: client must be 1 to %d letters, digits, '-' or '_'", maxClientLen), http.StatusBadRequest)
		return nil, nil, false
	}
	if !d.stayAway(r.Context(), client) {
		return nil, nil, false
	}
	ctx, cancel := context.WithCancel(r.Context())
	c := &sharedConn{cancel: cancel, user: user, lastEventID: r.Header.Get("Last-Event-ID"), backAt: d.seq.Load()}
	if user != "" {
		c.userBackAt = httpsse.StatsOf(d.topics.Route(userTopic(user))).Published
	}
	d.mu.Lock()
	d.conns[client] = append(d.conns[client], c)
	d.mu.Unlock()
	context.AfterFunc(ctx, func() { d.forget(client, c) })
	// The response ends when the handler returns, which ends r's context, and so ctx.
	return c, r.WithContext(ctx), true
}

// stayAway holds a request of a page cut "for longer" until its time is up.
// It reports false when the request or the demo ended first.
func (d *demo) stayAway(ctx context.Context, client string) bool {
	d.mu.Lock()
	until, ok := d.away[client]
	delete(d.away, client)
	d.mu.Unlock()
	if !ok {
		return true
	}
	t := time.NewTimer(time.Until(until))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
	case <-d.ctx.Done():
	}
	return false
}

func (d *demo) forget(client string, c *sharedConn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	list := d.conns[client]
	for i, x := range list {
		if x == c {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(d.conns, client)
	} else {
		d.conns[client] = list
	}
}

// serveCut ends the /topics and /events responses of one page (?client=), as a
// proxy that cuts a connection would. With long=1 the page's next request is
// also held for cfg.longCut, longer than the shared topic keeps events, so that
// it comes back to a gap in that topic. It answers with how many responses it
// ended. The server then sends each cut /topics response's user a notification,
// which the page receives through its reconnection.
func (d *demo) serveCut(w http.ResponseWriter, r *http.Request) {
	client := r.URL.Query().Get("client")
	if !validToken(client, maxClientLen) {
		http.Error(w, fmt.Sprintf("demo: client must be 1 to %d letters, digits, '-' or '_'", maxClientLen), http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	conns := d.conns[client]
	if len(conns) > 0 && r.URL.Query().Get("long") == "1" {
		now := time.Now()
		for k, until := range d.away {
			if now.After(until) {
				delete(d.away, k) // its page never came back
			}
		}
		if len(d.away) >= maxAway {
			d.mu.Unlock()
			http.Error(w, "demo: too many pages are away already; try again later", http.StatusServiceUnavailable)
			return
		}
		d.away[client] = now.Add(d.cfg.longCut)
	}
	for _, c := range conns {
		c.cut.Store(true)
		c.cancel()
	}
	d.mu.Unlock()
	writeJSON(w, map[string]any{"cut": len(conns), "seq": d.seq.Load()})
}

// publish publishes the shared topic's events until the demo is closed.
// Each event's ID is this run's boot tag and the event's number, so a page
// can check that it saw every event once, in order; and an ID from an earlier
// run is never mistaken for one of this run.
func (d *demo) publish() {
	tick := time.NewTicker(d.cfg.tick)
	defer tick.Stop()
	beat := time.NewTicker(d.cfg.heartbeat)
	defer beat.Stop()
	ticks := 0
	for n := uint64(1); ; n++ {
		var fn func(httpsse.EventWriter) error
		select {
		case <-tick.C:
			ticks++
			watching := httpsse.StatsOf(d.shared()).Subscribers
			fn = func(ew httpsse.EventWriter) error { return d.writeTick(ew, n, ticks, watching) }
		case <-beat.C:
			fn = func(ew httpsse.EventWriter) error {
				ew.WriteEvent("heartbeat")
				ew.WriteID(d.eventID(n))
				return ew.WriteData(time.Now().UTC().Format(time.TimeOnly))
			}
		case <-d.ctx.Done():
			return
		}
		err := d.shared().PublishEvent(fn)
		if errors.Is(err, httpsse.ErrClosed) {
			return
		}
		if err != nil {
			log.Printf("publish: %v", err)
		}
		d.seq.Store(n)
	}
}

func (d *demo) eventID(n uint64) string { return d.boot + "-" + strconv.FormatUint(n, 10) }

// writeTick writes the shared topic's event number n, its tick number k, for
// a topic with the given number of subscribers.
// Most are "tick" events; every fifth tick is a "note" with multi-line data
// and every seventh has no event name, so the browser dispatches it as
// "message".
//
// Only the last Write's error needs returning: a failed Write spoils the
// whole event anyway (PublishEvent then sends nothing and returns the error).
func (d *demo) writeTick(ew httpsse.EventWriter, n uint64, k, watching int) error {
	ew.WriteID(d.eventID(n))
	switch {
	case k%7 == 0:
		return ew.WriteData(fmt.Sprintf("event %d has no name, so EventSource calls it \"message\"", n))
	case k%5 == 0:
		ew.WriteEvent("note")
		return ew.WriteData("one WriteData with line breaks…\n…becomes several data: lines\n…and arrives as one string ✓")
	default:
		ew.WriteEvent("tick")
		return ew.WriteData(fmt.Sprintf(`{"n":%d,"watching":%d,"uptime":"%s"}`,
			n, watching, time.Since(d.started).Round(time.Second)))
	}
}

// serveNotifications subscribes to one user's notifications alone: the user's
// topic, made on first use, as a Route.
func (d *demo) serveNotifications(w http.ResponseWriter, r *http.Request) {
	user := r.URL.Query().Get("user")
	if !validToken(user, maxUserLen) {
		http.Error(w, fmt.Sprintf("demo: user must be 1 to %d letters, digits, '-' or '_'", maxUserLen), http.StatusBadRequest)
		return
	}
	d.topics.Route(userTopic(user)).ServeHTTP(w, r)
}

// serveSend publishes a notification to a user's topic. It never waits: a
// topic with no subscriber keeps the event for a while (Replay) or drops it.
func (d *demo) serveSend(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "demo: reading the form: "+err.Error(), http.StatusBadRequest)
		return
	}
	user, text := r.PostFormValue("user"), strings.TrimSpace(r.PostFormValue("text"))
	switch {
	case !validToken(user, maxUserLen):
		http.Error(w, fmt.Sprintf("demo: user must be 1 to %d letters, digits, '-' or '_'", maxUserLen), http.StatusBadRequest)
		return
	case text == "" || len(text) > maxTextLen:
		http.Error(w, fmt.Sprintf("demo: text must be 1 to %d bytes", maxTextLen), http.StatusBadRequest)
		return
	}
	route := d.topics.Route(userTopic(user))
	err := route.PublishEvent(func(ew httpsse.EventWriter) error {
		ew.WriteEvent("notification")
		return ew.WriteData(text) // a line break in text becomes several data: lines
	})
	if err != nil {
		http.Error(w, "demo: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, map[string]any{"user": user, "subscribers": httpsse.StatsOf(route).Subscribers})
}

// demoStats is what /stats answers.
type demoStats struct {
	Shared  httpsse.Stats `json:"shared"`  // the shared topic's
	Seq     uint64        `json:"seq"`     // number of the shared topic's last event
	Topics  int           `json:"topics"`  // topics alive now, the shared one included
	All     httpsse.Stats `json:"all"`     // Topics.Stats: the counts of all topics, added up
	Replay  int           `json:"replay"`  // how many events each topic keeps
	LongCut string        `json:"longCut"` // how long "cut for longer" keeps a page away
	// Client is the page's (?client=) latest open /topics or /events response, if any.
	Client *clientStats `json:"client,omitempty"`
}

type clientStats struct {
	LastEventID string `json:"lastEventID"` // the Last-Event-ID its browser sent
	BackAt      uint64 `json:"backAt"`      // the shared topic's last event number when it arrived
	// UserBackAt is the number of the last event of the user's topic when a /topics
	// response arrived (the number in the ID the topic gave it).
	UserBackAt uint64 `json:"userBackAt"`
}

func (d *demo) serveStats(w http.ResponseWriter, r *http.Request) {
	st := demoStats{
		Shared:  httpsse.StatsOf(d.shared()),
		Seq:     d.seq.Load(),
		Topics:  d.topics.Len(),
		All:     d.topics.Stats(),
		Replay:  d.cfg.replay,
		LongCut: d.cfg.longCut.String(),
	}
	d.mu.Lock()
	if conns := d.conns[r.URL.Query().Get("client")]; len(conns) > 0 {
		c := conns[len(conns)-1]
		st.Client = &clientStats{LastEventID: c.lastEventID, BackAt: c.backAt, UserBackAt: c.userBackAt}
	}
	d.mu.Unlock()
	writeJSON(w, st)
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

// serveStream is the original README's pattern: a new Route for each
// request, closed when the request ends, with its own heartbeat and its own
// publishing goroutine.
func (d *demo) serveStream(w http.ResponseWriter, r *http.Request) {
	route := httpsse.NewRoute()
	defer route.Close()
	// Shutting the demo down ends this stream too.
	stop := context.AfterFunc(d.ctx, func() { route.Close() })
	defer stop()

	// Send a heartbeat comment every 4.567 seconds.
	httpsse.HeartBeat(4567*time.Millisecond, route)

	// Publish from another goroutine: PublishEvent waits until
	// route.ServeHTTP below has attached this request.
	go d.loop(route, r.Header.Get("Last-Event-ID"))

	route.ServeHTTP(w, r)
}

// loop publishes the per-request stream's events until the route is closed.
// After cfg.streamRun events it closes the route itself: the browser then
// reconnects after the retry: time, sending Last-Event-ID, and the count goes
// on where it stopped.
func (d *demo) loop(route httpsse.Route, lastEventID string) {
	n, _ := strconv.Atoi(strings.TrimPrefix(lastEventID, "status-"))
	hello := "new stream: no Last-Event-ID"
	if lastEventID != "" {
		hello = fmt.Sprintf("reconnected with Last-Event-ID: %s", lastEventID)
	}
	err := route.PublishEvent(func(ew httpsse.EventWriter) error {
		ew.WriteRetry(d.cfg.retry)
		ew.WriteEvent("hello")
		return ew.WriteData(hello)
	})
	t := time.NewTicker(d.cfg.status)
	defer t.Stop()
	for i := 0; err == nil; i++ {
		if i == d.cfg.streamRun {
			err = route.PublishEvent(func(ew httpsse.EventWriter) error {
				ew.WriteEvent("bye")
				return ew.WriteData(fmt.Sprintf("the server ends this stream; EventSource reconnects in %s", d.cfg.retry))
			})
		} else {
			n++
			err = route.PublishEvent(func(ew httpsse.EventWriter) error {
				ew.WriteEvent("status")
				ew.WriteID(fmt.Sprintf("status-%d", n))
				return ew.WriteData(fmt.Sprintf("Hello world! #%d", n))
			})
		}
		select {
		case <-t.C:
		case <-d.ctx.Done():
			return
		}
		if i == d.cfg.streamRun {
			route.Close()
			return
		}
	}
	if !errors.Is(err, httpsse.ErrClosed) {
		log.Printf("publish: %v", err)
	}
}
