package redisstream

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	httpsse "github.com/reiver/go-httpsse"
)

// historyCount is how many entries one XRANGE of a replay reads.
const historyCount = 256

// beginID is the ID of the point before a stream's first entry: Redis gives no entry the
// ID 0-0 (XADD refuses it), and every entry comes after it.
const beginID = "0-0"

// history is the [httpsse.History] of a Route: the Redis stream, read with XRANGE.
type history struct {
	client  redis.UniversalClient
	stream  string
	feed    *feed
	timeout time.Duration
}

// BeginID returns "0-0", the point before the stream's first entry, the same in every
// process: [httpsse.Topics.Serve] gives it as the position of a subscriber that joined the
// topic before this process had any of its events, and a reconnection with it, to any
// process, receives every entry of the stream unless the stream has lost one (see
// EventsAfter).
func (h *history) BeginID() string { return beginID }

// EventsAfter writes the entries of the stream after the one with ID after, up to through,
// or, when through is empty, up to the entry the Route's feed started after. It finds
// nothing when after is not the ID of an entry the stream holds, except for "0-0" (see
// BeginID): then it writes the entries from the stream's first one, and finds nothing when
// the stream has lost any entry (trimmed or deleted).
func (h *history) EventsAfter(ctx context.Context, after, through string, write func(func(httpsse.EventWriter) error) error) (bool, error) {
	from, ok := parseEntryID(after)
	if !ok {
		return false, nil // not an entry ID: an ID of some other Route
	}
	ctx, cancel := context.WithTimeout(ctx, h.timeout)
	defer cancel()
	var end entryID
	if through == "" {
		start, err := h.feed.waitPast(ctx, "")
		if err != nil {
			return false, fmt.Errorf("httpsse: reading stream %q: %w", h.stream, err)
		}
		end = start
	} else if end, ok = parseEntryID(through); !ok {
		return false, fmt.Errorf("httpsse: reading stream %q: the Route's event ID %q is not an entry ID", h.stream, through)
	}
	if end.less(from) {
		// Further than this process has published: not known here (ServeHTTP waits for
		// the reading to pass such an ID, so this happens only when it could not).
		return false, nil
	}
	first := true
	if from == (entryID{}) {
		msgs, whole, err := h.fromBeginning(ctx, end)
		if err != nil || !whole {
			return false, err
		}
		if err := writeEntries(msgs, write); err != nil {
			return true, err
		}
		if len(msgs) < historyCount {
			return true, nil
		}
		if from, ok = parseEntryID(msgs[len(msgs)-1].ID); !ok {
			return true, fmt.Errorf("httpsse: reading stream %q: malformed entry ID %q", h.stream, msgs[len(msgs)-1].ID)
		}
		first = false
	}
	// Each XRANGE starts at the last entry read, inclusive, to check that it is still
	// there: an entry trimmed away while the replay reads would otherwise go unnoticed.
	for {
		msgs, err := h.client.XRangeN(ctx, h.stream, from.String(), end.String(), historyCount).Result()
		if err != nil {
			return !first, fmt.Errorf("httpsse: reading stream %q: %w", h.stream, err)
		}
		if len(msgs) == 0 || msgs[0].ID != from.String() {
			if first {
				return false, nil
			}
			return true, fmt.Errorf("httpsse: reading stream %q: entries after %s were trimmed while being read", h.stream, from)
		}
		first = false
		if err := writeEntries(msgs[1:], write); err != nil {
			return true, err
		}
		if len(msgs) < historyCount {
			return true, nil
		}
		last, ok := parseEntryID(msgs[len(msgs)-1].ID)
		if !ok {
			return true, fmt.Errorf("httpsse: reading stream %q: malformed entry ID %q", h.stream, msgs[len(msgs)-1].ID)
		}
		from = last
	}
}

// fromBeginning reads the first entries of the stream, up to end, and reports whether they
// are its first ones ever: whether the stream has never lost an entry, which XINFO STREAM
// tells (entries-added, the entries ever appended, equals length; Redis 7.0 and later),
// taken in one transaction with the XRANGE so that nothing is trimmed in between. A stream
// that does not exist has lost nothing that this package can tell: Redis deletes no
// stream by itself (a stream emptied by trimming stays, with its count of entries added).
func (h *history) fromBeginning(ctx context.Context, end entryID) ([]redis.XMessage, bool, error) {
	var info *redis.XInfoStreamCmd
	var rng *redis.XMessageSliceCmd
	_, _ = h.client.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		info = pipe.XInfoStream(ctx, h.stream)
		rng = pipe.XRangeN(ctx, h.stream, "-", end.String(), historyCount)
		return nil
	}) // each command holds its own error
	st, err := info.Result()
	if err != nil && strings.Contains(err.Error(), "no such key") {
		return nil, true, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("httpsse: reading stream %q: %w", h.stream, err)
	}
	msgs, err := rng.Result()
	if err != nil {
		return nil, false, fmt.Errorf("httpsse: reading stream %q: %w", h.stream, err)
	}
	return msgs, st.EntriesAdded == st.Length, nil
}

// writeEntries writes the entries that are events of this package.
func writeEntries(msgs []redis.XMessage, write func(func(httpsse.EventWriter) error) error) error {
	for _, m := range msgs {
		if !isEvent(m.Values) {
			continue
		}
		if err := write(func(w httpsse.EventWriter) error { return writeEntry(w, m.ID, m.Values) }); err != nil {
			return err
		}
	}
	return nil
}
