package redisstream

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
	httpsse "github.com/reiver/go-httpsse"
)

// historyCount is how many entries one XRANGE of a replay reads.
const historyCount = 256

// history is the [httpsse.History] of a Route: the Redis stream, read with XRANGE.
type history struct {
	client  redis.UniversalClient
	stream  string
	feed    *feed
	timeout time.Duration
}

// EventsAfter writes the entries of the stream after the one with ID after, up to through,
// or, when through is empty, up to the entry the Route's feed started after. It finds
// nothing when after is not the ID of an entry the stream holds.
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
	// Each XRANGE starts at the last entry read, inclusive, to check that it is still
	// there: an entry trimmed away while the replay reads would otherwise go unnoticed.
	first := true
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
		for _, m := range msgs[1:] {
			if !isEvent(m.Values) {
				continue
			}
			if err := write(func(w httpsse.EventWriter) error { return writeEntry(w, m.ID, m.Values) }); err != nil {
				return true, err
			}
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
