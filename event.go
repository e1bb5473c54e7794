package httpsse

import "strings"

// Event is one dispatched server-sent event, as [Client.Decode] and [Decoder.Decode] fill it.
// The zero value is an event with no name, no ID and no data.
//
// An Event can be reused across Decode calls: its name and ID strings are kept when they do
// not change, so decoding into the same Event allocates at most once per event, and small
// events share blocks of memory.
type Event struct {
	name  string
	id    string
	data  string // the data lines joined by "\n"
	lines int    // how many data lines data holds; 0 means no data field at all
	// more holds the lines added by AppendEventDatum after data, kept apart so that adding
	// many lines one by one is not quadratic.
	more []string
}

var (
	_ EventReader = Event{}
	_ EventSetter = (*Event)(nil)
)

// EventName returns the event type, the value of the "event" field, or "" when the event had
// none (a browser's EventSource dispatches such an event as "message").
func (ev Event) EventName() string { return ev.name }

// EventID returns the last event ID in effect when the event was dispatched: the value of the
// latest "id" field on the stream, not only of this event (EventSource's lastEventId).
func (ev Event) EventID() string { return ev.id }

// EventData returns the event's data lines, one per "data" field, or nil when it had none.
func (ev Event) EventData() []string {
	var lines []string
	if ev.lines > 0 {
		lines = strings.Split(ev.data, "\n")
	}
	return append(lines, ev.more...)
}

// EventDataCollapsed returns the data lines joined by "\n", which is what EventSource
// delivers as MessageEvent.data.
func (ev Event) EventDataCollapsed() string {
	if len(ev.more) == 0 {
		return ev.data
	}
	return strings.Join(ev.EventData(), "\n")
}

// String returns the event in wire format: its "event", "id" and "data" fields (each only
// when present), then the blank line that ends it. Line breaks in the name or ID, which only
// SetEventName or SetEventID can put there, are left out so they cannot start a new field.
func (ev Event) String() string {
	var b []byte
	if ev.name != "" {
		b = appendField(b, "event: ", stripLineBreaks(ev.name))
	}
	if ev.id != "" {
		b = appendField(b, "id: ", stripLineBreaks(ev.id))
	}
	for _, line := range ev.EventData() {
		b = appendLine(b, "data: ", "data:", line)
	}
	return string(append(b, '\n'))
}

// AppendEventDatum adds a data line. A datum with line breaks (LF, CR or CRLF) adds one line
// per line, as it would be sent.
func (ev *Event) AppendEventDatum(datum string) {
	if strings.ContainsRune(datum, '\r') {
		datum = strings.ReplaceAll(datum, "\r\n", "\n")
		datum = strings.ReplaceAll(datum, "\r", "\n")
	}
	ev.more = append(ev.more, strings.Split(datum, "\n")...)
}

// SetEventName sets the event type.
func (ev *Event) SetEventName(name string) { ev.name = name }

// SetEventID sets the event's ID.
func (ev *Event) SetEventID(id string) { ev.id = id }

// EventSetter is what [Decoder.Decode] and [Client.Decode] can fill besides an *[Event]. It
// receives what an Event would hold: SetEventName with the event type ("" when none),
// SetEventID with the last event ID in effect, and AppendEventDatum once per data line, in order.
type EventSetter interface {
	AppendEventDatum(string)
	SetEventName(string)
	SetEventID(string)
}

// EventReader is the read side of an event; [Event] implements it.
type EventReader interface {
	EventData() []string
	EventDataCollapsed() string
	EventID() string
	EventName() string
}

func stripLineBreaks(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.NewReplacer("\r", "", "\n", "").Replace(s)
}
