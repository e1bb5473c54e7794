package main

import (
	"fmt"
	"io"
	"runtime/debug"
	"strings"
	"testing/iotest"
	"time"
)

// probe is a small input with the events the WHATWG standard says a parser yields from it.
type probe struct {
	name, input string
	oneByte     bool        // read it one byte at a time
	want        [][3]string // name, last event ID, data
}

func libraryVersions() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	var vs []string
	for _, d := range bi.Deps {
		for _, p := range []string{"github.com/tmaxmax/go-sse", "github.com/r3labs/sse/v2", "github.com/launchdarkly/eventsource"} {
			if d.Path == p {
				vs = append(vs, d.Path+" "+d.Version)
			}
		}
	}
	vs = append(vs, "github.com/reiver/go-httpsse (this repository)")
	return strings.Join(vs, ", ")
}

var big = strings.Repeat("x", 100<<10)

var probes = []probe{
	{name: "one data line of 100 KiB", input: "data: " + big + "\n\n", want: [][3]string{{"", "", big}}},
	{name: "lines ended by CR only", input: "event: a\rid: 1\rdata: x\rdata: y\r\r", want: [][3]string{{"a", "1", "x\ny"}}},
	{name: "lines ended by CRLF, read one byte at a time", input: "data: x\r\ndata: y\r\n\r\ndata: z\r\n\r\n", oneByte: true, want: [][3]string{{"", "", "x\ny"}, {"", "", "z"}}},
	{name: "leading BOM", input: "\uFEFFdata: x\n\n", want: [][3]string{{"", "", "x"}}},
	{name: `"data" without a colon is an empty data line`, input: "data\ndata\n\n", want: [][3]string{{"", "", "\n"}}},
	{name: "only one leading space is stripped", input: "data:  x\n\n", want: [][3]string{{"", "", " x"}}},
	{name: "event with an id and no data is not dispatched; its id carries", input: "id: 7\n\ndata: x\n\n", want: [][3]string{{"", "7", "x"}}},
	{name: "unterminated last event is discarded", input: "data: x\n\ndata: y\n", want: [][3]string{{"", "", "x"}}},
	{name: "invalid UTF-8 becomes U+FFFD, one per maximal subpart", input: "data: a\xE2\x82\xFFb\n\n", want: [][3]string{{"", "", "a\uFFFD\uFFFDb"}}},
	{name: "single empty data line dispatches empty data", input: "data:\n\n", want: [][3]string{{"", "", ""}}},
	{name: "id with NUL is ignored", input: "id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n", want: [][3]string{{"", "1", "a"}, {"", "1", "b"}}},
	{name: "empty id resets the last event ID", input: "id: 1\ndata: a\n\nid\ndata: b\n\n", want: [][3]string{{"", "1", "a"}, {"", "", "b"}}},
}

// probeResult is one library on one probe: "" when it yields what the standard says.
type probeResult struct {
	lib, probe, problem string
}

func runProbes(libs []*library) []probeResult {
	var out []probeResult
	for _, p := range probes {
		for _, l := range libs {
			out = append(out, probeResult{lib: l.name, probe: p.name, problem: runProbe(l, p)})
		}
	}
	return out
}

func runProbe(l *library, p probe) string {
	var r io.Reader = newChunkReader([]byte(p.input))
	if p.oneByte {
		r = iotest.OneByteReader(r)
	}
	var got [][3]string
	done := make(chan error, 1)
	go func() {
		done <- l.each(r, func(name, id, data string) { got = append(got, [3]string{name, id, data}) })
	}()
	var err error
	select {
	case err = <-done:
	case <-time.After(5 * time.Second):
		return "no answer in 5 s"
	}
	if fmt.Sprint(got) == fmt.Sprint(p.want) {
		return ""
	}
	s := fmt.Sprintf("got %s", short(got))
	if err != nil {
		s += fmt.Sprintf(", error %q", shortString(err.Error()))
	}
	return s
}

func short(evs [][3]string) string {
	if len(evs) == 0 {
		return "no event"
	}
	var parts []string
	for _, e := range evs {
		parts = append(parts, fmt.Sprintf("{name %q id %q data %q}", shortString(e[0]), shortString(e[1]), shortString(e[2])))
	}
	return strings.Join(parts, " ")
}

func shortString(s string) string {
	if len(s) > 40 {
		return fmt.Sprintf("%s…(%d bytes)", s[:20], len(s))
	}
	return s
}

func printProbes(w io.Writer, res []probeResult) (failed bool) {
	if len(res) == 0 {
		return false
	}
	fmt.Fprintf(w, "## Conformance probes\n\nSmall inputs with what the WHATWG standard says a parser yields (in Go string syntax); each library parsed as in the parse test. Only departures are listed.\n\n")
	fmt.Fprintf(w, "| input | library | what it yields instead |\n|---|---|---|\n")
	for _, p := range probes {
		for _, r := range res {
			if r.probe == p.name && r.problem != "" {
				fmt.Fprintf(w, "| %s: `%q` | %s | %s |\n", p.name, shortString(p.input), r.lib, strings.ReplaceAll(r.problem, "|", "\\|"))
				if r.lib == subject {
					failed = true
				}
			}
		}
	}
	fmt.Fprintln(w)
	return failed
}
