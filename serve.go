package httpsse

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"runtime"
	"sync"
)

// MaxServeTopics is how many topics [Topics.Serve] serves on one connection at most.
const MaxServeTopics = 32

// Serve serves one subscriber of every named topic over one response, so that a page needs
// one EventSource for its user's notifications, a room and a document, not one for each (a
// browser gives a page six HTTP/1.1 connections per host, for all its tabs together). The
// application decides the names, after its own authorization; Serve serves them:
//
//	http.HandleFunc("/events", func(w http.ResponseWriter, r *http.Request) {
//		user := userOf(r) // the application's own
//		topics.Serve(w, r, "user/"+user.ID, "room/"+r.FormValue("room"))
//	})
//
// The subscriber receives every event published to any of the topics while it is connected,
// exactly once, with its type and data unchanged; each topic's events arrive in that topic's
// publish order, and nothing orders events of different topics. A name given twice counts
// once. Each topic is made on first use, as [Topics.Route] makes it, and is not freed while
// the subscriber is there. Each event is still encoded once per topic, however many
// subscribers read it, and a subscriber of several topics costs one goroutine, as a
// subscriber of one does: it waits for the topics' publishes on their Routes' own channels.
//
// With [Replay], every event the subscriber receives carries one ID that says how far it got
// in every topic of the request, including those from which nothing has arrived yet (for
// those, the point where it joined them), and the response starts with a block that sets it
// (a block with an ID and no data, which browsers do not dispatch). A reconnection with that
// Last-Event-ID, as EventSource makes, and the same names in any order, receives for each
// topic exactly the events published after that point, then the live ones. A topic whose
// point is no longer held gets the gap event (see Replay), whose data is the topic's name,
// then its live events; the other topics resume exactly. A topic that the earlier request did
// not have starts with its live events. An ID of another form (unknown, malformed, or from a
// Route of one topic), or one that names none of the request's topics, counts as unknown for
// every topic. The ID replaces the topics' own
// event IDs in this response; the form is described in docs/design.md, and it stays under
// about 1 KiB at MaxServeTopics topics when the topics' IDs are the Route's own.
//
// A request with no topic, or with more than [MaxServeTopics], is answered 400 Bad Request
// with the reason, and nothing is attached. When a topic cannot be made because the Topics
// holds [MaxTopics] topics, all with subscribers, Serve answers 503 Service Unavailable;
// after [Topics.Close] it answers 204 No Content. Otherwise it streams as [Route]'s ServeHTTP
// does (headers at once, write deadlines, [KeepAlive]), and returns when the client goes
// away, when it is dropped by any of its topics (too far behind, or a write timed out), or
// when the Topics is closed, after sending what was already published.
func (t *Topics) Serve(w http.ResponseWriter, req *http.Request, topics ...string) {
	b := t.open(w, req, topics)
	if b == nil {
		return
	}
	defer b.end(req)
	if b.catchUp(req.Context()) {
		b.stream(req.Context().Done())
	}
}

// open attaches a subscriber to each topic, with the response's headers ready to go, or
// answers the request and returns nil when it cannot. It is a function of its own, like
// the waits, to keep Serve's frame small: Serve's frame is on the stack for as long as the
// stream lasts, and a handler's goroutine whose stack has grown past 4 KiB keeps the larger
// stack while it waits unless what it uses then is under a quarter of it.
//
//go:noinline
func (t *Topics) open(w http.ResponseWriter, req *http.Request, topics []string) *bundle {
	names := distinct(topics)
	switch {
	case len(names) == 0:
		http.Error(w, "httpsse: no topic to serve", http.StatusBadRequest)
		return nil
	case len(names) > MaxServeTopics:
		http.Error(w, fmt.Sprintf("httpsse: %d topics asked for on one connection; at most %d are served", len(names), MaxServeTopics), http.StatusBadRequest)
		return nil
	}
	b, from, status, err := t.resolve(req, names)
	if b != nil {
		first := b.routes[0].cfg
		b.out.open(w, req, first.writeTimeout, first.keepAlive)
		if status, err = t.attachAll(b, req, from); status == 0 {
			return b
		}
	}
	if err != nil {
		http.Error(w, err.Error(), status)
	} else {
		w.WriteHeader(status)
	}
	return nil
}

// distinct returns names without the repeated ones, in their order.
func distinct(names []string) []string {
	out := make([]string, 0, len(names))
	for i, name := range names {
		seen := false
		for _, prev := range names[:i] {
			if prev == name {
				seen = true
				break
			}
		}
		if !seen {
			out = append(out, name)
		}
	}
	return out
}

// bundle is one response of Topics.Serve: a subscriber of each of its topics' Routes, all
// writing to one output.
type bundle struct {
	names  []string
	routes []*broadcaster
	subs   []*subscriber // subs[i] is the subscriber of routes[i]
	out    *output
	id     *topicsID            // the response's Last-Event-ID; nil without Replay
	joins  []string             // the point each subscriber joined its topic's live events at
	buf    *[]byte              // what send has gathered, from sendBuffers; nil between rounds
	waits  []<-chan struct{}    // the channels of the topics' next publishes, see stream
	cases  []reflect.SelectCase // wait's, reused
}

// resolve finds the Route of each topic, and where the request asks to start in each. It
// returns a nil bundle, and the status to answer with the error to say, when it cannot.
func (t *Topics) resolve(req *http.Request, names []string) (*bundle, []topicPosition, int, error) {
	from := topicPositions(req.Header.Get("Last-Event-ID"), names)
	b := &bundle{
		names:  names,
		routes: make([]*broadcaster, len(names)),
		subs:   make([]*subscriber, len(names)),
		out:    &output{},
		joins:  make([]string, len(names)),
	}
	// Routes of another kind may each take a round trip to get ready (see NewTopicsOf):
	// those are readied at once, each in a goroutine that ends before resolve returns.
	type resolved struct {
		r      *broadcaster
		status int
		err    error
	}
	found := make([]resolved, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		route := t.Route(name)
		if _, ok := route.(localRoute); ok && len(names) > 1 {
			wg.Go(func() {
				r, status, err := localOf(req.Context(), name, route, from[i])
				found[i] = resolved{r, status, err}
			})
			continue
		}
		r, status, err := localOf(req.Context(), name, route, from[i])
		found[i] = resolved{r, status, err}
	}
	wg.Wait()
	subs := make([]subscriber, len(names))
	for i, f := range found {
		if f.r == nil {
			return nil, nil, f.status, f.err
		}
		b.routes[i], b.subs[i] = f.r, &subs[i]
		subs[i].out = b.out
	}
	return b, from, 0, nil
}

// attachAll attaches the bundle's subscribers, each to its topic, and sets the response's ID.
// When it cannot, it detaches those it attached and returns the status to answer and the
// error to say.
func (t *Topics) attachAll(b *bundle, req *http.Request, from []topicPosition) (int, error) {
	names := b.names
	for i, name := range names {
		at := from[i].id
		if !from[i].listed {
			at = ""
		}
		if !b.routes[i].attach(b.subs[i], at, &b.joins[i]) {
			// Freed since local returned it (idle, or to make room): once more, with
			// the topic made anew.
			r, status, err := t.local(req.Context(), name, from[i])
			if r == nil || !r.attach(b.subs[i], at, &b.joins[i]) {
				b.detach(i)
				if r != nil {
					status, err = http.StatusServiceUnavailable, fmt.Errorf("httpsse: topic %q closed while attaching", name)
				}
				if t.isClosed() {
					status, err = http.StatusNoContent, nil
				}
				return status, err
			}
			b.routes[i] = r
		}
	}
	if b.routes[0].cfg.replay > 0 {
		b.id = newTopicsID(names)
		for i := range names {
			if from[i].listed {
				b.id.set(i, []byte(from[i].id))
			} else {
				b.id.set(i, []byte(b.joins[i]))
			}
		}
	}
	return 0, nil
}

func (t *Topics) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// localRoute is a Route of another kind that Topics.Serve can serve (see NewTopicsOf).
type localRoute interface {
	Local(ctx context.Context, lastEventID string) (Route, error)
}

// local returns the Route made by NewRoute that serves the topic's subscribers here, or nil
// with the status and error to answer.
func (t *Topics) local(ctx context.Context, name string, from topicPosition) (*broadcaster, int, error) {
	return localOf(ctx, name, t.Route(name), from)
}

// localOf is local for the topic's Route.
func localOf(ctx context.Context, name string, route Route, from topicPosition) (*broadcaster, int, error) {
	switch r := route.(type) {
	case *broadcaster:
		if r.isClosed() {
			return nil, http.StatusNoContent, nil
		}
		return r, 0, nil
	case refusedTopic:
		return nil, http.StatusServiceUnavailable, r.err()
	case localRoute:
		id := from.id
		if id == unheldID {
			id = ""
		}
		l, err := r.Local(ctx, id)
		if errors.Is(err, ErrClosed) {
			return nil, http.StatusNoContent, nil
		}
		if err != nil {
			return nil, http.StatusServiceUnavailable, fmt.Errorf("httpsse: topic %q: %w", name, err)
		}
		if b, ok := l.(*broadcaster); ok {
			return b, 0, nil
		}
		route = l
	}
	return nil, http.StatusInternalServerError, fmt.Errorf("httpsse: topic %q: a Route of type %T cannot be served with other topics", name, route)
}

// topicPosition is where a request asks to start in one topic.
type topicPosition struct {
	listed bool   // the request's Last-Event-ID names the topic
	id     string // the topic's event ID from there, or unheldID
}

// topicPositions reads a request's Last-Event-ID for each of its topics.
func topicPositions(lastEventID string, names []string) []topicPosition {
	from := make([]topicPosition, len(names))
	if lastEventID == "" {
		return from
	}
	ids, ok := parseTopicsID(lastEventID)
	named := false
	for i, name := range names {
		id, listed := ids[topicKey(name)]
		from[i] = topicPosition{listed: listed, id: id}
		named = named || listed
	}
	// An ID that names none of the topics is not one this request's client was given (a
	// reconnection asks for the same topics): nothing is known of where it was.
	ok = ok && named
	for i, f := range from {
		switch {
		case !ok:
			from[i] = topicPosition{listed: true, id: unheldID}
		case f.listed && f.id == "":
			from[i].id = unheldID
		}
	}
	return from
}

// catchUp sends the headers, each topic's History events or gap event, then the response's
// ID. It returns false when the response must end.
func (b *bundle) catchUp(ctx context.Context) bool {
	if b.caughtUp() {
		// Nothing but the ID after the headers: both from the header writer (see
		// sendHeaders), so that this goroutine's stack stays small while it waits.
		return b.routes[0].sendHeaders(b.subs[0], b.idBlock()) == nil
	}
	if b.routes[0].sendHeaders(b.subs[0], nil) != nil {
		return false
	}
	for i, s := range b.subs {
		if s.resume == (resume{}) {
			continue
		}
		rs, join, ok := b.routes[i].recover(ctx, s, s.resume, func(p []byte) error { return b.send(i, p) })
		if b.flush() != nil || !ok {
			return false
		}
		if !rs.gap {
			continue
		}
		if join == "" {
			join = b.joins[i]
		}
		if b.id == nil {
			continue
		}
		b.id.set(i, []byte(join))
		if !b.routes[i].sendGap(b.out, b.names[i], b.id.String()) {
			return false
		}
	}
	return b.out.send(b.idBlock()) == nil
}

// caughtUp reports whether no topic needs History events or a gap event.
func (b *bundle) caughtUp() bool {
	for _, s := range b.subs {
		if s.resume != (resume{}) {
			return false
		}
	}
	return true
}

// idBlock returns the block that sets the response's ID, or nil without Replay.
func (b *bundle) idBlock() []byte {
	if b.id == nil {
		return nil
	}
	return append(b.id.appendTo([]byte("id: ")), "\n\n"...)
}

// stream sends the topics' events as they are published, until the client is gone, a topic
// drops the subscriber, or every topic is closed.
func (b *bundle) stream(gone <-chan struct{}) {
	done := make([]bool, len(b.subs))
	open := len(b.subs)
	for {
		b.waits = b.waits[:0]
		sent := false
		for i, s := range b.subs {
			if done[i] {
				continue
			}
			s.busy.Store(true)
			p, published, ok := b.routes[i].take(s)
			switch {
			case !ok && s.dropped.Load():
				return
			case !ok:
				s.busy.Store(false)
				done[i] = true
				open--
			case len(p) > 0:
				if b.send(i, p) != nil {
					return
				}
				sent = true
			default:
				s.busy.Store(false)
				b.waits = append(b.waits, published)
			}
		}
		if b.flush() != nil {
			return
		}
		switch {
		case open == 0:
			return
		case sent:
			continue // take each topic again before waiting
		case b.out.due() && !b.keepAlive():
			return
		}
		if len(b.waits) == 1 && !wait(b.waits[0], gone) || len(b.waits) > 1 && !b.waitAny(gone) {
			return
		}
		runtime.Gosched() // see broadcaster.ServeHTTP
	}
}

// waitAny waits until one of the topics in b.waits publishes, or gone is closed, and
// reports whether a topic published. Like wait, it is a function of its own so that the
// select's frames are on the stack only while waiting.
//
//go:noinline
func (b *bundle) waitAny(gone <-chan struct{}) bool {
	cases := b.cases[:0]
	for _, c := range b.waits {
		cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(c)})
	}
	cases = append(cases, reflect.SelectCase{Dir: reflect.SelectRecv, Chan: reflect.ValueOf(gone)})
	chosen, _, _ := reflect.Select(cases)
	clear(cases) // they hold the channels
	b.cases = cases[:0]
	return chosen != len(cases)-1
}

func (b *bundle) keepAlive() bool {
	for _, s := range b.subs {
		s.busy.Store(true)
	}
	err := b.out.send(keepAliveComment)
	for _, s := range b.subs {
		s.busy.Store(false)
	}
	return err == nil
}

// send writes p, bytes of topic i's log (whole blocks), with the response's ID in place of
// each event's own: the ID field is added at the end of the event, where, being the last,
// it is the one the client keeps, and where a connection cut before the event's blank line
// leaves the client with the ID of the event before. Blocks of comments alone go as they are.
//
// With Replay the events and their IDs are gathered in a buffer of the pool (b.buf), which
// goes out every maxWrite bytes and when flush is called: once per round of the topics, so
// that a burst, over any number of topics, goes out in as few writes as a Route's
// subscriber makes. An event larger than maxWrite goes out from the log without a copy.
func (b *bundle) send(i int, p []byte) error {
	if b.id == nil {
		return b.out.send(p)
	}
	if b.buf == nil {
		b.buf = sendBuffers.Get().(*[]byte)
	}
	buf := *b.buf
	defer func() { *b.buf = buf }()
	for at := 0; at < len(p); {
		end := bytes.Index(p[at:], []byte("\n\n"))
		if end < 0 {
			break // not a whole block: the log holds none
		}
		end += at + 2
		block := p[at:end]
		at = end
		id, ok := eventID(block)
		if !ok {
			buf = append(buf, block...)
			continue
		}
		b.id.set(i, id)
		if len(block) > maxWrite {
			if err := b.write(&buf); err != nil {
				return err
			}
			if err := b.out.send(block[:len(block)-1]); err != nil {
				return err
			}
		} else {
			buf = append(buf, block[:len(block)-1]...)
		}
		buf = append(b.id.appendTo(append(buf, "id: "...)), "\n\n"...)
		if len(buf) >= maxWrite {
			if err := b.write(&buf); err != nil {
				return err
			}
		}
	}
	return nil
}

// write sends what buf holds and empties it.
func (b *bundle) write(buf *[]byte) error {
	if len(*buf) == 0 {
		return nil
	}
	err := b.out.send(*buf)
	*buf = (*buf)[:0]
	return err
}

// flush sends what send has gathered, and gives its buffer back to the pool.
func (b *bundle) flush() error {
	if b.buf == nil {
		return nil
	}
	err := b.write(b.buf)
	if cap(*b.buf) <= 4*maxWrite {
		sendBuffers.Put(b.buf)
	}
	b.buf = nil
	return err
}

// sendBuffers are the buffers that send gathers events in, shared by all subscribers: one
// is in use only while a subscriber writes.
var sendBuffers = sync.Pool{New: func() any {
	b := make([]byte, 0, 16<<10)
	return &b
}}

// detach detaches the first n subscribers.
func (b *bundle) detach(n int) {
	for i := range n {
		b.routes[i].detach(b.subs[i])
	}
}

// end detaches every subscriber when Serve returns, and reports a drop as a Route's
// subscriber does, once.
func (b *bundle) end(req *http.Request) {
	b.detach(len(b.subs))
	b.out.end()
	for i, r := range b.routes {
		if err := r.dropReason(b.subs[i]); err != nil && r.cfg.onDrop != nil {
			r.cfg.onDrop(req, err)
			return
		}
	}
}
