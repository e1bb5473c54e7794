package httpsse

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// DefaultMaxEventSize is the largest event a [Decoder] or [Client] accepts unless told
// otherwise: 16 MiB, counting the event's data, its name and the line being read.
const DefaultMaxEventSize = 16 << 20

// ErrEventTooLarge is reported by [Decoder.Err] and [Client.Err] when an event grows past
// the maximum event size. It ends the stream. Test for it with errors.Is.
var ErrEventTooLarge = errors.New("httpsse: event too large")

// errNoEvent is returned by Decode when Next has not produced an event to decode.
var errNoEvent = errors.New("httpsse: Decode called without an event from Next")

const (
	initialBufferSize = 64 << 10
	maxEmptyReads     = 100
)

// Decoder reads server-sent events from a stream, following the WHATWG HTML Standard's
// "Parsing an event stream" and "Interpreting an event stream" to the letter. It works on
// any [io.Reader], such as the body of a response to a request built by hand.
//
// Use it like [bufio.Scanner]: call [Decoder.Next] until it returns false, call
// [Decoder.Decode] after each true Next, then check [Decoder.Err], which is nil at a clean end
// of the stream. An event is yielded as soon as the blank line that ends it has been read; an
// event that the stream leaves unterminated is discarded, as the standard says.
//
// There is no line-length ceiling. The size of one event (its data, its name and the line
// being read) is limited to [DefaultMaxEventSize] unless changed with
// [Decoder.SetMaxEventSize]; a larger event ends the stream with [ErrEventTooLarge].
//
// A Decoder is not safe for use by several goroutines at once.
type Decoder struct {
	r   io.Reader
	err error // the first read error, io.EOF at the end; sticky

	// Unread bytes are buf[start:end]. lf and cr cache the position in buf of the next LF
	// and CR at or after start (-1: none before lfScanned or crScanned), so that a long line
	// arriving in many reads is scanned once.
	buf                  []byte
	start, end           int
	lf, cr               int
	lfScanned, crScanned int

	max     int
	tooBig  bool // the event grew past max: the stream is over
	started bool
	bomDone bool
	skipLF  bool // the last line ended in a CR that was the last byte read: a LF next is part of it

	// The event being read, which after a true Next is the event to decode.
	data  []byte // the data lines, each followed by LF
	lines int
	// held is the value of the event's only data line while it is still in buf and valid
	// UTF-8, so that it is copied once, by Decode, rather than into data first. It counts
	// when lines > 0 and data is empty; fill, which may overwrite it, moves it into data.
	held []byte
	name []byte
	// nameLen is the length of the last name decoded into name, whose bytes stay in its
	// array after Next empties it: a stream that sends the same name with every event
	// has it compared, not checked and copied again.
	nameLen int
	ready   bool

	id     []byte // the last event ID buffer
	lastID []byte // the last event ID string, set from id at each blank line
	// idChanged says that an id field set id since the last blank line, so that lastID is
	// to be set again. idFresh says that lastID changed since the event Next last returned,
	// so that Decode stores the ID without comparing it with the one the Event holds.
	idChanged, idFresh bool

	retry    time.Duration
	retrySet bool

	arena strings.Builder // the block decodeEvent cuts small events' strings from
}

// errNilReader is the error of a Decoder made with a nil reader.
var errNilReader = errors.New("httpsse: NewDecoder called with a nil io.Reader")

// NewDecoder returns a Decoder that reads from r. With a nil r, the Decoder's Next returns
// false and its Err says so.
func NewDecoder(r io.Reader) *Decoder {
	dec := newDecoder()
	dec.reset(r)
	if r == nil {
		dec.err = errNilReader
	}
	return dec
}

// newDecoder returns a Decoder with the defaults and no reader yet, for reset to give it one.
func newDecoder() *Decoder {
	return &Decoder{max: DefaultMaxEventSize}
}

// SetMaxEventSize sets the largest event the Decoder accepts, in bytes: the event's data (as
// [Event.EventDataCollapsed] returns it) and name, plus the value of the line being read. A
// comment or unknown field longer than that is too large as well. The default is
// [DefaultMaxEventSize]. Zero or a negative value removes the limit, which lets the stream
// use any amount of memory.
//
// SetMaxEventSize panics if it is called after the first call to [Decoder.Next].
func (dec *Decoder) SetMaxEventSize(n int) {
	if dec.started {
		panic("httpsse: SetMaxEventSize called after Next")
	}
	dec.max = n
}

// reset makes the Decoder read a new stream from r, as EventSource does on reconnection: the
// last event ID and the reconnection time carry over, everything else starts afresh.
func (dec *Decoder) reset(r io.Reader) {
	dec.r = r
	dec.err = nil
	dec.tooBig = false
	dec.start, dec.end = 0, 0
	dec.lf, dec.cr, dec.lfScanned, dec.crScanned = -1, -1, 0, 0
	dec.bomDone = false
	dec.skipLF = false
	dec.data = dec.data[:0]
	dec.lines = 0
	dec.name = dec.name[:0]
	dec.ready = false
	dec.id = append(dec.id[:0], dec.lastID...)
	dec.idChanged, dec.idFresh = false, true
}

// Next reads the stream up to the end of the next event that is dispatched, and reports
// whether there is one. It returns false at the end of the stream or on an error, which
// [Decoder.Err] then reports.
func (dec *Decoder) Next() bool {
	dec.started = true
	if dec.ready {
		dec.data = dec.data[:0]
		dec.lines = 0
		dec.name = dec.name[:0]
		dec.ready = false
		dec.idFresh = false
	}
	for {
		line, ok := dec.readLine()
		if !ok {
			return false
		}
		if dec.interpret(line) {
			dec.ready = true
			return true
		}
	}
}

// Err returns the error that ended the stream, or nil when it ended cleanly (io.EOF).
func (dec *Decoder) Err() error {
	if dec.err == io.EOF {
		return nil
	}
	return dec.err
}

// Decode stores the event that the last call to [Decoder.Next] read into v, which must be an
// *[Event] or an [EventSetter]. Any other type is an error that names it and does not end the
// stream.
func (dec *Decoder) Decode(v interface{}) error {
	if !dec.ready {
		return errNoEvent
	}
	data := dec.held
	if len(dec.data) > 0 {
		data = dec.data[:len(dec.data)-1] // the standard removes the data buffer's last LF
	}
	switch v := v.(type) {
	case *Event:
		dec.decodeEvent(v, data)
	case EventSetter:
		v.SetEventName(string(dec.name))
		v.SetEventID(string(dec.id))
		for i := 0; i < dec.lines; i++ {
			line, rest, _ := bytes.Cut(data, []byte{'\n'})
			v.AppendEventDatum(string(line))
			data = rest
		}
	default:
		return fmt.Errorf("httpsse: cannot decode into %T", v)
	}
	return nil
}

// combineLimit is the largest data that decodeEvent stores in one allocation with a changed
// name or ID. Beyond it they get their own strings, so that a name or ID kept for later
// events does not keep a large data string alive.
const combineLimit = 4 << 10

// arenaSize is the size of the blocks that decodeEvent cuts the strings of small events
// from, so that one allocation serves many events. Only appending to a block, never
// changing what it holds, keeps the strings already cut from it immutable. A string that
// the caller keeps keeps its block, at most arenaSize bytes, alive. Blocks of 4 KiB took
// twice as many spans from the heap for the same bytes (a 4 KiB object shares an 8 KiB
// span), and allocating was a tenth of the time decoding small events.
const arenaSize = 16 << 10

// decodeEvent fills ev with at most one allocation: the data, plus the name and ID when they
// differ from what ev already holds, copied into one string that the fields slice. Up to
// combineLimit bytes of data, that string is cut from the current arena block.
func (dec *Decoder) decodeEvent(ev *Event, data []byte) {
	ev.lines = dec.lines
	ev.more = nil
	nameSame := string(dec.name) == ev.name
	idSame := !dec.idFresh && string(dec.id) == ev.id
	if len(data) > combineLimit {
		ev.data = string(data)
		if !nameSame {
			ev.name = string(dec.name)
		}
		if !idSame {
			ev.id = string(dec.id)
		}
		return
	}
	n := len(data)
	if !nameSame {
		n += len(dec.name)
	}
	if !idSame {
		n += len(dec.id)
	}
	if n == 0 { // empty data, and any changed name or ID is empty too
		ev.data, ev.name, ev.id = "", string(dec.name), string(dec.id)
		return
	}
	b := &dec.arena
	if b.Cap()-b.Len() < n {
		b.Reset()
		b.Grow(max(arenaSize, n))
	}
	start := b.Len()
	b.Write(data)
	if !nameSame {
		b.Write(dec.name)
	}
	if !idSame {
		b.Write(dec.id)
	}
	s := b.String()[start:]
	ev.data, s = s[:len(data)], s[len(data):]
	if !nameSame {
		ev.name, s = s[:len(dec.name)], s[len(dec.name):]
	}
	if !idSame {
		ev.id = s
	}
}

// The fields that interpret acts on; any other is ignored.
const (
	fieldOther = iota
	fieldData
	fieldEvent
	fieldID
	fieldRetry
)

// interpret processes one line as "Interpreting an event stream" says, and reports whether
// it dispatched an event.
func (dec *Decoder) interpret(line []byte) bool {
	// "If the line is empty (a blank line): Dispatch the event."
	if len(line) == 0 {
		if dec.idChanged {
			dec.lastID = dec.lastID[:0]
			dec.lastID = append(dec.lastID, dec.id...)
			dec.idChanged, dec.idFresh = false, true
		}
		if dec.lines == 0 {
			// "If the data buffer is an empty string, set the data buffer and the event
			// type buffer to the empty string and return."
			dec.name = dec.name[:0]
			return false
		}
		return true
	}
	// "If the line starts with a U+003A COLON character (:): Ignore the line."
	// "If the line contains a U+003A COLON character: Collect the characters on the line
	// before the first U+003A COLON character, and let field be that string. Collect the
	// characters on the line after the first U+003A COLON character, and let value be that
	// string. If value starts with a U+0020 SPACE character, remove it from value."
	// "Otherwise, the string is not empty but does not contain a U+003A COLON character: use
	// the whole line as the field name, and the empty string as the field value."
	// The fields that streams send on every event are recognised by their first bytes,
	// without searching the line for its colon.
	var field int
	var value []byte
	switch {
	case len(line) >= 5 && string(line[:5]) == "data:":
		field, value = fieldData, line[5:]
	case len(line) >= 6 && string(line[:6]) == "event:":
		field, value = fieldEvent, line[6:]
	case len(line) >= 3 && string(line[:3]) == "id:":
		field, value = fieldID, line[3:]
	case line[0] == ':':
		comment := line[1:]
		if len(comment) > 0 && comment[0] == ' ' {
			comment = comment[1:]
		}
		dec.checkSize(dec.collapsedLen() + len(dec.name) + len(comment))
		return false
	default:
		name := line
		value = line[len(line):]
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			name, value = line[:i], line[i+1:]
		}
		switch string(name) {
		case "data":
			field = fieldData
		case "event":
			field = fieldEvent
		case "id":
			field = fieldID
		case "retry":
			field = fieldRetry
		}
	}
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	var size int
	switch field {
	case fieldData:
		size = dec.dataLen() + len(dec.name) + len(value) // a LF will join the lines
	case fieldEvent:
		size = dec.collapsedLen() + len(value) // the new name replaces the old
	default:
		size = dec.collapsedLen() + len(dec.name) + len(value)
	}
	if !dec.checkSize(size) {
		return false
	}
	switch field {
	case fieldData:
		if dec.lines == 0 && validUTF8(value) {
			dec.held = value
		} else {
			dec.unhold()
			appendUTF8(&dec.data, value)
			dec.data = append(dec.data, '\n')
		}
		dec.lines++
	case fieldEvent:
		// Decoded bytes equal to value mean that value was valid UTF-8, so that they are
		// what decoding it gives.
		if n := len(value); n == dec.nameLen && string(dec.name[:n]) == string(value) {
			dec.name = dec.name[:n]
			break
		}
		dec.name = dec.name[:0]
		appendUTF8(&dec.name, value)
		dec.nameLen = len(dec.name)
	case fieldID:
		// "If the field value does not contain U+0000 NULL, then set the last event ID
		// buffer to the field value. Otherwise, ignore the field."
		if bytes.IndexByte(value, 0) < 0 {
			dec.id = dec.id[:0]
			appendUTF8(&dec.id, value)
			dec.idChanged = true
		}
	case fieldRetry:
		// "If the field value consists of only ASCII digits, then interpret the field value
		// as an integer in base ten, and set the event stream's reconnection time to that
		// integer. Otherwise, ignore the field."
		if ms, ok := parseDigits(value); ok {
			dec.retry = ms
			dec.retrySet = true
		}
	}
	return false
}

// checkSize ends the stream with ErrEventTooLarge when size, what the event would hold with
// the line being read, is over the limit.
func (dec *Decoder) checkSize(size int) bool {
	if dec.max > 0 && size > dec.max {
		dec.setTooLarge()
		return false
	}
	return true
}

// setTooLarge ends the stream with ErrEventTooLarge. It is apart from checkSize so that
// checkSize, called for every line, is inlined.
func (dec *Decoder) setTooLarge() {
	dec.err = fmt.Errorf("%w: limit %d bytes", ErrEventTooLarge, dec.max)
	dec.tooBig = true
}

// parseDigits parses a retry value in milliseconds, saturating rather than overflowing.
func parseDigits(b []byte) (time.Duration, bool) {
	if len(b) == 0 {
		return 0, false
	}
	const limit = int64(1<<63-1) / int64(time.Millisecond)
	var ms int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if ms < limit {
			ms = min(ms*10+int64(c-'0'), limit)
		}
	}
	return time.Duration(ms) * time.Millisecond, true
}

// readLine returns the next line without its terminator (CRLF, LF or CR). The line is valid
// until the next call. It returns false when the stream ends, discarding an unterminated
// last line, or when the event grows too large.
func (dec *Decoder) readLine() ([]byte, bool) {
	if dec.bomDone && !dec.skipLF && !dec.tooBig && dec.cr < 0 && dec.crScanned >= dec.end && dec.lfScanned <= dec.start {
		// The usual stream, with LF line ends and no search of the unread bytes to resume.
		b := dec.buf[dec.start:dec.end]
		if len(b) > 0 && b[0] == '\n' {
			// A blank line, which ends every event: no need to search for its end.
			dec.start++
			return b[:0], true
		}
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			dec.start += i + 1
			return b[:i], true
		}
		dec.lf, dec.lfScanned = -1, dec.end
	}
	return dec.readLineSlow()
}

// readLineSlow is readLine for all the cases.
func (dec *Decoder) readLineSlow() ([]byte, bool) {
	for !dec.tooBig {
		if !dec.bomDone && !dec.skipBOM() {
			continue
		}
		if dec.skipLF && dec.start < dec.end {
			dec.skipLF = false
			if dec.buf[dec.start] == '\n' {
				dec.start++
			}
		}
		if i := dec.lineEnd(); i >= 0 {
			line := dec.buf[dec.start:i]
			dec.start = i + 1
			if dec.buf[i] == '\r' {
				// A CR at the end of what has been read ends the line now; whether a LF
				// follows is decided by the next read.
				if dec.start == dec.end {
					dec.skipLF = true
				} else if dec.buf[dec.start] == '\n' {
					dec.start++
				}
			}
			return line, true
		}
		// An incomplete line counts with its value only (the field name is not known yet,
		// so not the name either): never more than the complete line will.
		if !dec.checkSize(dec.collapsedLen() + dec.pendingValueLen()) {
			return nil, false
		}
		if dec.err != nil {
			return nil, false
		}
		dec.fill()
	}
	return nil, false
}

// collapsedLen is the size of the data so far as EventDataCollapsed would return it.
func (dec *Decoder) collapsedLen() int {
	return max(dec.dataLen()-1, 0)
}

// dataLen is the length of the data buffer, held data included.
func (dec *Decoder) dataLen() int {
	if dec.lines > 0 && len(dec.data) == 0 {
		return len(dec.held) + 1
	}
	return len(dec.data)
}

// unhold moves held data into the data buffer.
func (dec *Decoder) unhold() {
	if dec.lines > 0 && len(dec.data) == 0 {
		dec.data = append(dec.data, dec.held...)
		dec.data = append(dec.data, '\n')
	}
}

// pendingValueLen is the size of the value of the incomplete line in the buffer.
func (dec *Decoder) pendingValueLen() int {
	line := dec.buf[dec.start:dec.end]
	if dec.max <= 0 || dec.collapsedLen()+len(line) <= dec.max {
		return len(line) // cheap, and under the limit anyway
	}
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		value := line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		return len(value)
	}
	return len(line)
}

// skipBOM drops one leading U+FEFF BYTE ORDER MARK. It reports false when it needs more
// bytes to decide.
func (dec *Decoder) skipBOM() bool {
	const bom = "\xEF\xBB\xBF"
	b := dec.buf[dec.start:dec.end]
	n := min(len(b), len(bom))
	if string(b[:n]) != bom[:n] {
		dec.bomDone = true
		return true
	}
	if n == len(bom) {
		dec.start += n
		dec.bomDone = true
		return true
	}
	if dec.err != nil {
		dec.bomDone = true
		return true
	}
	dec.fill()
	return false
}

// lineEnd returns the position in buf of the first CR or LF in the unread bytes, or -1.
func (dec *Decoder) lineEnd() int {
	lf := dec.next('\n', &dec.lf, &dec.lfScanned)
	if dec.cr < 0 && dec.crScanned >= dec.end {
		return lf // the unread bytes hold no CR: the usual stream, with LF line ends
	}
	cr := dec.next('\r', &dec.cr, &dec.crScanned)
	switch {
	case lf < 0:
		return cr
	case cr < 0:
		return lf
	}
	return min(lf, cr)
}

// next returns the position of the first c at or after start, using and updating the cache
// pos (the last position found) and scanned (bytes before it hold no c).
func (dec *Decoder) next(c byte, pos, scanned *int) int {
	if *pos >= dec.start {
		return *pos
	}
	from := max(dec.start, *scanned)
	if i := bytes.IndexByte(dec.buf[from:dec.end], c); i >= 0 {
		*pos = from + i
		return *pos
	}
	*pos = -1
	*scanned = dec.end
	return -1
}

// fill reads more bytes, moving the unread ones to the front of the buffer or growing it
// when it is full.
func (dec *Decoder) fill() {
	dec.unhold()
	if dec.buf == nil {
		dec.buf = make([]byte, initialBufferSize)
	}
	if dec.start > 0 && len(dec.buf)-dec.end < len(dec.buf)/2 {
		n := copy(dec.buf, dec.buf[dec.start:dec.end])
		shift := dec.start
		dec.start, dec.end = 0, n
		dec.lf, dec.cr = shiftPos(dec.lf, shift), shiftPos(dec.cr, shift)
		dec.lfScanned, dec.crScanned = max(dec.lfScanned-shift, 0), max(dec.crScanned-shift, 0)
	}
	if dec.end == len(dec.buf) {
		buf := make([]byte, 2*len(dec.buf))
		copy(buf, dec.buf[:dec.end])
		dec.buf = buf
	}
	for range maxEmptyReads {
		n, err := dec.r.Read(dec.buf[dec.end:])
		dec.end += n
		if err != nil {
			if err != io.EOF {
				err = fmt.Errorf("httpsse: reading stream: %w", err)
			}
			dec.err = err
			return
		}
		if n > 0 {
			return
		}
	}
	dec.err = fmt.Errorf("httpsse: reading stream: %w", io.ErrNoProgress)
}

func shiftPos(pos, shift int) int {
	if pos < 0 {
		return pos
	}
	return pos - shift
}
