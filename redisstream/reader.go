package redisstream

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	httpsse "github.com/reiver/go-httpsse"
)

// readers holds the reading loop of each Redis client in use, so that all the Routes and
// topics of a process that use one client share one loop and one connection.
var (
	readersMu sync.Mutex
	readers   = map[redis.UniversalClient]*reader{}
)

const (
	// blockFor is how long one XREAD waits for an entry. A change of the streams read
	// (a Route made or closed) interrupts it with CLIENT UNBLOCK when the loop has a
	// connection of its own, so it bounds only how long a dead connection that gives no
	// error goes unnoticed (go-redis gives the read 10 s more) and, with a client whose
	// connection cannot be told apart (a ClusterClient or a Ring), how long a new stream
	// waits for its first read.
	blockFor = 2 * time.Second
	// pausePerSubscriber and maxPause set how long the loop waits after a read that
	// returned several entries (see batchPause).
	pausePerSubscriber = 50 * time.Microsecond
	maxPause           = 5 * time.Millisecond
	// readCount is the most entries one XREAD returns per stream.
	readCount = 512
	// retryMin and retryMax bound the wait after a failed read, which doubles from one
	// failure to the next.
	retryMin = 50 * time.Millisecond
	retryMax = 2 * time.Second
	// readerName is the name of the reading connection (CLIENT SETNAME), unless the
	// client's options set one.
	readerName = "httpsse-redisstream"
)

// reader is the reading loop of one Redis client: one goroutine that reads every stream
// that a Route of this process serves with that client, with one blocking XREAD at a time
// over one connection, and publishes each entry to the feeds of that stream. It lives
// while it has feeds.
type reader struct {
	client redis.UniversalClient // the user's, for commands other than the reading
	conn   redis.UniversalClient // the reading connection: a client of one connection, or client
	own    bool                  // conn is a client of our own, closed when the reader ends
	connID atomic.Int64          // CLIENT ID of the reading connection, 0 when unknown

	// wrongType holds the streams whose key holds another type than a stream, with when
	// that was found: they are left out of the reads (which would fail for all the
	// streams) for retryMax, then tried again. Only the loop uses it.
	wrongType map[string]time.Time

	mu      sync.Mutex
	feeds   []*feed
	gen     uint64 // counts the changes of feeds
	readGen uint64 // the gen of the feeds that the current XREAD reads

	// kick wakes the control goroutine (see control) after a change of feeds. One pending
	// wake-up stands for any number of changes: capacity 1, sent to without blocking.
	kick   chan struct{}
	cancel context.CancelFunc // ends the control goroutine's requests

	stop    chan struct{}
	done    chan struct{} // closed when the reading loop has ended
	ctlDone chan struct{} // closed when the control goroutine has ended
}

// feed is what one Route takes from the reading loop: the entries of its stream after
// the position it started at.
type feed struct {
	stream string
	local  httpsse.Route

	mu      sync.Mutex
	started bool
	start   entryID // the entry the feed started after: local holds no earlier entry
	last    entryID // the last entry published to local
	// moved is closed when start or last change, for the callers of waitPast; nil while
	// nobody waits.
	moved chan struct{}
}

// addFeed makes the reading loop of client publish the entries of f.stream to f.
func addFeed(client redis.UniversalClient, f *feed) *reader {
	readersMu.Lock()
	rd := readers[client]
	if rd == nil {
		rd = newReader(client)
		readers[client] = rd
		ctx, cancel := context.WithCancel(context.Background())
		rd.cancel = cancel
		go rd.run()
		go rd.control(ctx)
	}
	rd.mu.Lock()
	rd.feeds = append(rd.feeds, f)
	rd.gen++
	rd.mu.Unlock()
	readersMu.Unlock()
	rd.poke()
	return rd
}

// removeFeed stops publishing to f; the reader ends, and its connection is closed, with
// its last feed.
func (rd *reader) removeFeed(f *feed) {
	readersMu.Lock()
	rd.mu.Lock()
	for i, g := range rd.feeds {
		if g == f {
			rd.feeds = append(rd.feeds[:i], rd.feeds[i+1:]...)
			break
		}
	}
	rd.gen++
	last := len(rd.feeds) == 0
	rd.mu.Unlock()
	if last {
		delete(readers, rd.client)
	}
	readersMu.Unlock()
	if !last {
		rd.poke()
		return
	}
	close(rd.stop)
	rd.cancel()
	<-rd.ctlDone
	if rd.own {
		// Unblocked, the XREAD returns and the loop ends. The loop may be between two reads,
		// or Redis unreachable: then closing the connection ends the XREAD at once.
		rd.unblock()
		t := time.NewTimer(200 * time.Millisecond)
		select {
		case <-rd.done:
		case <-t.C:
			_ = rd.conn.Close()
		}
		t.Stop()
	}
	<-rd.done
}

func newReader(client redis.UniversalClient) *reader {
	rd := &reader{
		client:  client,
		conn:    client,
		kick:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
		ctlDone: make(chan struct{}),
	}
	c, ok := client.(*redis.Client)
	if !ok {
		return rd
	}
	// A connection of the loop's own, so that its blocking reads take nothing from the
	// client's pool, and so that CLIENT UNBLOCK can tell it apart.
	opt := *c.Options()
	opt.PoolSize = 1
	opt.MinIdleConns = 0
	opt.MaxIdleConns = 1
	opt.MaxActiveConns = 1
	opt.PipelinePoolSize = -1 // pipelines over that connection too, not a pool of their own
	// NewClient sets the processor of push notifications in its options; the loop's client
	// makes its own, rather than register its handlers again in the user's (which go-redis
	// refuses, and logs).
	opt.PushNotificationProcessor = nil
	if opt.ClientName == "" {
		opt.ClientName = readerName
	}
	onConnect := opt.OnConnect
	opt.OnConnect = func(ctx context.Context, cn *redis.Conn) error {
		rd.connID.Store(0)
		if onConnect != nil {
			if err := onConnect(ctx, cn); err != nil {
				return err
			}
		}
		if id, err := cn.ClientID(ctx).Result(); err == nil {
			rd.connID.Store(id)
		}
		return nil
	}
	rd.conn = redis.NewClient(&opt)
	rd.own = true
	return rd
}

// poke tells the control goroutine that the feeds changed.
func (rd *reader) poke() {
	select {
	case rd.kick <- struct{}{}:
	default: // a wake-up is pending already, and will see this change
	}
}

// control is the goroutine that answers the changes of feeds, one batch at a time, so that
// any number of them at once (a hundred subscribers arriving on a hundred new topics) costs
// one request at a time rather than a connection each. With a reading connection of its
// own, it makes the reading loop take the new list (see wake), and the loop looks up where
// the new feeds start over that connection, all in one round trip, before its next XREAD.
// Otherwise (a ClusterClient or a Ring, whose reads cannot be interrupted) it looks them
// up itself, in one round trip through the client.
func (rd *reader) control(ctx context.Context) {
	defer close(rd.ctlDone)
	for {
		select {
		case <-rd.stop:
			return
		case <-rd.kick:
		}
		if rd.own {
			rd.wake()
			continue
		}
		rd.mu.Lock()
		var unstarted []*feed
		for _, f := range rd.feeds {
			if !f.isStarted() {
				unstarted = append(unstarted, f)
			}
		}
		rd.mu.Unlock()
		if len(unstarted) > 0 {
			// On failure the reading loop looks them up itself, and retries.
			lctx, cancel := context.WithTimeout(ctx, DefaultPublishTimeout)
			_ = startFeeds(lctx, rd.client, unstarted)
			cancel()
		}
	}
}

// wake makes the loop read the feeds as they are now: when its XREAD is blocked with an
// older list, it interrupts it with CLIENT UNBLOCK. Without a connection of its own the
// loop takes the new list at its next read, within blockFor. Only the control goroutine
// calls it.
func (rd *reader) wake() {
	if !rd.own {
		return
	}
	rd.mu.Lock()
	gen := rd.gen
	rd.mu.Unlock()
	// The loop may be between taking the list and blocking; then UNBLOCK finds nothing
	// blocked, and is tried again a few times.
	for range 100 {
		rd.mu.Lock()
		caught := rd.readGen >= gen
		rd.mu.Unlock()
		if caught || rd.stopped() || rd.unblock() {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// unblock ends the XREAD of the loop, if it is blocked in one, and reports whether it was,
// or whether it cannot be told.
func (rd *reader) unblock() bool {
	id := rd.connID.Load()
	if id == 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	n, err := rd.client.ClientUnblock(ctx, id).Result()
	return err != nil || n == 1
}

func (rd *reader) stopped() bool {
	select {
	case <-rd.stop:
		return true
	default:
		return false
	}
}

// run is the reading loop.
func (rd *reader) run() {
	defer close(rd.done)
	if rd.own {
		defer rd.conn.Close()
	}
	ctx := context.Background()
	retry := time.Duration(0)
	var args redis.XReadArgs
	for !rd.stopped() {
		rd.mu.Lock()
		rd.readGen = rd.gen
		feeds := append([]*feed(nil), rd.feeds...)
		rd.mu.Unlock()

		n, err := rd.read(ctx, feeds, &args)
		if err == nil {
			retry = 0
			if n > 1 {
				// Entries arrive faster than one at a time: let the next ones gather, so
				// that they reach the subscribers in one write each rather than one per
				// entry. Under a light load, reads return one entry and nothing waits.
				time.Sleep(batchPause(feeds))
			}
			continue
		}
		if rd.findWrongType(ctx, feeds, err) {
			continue
		}
		// Redis is unreachable, restarting, or the connection was cut: wait, then read
		// again from the last entry each feed has, so nothing the stream holds is lost.
		retry = min(max(2*retry, retryMin), retryMax)
		t := time.NewTimer(retry)
		select {
		case <-rd.stop:
		case <-t.C:
		}
		t.Stop()
	}
}

// read does one XREAD for feeds and publishes what it returns.
func (rd *reader) read(ctx context.Context, feeds []*feed, args *redis.XReadArgs) (int, error) {
	// One position per stream: the earliest of its feeds (a process may serve one stream
	// with several Routes, each started at its own position).
	var read, unstarted []*feed
	for _, f := range feeds {
		if at, ok := rd.wrongType[f.stream]; ok {
			if time.Since(at) < retryMax {
				continue
			}
			delete(rd.wrongType, f.stream)
		}
		read = append(read, f)
		if !f.isStarted() {
			unstarted = append(unstarted, f)
		}
	}
	if len(unstarted) > 0 {
		// New feeds (or, without a connection of our own, feeds that the control goroutine
		// has not started yet): look them up here, over the reading connection.
		if err := startFeeds(ctx, rd.conn, unstarted); err != nil {
			return 0, err
		}
	}
	pos := map[string]entryID{}
	for _, f := range read {
		last := f.position()
		if p, ok := pos[f.stream]; !ok || last.less(p) {
			pos[f.stream] = last
		}
	}
	if len(pos) == 0 {
		return 0, errNothingToRead
	}
	streams := args.Streams[:0]
	for s := range pos {
		streams = append(streams, s)
	}
	for _, s := range streams[:len(pos)] {
		streams = append(streams, pos[s].String())
	}
	*args = redis.XReadArgs{Streams: streams, Count: readCount, Block: blockFor}
	res, err := rd.conn.XRead(ctx, args).Result()
	if errors.Is(err, redis.Nil) { // timed out, or unblocked
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range res {
		n += len(s.Messages)
		for _, f := range feeds {
			if f.stream == s.Stream {
				f.publish(s.Messages)
			}
		}
	}
	return n, nil
}

// batchPause returns how long to wait, after a read that returned several entries, for
// more to gather: the more subscribers, the more a write per entry costs them, and the more
// it is worth writing several entries at once. An earlier cmd/bench, at 100 subscribers
// per process, measured 6,800 events/s with a pause of 1 ms and 14,000 to 15,000 with 5 ms;
// a pause of 5 ms with a single subscriber raised the median latency at 1,000 events/s from
// 0.2 to 3 ms.
func batchPause(feeds []*feed) time.Duration {
	subscribers := 0
	for _, f := range feeds {
		subscribers += httpsse.StatsOf(f.local).Subscribers
	}
	return min(time.Duration(subscribers)*pausePerSubscriber, maxPause)
}

// errNothingToRead is what read returns when every stream is left out.
var errNothingToRead = errors.New("httpsse: no stream to read")

// findWrongType looks, after a read failed with err, for the streams whose keys hold
// another type than a stream (a reply WRONGTYPE to the read), so that they are left out of
// the next reads and the others go on. It reports whether it found any.
func (rd *reader) findWrongType(ctx context.Context, feeds []*feed, err error) bool {
	var reply redis.Error
	if !errors.As(err, &reply) || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
		return false
	}
	found := false
	for _, f := range feeds {
		if _, ok := rd.wrongType[f.stream]; !ok {
			typ, err := rd.conn.Type(ctx, f.stream).Result()
			if err != nil || typ == "stream" || typ == "none" {
				continue
			}
			if rd.wrongType == nil {
				rd.wrongType = map[string]time.Time{}
			}
			rd.wrongType[f.stream] = time.Now()
			found = true
		}
		// A feed that could not start at the stream's end (there is no stream) starts
		// at its beginning: whatever entries it gets later are new.
		f.mu.Lock()
		if !f.started {
			f.started = true
			f.signal()
		}
		f.mu.Unlock()
	}
	return found
}

// startFeeds starts each feed that has not started at the end of its stream as it is
// now: it asks Redis for the last two entries of every stream in one round trip (a
// pipeline), and hands them to begin. It returns the first error, leaving unstarted the
// feeds whose stream it could not look up.
func startFeeds(ctx context.Context, c redis.UniversalClient, feeds []*feed) error {
	pipe := c.Pipeline()
	cmds := map[string]*redis.XMessageSliceCmd{}
	for _, f := range feeds {
		if _, ok := cmds[f.stream]; !ok {
			cmds[f.stream] = pipe.XRevRangeN(ctx, f.stream, "+", "-", 2)
		}
	}
	_, _ = pipe.Exec(ctx) // each command holds its own error
	var first error
	for _, f := range feeds {
		msgs, err := cmds[f.stream].Result()
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		f.begin(msgs)
	}
	return first
}

// isStarted reports whether the feed knows where it starts.
func (f *feed) isStarted() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.started
}

// begin starts the feed after newest, the last entries of its stream (the last one first),
// unless it has started.
//
// The feed's Route then holds the newest entry, published to it before any subscriber is
// attached (ServeHTTP waits for the feed to start), and starts after the one before it.
// So the Route's last event is the stream's, as it would be in a process that had read the
// stream all along: a returning subscriber whose Last-Event-ID the stream no longer holds
// gets a gap event with that entry's ID (the last event before its live events, where it
// must resume), not an empty one. The events before the newest are the History's.
func (f *feed) begin(newest []redis.XMessage) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started {
		return
	}
	var start, last entryID
	if len(newest) > 0 {
		if id, ok := parseEntryID(newest[0].ID); ok {
			start, last = id, id
		}
		var before entryID
		if len(newest) > 1 {
			before, _ = parseEntryID(newest[1].ID)
		}
		// Not when subscribers are attached (they came while Redis did not answer, and
		// their live events begin after the newest entry), nor an entry that is not an
		// event of this package. Published under mu, which PublishEvent on the Route
		// (made not to wait for subscribers) never takes.
		m := newest[0]
		if last != (entryID{}) && isEvent(m.Values) && httpsse.StatsOf(f.local).Subscribers == 0 {
			err := f.local.PublishEvent(func(w httpsse.EventWriter) error { return writeEntry(w, m.ID, m.Values) })
			if err == nil {
				start = before
			}
		}
	}
	f.started, f.start, f.last = true, start, last
	f.signal()
}

// position returns the last entry published to local.
func (f *feed) position() entryID {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

// publish publishes to local each entry after the last one it has. An entry that is not
// an event of this package is skipped.
func (f *feed) publish(msgs []redis.XMessage) {
	for _, m := range msgs {
		id, ok := parseEntryID(m.ID)
		if !ok {
			continue
		}
		// Only this goroutine changes last, so it may be read, then set, under two locks.
		if !f.position().less(id) {
			continue
		}
		_ = f.local.PublishEvent(func(w httpsse.EventWriter) error { return writeEntry(w, m.ID, m.Values) })
		// Set after the publish: waitPast's callers count on local holding the entry.
		f.mu.Lock()
		f.last = id
		f.mu.Unlock()
	}
	f.mu.Lock()
	f.signal()
	f.mu.Unlock()
}

// signal wakes the callers of waitPast. It is called with mu held.
func (f *feed) signal() {
	if f.moved != nil {
		close(f.moved)
		f.moved = nil
	}
}

// waitPast waits until the feed has started, and, when id is an entry ID, until it has
// published that entry, or until ctx is done. It returns the feed's start.
func (f *feed) waitPast(ctx context.Context, id string) (start entryID, err error) {
	target, isEntry := parseEntryID(id)
	for {
		f.mu.Lock()
		if f.started && (!isEntry || !f.last.less(target)) {
			start := f.start
			f.mu.Unlock()
			return start, nil
		}
		if f.moved == nil {
			f.moved = make(chan struct{})
		}
		moved := f.moved
		f.mu.Unlock()
		select {
		case <-moved:
		case <-ctx.Done():
			return entryID{}, ctx.Err()
		}
	}
}
