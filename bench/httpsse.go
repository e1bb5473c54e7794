package main

import (
	"io"
	"net/http"

	"github.com/reiver/go-httpsse"
)

func init() {
	libraries = append([]*library{httpsseLib()}, libraries...)
}

// httpsse: a Decoder decoding into one reused Event, data read with EventDataCollapsed (the
// joined string that every other library hands out); a shared Route for fan-out.
func httpsseLib() *library {
	return &library{
		name: "httpsse",
		count: func(r io.Reader) (int, int, error) {
			n, b := 0, 0
			dec := httpsse.NewDecoder(r)
			var ev httpsse.Event
			for dec.Next() {
				if err := dec.Decode(&ev); err != nil {
					return n, b, err
				}
				n++
				b += len(ev.EventDataCollapsed())
			}
			return n, b, dec.Err()
		},
		each: func(r io.Reader, fn func(name, id, data string)) error {
			dec := httpsse.NewDecoder(r)
			var ev httpsse.Event
			for dec.Next() {
				if err := dec.Decode(&ev); err != nil {
					return err
				}
				fn(ev.EventName(), ev.EventID(), ev.EventDataCollapsed())
			}
			return dec.Err()
		},
		newServer: func() fanoutServer { return &httpsseServer{route: httpsse.NewRoute()} },
		path:      "/events",
	}
}

type httpsseServer struct{ route httpsse.Route }

func (s *httpsseServer) handler() http.Handler { return s.route }
func (s *httpsseServer) publish(id, data string) error {
	return s.route.PublishEvent(func(w httpsse.EventWriter) error {
		if err := w.WriteID(id); err != nil {
			return err
		}
		return w.WriteData(data)
	})
}
func (s *httpsseServer) close() { _ = s.route.Close() }
