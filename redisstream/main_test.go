package redisstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	httpsse "github.com/reiver/go-httpsse"
)

// childEnv, when set, makes the test binary a server process of the multi-process tests
// (see runChild) instead of running tests.
const childEnv = "HTTPSSE_REDISSTREAM_CHILD"

// TestMain runs the tests, or a server process, and fails the run if any test left a
// goroutine of this module, of go-redis or of an HTTP connection behind.
func TestMain(m *testing.M) {
	if spec := os.Getenv(childEnv); spec != "" {
		runChild(spec)
		return
	}
	// go-redis logs each failed dial, which the tests cause on purpose.
	redis.SetLogger(quiet{})
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// quiet is a go-redis logger that logs nothing.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...interface{}) {}

func leakedGoroutines(d time.Duration) string {
	return leaked(d, func(string) bool { return false })
}

// libraryLeaks is leakedGoroutines for a test still running: the goroutines of its Redis
// server and HTTP servers do not count.
func libraryLeaks(d time.Duration) string {
	return leaked(d, func(g string) bool {
		return strings.Contains(g, "(*redisServer).start") || strings.Contains(g, "httptest.(*Server).goServe")
	})
}

func leaked(d time.Duration, skip func(string) bool) string {
	deadline := time.Now().Add(d)
	for {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		var leaked []string
		for _, g := range interestingGoroutines() {
			if !skip(g) {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 {
			return ""
		}
		if time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func interestingGoroutines() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 || strings.Contains(g, "testing.tRunner") {
			continue
		}
		if strings.Contains(g, "reiver/go-httpsse") ||
			strings.Contains(g, "redis/go-redis") ||
			strings.Contains(g, "net/http.(*conn).serve") ||
			strings.Contains(g, "net/http.(*persistConn)") ||
			strings.Contains(g, "net/http/httptest.(*Server)") {
			found = append(found, g)
		}
	}
	return found
}

// redisServer is a real redis-server process that a test started, on a free loopback port
// with a temporary directory.
type redisServer struct {
	t    testing.TB
	addr string
	dir  string
	args []string
	cmd  *exec.Cmd
	exit chan struct{} // closed when cmd has been waited for
}

// requireRedis returns the path of redis-server, or skips the test when it is not
// installed (fails it when HTTPSSE_REDIS=1).
func requireRedis(t testing.TB) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		msg := "redis-server is not installed (Debian: apt-get install redis-server); the tests of redisstream need a real Redis"
		if os.Getenv("HTTPSSE_REDIS") == "1" {
			t.Fatalf("%s, and HTTPSSE_REDIS=1 requires them", msg)
		}
		t.Skip(msg + "; set HTTPSSE_REDIS=1 to fail instead of skipping")
	}
	return path
}

// startRedis starts a redis-server with the given extra configuration (such as
// "--appendonly", "yes"), without persistence unless extra asks for it. It is stopped
// when the test ends.
func startRedis(t testing.TB, extra ...string) *redisServer {
	t.Helper()
	requireRedis(t)
	s := &redisServer{t: t, dir: t.TempDir()}
	for attempt := 0; ; attempt++ {
		s.addr = freeAddr(t)
		_, port, _ := net.SplitHostPort(s.addr)
		s.args = append([]string{
			"--port", port, "--bind", "127.0.0.1", "--dir", s.dir,
			"--save", "", "--appendonly", "no", "--daemonize", "no",
			"--logfile", filepath.Join(s.dir, "redis.log"),
		}, extra...)
		err := s.start()
		if err == nil {
			break
		}
		if attempt == 3 {
			t.Fatal(err)
		}
	}
	t.Cleanup(s.stop)
	return s
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start starts the process and waits until it answers PING.
func (s *redisServer) start() error {
	s.cmd = exec.Command("redis-server", s.args...)
	s.cmd.SysProcAttr = dieWithParent()
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("starting redis-server: %w", err)
	}
	exit := make(chan struct{})
	s.exit = exit
	go func(cmd *exec.Cmd) {
		_ = cmd.Wait()
		close(exit)
	}(s.cmd)
	c := redis.NewClient(&redis.Options{Addr: s.addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(context.Background()).Err()
		if err == nil {
			return nil
		}
		select {
		case <-exit:
			log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
			return fmt.Errorf("redis-server %v exited: %s", s.args, log)
		default:
		}
		if time.Now().After(deadline) {
			s.signal(syscall.SIGKILL)
			return fmt.Errorf("redis-server on %s did not answer: %v", s.addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// signal sends sig to the process by its PID and waits for it to end.
func (s *redisServer) signal(sig syscall.Signal) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(sig)
	<-s.exit
	s.cmd = nil
}

func (s *redisServer) stop() { s.signal(syscall.SIGTERM) }

// kill ends the process with SIGKILL, as a crash would.
func (s *redisServer) kill() { s.signal(syscall.SIGKILL) }

// restart starts the process again, on the same port, with the same directory.
func (s *redisServer) restart() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatal(err)
	}
}

// client returns a go-redis client of the server, closed when the test ends.
func (s *redisServer) client(t testing.TB) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.addr})
	t.Cleanup(func() { c.Close() })
	return c
}

// readerConns returns the CLIENT LIST lines of the reading connections of this package.
func (s *redisServer) readerConns(t testing.TB) []string {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.addr})
	defer c.Close()
	list, err := c.ClientList(context.Background()).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	var conns []string
	for line := range strings.Lines(list) {
		if strings.Contains(line, " name="+readerName+" ") {
			conns = append(conns, strings.TrimSpace(line))
		}
	}
	return conns
}

// got is one event a subscriber received.
type got struct{ id, name, data string }

func (g got) String() string { return fmt.Sprintf("%s %s %q", g.id, g.name, g.data) }

// subscriber is one client of an event stream, read by a goroutine of its own.
type subscriber struct {
	client httpsse.Client
	mu     sync.Mutex
	events []got
	more   chan struct{} // closed and replaced at each event
	done   chan struct{} // closed when the stream has ended
	err    error
}

// subscribe connects to url, with a Last-Event-ID header when lastID is not empty, without
// reconnection. The subscriber is closed when the test ends.
func subscribe(t testing.TB, url, lastID string) *subscriber {
	t.Helper()
	s, err := trySubscribe(url, lastID)
	if err != nil {
		t.Fatalf("subscribing to %s: %v", url, err)
	}
	t.Cleanup(s.close)
	return s
}

func trySubscribe(url, lastID string) (*subscriber, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	c, err := httpsse.DialRequest(req, httpsse.Reconnect(false))
	if err != nil {
		return nil, err
	}
	s := &subscriber{client: c, more: make(chan struct{}), done: make(chan struct{})}
	go s.read()
	return s, nil
}

func (s *subscriber) read() {
	defer close(s.done)
	for s.client.Next() {
		var ev httpsse.Event
		if err := s.client.Decode(&ev); err != nil {
			s.err = err
			return
		}
		s.mu.Lock()
		s.events = append(s.events, got{id: ev.EventID(), name: ev.EventName(), data: ev.EventDataCollapsed()})
		close(s.more)
		s.more = make(chan struct{})
		s.mu.Unlock()
	}
	s.err = s.client.Err()
}

func (s *subscriber) close() {
	s.client.Close()
	<-s.done
}

// received returns the events received so far.
func (s *subscriber) received() []got {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]got(nil), s.events...)
}

// waitFor waits until the subscriber has received n events, and returns them.
func (s *subscriber) waitFor(t testing.TB, n int, d time.Duration) []got {
	t.Helper()
	timeout := time.After(d)
	for {
		s.mu.Lock()
		if len(s.events) >= n {
			evs := append([]got(nil), s.events...)
			s.mu.Unlock()
			return evs
		}
		more := s.more
		have := len(s.events)
		s.mu.Unlock()
		select {
		case <-more:
		case <-s.done:
			select {
			case <-more:
				continue
			default:
			}
			t.Fatalf("stream ended after %d of %d events: %v", have, n, s.err)
		case <-timeout:
			t.Fatalf("received %d of %d events in %v", have, n, d)
		}
	}
}

// serve serves route on a test HTTP server and returns the server's URL.
func serve(t testing.TB, route http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(route)
	t.Cleanup(func() {
		ts.CloseClientConnections()
		ts.Close()
	})
	return ts.URL
}

// streamEvents returns the events of a Redis stream, as a subscriber receives them.
func streamEvents(t testing.TB, c redis.UniversalClient, stream string) []got {
	t.Helper()
	msgs, err := c.XRange(context.Background(), stream, "-", "+").Result()
	if err != nil {
		t.Fatalf("XRANGE %s: %v", stream, err)
	}
	evs := make([]got, 0, len(msgs))
	for _, m := range msgs {
		fields, _ := m.Values[entryField].(string)
		var name, data []string
		for line := range strings.Lines(fields) {
			line = strings.TrimSuffix(line, "\n")
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				name = append(name, v)
			}
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				data = append(data, v)
			}
		}
		evs = append(evs, got{id: m.ID, name: strings.Join(name, ""), data: strings.Join(data, "\n")})
	}
	return evs
}

// checkSame fails t unless got and want are the same events.
func checkSame(t testing.TB, who string, got, want []got) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s received %d events, want %d", who, len(got), len(want))
	}
	for i := range min(len(got), len(want)) {
		if got[i] != want[i] {
			t.Errorf("%s event %d = %v, want %v", who, i, got[i], want[i])
			return
		}
	}
}

// publishN publishes n events named name with data prefix-0, prefix-1, ...
func publishN(route httpsse.Route, name, prefix string, n int) error {
	for i := range n {
		err := route.PublishEvent(func(w httpsse.EventWriter) error {
			w.WriteEvent(name)
			return w.WriteData(prefix + "-" + strconv.Itoa(i))
		})
		if err != nil {
			return fmt.Errorf("publishing %s-%d: %w", prefix, i, err)
		}
	}
	return nil
}

// runChild is a server process of the multi-process tests. spec is "redis address,stream"
// or "redis address,prefix,topics". With a stream, it serves the stream at /events, and
// publishes on POST /publish?prefix=p&n=N (events "p-0" to "p-<N-1>", one at a time, pausing
// for the duration pause in between). With topics, it serves a [Topics] of that prefix with
// Serve at /serve?topic=a&topic=b... All keep 16 events in memory. It prints "listening
// <address>" on its standard output, and exits when its standard input closes.
func runChild(spec string) {
	addr, spec, _ := strings.Cut(spec, ",")
	stream, mode, _ := strings.Cut(spec, ",")
	client := redis.NewClient(&redis.Options{Addr: addr})
	var closer interface{ Close() error }
	mux := http.NewServeMux()
	if mode == "topics" {
		topics := NewTopics(client, stream, Replay(16), MaxLen(1_000_000))
		mux.HandleFunc("GET /serve", func(w http.ResponseWriter, req *http.Request) {
			topics.Serve(w, req, req.URL.Query()["topic"]...)
		})
		closer = topics
	} else {
		route := NewRoute(client, stream, Replay(16), MaxLen(1_000_000))
		mux.Handle("/events", route)
		mux.HandleFunc("POST /publish", func(w http.ResponseWriter, req *http.Request) {
			n, _ := strconv.Atoi(req.FormValue("n"))
			pause, _ := time.ParseDuration(req.FormValue("pause"))
			for i := range n {
				data := req.FormValue("prefix") + "-" + strconv.Itoa(i)
				err := route.PublishEvent(func(w httpsse.EventWriter) error {
					w.WriteEvent("tick")
					return w.WriteData(data)
				})
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				time.Sleep(pause)
			}
		})
		closer = route
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening %s\n", l.Addr())
	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		closer.Close()
		os.Exit(0)
	}()
	err = http.Serve(l, mux)
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// child is a server process started by startChild.
type child struct {
	url   string
	cmd   *exec.Cmd
	stdin interface{ Close() error }
	exit  chan struct{}
}

// startChild starts this test binary as a server process of the stream (see runChild),
// ended when the test ends.
func startChild(t testing.TB, r *redisServer, stream string) *child {
	t.Helper()
	return startChildSpec(t, r.addr+","+stream)
}

// startTopicsChild starts this test binary as a server process of the topics whose streams
// are prefix+name, served with Topics.Serve (see runChild), ended when the test ends.
func startTopicsChild(t testing.TB, r *redisServer, prefix string) *child {
	t.Helper()
	return startChildSpec(t, r.addr+","+prefix+",topics")
}

func startChildSpec(t testing.TB, spec string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+spec)
	cmd.SysProcAttr = dieWithParent()
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin, exit: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(c.exit)
	}()
	t.Cleanup(func() {
		c.stdin.Close()
		select {
		case <-c.exit:
		case <-time.After(5 * time.Second):
			c.kill()
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		c.kill()
		t.Fatalf("server process said %q: %v", line, err)
	}
	c.url = "http://" + addr
	return c
}

// kill ends the process with SIGKILL, by its PID.
func (c *child) kill() {
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	<-c.exit
}

// publish asks the process to publish n events with data prefix-0, prefix-1, ...
func (c *child) publish(prefix string, n int, pause time.Duration) error {
	resp, err := http.PostForm(c.url+"/publish", map[string][]string{
		"prefix": {prefix}, "n": {strconv.Itoa(n)}, "pause": {pause.String()},
	})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := bufio.NewReader(resp.Body).ReadString(0)
		return errors.New(strings.TrimSpace(msg))
	}
	return nil
}
