package httpsse

import (
	"encoding/json"
	"fmt"
)

// WriteJSON writes v, encoded with [json.Marshal], as the data of the event being written:
//
//	route.PublishEvent(func(w httpsse.EventWriter) error {
//		w.WriteEvent("price")
//		return httpsse.WriteJSON(w, price)
//	})
//
// json.Marshal writes no line breaks, so the data is one line. An error from json.Marshal is
// returned, and through [Route.PublishEvent] keeps the event from being sent.
func WriteJSON(w EventWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("httpsse: encoding event data as JSON: %w", err)
	}
	return w.WriteData(string(b))
}

// DecodeJSON decodes the event's data ([Event.EventDataCollapsed]) into v with
// [json.Unmarshal]. Data that is not JSON, such as the "[DONE]" that ends an OpenAI-style
// stream, is an error that wraps json.Unmarshal's.
func (ev Event) DecodeJSON(v any) error {
	if err := json.Unmarshal([]byte(ev.EventDataCollapsed()), v); err != nil {
		return fmt.Errorf("httpsse: decoding event data as JSON: %w", err)
	}
	return nil
}
