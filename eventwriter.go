package httpsse

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// EventWriter writes the fields of one event. [Route.PublishEvent] hands one to its function;
// the fields are sent in the order they are written, and the event ends when the function
// returns.
//
// Values can never inject a field or end the event early. WriteData and WriteComment split a
// value with line breaks (LF, CR or CRLF) into several lines; WriteEvent and WriteID reject a
// value with a line break, and WriteID one with NUL. Every method rejects a value that is not
// valid UTF-8, because the stream is UTF-8 and a client would change it. A rejected value
// makes the whole event fail: nothing of it is sent.
type EventWriter interface {
	// WriteComment writes a comment, which clients do not dispatch: one ":" line per line of
	// the comment.
	WriteComment(string) error
	// WriteData writes a "data" field per line of the value. WriteData("") writes one empty
	// data line, so clients dispatch an event with empty data.
	WriteData(string) error
	// WriteEvent writes the "event" field, the event type.
	WriteEvent(string) error
	// WriteID writes the "id" field, which sets the client's last event ID.
	WriteID(string) error
	// WriteRetry writes the "retry" field: the client's reconnection time, in whole
	// milliseconds (rounded down). A negative duration is an error.
	WriteRetry(time.Duration) error
}

// errEventWriterDone is returned when an EventWriter is used after its PublishEvent call has
// returned: by then the event has been sent or dropped, and a late field would land in the next one.
var errEventWriterDone = errors.New("httpsse: EventWriter used after PublishEvent returned")

// encoder is the EventWriter of one event. It appends the event's wire form to buf and keeps
// the first error, so that an event with any rejected field is not sent at all.
type encoder struct {
	buf  []byte
	err  error
	done bool
	// fields is set once a field other than a comment is written: only then is it an event
	// (a block of comments alone, such as a heartbeat, is not one, and gets no ID).
	fields bool
	hasID  bool
	id     string // the value of the last WriteID, which is the event's ID
}

// AppendEvent runs fn with an [EventWriter] like the one [Route.PublishEvent] hands out and
// appends the event it writes to b, in wire form, ending with the blank line. It applies the
// same validation: if fn returns an error, or any of its Write calls failed, it returns b
// unchanged and that error. It is for sending or storing events without a Route, as a
// [History] over another log does.
func AppendEvent(b []byte, fn func(EventWriter) error) ([]byte, error) {
	if fn == nil {
		return b, errors.New("httpsse: AppendEvent called with a nil function")
	}
	e := &encoder{buf: b}
	err := fn(e)
	out, encErr := e.finish()
	if err == nil {
		err = encErr
	}
	if err != nil {
		return b, err
	}
	return out, nil
}

func (e *encoder) WriteComment(s string) error {
	if !e.ok() {
		return e.err
	}
	if err := checkUTF8("comment", s); err != nil {
		return e.fail(err)
	}
	e.buf = appendLines(e.buf, ": ", ":", s)
	return nil
}

func (e *encoder) WriteData(s string) error {
	if !e.ok() {
		return e.err
	}
	if err := checkUTF8("data", s); err != nil {
		return e.fail(err)
	}
	e.buf = appendLines(e.buf, "data: ", "data:", s)
	e.fields = true
	return nil
}

func (e *encoder) WriteEvent(s string) error {
	if !e.ok() {
		return e.err
	}
	if err := checkField("event", s, "\r\n"); err != nil {
		return e.fail(err)
	}
	e.buf = appendField(e.buf, "event: ", s)
	e.fields = true
	return nil
}

func (e *encoder) WriteID(s string) error {
	if !e.ok() {
		return e.err
	}
	// The standard ignores an id that contains NUL, so sending one would silently not set it.
	if err := checkField("id", s, "\r\n\x00"); err != nil {
		return e.fail(err)
	}
	e.buf = appendField(e.buf, "id: ", s)
	e.fields, e.hasID, e.id = true, true, s
	return nil
}

func (e *encoder) WriteRetry(d time.Duration) error {
	if !e.ok() {
		return e.err
	}
	if d < 0 {
		return e.fail(fmt.Errorf("httpsse: negative retry %v", d))
	}
	e.buf = append(e.buf, "retry: "...)
	e.buf = strconv.AppendInt(e.buf, d.Milliseconds(), 10)
	e.buf = append(e.buf, '\n')
	e.fields = true
	return nil
}

// ok reports whether the encoder still accepts fields, setting err when it is used too late.
func (e *encoder) ok() bool {
	if e.done && e.err == nil {
		e.err = errEventWriterDone
	}
	return e.err == nil
}

func (e *encoder) fail(err error) error {
	e.err = err
	return err
}

// finish ends the event with its blank line and returns its bytes, or the first error.
// The encoder accepts nothing afterwards.
func (e *encoder) finish() ([]byte, error) {
	e.done = true
	if e.err != nil {
		return nil, e.err
	}
	return append(e.buf, '\n'), nil
}

// checkField rejects a value that is not valid UTF-8 or contains one of the characters in bad.
func checkField(field, value, bad string) error {
	if i := strings.IndexAny(value, bad); i >= 0 {
		return fmt.Errorf("httpsse: %s field contains %q at byte %d", field, value[i], i)
	}
	return checkUTF8(field, value)
}

func checkUTF8(field, value string) error {
	if !utf8.ValidString(value) {
		return fmt.Errorf("httpsse: %s field is not valid UTF-8", field)
	}
	return nil
}

func appendField(buf []byte, prefix, value string) []byte {
	buf = append(buf, prefix...)
	buf = append(buf, value...)
	return append(buf, '\n')
}

// appendLines appends one line per line of s, each after prefix, or after bare for an empty
// line. Lines end at LF, CR or CRLF, as a client splits them.
func appendLines(buf []byte, prefix, bare, s string) []byte {
	for {
		i := strings.IndexAny(s, "\r\n")
		if i < 0 {
			return appendLine(buf, prefix, bare, s)
		}
		buf = appendLine(buf, prefix, bare, s[:i])
		if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
			i++
		}
		s = s[i+1:]
	}
}

func appendLine(buf []byte, prefix, bare, line string) []byte {
	if line == "" {
		buf = append(buf, bare...)
	} else {
		buf = append(buf, prefix...)
		buf = append(buf, line...)
	}
	return append(buf, '\n')
}
