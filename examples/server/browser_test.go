//go:build unix

package main

// End-to-end tests in a real browser: headless Chromium's own EventSource
// against httpsse Routes served on a loopback port. The pages report what
// they saw by POSTing JSON back to the test server.
//
// They need /usr/bin/chromium (Debian's chromium package). Without it they
// skip, unless HTTPSSE_E2E=1, when a missing browser is a failure
// (.ci/browser installs it and sets that).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/reiver/go-httpsse"
)

const chromiumPath = "/usr/bin/chromium"

// chromiumFlags are the flags every launch uses; --user-data-dir and the URL
// are added per test.
var chromiumFlags = []string{
	"--headless",
	"--no-sandbox",
	"--disable-gpu",
	"--disable-quic",
	"--no-first-run",
	"--disable-background-networking",
	"--disable-component-update",
	"--disable-sync",
}

// needChromium skips the test when there is no Chromium, or fails it when
// HTTPSSE_E2E=1 asks for the browser tests to run.
func needChromium(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err == nil {
		return
	}
	if os.Getenv("HTTPSSE_E2E") == "1" {
		t.Fatalf("HTTPSSE_E2E=1 but %s is missing: install Debian's chromium (apt-get install chromium) or run .ci/browser", chromiumPath)
	}
	t.Skipf("skipping browser test: %s not found (apt-get install chromium, or run .ci/browser; HTTPSSE_E2E=1 makes this a failure)", chromiumPath)
}

// lockedBuffer collects the browser's output for failure messages.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (lb *lockedBuffer) Write(p []byte) (int, error) {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	return lb.b.Write(p)
}

// tail returns the last lines of the output, without Chromium's usual
// complaints about D-Bus, which has no bus in a container.
func (lb *lockedBuffer) tail() string {
	lb.mu.Lock()
	defer lb.mu.Unlock()
	var lines []string
	for _, l := range strings.Split(lb.b.String(), "\n") {
		if l != "" && !strings.Contains(l, "dbus") {
			lines = append(lines, l)
		}
	}
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return strings.Join(lines, "\n")
}

// browser is one headless Chromium process group.
type browser struct {
	cmd     *exec.Cmd
	out     *lockedBuffer
	exited  chan struct{} // closed when the process has been waited for
	dataDir string
}

// startBrowser launches headless Chromium on url, in a process group of its
// own; the test's cleanup kills that group and waits for it.
func startBrowser(t *testing.T, url string, extra ...string) *browser {
	t.Helper()
	needChromium(t)
	dataDir := t.TempDir() // removed after the kill below: cleanups run last-in first-out
	args := append(append([]string{}, chromiumFlags...), extra...)
	args = append(args, "--user-data-dir="+dataDir, url)
	b := &browser{
		cmd:     exec.Command(chromiumPath, args...),
		out:     &lockedBuffer{},
		exited:  make(chan struct{}),
		dataDir: dataDir,
	}
	b.cmd.Stdout = b.out
	b.cmd.Stderr = b.out
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	go func() {
		b.cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() { b.kill(t) })
	return b
}

// kill ends the browser's process group by its ID (the PID of the process we
// started), then any process still running with our own --user-data-dir.
func (b *browser) kill(t *testing.T) {
	pid := b.cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGKILL)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		t.Errorf("chromium (pid %d) did not exit within 10s of SIGKILL", pid)
	}
	for _, p := range processesWith("--user-data-dir=" + b.dataDir) {
		syscall.Kill(p, syscall.SIGKILL)
	}
}

// processesWith returns the PIDs whose command line contains s.
func processesWith(s string) []int {
	dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, f := range dirs {
		cmdline, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(cmdline, []byte(s)) {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(f, "/proc/%d/cmdline", &pid); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// reports receives what a test page POSTs to /e2e/report and logs what it
// POSTs to /e2e/log.
type reports struct {
	t  *testing.T
	ch chan []byte // capacity 1: a page reports once; a later report is dropped
}

func newReports(t *testing.T, mux *http.ServeMux) *reports {
	rp := &reports{t: t, ch: make(chan []byte, 1)}
	mux.HandleFunc("POST /e2e/report", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		select {
		case rp.ch <- body:
		default:
		}
	})
	mux.HandleFunc("POST /e2e/log", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		t.Logf("page: %s", body)
	})
	return rp
}

// wait returns the page's report, decoded into v, or fails the test after d.
func (rp *reports) wait(b *browser, d time.Duration, v any) {
	rp.t.Helper()
	select {
	case body := <-rp.ch:
		if err := json.Unmarshal(body, v); err != nil {
			rp.t.Fatalf("page report %q: %v", body, err)
		}
	case <-b.exited:
		rp.t.Fatalf("chromium exited before the page reported; its output:\n%s", b.out.tail())
	case <-time.After(d):
		rp.t.Fatalf("no report from the page within %s; chromium's output:\n%s", d, b.out.tail())
	}
}

func servePage(html string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, html)
	}
}

// eventSourcePage opens one EventSource on /e2e/stream and records every
// event it dispatches, acknowledging the "bye" and "welcome" events so that
// the server ends each stream only once everything has arrived. It reports
// when the EventSource is closed for good (the 204), or after 30 s.
const eventSourcePage = `<!doctype html>
<meta charset="utf-8">
<title>httpsse e2e</title>
<script>
"use strict";
const post = (path, body) => fetch(path, {method: "POST", body: body || ""});
const got = [], errors = [];
let opens = 0, reported = false;
function report() {
  if (reported) return;
  reported = true;
  post("/e2e/report", JSON.stringify({got, errors, opens, readyState: es.readyState, burst}));
  es.close();
}
const es = new EventSource("/e2e/stream");
// fnv is FNV-1a over UTF-16 code units: over ASCII, Go's hash/fnv New32a.
function fnv(s) {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16);
}
function record(e) {
  const data = e.data.length > 4096 ? "len:" + e.data.length + " fnv:" + fnv(e.data) : e.data;
  got.push({type: e.type, data: data, id: e.lastEventId});
  if (e.type === "bye") post("/e2e/ack?phase=1");
  if (e.type === "welcome") post("/e2e/ack?phase=2");
}
es.onmessage = record;
for (const type of ["greeting", "bye", "welcome"]) es.addEventListener(type, record);
const burst = {count: 0, outOfOrder: 0};
es.addEventListener("burst", (e) => {
  if (e.data !== String(burst.count)) burst.outOfOrder++;
  burst.count++;
});
es.onopen = () => { opens++; post("/e2e/log", "open #" + opens); };
es.onerror = () => {
  errors.push(es.readyState);
  post("/e2e/log", "error, readyState " + es.readyState);
  if (es.readyState === EventSource.CLOSED) report();
};
setTimeout(report, 30000);
</script>
`

type pageEvent struct {
	Type string `json:"type"`
	Data string `json:"data"`
	ID   string `json:"id"`
}

// conformanceStep is one PublishEvent of the first stream, and what the
// browser must dispatch for it (nothing when want is nil).
type conformanceStep struct {
	name  string
	write func(httpsse.EventWriter) error
	want  *pageEvent
}

func data(s string) func(httpsse.EventWriter) error {
	return func(ew httpsse.EventWriter) error { return ew.WriteData(s) }
}

// summary is how the page reports data longer than 4096 characters
// (ASCII only here).
func summary(s string) string {
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("len:%d fnv:%x", len(s), h.Sum32())
}

// burstSize is how many small events the first stream sends in a row, before
// its last step: a browser reading at full speed must get them all, in order.
const burstSize = 3000

func conformanceSteps(retry time.Duration) []conformanceStep {
	large := strings.Repeat(strings.Repeat("0123456789abcdef", 6)+"\r\n", 1<<20/98)
	return []conformanceStep{
		{"plain", data("plain"), &pageEvent{"message", "plain", ""}},
		{"LF inside WriteData", data("lf-1\nlf-2"), &pageEvent{"message", "lf-1\nlf-2", ""}},
		{"CR inside WriteData", data("cr-1\rcr-2"), &pageEvent{"message", "cr-1\ncr-2", ""}},
		{"CRLF inside WriteData", data("crlf-1\r\ncrlf-2"), &pageEvent{"message", "crlf-1\ncrlf-2", ""}},
		{"LF, CR and CRLF in one WriteData", data("m-1\nm-2\rm-3\r\nm-4"), &pageEvent{"message", "m-1\nm-2\nm-3\nm-4", ""}},
		{"trailing line break", data("trailing\n"), &pageEvent{"message", "trailing\n", ""}},
		{"empty data", data(""), &pageEvent{"message", "", ""}},
		{"unicode", data("héllo wörld · 日本語 · ✓ · 🎉 · \u00a0·\u2028·"), &pageEvent{"message", "héllo wörld · 日本語 · ✓ · 🎉 · \u00a0·\u2028·", ""}},
		{"comment only", func(ew httpsse.EventWriter) error {
			return ew.WriteComment("a comment\nover two lines")
		}, nil},
		{"named event", func(ew httpsse.EventWriter) error {
			ew.WriteEvent("greeting")
			return ew.WriteData("hi")
		}, &pageEvent{"greeting", "hi", ""}},
		{"named event without a listener", func(ew httpsse.EventWriter) error {
			ew.WriteEvent("unlistened")
			return ew.WriteData("nobody listens, so nothing is dispatched")
		}, nil},
		{"explicit message type", func(ew httpsse.EventWriter) error {
			ew.WriteEvent("message")
			return ew.WriteData("explicit")
		}, &pageEvent{"message", "explicit", ""}},
		{"id", func(ew httpsse.EventWriter) error {
			ew.WriteID("42")
			return ew.WriteData("with id")
		}, &pageEvent{"message", "with id", "42"}},
		{"id persists", data("id persists"), &pageEvent{"message", "id persists", "42"}},
		{"id without data", func(ew httpsse.EventWriter) error {
			return ew.WriteID("43")
		}, nil},
		{"id of an undispatched event counts", data("after id-only event"), &pageEvent{"message", "after id-only event", "43"}},
		{"comment inside an event", func(ew httpsse.EventWriter) error {
			ew.WriteComment("ignored")
			return ew.WriteData("comment inside")
		}, &pageEvent{"message", "comment inside", "43"}},
		{"unicode id", func(ew httpsse.EventWriter) error {
			ew.WriteID("ïd-✓")
			return ew.WriteData("unicode id")
		}, &pageEvent{"message", "unicode id", "ïd-✓"}},
		{"empty id resets", func(ew httpsse.EventWriter) error {
			ew.WriteID("")
			return ew.WriteData("id reset")
		}, &pageEvent{"message", "id reset", ""}},
		{"1 MiB of data with CRLFs", data(large), &pageEvent{"message", summary(strings.ReplaceAll(large, "\r\n", "\n")), ""}},
		{"retry and last id", func(ew httpsse.EventWriter) error {
			ew.WriteRetry(retry)
			ew.WriteEvent("bye")
			ew.WriteID("b-1")
			return ew.WriteData("bye")
		}, &pageEvent{"bye", "bye", "b-1"}},
	}
}

// connection is what the test server saw of one request to /e2e/stream.
type connection struct {
	arrived     time.Time
	closed      time.Time // when the server closed the Route
	lastEventID string
	hasHeader   bool
}

// TestBrowserEventSource runs the browser's EventSource against a Route over
// HTTP/1.1 and over HTTP/2 (TLS, the way browsers speak it).
func TestBrowserEventSource(t *testing.T) {
	needChromium(t)
	t.Run("HTTP1", func(t *testing.T) { testBrowserEventSource(t, false) })
	t.Run("HTTP2", func(t *testing.T) { testBrowserEventSource(t, true) })
}

func testBrowserEventSource(t *testing.T, http2 bool) {
	const retry = 700 * time.Millisecond // far from EventSource's default of 3 s

	steps := conformanceSteps(retry)
	var (
		mu    sync.Mutex
		conns []*connection
		wg    sync.WaitGroup // the publishing goroutines, waited for after the server is closed
	)
	t.Cleanup(wg.Wait)
	acks := [3]chan struct{}{nil, make(chan struct{}, 1), make(chan struct{}, 1)}

	mux := http.NewServeMux()
	rp := newReports(t, mux)
	mux.HandleFunc("GET /e2e/", servePage(eventSourcePage))
	mux.HandleFunc("POST /e2e/ack", func(w http.ResponseWriter, r *http.Request) {
		var ack chan struct{}
		switch r.URL.Query().Get("phase") {
		case "1":
			ack = acks[1]
		case "2":
			ack = acks[2]
		}
		select {
		case ack <- struct{}{}:
		default: // a repeated acknowledgement; the event check reports the repeat
		}
	})
	mux.HandleFunc("GET /e2e/stream", func(w http.ResponseWriter, r *http.Request) {
		c := &connection{arrived: time.Now()}
		if want := map[bool]int{false: 1, true: 2}[http2]; r.ProtoMajor != want {
			t.Errorf("%s %s over %s, want HTTP/%d", r.Method, r.URL, r.Proto, want)
		}
		c.lastEventID = r.Header.Get("Last-Event-ID")
		c.hasHeader = len(r.Header.Values("Last-Event-ID")) > 0
		mu.Lock()
		conns = append(conns, c)
		n := len(conns)
		mu.Unlock()

		route := httpsse.NewRoute()
		defer route.Close()
		if n > 2 {
			// A closed Route answers 204 No Content: EventSource must
			// not reconnect.
			route.Close()
			route.ServeHTTP(w, r)
			return
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			publish := func(name string, fn func(httpsse.EventWriter) error) bool {
				err := route.PublishEvent(fn)
				if errors.Is(err, httpsse.ErrClosed) && r.Context().Err() != nil {
					return false // the browser went away: the test has failed already
				}
				if err != nil {
					t.Errorf("connection %d: PublishEvent(%s) = %v", n, name, err)
					return false
				}
				return true
			}
			if n == 1 {
				for i, s := range steps {
					if i == len(steps)-1 {
						for j := 0; j < burstSize; j++ {
							if !publish("burst", func(ew httpsse.EventWriter) error {
								ew.WriteEvent("burst")
								return ew.WriteData(fmt.Sprint(j))
							}) {
								return
							}
						}
					}
					if !publish(s.name, s.write) {
						return
					}
				}
			} else {
				publish("welcome", func(ew httpsse.EventWriter) error {
					ew.WriteEvent("welcome")
					return ew.WriteData(c.lastEventID)
				})
			}
			// End the stream once the page has everything.
			select {
			case <-acks[n]:
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Second):
				t.Errorf("connection %d: no acknowledgement from the page", n)
			}
			mu.Lock()
			c.closed = time.Now()
			mu.Unlock()
			route.Close()
		}()
		route.ServeHTTP(w, r)
	})

	ts := httptest.NewUnstartedServer(mux)
	ts.Listener = httpsse.NewListener(ts.Listener, ts.Config) // as the demo serves them
	var flags []string
	if http2 {
		ts.EnableHTTP2 = true
		ts.StartTLS()
		flags = append(flags, "--ignore-certificate-errors") // httptest's own certificate
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)

	b := startBrowser(t, ts.URL+"/e2e/", flags...)
	var got struct {
		Got        []pageEvent `json:"got"`
		Errors     []int       `json:"errors"`
		Opens      int         `json:"opens"`
		ReadyState int         `json:"readyState"`
		Burst      struct {
			Count      int `json:"count"`
			OutOfOrder int `json:"outOfOrder"`
		} `json:"burst"`
	}
	rp.wait(b, 45*time.Second, &got)

	var want []pageEvent
	for _, s := range steps {
		if s.want != nil {
			want = append(want, *s.want)
		}
	}
	want = append(want, pageEvent{"welcome", "b-1", "b-1"})
	for i := 0; i < len(want) || i < len(got.Got); i++ {
		var g, w *pageEvent
		if i < len(got.Got) {
			g = &got.Got[i]
		}
		if i < len(want) {
			w = &want[i]
		}
		if g == nil || w == nil || *g != *w {
			t.Errorf("event %d: browser dispatched %+v, want %+v", i, g, w)
		}
	}
	if got.Burst.Count != burstSize || got.Burst.OutOfOrder != 0 {
		t.Errorf("burst: browser got %d events, %d out of order, want %d in order", got.Burst.Count, got.Burst.OutOfOrder, burstSize)
	}
	if got.Opens != 2 {
		t.Errorf("EventSource opened %d times, want 2 (the first stream and one reconnection)", got.Opens)
	}
	if got.ReadyState != 2 || !reflect.DeepEqual(got.Errors, []int{0, 0, 2}) {
		t.Errorf("error events saw readyState %v and ended in %d, want [0 0 2] and 2 (CLOSED after the 204)", got.Errors, got.ReadyState)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(conns) != 3 {
		t.Fatalf("server saw %d requests, want 3", len(conns))
	}
	if conns[0].hasHeader {
		t.Errorf("first request sent Last-Event-ID %q, want none", conns[0].lastEventID)
	}
	for i := 1; i < 3; i++ {
		if conns[i].lastEventID != "b-1" {
			t.Errorf("request %d: Last-Event-ID = %q, want %q", i+1, conns[i].lastEventID, "b-1")
		}
		gap := conns[i].arrived.Sub(conns[i-1].closed)
		t.Logf("reconnection %d came %s after the server ended the stream (retry: %s)", i, gap.Round(time.Millisecond), retry)
		if gap < retry-50*time.Millisecond || gap > retry+2*time.Second {
			t.Errorf("reconnection %d came %s after the stream ended, want between %s and %s (retry: %s)",
				i, gap.Round(time.Millisecond), retry, retry+2*time.Second, retry)
		}
	}
}

// demoCheckPage loads the demo page in a same-origin iframe, records every
// change of its state pills (a MutationObserver sees each one, however short),
// and, once the page's streams are open and the per-request one has been
// resumed after a reconnection, presses the per-request stream's Stop button
// and sends itself a notification; once that has arrived, it presses "Cut my
// stream" (the server then sends one more notification while the page is
// away). It reports when the page shows both topics resumed.
const demoCheckPage = `<!doctype html>
<meta charset="utf-8">
<title>httpsse demo check</title>
<iframe id="demo" src="/" style="width:1280px;height:1100px;border:0"></iframe>
<script>
"use strict";
const frame = document.getElementById("demo");
const seen = {shared: [], stream: [], notify: []};
let phase = "wait", done = false;
frame.addEventListener("load", () => {
  for (const panel of ["shared", "stream", "notify"]) {
    const pill = frame.contentDocument.querySelector("#" + panel + ' [data-role="state"]');
    const note = () => {
      const list = seen[panel];
      if (list[list.length - 1] !== pill.dataset.state) list.push(pill.dataset.state);
    };
    note();
    new MutationObserver(note).observe(pill, {attributes: true, attributeFilter: ["data-state"]});
  }
});
const q = (sel) => frame.contentDocument && frame.contentDocument.querySelector(sel);
function text(panel, role) {
  const el = q("#" + panel + ' [data-role="' + role + '"]');
  return el ? el.textContent : "";
}
function snapshot() {
  const s = {};
  for (const panel of ["shared", "stream", "notify"])
    for (const role of ["state", "count", "lastid", "reconnects", "beat", "resumed", "noticetext", "combined", "user"])
      s[panel + "." + role] = text(panel, role);
  const doc = frame.contentDocument;
  s["shared.types"] = doc ? Array.from(doc.querySelectorAll("#shared tbody .tag:not(.sys)"), e => e.textContent) : [];
  s["shared.notice"] = q('#shared [data-role="notice"]') ? q('#shared [data-role="notice"]').dataset.kind : "";
  s["shared.badges"] = doc ? doc.querySelectorAll("#shared tbody .badge").length : 0;
  s["notify.badges"] = doc ? doc.querySelectorAll("#notify tbody .badge").length : 0;
  s["notify.data"] = doc ? Array.from(doc.querySelectorAll("#notify tbody tr:not(.sys) td.data"), e => e.textContent) : [];
  s["notify.ids"] = doc ? Array.from(doc.querySelectorAll("#notify tbody tr:not(.sys) td.id"), e => e.textContent) : [];
  s["notify.result"] = text("notify", "result");
  s["counts"] = doc ? Object.fromEntries(Array.from(doc.querySelectorAll("#counts [data-role]"), e => [e.dataset.role, e.textContent])) : {};
  const w = frame.contentWindow.demoShared;
  s["demoShared"] = w ? {seqs: w.seqs, broken: w.broken, notes: w.notes, noteBroken: w.noteBroken,
    resumes: w.resumes, gaps: w.gaps, lastEventIds: w.lastEventIds.slice(-3)} : null;
  return s;
}
function report(why) {
  if (done) return;
  done = true;
  const s = snapshot();
  s.why = why; s.sharedStates = seen.shared; s.streamStates = seen.stream; s.notifyStates = seen.notify;
  fetch("/e2e/report", {method: "POST", body: JSON.stringify(s)});
}
setInterval(() => {
  const s = snapshot();
  const types = new Set(s["shared.types"]);
  if (phase === "wait" && s["stream.resumed"].startsWith("status-") && s["stream.state"] === "open" &&
      s["shared.state"] === "open" && s["notify.state"] === "open" &&
      types.has("heartbeat") && types.has("note") && types.has("message")) {
    phase = "sent";
    q('#stream [data-role="toggle"]').click();
    q("#text").value = "hello from the test";
    q('#notify [data-role="send"] button').click();
  }
  if (phase === "sent" && s["notify.data"].includes("hello from the test")) {
    phase = "cut";
    q('#shared [data-role="cut"]').click();
  }
  if (phase === "cut" && s["stream.state"] === "stopped" && s["shared.notice"] === "resumed" &&
      s["notify.data"].some((d) => d.startsWith("sent by the server while your stream was cut")) &&
      Number(s.counts["shared.Replays"]) > 0) report("done");
}, 50);
setTimeout(() => report("timeout"), 40000);
</script>
`

// demoResume is what the demo page records of a reconnection of its topics' EventSource.
type demoResume struct {
	After, BackAt, Replayed int
	AfterUser, UserBackAt   int
	UserReplayed            int
	Gap, Exact              bool
	HeldID, SentID          string
}

// TestBrowserDemoPage runs the demo page in Chromium: its one EventSource on /topics reads
// the shared topic and the user's notifications; "Cut my stream" makes Chromium reconnect
// with the one Last-Event-ID, and both topics resume exactly.
func TestBrowserDemoPage(t *testing.T) {
	needChromium(t)
	cfg := demoConfig{
		tick:      60 * time.Millisecond,
		heartbeat: 250 * time.Millisecond,
		replay:    1000,
		longCut:   time.Second,
		keepAlive: 15 * time.Second,
		status:    60 * time.Millisecond,
		streamRun: 4,
		retry:     300 * time.Millisecond,
	}
	handler, closer := newDemo(cfg)

	var (
		mu      sync.Mutex
		headers []string // the Last-Event-ID of each request to /topics
	)
	mux := http.NewServeMux()
	rp := newReports(t, mux)
	mux.HandleFunc("GET /e2e/", servePage(demoCheckPage))
	mux.Handle("/", handler)
	mux.Handle("GET /topics", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		headers = append(headers, r.Header.Get("Last-Event-ID"))
		mu.Unlock()
		handler.ServeHTTP(w, r)
	}))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	t.Cleanup(func() { closer.Close() }) // before ts.Close: ends the open streams

	b := startBrowser(t, ts.URL+"/e2e/")
	var got map[string]any
	rp.wait(b, 60*time.Second, &got)
	t.Logf("demo page: %v", got)

	if got["why"] != "done" {
		t.Fatalf("the demo page never got to the expected state: %v", got)
	}
	for k, v := range map[string]string{"shared.state": "open", "stream.state": "stopped", "notify.state": "open"} {
		if got[k] != v {
			t.Errorf("demo page %s = %v, want %v", k, got[k], v)
		}
	}
	// The topics' one stream broke once, when the page had it cut; both panels show it.
	for _, k := range []string{"sharedStates", "notifyStates"} {
		if states := fmt.Sprint(got[k]); states != "[connecting open reconnecting open]" && states != "[open reconnecting open]" {
			t.Errorf("%s: the topics' stream went through states %s, want [connecting open reconnecting open]", k, states)
		}
	}
	if s, _ := got["shared.beat"].(string); s == "–" || s == "" {
		t.Errorf("demo page shared.beat = %q, want a heartbeat shown", s)
	}
	if s, _ := got["stream.resumed"].(string); !strings.HasPrefix(s, "status-") {
		t.Errorf("demo page stream.resumed = %q, want status-N (the Last-Event-ID the browser sent)", s)
	}
	if states := fmt.Sprint(got["streamStates"]); !strings.Contains(states, "reconnecting open") {
		t.Errorf("per-request stream went through states %s, want a reconnecting then open", states)
	}

	// The page saw every event of each topic once, in order, and says how many it got
	// by replay: those published while it was away.
	var shared struct {
		Seqs       []int
		Broken     int
		Notes      []struct{ N int }
		NoteBroken int
		Resumes    []demoResume
		Gaps       []any
	}
	js, _ := json.Marshal(got["demoShared"])
	json.Unmarshal(js, &shared)
	for i := 1; i < len(shared.Seqs); i++ {
		if shared.Seqs[i] != shared.Seqs[i-1]+1 {
			t.Errorf("shared topic's events %v: want each number once, in order", shared.Seqs)
			break
		}
	}
	if shared.Broken != 0 || shared.NoteBroken != 0 || len(shared.Gaps) != 0 || len(shared.Resumes) != 1 {
		t.Fatalf("topics: %d+%d breaks, gaps %v, resumes %+v; want none, none and one", shared.Broken, shared.NoteBroken, shared.Gaps, shared.Resumes)
	}
	r := shared.Resumes[0]
	if !r.Exact || r.Gap || r.Replayed != r.BackAt-r.After || r.Replayed < 5 {
		t.Errorf("resume %+v: want exact, with the shared events published while away (several) replayed", r)
	}
	if r.UserReplayed != 1 || r.UserBackAt != r.AfterUser+1 {
		t.Errorf("resume %+v: want the one notification sent while away replayed", r)
	}
	user, _ := got["notify.user"].(string)
	names := []string{sharedTopic, userTopic(user)}
	mu.Lock()
	sent := append([]string(nil), headers...)
	mu.Unlock()
	if len(sent) != 2 || sent[0] != "" {
		t.Fatalf("requests to /topics sent Last-Event-ID %q, want none, then one", sent)
	}
	ids, ok := topicIDs(sent[1], names...)
	if !ok || sent[1] != r.HeldID || sent[1] != r.SentID {
		t.Errorf("Chromium came back with Last-Event-ID %q, want the page's lastEventId when the stream was lost, %q, holding %v", sent[1], r.HeldID, names)
	} else {
		t.Logf("Chromium came back with Last-Event-ID %s: shared at %s, %s at %s", sent[1], ids[sharedTopic], names[1], ids[names[1]])
	}
	notice, _ := got["shared.noticetext"].(string)
	if want := fmt.Sprintf("Resumed with Last-Event-ID %s: shared: %d missed events replayed (#%d–#%d) · user/%s: 1 missed notification replayed; every event once and in order ✓",
		r.SentID, r.Replayed, r.After+1, r.BackAt, user); notice != want {
		t.Errorf("notice = %q, want %q", notice, want)
	}
	if s, _ := got["shared.combined"].(string); !combinedIDForm.MatchString(s) {
		t.Errorf("the page shows Last-Event-ID %q, want the combined form", s)
	}
	// The log shows the last 60 rows (MAX_ROWS in index.html): the replayed ones among them
	// carry the badge.
	last := shared.Seqs[len(shared.Seqs)-1]
	if n, _ := got["shared.badges"].(float64); int(n) != r.BackAt-max(r.After, last-60) {
		t.Errorf("shared log marks %v rows as replayed, want %d (events #%d-#%d among the last 60 rows up to #%d)", n, r.BackAt-max(r.After, last-60), r.After+1, r.BackAt, last)
	}
	if n, _ := got["notify.badges"].(float64); n != 1 {
		t.Errorf("notifications log marks %v rows as replayed, want 1", n)
	}
	data, _ := got["notify.data"].([]any)
	if len(data) != 2 || data[1] != "hello from the test" || !strings.HasPrefix(fmt.Sprint(data[0]), "sent by the server while your stream was cut") {
		t.Errorf("notifications shown (newest first) %q, want the one sent while cut, then the one the page sent", data)
	}
	if len(shared.Notes) != 2 || shared.Notes[1].N != shared.Notes[0].N+1 {
		t.Errorf("notifications' numbers in their topic %+v, want two in a row", shared.Notes)
	}
	if s, _ := got["notify.result"].(string); !strings.Contains(s, "1 listening now") {
		t.Errorf("notify result = %q, want it to say 1 listening now", s)
	}
	counts, _ := got["counts"].(map[string]any)
	for _, k := range []string{"shared.Subscribers", "shared.Published", "shared.Replays", "all.Published", "all.Subscribers"} {
		if v, _ := counts[k].(string); v == "" || v == "–" || v == "0" {
			t.Errorf("count %s = %q, want a number above 0", k, v)
		}
	}
}

// demoGapPage loads the demo page in an iframe, presses "Cut for longer" once
// the topics' stream is open and has events, and reports when the page shows
// the resumption, with the gap.
const demoGapPage = `<!doctype html>
<meta charset="utf-8">
<title>httpsse demo gap check</title>
<iframe id="demo" src="/" style="width:1280px;height:1100px;border:0"></iframe>
<script>
"use strict";
const frame = document.getElementById("demo");
const q = (sel) => frame.contentDocument && frame.contentDocument.querySelector(sel);
let cut = false, done = false;
function report(why) {
  if (done) return;
  done = true;
  const w = frame.contentWindow.demoShared || {};
  fetch("/e2e/report", {method: "POST", body: JSON.stringify({why,
    kind: q('#shared [data-role="notice"]').dataset.kind,
    notice: q('#shared [data-role="noticetext"]').textContent,
    user: q('#shared [data-role="user"]').textContent,
    seqs: w.seqs, broken: w.broken, notes: w.notes, noteBroken: w.noteBroken, gaps: w.gaps, resumes: w.resumes,
    gapRows: frame.contentDocument.querySelectorAll("#shared tbody .tag.gap").length,
    notifyGapRows: frame.contentDocument.querySelectorAll("#notify tbody .tag.gap").length})});
}
setInterval(() => {
  const w = frame.contentWindow && frame.contentWindow.demoShared;
  if (!cut && w && w.seqs.length >= 3 && q('#shared [data-role="state"]').dataset.state === "open") {
    cut = true;
    q('#shared [data-role="cutlong"]').click();
  }
  if (cut && w && w.resumes.length > 0) report("resumed");
}, 50);
setTimeout(() => report("timeout"), 40000);
</script>
`

// TestBrowserDemoGap has the demo hold the page's reconnection longer than
// the shared topic keeps events: the page gets the gap event of that topic,
// shows it, and goes on with the live events, in order; the user's topic,
// which keeps what was sent meanwhile, resumes exactly.
func TestBrowserDemoGap(t *testing.T) {
	needChromium(t)
	cfg := defaultDemoConfig
	cfg.tick = 40 * time.Millisecond
	cfg.replay = 5
	cfg.longCut = time.Second
	handler, closer := newDemo(cfg)
	mux := http.NewServeMux()
	rp := newReports(t, mux)
	mux.HandleFunc("GET /e2e/", servePage(demoGapPage))
	mux.Handle("/", handler)
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	t.Cleanup(func() { closer.Close() })

	b := startBrowser(t, ts.URL+"/e2e/")
	var got struct {
		Why, Kind, Notice, User string
		Seqs                    []int
		Broken                  int
		Notes                   []struct {
			N    int
			Data string
		}
		NoteBroken int
		Gaps       []struct {
			Topic           string
			From, Now, Lost int
		}
		Resumes                []demoResume
		GapRows, NotifyGapRows int
	}
	rp.wait(b, 60*time.Second, &got)
	t.Logf("demo page: %+v", got)
	if got.Why != "resumed" {
		t.Fatalf("the demo page never showed the resumption: %+v", got)
	}
	if len(got.Gaps) != 1 || got.Gaps[0].Topic != sharedTopic || got.Gaps[0].Lost <= cfg.replay || got.GapRows != 1 || got.NotifyGapRows != 0 || got.Broken != 0 {
		t.Fatalf("gaps %+v, %d+%d gap rows, %d breaks in the numbering; want one gap, of the shared topic, of more than %d events, one row, none",
			got.Gaps, got.GapRows, got.NotifyGapRows, got.Broken, cfg.replay)
	}
	wantNotice := fmt.Sprintf("Gap in shared: the topic no longer held #%d, so it sent a gap event (data \"shared\") and resumed with the live events after #%d (%d events were lost) · user/%s: 1 missed notification replayed; every event once and in order ✓",
		got.Gaps[0].From, got.Gaps[0].Now, got.Gaps[0].Lost, got.User)
	if got.Kind != "gap" || got.Notice != wantNotice {
		t.Errorf("notice %q (%s), want %q (gap)", got.Notice, got.Kind, wantNotice)
	}
	if r := got.Resumes[0]; !r.Gap || !r.Exact || r.UserReplayed != 1 || len(got.Notes) != 1 || got.NoteBroken != 0 ||
		!strings.HasPrefix(got.Notes[0].Data, "sent by the server while your stream was cut") {
		t.Errorf("resume %+v, notifications %+v: want the user's topic resumed exactly, with the notification sent while away", r, got.Notes)
	}
	// The events before the cut and after the gap are each in order; between
	// them, more than the topic keeps are missing.
	jump := 0
	for i := 1; i < len(got.Seqs); i++ {
		if d := got.Seqs[i] - got.Seqs[i-1]; d != 1 {
			if d <= cfg.replay || jump != 0 || d != got.Gaps[0].Lost+1 {
				t.Errorf("page events %v: want one jump, of more than %d (the %d lost, plus one)", got.Seqs, cfg.replay, got.Gaps[0].Lost)
			}
			jump = d
		}
	}
}

// TestScreenshot remakes docs/demo.png (scripts/screenshot.sh runs it): it
// serves the demo's handler, with its ordinary timings, on a loopback port and
// has headless Chromium screenshot it after some seconds of events. It runs
// only when HTTPSSE_SCREENSHOT names the file to write.
//
// Chromium's --screenshot is taken at the page's load event, and an
// EventSource does not hold that back. So the page shot is a wrapper whose
// iframe shows the demo and whose one image arrives only after a delay. In
// the meantime the wrapper uses the page as a visitor would: it has the
// server cut the shared stream (which the browser resumes about 3 s later)
// and sends itself two notifications.
func TestScreenshot(t *testing.T) {
	out := os.Getenv("HTTPSSE_SCREENSHOT")
	if out == "" {
		t.Skip("set HTTPSSE_SCREENSHOT=/path/to/demo.png to remake the screenshot")
	}
	needChromium(t)
	const width, height = 1280, 1060
	hold := 14 * time.Second

	demo, closer := newDemo(defaultDemoConfig)
	mux := http.NewServeMux()
	mux.Handle("/", demo)
	mux.HandleFunc("GET /_shot/", servePage(fmt.Sprintf(`<!doctype html>
<body style="margin:0;overflow:hidden">
<iframe id="demo" src="/" style="border:0;display:block;width:%dpx;height:%dpx"></iframe>
<img src="/_shot/hold.gif" alt="" style="position:absolute;width:1px;height:1px;opacity:0">
<script>
const doc = () => document.getElementById("demo").contentDocument;
function send(text) {
  doc().getElementById("text").value = text;
  doc().querySelector('#notify [data-role="send"] button').click();
}
setTimeout(() => doc().querySelector('#shared [data-role="cut"]').click(), 6000);
setTimeout(() => send("Your build finished ✓"), 4000);
setTimeout(() => send("Deploy to production started"), 9500);
</script>
</body>`, width, height)))
	mux.HandleFunc("GET /_shot/hold.gif", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(hold):
		case <-r.Context().Done():
		}
		w.Header().Set("Content-Type", "image/gif")
		w.Write([]byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"))
	})
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	t.Cleanup(func() { closer.Close() })

	tmp := filepath.Join(t.TempDir(), "demo.png")
	b := startBrowser(t, ts.URL+"/_shot/",
		"--hide-scrollbars",
		fmt.Sprintf("--window-size=%d,%d", width, height),
		"--screenshot="+tmp,
	)
	select {
	case <-b.exited:
	case <-time.After(hold + 30*time.Second):
		t.Fatalf("chromium did not finish the screenshot; its output:\n%s", b.out.tail())
	}
	png, err := os.ReadFile(tmp)
	if err != nil {
		t.Fatalf("no screenshot: %v; chromium's output:\n%s", err, b.out.tail())
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", out, len(png))
}

// startE2EServer serves mux over HTTP/1.1, or over HTTP/2 with TLS (the way
// browsers speak it), and returns the flags Chromium needs for it.
func startE2EServer(t *testing.T, mux http.Handler, http2 bool) (*httptest.Server, []string) {
	t.Helper()
	ts := httptest.NewUnstartedServer(mux)
	ts.Listener = httpsse.NewListener(ts.Listener, ts.Config) // as the demo serves them
	var flags []string
	if http2 {
		ts.EnableHTTP2 = true
		ts.StartTLS()
		flags = append(flags, "--ignore-certificate-errors") // httptest's own certificate
	} else {
		ts.Start()
	}
	t.Cleanup(ts.Close)
	return ts, flags
}

// cuttable serves route behind a context of its own for each request, so
// that the test can end a response from the server's side, as a proxy
// cutting the connection would. Each request is announced on arrivals.
type cuttable struct {
	route    httpsse.Route
	arrivals chan arrival // capacity 16: more requests than any test expects
	mu       sync.Mutex
	cancels  map[string]context.CancelFunc // by ?who=
}

// arrival is one request to a cuttable route.
type arrival struct {
	who         string
	lastEventID string
	hasHeader   bool
	proto       int
}

func newCuttable(route httpsse.Route) *cuttable {
	return &cuttable{route: route, arrivals: make(chan arrival, 16), cancels: make(map[string]context.CancelFunc)}
}

func (c *cuttable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	who := r.URL.Query().Get("who")
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	c.mu.Lock()
	c.cancels[who] = cancel
	c.mu.Unlock()
	select {
	case c.arrivals <- arrival{who, r.Header.Get("Last-Event-ID"), len(r.Header.Values("Last-Event-ID")) > 0, r.ProtoMajor}:
	default:
	}
	c.route.ServeHTTP(w, r.WithContext(ctx))
}

// cut ends the response of the latest request from who.
func (c *cuttable) cut(who string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cancels[who]()
}

// next returns the next request's arrival, or fails the test after d.
func (c *cuttable) next(t *testing.T, b *browser, d time.Duration) arrival {
	t.Helper()
	select {
	case a := <-c.arrivals:
		return a
	case <-b.exited:
		t.Fatalf("chromium exited; its output:\n%s", b.out.tail())
	case <-time.After(d):
		t.Fatalf("no request within %s; chromium's output:\n%s", d, b.out.tail())
	}
	return arrival{}
}

// resumePage records every event of one EventSource, and the last event ID
// it had when its stream was lost; it reports when the "done" event comes.
const resumePage = `<!doctype html>
<meta charset="utf-8">
<title>httpsse e2e resume</title>
<script>
"use strict";
const got = [], ids = [];
let opens = 0, errors = 0, lastBeforeCut = null;
const es = new EventSource("/e2e/stream?who=page");
es.onmessage = (e) => { got.push(e.data); ids.push(e.lastEventId); };
es.onopen = () => { opens++; };
es.onerror = () => { errors++; if (lastBeforeCut === null) lastBeforeCut = ids.length ? ids[ids.length - 1] : ""; };
es.addEventListener("done", () => {
  es.close();
  fetch("/e2e/report", {method: "POST", body: JSON.stringify({got, ids, opens, errors, lastBeforeCut})});
});
</script>
`

// TestBrowserResume has the server cut Chromium's EventSource stream while
// events go on being published: the browser reconnects by itself with
// Last-Event-ID, and the Route (Replay) sends what it missed, so the page
// sees every event exactly once, in order.
func TestBrowserResume(t *testing.T) {
	needChromium(t)
	t.Run("HTTP1", func(t *testing.T) { testBrowserResume(t, false) })
	t.Run("HTTP2", func(t *testing.T) { testBrowserResume(t, true) })
}

func testBrowserResume(t *testing.T, http2 bool) {
	const retry = 400 * time.Millisecond
	route := httpsse.NewRoute(httpsse.Replay(10000))
	t.Cleanup(func() { route.Close() })
	stream := newCuttable(route)
	mux := http.NewServeMux()
	rp := newReports(t, mux)
	mux.HandleFunc("GET /e2e/", servePage(resumePage))
	mux.Handle("GET /e2e/stream", stream)
	ts, flags := startE2EServer(t, mux, http2)

	// The publisher numbers its events 1, 2, 3...: published is the last one.
	var published atomic.Int64
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for n := int64(1); ; n++ {
			err := route.PublishEvent(func(ew httpsse.EventWriter) error {
				if n == 1 {
					ew.WriteRetry(retry)
				}
				return ew.WriteData(strconv.FormatInt(n, 10))
			})
			if err != nil {
				t.Errorf("PublishEvent(%d) = %v", n, err)
				return
			}
			published.Store(n)
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		route.Close()
		<-stopped
	})
	waitPublished := func(n int64) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); published.Load() < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the publisher did not reach event %d", n)
			}
		}
	}

	b := startBrowser(t, ts.URL+"/e2e/", flags...)
	first := stream.next(t, b, 20*time.Second)
	if first.hasHeader {
		t.Errorf("first request sent Last-Event-ID %q, want none", first.lastEventID)
	}
	waitPublished(50)
	cutAt := published.Load()
	stream.cut("page")
	second := stream.next(t, b, 10*time.Second)
	backAt := published.Load()
	waitPublished(backAt + 50)
	close(stop)
	<-stopped
	if err := route.PublishEvent(func(ew httpsse.EventWriter) error {
		ew.WriteEvent("done")
		return ew.WriteData("done")
	}); err != nil {
		t.Fatalf("PublishEvent(done) = %v", err)
	}
	last := published.Load()

	var got struct {
		Got           []string `json:"got"`
		IDs           []string `json:"ids"`
		Opens         int      `json:"opens"`
		Errors        int      `json:"errors"`
		LastBeforeCut string   `json:"lastBeforeCut"`
	}
	rp.wait(b, 30*time.Second, &got)

	t.Logf("cut at event %d; Chromium came back with Last-Event-ID %q when event %d was the last; %d events in all",
		cutAt, second.lastEventID, backAt, last)
	if want := map[bool]int{false: 1, true: 2}[http2]; second.proto != want {
		t.Errorf("reconnection over HTTP/%d, want HTTP/%d", second.proto, want)
	}
	if second.lastEventID == "" || second.lastEventID != got.LastBeforeCut {
		t.Errorf("reconnection sent Last-Event-ID %q, want the page's last event ID when the stream was cut, %q", second.lastEventID, got.LastBeforeCut)
	}
	// The page's events are 1..last, each once, in order.
	bad := 0
	for i := 0; i < len(got.Got) || i < int(last); i++ {
		want := strconv.Itoa(i + 1)
		if i >= int(last) {
			want = "(none)"
		}
		g := "(none)"
		if i < len(got.Got) {
			g = got.Got[i]
		}
		if g != want {
			if bad++; bad <= 10 {
				t.Errorf("page event %d = %s, want %s", i, g, want)
			}
		}
	}
	if bad > 10 {
		t.Errorf("... %d events wrong in all (page got %d, %d published)", bad, len(got.Got), last)
	}
	// Some events were published after the page's last one and before it came
	// back: they reached the page by replay.
	at := -1
	for i, id := range got.IDs {
		if id == got.LastBeforeCut {
			at = i
		}
	}
	if at < 0 {
		t.Fatalf("the page's last event ID before the cut, %q, is not among its events", got.LastBeforeCut)
	}
	if missed := backAt - int64(at+1); missed < 10 {
		t.Errorf("only %d events were published while the page was away, want enough to show a replay", missed)
	} else {
		t.Logf("the page had %d events when its stream was cut; the %d published while it was away were replayed", at+1, missed)
	}
	if got.Opens != 2 || got.Errors != 1 {
		t.Errorf("EventSource opened %d times with %d errors, want 2 and 1", got.Opens, got.Errors)
	}
	if st := httpsse.StatsOf(route); st.Replays != 1 || st.Gaps != 0 {
		t.Errorf("Stats = %+v, want Replays 1, Gaps 0", st)
	}
}

// gapPage opens two EventSources on the same Route: "a" listens for the gap
// event, "b" does not (it has only onmessage, and a listener for "done").
// Each records what it dispatches, and the page reports when both have "done".
const gapPage = `<!doctype html>
<meta charset="utf-8">
<title>httpsse e2e gap</title>
<script>
"use strict";
const seen = {a: {messages: [], gaps: [], lastBeforeCut: null}, b: {messages: [], gaps: [], lastBeforeCut: null}};
let done = 0;
for (const who of ["a", "b"]) {
  const es = new EventSource("/e2e/stream?who=" + who), s = seen[who];
  let last = "";
  es.onmessage = (e) => { s.messages.push({type: e.type, data: e.data, id: e.lastEventId}); last = e.lastEventId; };
  es.onerror = () => { if (s.lastBeforeCut === null) s.lastBeforeCut = last; };
  if (who === "a") es.addEventListener("gap", (e) => s.gaps.push({type: e.type, data: e.data, id: e.lastEventId}));
  es.addEventListener("done", () => {
    es.close();
    if (++done === 2) fetch("/e2e/report", {method: "POST", body: JSON.stringify(seen)});
  });
}
</script>
`

// TestBrowserGapEvent cuts two EventSources and publishes more events than the
// Route keeps before they come back: the one that listens for "gap" gets the
// gap event, naming the Last-Event-ID it sent; the one that does not never
// sees it (onmessage does not fire for it). Both resume where the gap event
// said, with the live events.
func TestBrowserGapEvent(t *testing.T) {
	needChromium(t)
	const keep = 5
	route := httpsse.NewRoute(httpsse.Replay(keep))
	t.Cleanup(func() { route.Close() })
	stream := newCuttable(route)
	mux := http.NewServeMux()
	rp := newReports(t, mux)
	mux.HandleFunc("GET /e2e/", servePage(gapPage))
	mux.Handle("GET /e2e/stream", stream)
	ts, _ := startE2EServer(t, mux, false)

	publish := func(n int, name string) {
		t.Helper()
		if err := route.PublishEvent(func(ew httpsse.EventWriter) error {
			if n == 1 {
				ew.WriteRetry(300 * time.Millisecond)
			}
			if name != "" {
				ew.WriteEvent(name)
			}
			ew.WriteID(fmt.Sprintf("e-%d", n))
			return ew.WriteData(strconv.Itoa(n))
		}); err != nil {
			t.Fatalf("PublishEvent(%d) = %v", n, err)
		}
	}
	// A request is announced before the Route attaches it: wait for that too,
	// so that the events below are live for both EventSources.
	attached := func() {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); httpsse.StatsOf(route).Subscribers != 2; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("Subscribers = %d, want 2", httpsse.StatsOf(route).Subscribers)
			}
		}
	}
	b := startBrowser(t, ts.URL+"/e2e/")
	stream.next(t, b, 20*time.Second)
	stream.next(t, b, 5*time.Second)
	attached()
	for n := 1; n <= 3; n++ {
		publish(n, "")
	}
	// Cut both once the page has event 3: its EventSources come back after
	// the retry: time (300ms), by when events 4..23 are no longer all kept.
	time.Sleep(200 * time.Millisecond)
	stream.cut("a")
	stream.cut("b")
	for n := 4; n <= 23; n++ {
		publish(n, "")
	}
	for range 2 {
		if a := stream.next(t, b, 10*time.Second); a.lastEventID != "e-3" {
			t.Errorf("%s came back with Last-Event-ID %q, want e-3", a.who, a.lastEventID)
		}
	}
	attached()
	publish(24, "")
	publish(25, "")
	publish(26, "done")

	type record struct{ Type, Data, ID string }
	var got map[string]struct {
		Messages      []record
		Gaps          []record
		LastBeforeCut string
	}
	rp.wait(b, 30*time.Second, &got)
	want := []record{{"message", "1", "e-1"}, {"message", "2", "e-2"}, {"message", "3", "e-3"}, {"message", "24", "e-24"}, {"message", "25", "e-25"}}
	for _, who := range []string{"a", "b"} {
		if !reflect.DeepEqual(got[who].Messages, want) {
			t.Errorf("EventSource %s: onmessage saw %v, want %v (no gap event among them)", who, got[who].Messages, want)
		}
	}
	if want := []record{{"gap", "e-3", "e-23"}}; !reflect.DeepEqual(got["a"].Gaps, want) {
		t.Errorf("EventSource a: gap listener saw %v, want %v", got["a"].Gaps, want)
	}
	if st := httpsse.StatsOf(route); st.Gaps != 2 || st.Replays != 0 {
		t.Errorf("Stats = %+v, want Gaps 2, Replays 0", st)
	}
}

// demoAnswerPage loads the demo page in an iframe, asks the answer panel a question and
// waits for the "done" event; then asks again and presses Stop after a few words. It
// reports what the panel showed at each end.
const demoAnswerPage = `<!doctype html>
<meta charset="utf-8">
<title>httpsse demo answer check</title>
<iframe id="demo" src="/" style="width:1280px;height:1100px;border:0"></iframe>
<script>
"use strict";
const frame = document.getElementById("demo");
const q = (sel) => frame.contentDocument && frame.contentDocument.querySelector(sel);
const got = {};
let phase = "ask", done = false;
function panel() {
  const a = frame.contentWindow.demoAnswer;
  return {words: a.words.slice(), done: a.done, states: a.states.slice(),
    state: q('#answer [data-role="state"]').textContent, text: q('#answer [data-role="text"]').textContent,
    info: q('#answer [data-role="info"]').textContent, stopDisabled: q('#answer [data-role="stop"]').disabled};
}
function report(why) {
  if (done) return;
  done = true;
  got.why = why;
  fetch("/e2e/report", {method: "POST", body: JSON.stringify(got)});
}
function ask(question) {
  q("#question").value = question;
  q('#answer [data-role="ask"] button[type=submit]').click();
}
setInterval(() => {
  const a = frame.contentWindow && frame.contentWindow.demoAnswer;
  if (!a || !q("#question")) return;
  if (phase === "ask") {
    phase = "answering";
    ask("Why is the sky blue?");
  } else if (phase === "answering" && a.done !== null) {
    got.first = panel();
    phase = "again";
    ask("And the sea?");
  } else if (phase === "again" && a.words.length >= 3) {
    q('#answer [data-role="stop"]').click();
    got.second = panel();
    phase = "stopped";
    setTimeout(() => { got.later = panel(); report("done"); }, 300);
  }
}, 20);
setTimeout(() => report("timeout"), 30000);
</script>
`

// TestBrowserDemoAnswer has the browser's EventSource read the answer panel's stream,
// written with NewStream: every word in order, then "done", on which the page closes its
// EventSource; and Stop in the middle of an answer ends the server's handler.
func TestBrowserDemoAnswer(t *testing.T) {
	needChromium(t)
	setAnswerDelay(t, 30*time.Millisecond)
	handler, closer := newDemo(fastDemoConfig)
	var asked, answering atomic.Int32
	mux := http.NewServeMux()
	rp := newReports(t, mux)
	mux.HandleFunc("GET /e2e/", servePage(demoAnswerPage))
	mux.Handle("/", handler)
	mux.Handle("GET /answer", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		answering.Add(1)
		defer answering.Add(-1)
		handler.ServeHTTP(w, r)
	}))
	ts := httptest.NewServer(mux)
	t.Cleanup(ts.Close)
	t.Cleanup(func() { closer.Close() })

	b := startBrowser(t, ts.URL+"/e2e/")
	type panel struct {
		Words             []string
		Done              *string
		States            []string
		State, Text, Info string
		StopDisabled      bool
	}
	var got struct {
		Why                  string
		First, Second, Later panel
	}
	rp.wait(b, 60*time.Second, &got)
	t.Logf("answer panel: %+v", got)
	if got.Why != "done" {
		t.Fatalf("the answer panel never got through both answers: %+v", got)
	}
	want := answerWords("Why is the sky blue?")
	first := got.First
	if first.Text != strings.Join(want, " ") || len(first.Words) != len(want) {
		t.Errorf("first answer %q in %d words, want %q in %d", first.Text, len(first.Words), strings.Join(want, " "), len(want))
	}
	if first.Done == nil || *first.Done != strconv.Itoa(len(want)) || first.State != "done" || !first.StopDisabled {
		t.Errorf("first answer ended with done %v, state %q, Stop disabled %v; want done %d, \"done\", true", first.Done, first.State, first.StopDisabled, len(want))
	}
	if states := strings.Join(first.States, " "); states != "connecting streaming done" {
		t.Errorf("first answer went through states %q, want \"connecting streaming done\"", states)
	}
	if got.Second.State != "stopped" || got.Later.State != "stopped" || len(got.Later.Words) >= len(answerWords("And the sea?")) {
		t.Errorf("after Stop: state %q, then %q with %d words; want stopped, and the answer incomplete", got.Second.State, got.Later.State, len(got.Later.Words))
	}
	// Nothing arrives after Stop: the page shows the words it had when it pressed it.
	wantText := strings.Join(answerWords("And the sea?")[:min(len(got.Second.Words), len(answerWords("And the sea?")))], " ")
	wantInfo := fmt.Sprintf("Stopped after %d words: the page closed its EventSource, and the server stopped writing.", len(got.Second.Words))
	if got.Later.Text != wantText || got.Later.Info != wantInfo || len(got.Later.Words) != len(got.Second.Words) {
		t.Errorf("after Stop: answer %q, info %q; want %q and %q", got.Later.Text, got.Later.Info, wantText, wantInfo)
	}
	// The server's handler for the stopped answer returns, as the request's context ends.
	for deadline := time.Now().Add(5 * time.Second); answering.Load() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d answers still streaming 5 s after the page pressed Stop", answering.Load())
		}
	}
	if n := asked.Load(); n != 2 {
		t.Errorf("the page asked %d times, want 2 (EventSource must not ask again)", n)
	}
}
