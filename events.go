package httpsse

import (
	"errors"
	"iter"
)

// Events returns an iterator over the events of s, a [Client] or a *[Decoder]:
//
//	for event, err := range httpsse.Events(client) {
//		if err != nil { ... } // the error that ended the stream
//		fmt.Println(event.EventDataCollapsed())
//	}
//
// It yields each event with a nil error; the loop may keep the Event, which later events do
// not change. If the stream ended with an error (what s.Err reports), it then yields one
// final (Event{}, err); after a clean end it yields nothing more. Breaking out of the loop
// stops reading but does not close a Client: the caller's Close does that. A nil s yields one
// error.
func Events(s interface {
	Next() bool
	Decode(interface{}) error
	Err() error
}) iter.Seq2[Event, error] {
	return func(yield func(Event, error) bool) {
		if s == nil {
			yield(Event{}, errors.New("httpsse: Events called with nil"))
			return
		}
		// One Event decoded into again and again lets Decode reuse its name and ID strings;
		// the copy that is yielded shares only immutable strings with it.
		var ev Event
		for s.Next() {
			if err := s.Decode(&ev); err != nil {
				if !yield(Event{}, err) {
					return
				}
				continue
			}
			if !yield(ev, nil) {
				return
			}
		}
		if err := s.Err(); err != nil {
			yield(Event{}, err)
		}
	}
}
