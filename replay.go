package httpsse

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"net/http"
	"strconv"
	"strings"
)

// Defaults of the replay options.
const (
	DefaultReplayMaxBytes = 1 << 20
	DefaultGapEvent       = "gap"
)

// Replay makes the Route keep its most recent n events, so that a subscriber that comes back
// with a Last-Event-ID header (as EventSource does on reconnection) receives what it missed.
// The events are also bounded in bytes, by [ReplayMaxBytes]. Zero or a negative n keeps none
// and turns replay off, which is the default.
//
// On a Route with Replay every event has an ID: one set with [EventWriter.WriteID] is kept,
// and an event without one gets one from the Route, unique for the Route's lifetime and
// never equal to an ID assigned by another Route or an earlier run of the program. A block of
// comments alone, such as a [HeartBeat], is not an event and gets no ID.
//
// A request whose Last-Event-ID names a retained event receives every event published after
// it (after the most recent one, when several carry that ID), then the live events: the
// position it starts from and its attachment to the live stream are taken in one step, so
// nothing is missing or repeated at the seam. The retained events are the bytes already
// encoded for the live subscribers, held once; catching up encodes nothing again. When the
// Route has a [History] ([ReplayFrom]) and the ID is older than what the Route retains, the
// History supplies the events in between.
//
// A request whose Last-Event-ID is not held (unknown, past the bounds, or from before a
// restart) gets the live events only, preceded by one gap event: its type is
// [DefaultGapEvent] ("gap", which a page that does not listen for it never sees; see
// [GapEvent]), its data the Last-Event-ID the client sent, and its ID that of the last event
// published before the subscriber's live events begin (empty when there is none), so the
// client's next reconnection resumes exactly there. A page can listen for it to reload its
// state:
//
//	source.addEventListener("gap", () => reloadState())
//
// A request without Last-Event-ID, or with an empty one, gets the live events only.
func Replay(n int) RouteOption {
	return func(c *routeConfig) { c.replay = max(n, 0) }
}

// ReplayMaxBytes bounds the bytes of the events that [Replay] keeps, counted as they are
// sent (fields, IDs and line ends, and any heartbeat between them). The default is
// [DefaultReplayMaxBytes]; zero or a negative value means the default. An event larger than
// the bound is sent but not kept. A returning subscriber's backlog counts against its
// [MaxQueuedBytes], which [NewRoute] raises to at least this bound.
func ReplayMaxBytes(n int) RouteOption {
	return func(c *routeConfig) { c.replayMaxBytes = n }
}

// GapEvent sets the type of the event that tells a returning subscriber that events were
// lost (see [Replay]). The default is [DefaultGapEvent]. An empty name sends no gap event:
// the subscriber gets the live events only, and its last event ID stays as it was. The name
// must not contain a line break; if it does, no gap event is sent.
func GapEvent(name string) RouteOption {
	return func(c *routeConfig) {
		c.gapEvent = name
		if strings.ContainsAny(name, "\r\n") {
			c.gapEvent = ""
		}
	}
}

// History is a log of a Route's events kept elsewhere: in a database, a Redis stream, another
// process. A Route made with [Replay] and [ReplayFrom] asks it for the events that a returning
// subscriber missed when they are older than those the Route retains itself. Implementing it
// takes nothing but this package.
type History interface {
	// EventsAfter calls write, in order, once for each event published after the one whose ID
	// is after, up to and including the one whose ID is through; each event written must set
	// its ID with WriteID. An empty through means up to the first event this Route published
	// itself (the implementation knows where its Route's events begin, for instance the
	// position its feed started from). It reports found == false, having written nothing,
	// when it holds no event with the ID after. If write returns an error, EventsAfter
	// returns it. An error ends the subscriber's response, so that its client retries later
	// with the same ID. ctx ends when the subscriber goes away.
	EventsAfter(ctx context.Context, after, through string, write func(func(EventWriter) error) error) (found bool, err error)
}

// A History may also have a method
//
//	BeginID() string
//
// that returns the ID standing for the point before the log's first event. [Topics.Serve]
// records it as a subscriber's position in a topic where nothing had been published when it
// joined, and a reconnection then asks EventsAfter for the events after it: found, with every
// event of the log, unless the log has let go of events since (then the gap event). Without
// it, such a position is only known to the Route that gave it.

// ReplayFrom sets the [History] that a Route with [Replay] reads for a returning subscriber
// whose Last-Event-ID is older than the events it retains. By default there is none, and
// such a subscriber gets the gap event.
func ReplayFrom(h History) RouteOption {
	return func(c *routeConfig) { c.history = h }
}

// retained is one event that Replay keeps: its bytes are log[start:end] (offsets).
type retained struct {
	start, end int64
	id         string
}

// retention is what a Route with Replay keeps. It is guarded by broadcaster.mu, and changed
// only by a publisher.
type retention struct {
	max, maxBytes int
	events        []retained // the retained events, oldest first, from events[head] on
	head          int
	first         uint64            // the sequence number of events[head]
	index         map[string]uint64 // an ID to the sequence number of its most recent event
	evictedID     string            // the ID of the last event no longer retained
	lastID        string            // the ID of the last event published
	tag           string            // the prefix of the IDs the Route assigns
	begin         string            // the ID of the point before the first event (see beginID)
	historyBegin  bool              // begin is the History's: only the History can tell what follows it
	assigned      uint64            // how many IDs the Route has assigned
}

func newRetention(cfg routeConfig) *retention {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	rt := &retention{
		max:      cfg.replay,
		maxBytes: cfg.replayMaxBytes,
		index:    make(map[string]uint64),
		tag:      strings.ToLower(base32.HexEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])),
	}
	rt.begin = rt.tag + "-0"
	if h, ok := cfg.history.(interface{ BeginID() string }); ok {
		rt.begin, rt.historyBegin = h.BeginID(), true
	}
	return rt
}

// appendID appends the "id" field of a new ID to the event being encoded, and returns it.
func (rt *retention) appendID(buf []byte) ([]byte, string) {
	rt.assigned++
	n := len(buf)
	buf = append(buf, "id: "...)
	buf = append(buf, rt.tag...)
	buf = append(buf, '-')
	buf = strconv.AppendUint(buf, rt.assigned, 10)
	return append(buf, '\n'), string(buf[n+len("id: "):])
}

// add retains the event log[start:end] with the given ID, and lets go of the oldest events
// beyond the bounds.
func (rt *retention) add(start, end int64, id string) {
	rt.lastID = id
	rt.index[id] = rt.first + uint64(len(rt.events)-rt.head)
	rt.events = append(rt.events, retained{start: start, end: end, id: id})
	for n := len(rt.events) - rt.head; n > 0 && (n > rt.max || end-rt.events[rt.head].start > int64(rt.maxBytes)); n-- {
		old := &rt.events[rt.head]
		if rt.index[old.id] == rt.first {
			delete(rt.index, old.id)
		}
		rt.evictedID = old.id
		*old = retained{}
		rt.head++
		rt.first++
	}
	if rt.head > len(rt.events)/2 && rt.head >= 64 {
		rt.events = append(rt.events[:0:0], rt.events[rt.head:]...)
		rt.head = 0
	}
}

// find returns the end of the most recent retained event with the given ID.
func (rt *retention) find(id string) (end int64, ok bool) {
	seq, ok := rt.index[id]
	if !ok {
		return 0, false
	}
	return rt.events[rt.head+int(seq-rt.first)].end, true
}

// start returns the offset of the oldest retained event, or head when none is retained.
func (rt *retention) start(head int64) int64 {
	if rt.head < len(rt.events) {
		return rt.events[rt.head].start
	}
	return head
}

// beginID returns the ID that stands for the point before the Route's first event: a
// subscriber that joined before anything was published resumes from there (Topics.Serve
// gives it for such a topic). It is the History's, when it has one (see History), else the
// Route's own: the IDs the Route assigns count from 1, so it is never an event's.
func (rt *retention) beginID() string {
	return rt.begin
}

// joinID returns the ID of the point a subscriber attached now starts from: the last event
// published, or the beginning.
func (rt *retention) joinID() string {
	if rt.lastID != "" {
		return rt.lastID
	}
	return rt.beginID()
}

// unheldID is the Last-Event-ID that Topics.Serve gives a topic whose position it cannot
// read from the request: no event can carry it (an ID never contains NUL), and place
// answers it with the gap event at once, without asking a History.
const unheldID = "\x00"

// resume is how a returning subscriber starts, decided when it is attached.
type resume struct {
	after   string // the Last-Event-ID it sent
	through string // for a History: the ID of the last event before its start in the log
	history bool   // ask the History for the events up to through
	gap     bool   // send the gap event, with gapID
	gapID   string
}

// place sets where in the log a subscriber with the given Last-Event-ID starts, and says what
// it needs besides. It is called with mu held, by attach, so that the choice and the
// attachment are one step.
func (r *broadcaster) place(s *subscriber, lastEventID string) resume {
	head := r.base + int64(len(r.log))
	s.next.Store(head)
	rt := r.retain
	if rt == nil || lastEventID == "" {
		return resume{}
	}
	if end, ok := rt.find(lastEventID); ok {
		s.next.Store(end)
		r.stats.Replays++
		return resume{}
	}
	if lastEventID == rt.evictedID || lastEventID == rt.beginID() && rt.evictedID == "" && !rt.historyBegin {
		// The event just before the oldest retained one, or the beginning with nothing
		// let go since: all it missed is retained.
		s.next.Store(rt.start(head))
		r.stats.Replays++
		return resume{}
	}
	if r.cfg.history != nil && lastEventID != unheldID {
		// Held at the oldest retained event until the History has answered.
		s.next.Store(rt.start(head))
		through := rt.evictedID
		if s.next.Load() == head {
			through = rt.lastID
		}
		return resume{after: lastEventID, through: through, history: true}
	}
	r.stats.Gaps++
	return resume{after: lastEventID, gap: true, gapID: rt.lastID}
}

// catchUp sends a returning subscriber what place decided it needs before the log: the events
// of the History, or the gap event. It returns false when the response must end.
func (r *broadcaster) catchUp(s *subscriber, req *http.Request, rs resume) bool {
	rs, _, ok := r.recover(req.Context(), s, rs, s.out.send)
	if !ok {
		return false
	}
	if !rs.gap {
		return true
	}
	return r.sendGap(s.out, rs.after, rs.gapID)
}

// recover sends, through send, the events of the History that rs asks for. When the History
// does not hold them either, it starts s at the live events instead and returns rs with gap
// set, and the ID of the point s now starts from (see retention.joinID). It returns false
// when the History failed or send did: the response must end, so that the client retries.
func (r *broadcaster) recover(ctx context.Context, s *subscriber, rs resume, send func([]byte) error) (resume, string, bool) {
	if !rs.history {
		return rs, "", true
	}
	found, err := r.sendHistory(ctx, rs, send)
	if err != nil {
		return rs, "", false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if found {
		r.stats.Replays++
		return rs, "", true
	}
	s.next.Store(r.base + int64(len(r.log)))
	r.stats.Gaps++
	rs.gap, rs.gapID = true, r.retain.lastID
	return rs, r.retain.joinID(), true
}

// sendGap sends the gap event, with the given data and ID, unless GapEvent("") turned it off.
// It returns false when the write failed.
func (r *broadcaster) sendGap(out *output, data, id string) bool {
	if r.cfg.gapEvent == "" {
		return true
	}
	gap, err := AppendEvent(nil, func(w EventWriter) error {
		_ = w.WriteEvent(r.cfg.gapEvent)
		_ = w.WriteData(strings.ToValidUTF8(data, "\uFFFD"))
		return w.WriteID(id)
	})
	if err != nil {
		return true
	}
	return out.send(gap) == nil
}

// historyChunk is how many bytes of History events a subscriber gathers before a write.
const historyChunk = 32 << 10

// sendHistory sends the History's events between rs.after and rs.through.
func (r *broadcaster) sendHistory(ctx context.Context, rs resume, send func([]byte) error) (bool, error) {
	var buf []byte
	found, err := r.cfg.history.EventsAfter(ctx, rs.after, rs.through, func(fn func(EventWriter) error) error {
		b, err := AppendEvent(buf, fn)
		if err != nil {
			return err
		}
		buf = b
		if len(buf) >= historyChunk {
			err = send(buf)
			buf = buf[:0]
		}
		return err
	})
	if err == nil && len(buf) > 0 {
		err = send(buf)
	}
	return found, err
}
