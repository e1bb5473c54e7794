package redisstream

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	httpsse "github.com/reiver/go-httpsse"
)

// entryField is the field of a Redis stream entry that holds the event: its lines in the
// wire format of server-sent events, without the id, which is the entry's ID.
const entryField = "sse"

// errIDFromRedis is what WriteID returns on a Route of this package.
var errIDFromRedis = errors.New("httpsse: WriteID on a redisstream Route: the event's ID is the ID Redis gives its stream entry")

// idRefuser is the EventWriter a publisher's function receives: the root encoder, except
// that it refuses WriteID.
type idRefuser struct{ httpsse.EventWriter }

func (idRefuser) WriteID(string) error { return errIDFromRedis }

// encodeEvent runs fn and returns the event's fields, one per line, each line ending in LF,
// without the blank line that ends the event; nil when fn wrote no field.
func encodeEvent(fn func(httpsse.EventWriter) error) ([]byte, error) {
	b, err := httpsse.AppendEvent(nil, func(w httpsse.EventWriter) error { return fn(idRefuser{w}) })
	if err != nil {
		return nil, err
	}
	return b[:len(b)-1], nil
}

// commentOnly reports whether the fields are all comments, as a heartbeat's are.
func commentOnly(fields []byte) bool {
	for line := range bytes.Lines(fields) {
		if line[0] != ':' {
			return false
		}
	}
	return true
}

// writeFields writes the fields that encodeEvent made through w. They are read back from
// Redis, where anything may have written them, so a line that encodeEvent cannot have made
// is an error.
func writeFields(w httpsse.EventWriter, fields string) error {
	for fields != "" {
		line, rest, _ := strings.Cut(fields, "\n")
		fields = rest
		var err error
		switch {
		case line == "data:":
			err = w.WriteData("")
		case strings.HasPrefix(line, "data: "):
			err = w.WriteData(line[len("data: "):])
		case line == ":":
			err = w.WriteComment("")
		case strings.HasPrefix(line, ": "):
			err = w.WriteComment(line[len(": "):])
		case strings.HasPrefix(line, "event: "):
			err = w.WriteEvent(line[len("event: "):])
		case strings.HasPrefix(line, "retry: "):
			ms, perr := strconv.ParseInt(line[len("retry: "):], 10, 64)
			if perr != nil || ms < 0 {
				return fmt.Errorf("httpsse: stream entry has a bad retry line %q", line)
			}
			err = w.WriteRetry(time.Duration(ms) * time.Millisecond)
		default:
			return fmt.Errorf("httpsse: stream entry has an unknown line %q", line)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeEntry writes a stream entry as an event, with the entry's ID as its ID.
func writeEntry(w httpsse.EventWriter, id string, values map[string]interface{}) error {
	fields, ok := values[entryField].(string)
	if !ok {
		return fmt.Errorf("httpsse: stream entry %s has no %q field", id, entryField)
	}
	if err := writeFields(w, fields); err != nil {
		return fmt.Errorf("%w (entry %s)", err, id)
	}
	return w.WriteID(id)
}

// isEvent reports whether a stream entry holds an event written by this package. Entries
// that other programs append to the stream are skipped.
func isEvent(values map[string]interface{}) bool {
	fields, ok := values[entryField].(string)
	return ok && writeFields(discard{}, fields) == nil
}

// discard is an EventWriter that accepts anything and writes nothing.
type discard struct{}

func (discard) WriteComment(string) error      { return nil }
func (discard) WriteData(string) error         { return nil }
func (discard) WriteEvent(string) error        { return nil }
func (discard) WriteID(string) error           { return nil }
func (discard) WriteRetry(time.Duration) error { return nil }

// entryID is a Redis stream entry ID, "<milliseconds>-<sequence number>".
type entryID struct{ ms, seq uint64 }

// parseEntryID parses a complete stream entry ID; ok is false for anything else, such as an
// ID that another kind of Route gave.
func parseEntryID(s string) (id entryID, ok bool) {
	ms, seq, found := strings.Cut(s, "-")
	if !found {
		return entryID{}, false
	}
	var err1, err2 error
	id.ms, err1 = strconv.ParseUint(ms, 10, 64)
	id.seq, err2 = strconv.ParseUint(seq, 10, 64)
	if err1 != nil || err2 != nil {
		return entryID{}, false
	}
	return id, true
}

func (id entryID) less(o entryID) bool {
	return id.ms < o.ms || id.ms == o.ms && id.seq < o.seq
}

func (id entryID) String() string {
	return strconv.FormatUint(id.ms, 10) + "-" + strconv.FormatUint(id.seq, 10)
}
