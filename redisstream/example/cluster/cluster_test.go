package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	httpsse "github.com/reiver/go-httpsse"
)

// mainEnv, when set, makes the test binary run the command (main), with the arguments it
// was given, instead of the tests; the instances it starts inherit it.
const mainEnv = "HTTPSSE_CLUSTER_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(mainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// tickData is the data of a tick event.
type tickData struct {
	Instance, PID, Tick int
}

// TestKillInstances runs the command, reads its stream through the proxy as EventSource
// does (reconnecting with Last-Event-ID), and kills each instance with SIGKILL in turn
// (starting it again afterwards), so that the instance serving the stream is killed at
// least once. No tick may be missing or repeated, and IDs must keep increasing.
func TestKillInstances(t *testing.T) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("HTTPSSE_REDIS") == "1" {
			t.Fatal("redis-server is not installed, and HTTPSSE_REDIS=1 requires it")
		}
		t.Skip("redis-server is not installed (Debian: apt-get install redis-server); set HTTPSSE_REDIS=1 to fail instead")
	}
	addr := freeAddr(t)
	cmd := exec.Command(os.Args[0], "-addr", addr, "-stream", "httpsse:cluster-test-"+strings.ReplaceAll(addr, ":", "-"))
	cmd.Env = append(os.Environ(), mainEnv+"=1")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Error("the command did not end on SIGTERM")
		}
	}()
	base := "http://" + addr
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		if resp, err := http.Get(base + "/cluster"); err == nil {
			resp.Body.Close()
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatal("the proxy did not answer")
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan httpsse.Event)
	reconnects := make(chan struct{}, 100)
	go follow(ctx, base+"/events", events, reconnects)
	defer cancel()

	last := map[int]int{} // pid → last tick
	var lastID string
	seen := 0
	read := func(n int) {
		t.Helper()
		timeout := time.After(20 * time.Second)
		for range n {
			select {
			case ev := <-events:
				seen++
				if ev.EventName() != "tick" {
					t.Fatalf("event %q %q, want only ticks", ev.EventName(), ev.EventDataCollapsed())
				}
				var tk tickData
				if err := json.Unmarshal([]byte(ev.EventDataCollapsed()), &tk); err != nil {
					t.Fatal(err)
				}
				if prev, ok := last[tk.PID]; ok && tk.Tick != prev+1 {
					t.Errorf("instance %d (pid %d): tick %d after %d", tk.Instance, tk.PID, tk.Tick, prev)
				}
				last[tk.PID] = tk.Tick
				if lastID != "" && !idLess(lastID, ev.EventID()) {
					t.Errorf("ID %s after %s", ev.EventID(), lastID)
				}
				lastID = ev.EventID()
			case <-timeout:
				t.Fatalf("no event for 20 s (%d so far)", seen)
			}
		}
	}
	read(3)
	for _, n := range []string{"1", "2", "3"} {
		post(t, base+"/cluster/kill", n)
		read(4)
		post(t, base+"/cluster/start", n)
	}
	read(3)
	if len(reconnects) == 0 {
		t.Error("the stream was never cut: the instance serving it was not killed")
	}
	t.Logf("%d events, %d reconnections, instances seen: %d", seen, len(reconnects), len(last))
}

// follow reads the stream as EventSource does: when it ends, it connects again with the
// last event ID, after a short pause.
func follow(ctx context.Context, url string, events chan<- httpsse.Event, reconnects chan<- struct{}) {
	var lastID string
	for n := 0; ctx.Err() == nil; n++ {
		if n > 0 {
			reconnects <- struct{}{}
			time.Sleep(100 * time.Millisecond)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		c, err := httpsse.DialRequest(req, httpsse.Reconnect(false))
		if err != nil {
			continue
		}
		for c.Next() {
			var ev httpsse.Event
			if c.Decode(&ev) != nil {
				break
			}
			lastID = ev.EventID()
			select {
			case events <- ev:
			case <-ctx.Done():
			}
		}
		c.Close()
	}
}

func post(t *testing.T, u, n string) {
	t.Helper()
	resp, err := http.PostForm(u, url.Values{"n": {n}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s n=%s: %s", u, n, resp.Status)
	}
}

// idLess compares two Redis stream entry IDs.
func idLess(a, b string) bool {
	var am, as, bm, bs uint64
	parse := func(s string, ms, seq *uint64) {
		m, q, _ := strings.Cut(s, "-")
		for _, c := range m {
			*ms = *ms*10 + uint64(c-'0')
		}
		for _, c := range q {
			*seq = *seq*10 + uint64(c-'0')
		}
	}
	parse(a, &am, &as)
	parse(b, &bm, &bs)
	return am < bm || am == bm && as < bs
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
