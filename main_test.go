package httpsse

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if any test left a goroutine of this package, of an HTTP server
// connection or of an HTTP client connection behind.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "goroutines left after the tests:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// leakedGoroutines waits up to d for the interesting goroutines to end, and returns the
// stacks of those that did not.
func leakedGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		http.DefaultTransport.(*http.Transport).CloseIdleConnections()
		leaked := interestingGoroutines()
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
	buf := make([]byte, 2<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var found []string
	for i, g := range strings.Split(string(buf), "\n\n") {
		if i == 0 { // this goroutine
			continue
		}
		if strings.Contains(g, "reiver/go-httpsse.") ||
			strings.Contains(g, "net/http.(*conn).serve") ||
			strings.Contains(g, "net/http.(*persistConn)") ||
			strings.Contains(g, "net/http/httptest.(*Server)") {
			if strings.Contains(g, "testing.tRunner") || strings.Contains(g, "testing.(*F).Fuzz") {
				continue // a test still running (only with -failfast or parallel output)
			}
			found = append(found, g)
		}
	}
	return found
}

// checkNoLeaks fails t if goroutines of this package or of HTTP connections are left once
// the test's cleanups have run; call it at the start of a test.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	t.Cleanup(func() {
		if leaked := leakedGoroutines(5 * time.Second); leaked != "" {
			t.Errorf("goroutines left after the test:\n%s", leaked)
		}
	})
}
