package httpsse

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// What a subscriber of several topics costs against a subscriber of one: the Route's own
// ServeHTTP ("route"), and Topics.Serve with 1 and 5 topics, with Replay (so that every event
// carries the response's ID). The subscribers are raw TCP connections, so that the client side
// costs next to nothing in memory; docs/performance.md has the figures and the commands.

const benchSubscribers = 1000

// benchServeCases are the kinds of subscriber compared.
var benchServeCases = []struct {
	name   string
	topics int // 0: the Route's ServeHTTP
}{{"route", 0}, {"topics=1", 1}, {"topics=5", 5}}

// benchServe serves either a Route or a Topics to raw subscribers.
type benchServe struct {
	route  Route
	topics *Topics
	names  []string
	srv    *httptest.Server
	conns  []net.Conn
}

func newBenchServe(b *testing.B, topics int) *benchServe {
	bs := &benchServe{}
	if topics == 0 {
		bs.route = NewRoute(Replay(100), WaitForSubscriber(false))
	} else {
		bs.topics = NewTopics(Replay(100))
		for i := range topics {
			bs.names = append(bs.names, fmt.Sprint("topic-", i))
		}
	}
	bs.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if bs.route != nil {
			bs.route.ServeHTTP(w, r)
		} else {
			bs.topics.Serve(w, r, bs.names...)
		}
	}))
	b.Cleanup(bs.close)
	return bs
}

func (bs *benchServe) close() {
	for _, c := range bs.conns {
		c.Close()
	}
	if bs.route != nil {
		bs.route.Close()
	} else {
		bs.topics.Close()
	}
	bs.srv.Close()
}

// subscribe opens n raw subscribers and waits until each has its response's headers.
func (bs *benchServe) subscribe(b *testing.B, n int) {
	addr := bs.srv.Listener.Addr().String()
	buf := make([]byte, 4096)
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n"); err != nil {
			b.Fatal(err)
		}
		// The headers, and with Topics.Serve the block that sets the ID.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
		c.SetReadDeadline(time.Time{})
		bs.conns = append(bs.conns, c)
	}
}

// publish publishes event i: to the Route, or to topic i mod the topics.
func (bs *benchServe) publish(i int, data string) error {
	fn := func(w EventWriter) error { return w.WriteData(data) }
	if bs.route != nil {
		return bs.route.PublishEvent(fn)
	}
	return bs.topics.Route(bs.names[i%len(bs.names)]).PublishEvent(fn)
}

// BenchmarkServeIdle reports the memory that the server holds per idle subscriber: heap and
// goroutine stacks after 1,000 subscribers have connected, over those before, per subscriber.
func BenchmarkServeIdle(b *testing.B) {
	for _, tc := range benchServeCases {
		b.Run(tc.name, func(b *testing.B) {
			var perSub, stackPerSub float64
			for b.Loop() {
				bs := newBenchServe(b, tc.topics)
				before, stackBefore := inUse()
				g := runtime.NumGoroutine()
				bs.subscribe(b, benchSubscribers)
				after, stackAfter := inUse()
				b.Logf("goroutines per subscriber: %.2f", float64(runtime.NumGoroutine()-g)/benchSubscribers)
				perSub = float64(after-before) / benchSubscribers
				stackPerSub = float64(stackAfter-stackBefore) / benchSubscribers
				bs.close()
				bs.conns = nil
			}
			b.ReportMetric(perSub, "B/subscriber")
			b.ReportMetric(stackPerSub, "stack-B/subscriber")
		})
	}
}

// inUse returns the heap and stack memory in use after a collection, and the stacks alone.
func inUse() (int64, int64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse), int64(m.StackInuse)
}

// BenchmarkServeFanout publishes b.N events of 16 bytes to 1,000 subscribers (spread over the
// topics with Topics.Serve, so that every subscriber receives every event) and reports the
// deliveries per second, counted when the last subscriber has read the last event.
func BenchmarkServeFanout(b *testing.B) {
	for _, tc := range benchServeCases {
		b.Run(tc.name, func(b *testing.B) {
			bs := newBenchServe(b, tc.topics)
			bs.subscribe(b, benchSubscribers)
			var received atomic.Int64
			var wg sync.WaitGroup
			for _, c := range bs.conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					buf := make([]byte, 32<<10)
					for {
						n, err := c.Read(buf)
						received.Add(int64(bytes.Count(buf[:n], []byte{1})))
						if err != nil {
							return
						}
					}
				}()
			}
			data := "\x01" + strings.Repeat("x", 15)
			want := int64(b.N) * benchSubscribers
			b.ResetTimer()
			start := time.Now()
			for i := range b.N {
				if err := bs.publish(i, data); err != nil {
					b.Fatal(err)
				}
			}
			for received.Load() < want {
				time.Sleep(time.Millisecond)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(want)/elapsed.Seconds(), "deliveries/s")
			bs.close()
			wg.Wait()
		})
	}
}
