package main

import (
	"context"
	"errors"
	"io"
	"net/http"

	ldes "github.com/launchdarkly/eventsource"
	r3 "github.com/r3labs/sse/v2"
	tmsse "github.com/tmaxmax/go-sse"
	"gopkg.in/cenkalti/backoff.v1"
)

// library is one SSE library under test: its parser, as a user calls it, and its server.
type library struct {
	name string
	// count parses r to the end and returns the number of events and the bytes of their data
	// (the data lines joined by "\n", as EventSource's MessageEvent.data).
	count func(r io.Reader) (events, dataBytes int, err error)
	// each parses r to the end and calls fn for every dispatched event.
	each func(r io.Reader, fn func(name, id, data string)) error
	// newServer starts the library's broadcaster. Its handler is mounted at path.
	newServer func() fanoutServer
	path      string
}

// fanoutServer is a library's broadcaster, as a user sets it up.
type fanoutServer interface {
	handler() http.Handler
	// publish sends one event with this id and data to every subscriber.
	publish(id, data string) error
	close()
}

// libraries are the libraries measured, httpsse first. The order of measuring rotates.
var libraries []*library

func init() {
	libraries = append(libraries, tmaxmaxLib(), r3labsLib(), launchdarklyLib())
}

func lookupLibrary(name string) *library {
	for _, l := range libraries {
		if l.name == name {
			return l
		}
	}
	return nil
}

// tmaxmax/go-sse: sse.Read for parsing (default ReadConfig, as its README shows for LLM APIs),
// sse.Server with its default provider Joe for fan-out.
func tmaxmaxLib() *library {
	return &library{
		name: "tmaxmax/go-sse",
		count: func(r io.Reader) (int, int, error) {
			n, b := 0, 0
			for ev, err := range tmsse.Read(r, nil) {
				if err != nil {
					return n, b, err
				}
				n++
				b += len(ev.Data)
			}
			return n, b, nil
		},
		each: func(r io.Reader, fn func(name, id, data string)) error {
			for ev, err := range tmsse.Read(r, nil) {
				if err != nil {
					return err
				}
				fn(ev.Type, ev.LastEventID, ev.Data)
			}
			return nil
		},
		newServer: func() fanoutServer { return &tmaxmaxServer{srv: &tmsse.Server{}} },
		path:      "/events",
	}
}

type tmaxmaxServer struct{ srv *tmsse.Server }

func (s *tmaxmaxServer) handler() http.Handler { return s.srv }
func (s *tmaxmaxServer) publish(id, data string) error {
	m := &tmsse.Message{ID: tmsse.ID(id)}
	m.AppendData(data)
	return s.srv.Publish(m)
}
func (s *tmaxmaxServer) close() { _ = s.srv.Shutdown(context.Background()) }

// r3labs/sse/v2: its Client is the only public parser that interprets fields (EventStreamReader
// only splits events), so the stream is fed to a Client through an http.RoundTripper that
// returns the in-memory stream. Reconnection is turned off (backoff.StopBackOff) so that the
// end of the corpus, or an error, ends SubscribeRaw.
func r3labsLib() *library {
	each := func(r io.Reader, fn func(name, id string, data []byte)) error {
		c := r3.NewClient("http://corpus.invalid/events")
		c.Connection = &http.Client{Transport: &bodyTransport{r: r}}
		c.ReconnectStrategy = &backoff.StopBackOff{}
		return c.SubscribeRawWithContext(context.Background(), func(ev *r3.Event) {
			fn(string(ev.Event), string(ev.ID), ev.Data)
		})
	}
	return &library{
		name: "r3labs/sse",
		count: func(r io.Reader) (int, int, error) {
			n, b := 0, 0
			c := r3.NewClient("http://corpus.invalid/events")
			c.Connection = &http.Client{Transport: &bodyTransport{r: r}}
			c.ReconnectStrategy = &backoff.StopBackOff{}
			err := c.SubscribeRawWithContext(context.Background(), func(ev *r3.Event) {
				n++
				b += len(ev.Data)
			})
			return n, b, err
		},
		each: func(r io.Reader, fn func(name, id, data string)) error {
			return each(r, func(name, id string, data []byte) { fn(name, id, string(data)) })
		},
		newServer: func() fanoutServer {
			srv := r3.New()
			srv.CreateStream("s")
			return &r3labsServer{srv: srv}
		},
		path: "/events?stream=s",
	}
}

// bodyTransport answers the first request with 200 text/event-stream and r as the body; a second
// request gets an error, so a client that reconnects stops.
type bodyTransport struct {
	r      io.Reader
	served bool
}

func (t *bodyTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.served {
		return nil, errors.New("bench: stream already served")
	}
	t.served = true
	return &http.Response{
		StatusCode: 200, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Content-Type": {"text/event-stream"}},
		Body:    io.NopCloser(t.r),
		Request: req, ContentLength: -1,
	}, nil
}

type r3labsServer struct{ srv *r3.Server }

func (s *r3labsServer) handler() http.Handler { return s.srv }
func (s *r3labsServer) publish(id, data string) error {
	s.srv.Publish("s", &r3.Event{ID: []byte(id), Data: []byte(data)})
	return nil
}
func (s *r3labsServer) close() { s.srv.Close() }

// launchdarkly/eventsource: eventsource.NewDecoder for parsing, eventsource.NewServer with its
// default BufferSize for fan-out.
func launchdarklyLib() *library {
	return &library{
		name: "launchdarkly/eventsource",
		count: func(r io.Reader) (int, int, error) {
			n, b := 0, 0
			dec := ldes.NewDecoder(r)
			for {
				ev, err := dec.Decode()
				if err == io.EOF {
					return n, b, nil
				}
				if err != nil {
					return n, b, err
				}
				n++
				b += len(ev.Data())
			}
		},
		each: func(r io.Reader, fn func(name, id, data string)) error {
			dec := ldes.NewDecoder(r)
			for {
				ev, err := dec.Decode()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				id := ev.Id()
				if l, ok := ev.(ldes.EventWithLastID); ok {
					id = l.LastEventID()
				}
				fn(ev.Event(), id, ev.Data())
			}
		},
		newServer: func() fanoutServer { return &launchdarklyServer{srv: ldes.NewServer()} },
		path:      "/events",
	}
}

type ldEvent struct{ id, data string }

func (e ldEvent) Id() string    { return e.id } //nolint:revive // the library's interface
func (e ldEvent) Event() string { return "" }
func (e ldEvent) Data() string  { return e.data }

type launchdarklyServer struct{ srv *ldes.Server }

func (s *launchdarklyServer) handler() http.Handler { return s.srv.Handler("c") }
func (s *launchdarklyServer) publish(id, data string) error {
	s.srv.Publish([]string{"c"}, ldEvent{id: id, data: data})
	return nil
}
func (s *launchdarklyServer) close() { s.srv.Close() }

// referenceServer is the plain net/http handler of the idle test: it writes one event, flushes
// and waits for the client to go away. It has no broadcaster.
type referenceServer struct{}

func (referenceServer) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "data: warm\n\n")
		http.NewResponseController(w).Flush()
		<-r.Context().Done()
	})
}
func (referenceServer) publish(id, data string) error { return nil }
func (referenceServer) close()                        {}

var referenceLib = &library{
	name:      "net/http handler (reference)",
	newServer: func() fanoutServer { return referenceServer{} },
	path:      "/events",
}
