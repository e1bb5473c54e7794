package httpsse

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// benchStream returns an event stream of about 1 MiB (at least one event) whose events each
// carry an event name, an id and size bytes of data on one line, as an LLM API sends them.
func benchStream(size int) string {
	data := strings.Repeat("x", size)
	var b strings.Builder
	for i := 0; b.Len() < 1<<20 || i == 0; i++ {
		fmt.Fprintf(&b, "event: delta\nid: %d\ndata: %s\n\n", i, data)
	}
	return b.String()
}

// BenchmarkDecoder decodes a stream of about 1 MiB into one reused Event, by event size.
func BenchmarkDecoder(b *testing.B) {
	for _, size := range []int{16, 128, 1 << 10, 16 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("data=%dB", size), func(b *testing.B) {
			stream := benchStream(size)
			b.ReportAllocs()
			b.SetBytes(int64(len(stream)))
			var ev Event
			for b.Loop() {
				dec := NewDecoder(strings.NewReader(stream))
				n := 0
				for dec.Next() {
					if err := dec.Decode(&ev); err != nil {
						b.Fatal(err)
					}
					n++
				}
				if err := dec.Err(); err != nil || n == 0 {
					b.Fatalf("Decoder: %d events, error %v", n, err)
				}
			}
		})
	}
}

// BenchmarkEventWriter encodes one event: an id and data of one line, of several lines, or of
// one large line.
func BenchmarkEventWriter(b *testing.B) {
	tests := []struct {
		name, data string
	}{
		{"line=100B", strings.Repeat("x", 100)},
		{"lines=10x100B", strings.TrimSuffix(strings.Repeat(strings.Repeat("x", 100)+"\n", 10), "\n")},
		{"line=64KiB", strings.Repeat("x", 64<<10)},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			buf := make([]byte, 0, 2*len(tt.data)+64)
			b.ReportAllocs()
			var size int
			for b.Loop() {
				enc := &encoder{buf: buf[:0]}
				var w EventWriter = enc
				if err := w.WriteID("1234567"); err != nil {
					b.Fatal(err)
				}
				if err := w.WriteData(tt.data); err != nil {
					b.Fatal(err)
				}
				p, err := enc.finish()
				if err != nil {
					b.Fatal(err)
				}
				if size == 0 {
					size = len(p)
					b.SetBytes(int64(size))
				}
			}
		})
	}
}

// discardWriter is a subscriber's http.ResponseWriter that counts and drops what it is sent.
type discardWriter struct {
	header http.Header
	sink   *benchSink
}

func (w *discardWriter) Header() http.Header { return w.header }
func (w *discardWriter) WriteHeader(int)     { w.sink.attached.Add(1) }
func (w *discardWriter) Flush()              {}
func (w *discardWriter) Write(p []byte) (int, error) {
	w.sink.add(len(p))
	return len(p), nil
}

// benchSink counts the bytes all subscribers have been sent, and tells a waiter when they
// reach a target.
type benchSink struct {
	attached atomic.Int64
	total    atomic.Int64
	target   atomic.Int64
	reached  chan struct{} // capacity 1: one pending wake-up is enough for the one waiter
}

func (s *benchSink) add(n int) {
	if t := s.total.Add(int64(n)); t >= s.target.Load() {
		select {
		case s.reached <- struct{}{}:
		default:
		}
	}
}

// wait returns when the subscribers have been sent target bytes in all.
func (s *benchSink) wait(target int64) {
	s.target.Store(target)
	for s.total.Load() < target {
		<-s.reached
	}
}

// BenchmarkRoutePublish publishes events of about 100 bytes to a shared Route with 1, 100 and
// 10,000 subscribers (in-process, with ResponseWriters that discard). One op is one event
// delivered to every subscriber: the publisher waits for all of them every 32 events.
//
// With replay=1000 the Route keeps the last 1,000 events for returning subscribers.
func BenchmarkRoutePublish(b *testing.B) {
	for _, replay := range []int{0, 1000} {
		for _, n := range []int{1, 100, 10000} {
			name := fmt.Sprintf("subscribers=%d", n)
			if replay > 0 {
				name = fmt.Sprintf("replay=%d/%s", replay, name)
			}
			b.Run(name, func(b *testing.B) { benchmarkRoutePublish(b, n, NewRoute(Replay(replay))) })
		}
	}
}

func benchmarkRoutePublish(b *testing.B, n int, route Route) {
	data := strings.Repeat("x", 90)
	{
		{
			sink := &benchSink{reached: make(chan struct{}, 1)}
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for range n {
				req := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
				w := &discardWriter{header: http.Header{}, sink: sink}
				wg.Add(1)
				go func() {
					defer wg.Done()
					route.ServeHTTP(w, req)
				}()
			}
			defer func() {
				cancel()
				route.Close()
				wg.Wait()
			}()
			for sink.attached.Load() < int64(n) {
				time.Sleep(time.Millisecond)
			}
			write := func(w EventWriter) error {
				if err := w.WriteID("1234567"); err != nil {
					return err
				}
				return w.WriteData(data)
			}
			enc := &encoder{}
			if err := write(enc); err != nil {
				b.Fatal(err)
			}
			p, _ := enc.finish()
			size := int64(len(p))
			var sent int64
			publish := func() {
				if err := route.PublishEvent(write); err != nil {
					b.Fatal(err)
				}
				sent++
			}
			publish()
			sink.wait(int64(n) * size * sent)
			b.ReportAllocs()
			b.SetBytes(size * int64(n))
			for b.Loop() {
				publish()
				if sent%32 == 0 {
					sink.wait(int64(n) * size * sent)
				}
			}
			sink.wait(int64(n) * size * sent)
		}
	}
}

// BenchmarkReplayCatchUp has 10,000 subscribers come back at once to a Route that retains
// 1,000 events of about 100 bytes, each with the ID of the oldest, and receive the 999 events
// after it. One op is all of them caught up; nothing is encoded again.
func BenchmarkReplayCatchUp(b *testing.B) {
	const subscribers, events = 10000, 1000
	route := NewRoute(Replay(events), WaitForSubscriber(false))
	defer route.Close()
	data := strings.Repeat("x", 90)
	var size int64
	for i := range events {
		write := func(w EventWriter) error {
			if err := w.WriteID(fmt.Sprintf("%07d", i)); err != nil {
				return err
			}
			return w.WriteData(data)
		}
		if i > 0 {
			p, _ := AppendEvent(nil, write)
			size += int64(len(p))
		}
		if err := route.PublishEvent(write); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.SetBytes(size * subscribers)
	for b.Loop() {
		sink := &benchSink{reached: make(chan struct{}, 1)}
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range subscribers {
			req := httptest.NewRequest("GET", "/", nil).WithContext(ctx)
			req.Header.Set("Last-Event-ID", "0000000")
			w := &discardWriter{header: http.Header{}, sink: sink}
			wg.Add(1)
			go func() {
				defer wg.Done()
				route.ServeHTTP(w, req)
			}()
		}
		sink.wait(size * subscribers)
		cancel()
		wg.Wait()
	}
}
