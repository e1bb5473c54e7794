package main

import (
	"strings"
	"testing"
	"time"
)

func TestReadSSE(t *testing.T) {
	in := ": comment\r\nid: 7\r\ndata: 7\r\n\r\nevent: gap\ndata: x\n\ndata:8\n\nid:9\ndata: a\ndata: b\n\n"
	var got []replayEvent
	err := readSSE(strings.NewReader(in), func(ev replayEvent) bool {
		got = append(got, ev)
		return true
	})
	if err == nil {
		t.Fatal("readSSE returned nil at the end of its input, want io.EOF")
	}
	want := []replayEvent{{"", "7", "7"}, {"gap", "7", "x"}, {"", "7", "8"}, {"", "9", "a\nb"}}
	if len(got) != len(want) {
		t.Fatalf("readSSE got %q, want %q", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: got %q, want %q", i, got[i], want[i])
		}
	}
}

func TestSubscriberResultCheck(t *testing.T) {
	for _, c := range []struct {
		seqs              []int
		missing, repeated int
	}{
		{[]int{11, 12, 13}, 0, 0},
		{[]int{10, 11, 12, 13}, 0, 1},     // event k again
		{[]int{11, 12, 12, 13}, 0, 1},     // a repeat at the seam
		{[]int{11, 13}, 1, 0},             // 12 missing
		{[]int{10, 11, 11, 11, 13}, 1, 3}, // all of it
	} {
		m, r := subscriberResult{seqs: c.seqs}.check(10, 13)
		if m != c.missing || r != c.repeated {
			t.Errorf("check(k 10, last 13) of %v = missing %d, repeated %d; want %d, %d", c.seqs, m, r, c.missing, c.repeated)
		}
	}
}

// TestReplayRound runs the scenario at a tiny size against httpsse, which must be exact, and
// r3labs/sse, whose re-sending of the event named by Last-Event-ID must be seen.
func TestReplayRound(t *testing.T) {
	c := replayConfig{subs: 5, k: 20, gap: 30, after: 30, rate: 2000, rounds: 1, timeout: 20 * time.Second}
	for _, l := range replayLibs {
		if l.name != "httpsse" && l.name != "r3labs/sse" {
			continue
		}
		r := runReplayRound(l, c)
		if r.err != nil {
			t.Fatalf("%s: %v", l.name, r.err)
		}
		if len(r.results) != c.subs {
			t.Fatalf("%s: %d results, want %d", l.name, len(r.results), c.subs)
		}
		for i, sr := range r.results {
			if sr.err != nil {
				t.Errorf("%s subscriber %d: %v", l.name, i, sr.err)
				continue
			}
			m, rep := sr.check(r.k, r.k+c.gap+c.after)
			switch l.name {
			case "httpsse":
				if m != 0 || rep != 0 {
					t.Errorf("httpsse subscriber %d: %d missing, %d repeated: %s", i, m, rep, sr.seam())
				}
			case "r3labs/sse":
				if m != 0 || rep == 0 || sr.seqs[0] != r.k {
					t.Errorf("r3labs/sse subscriber %d: %d missing, %d repeated, first %v; want event k (%d) first again", i, m, rep, sr.seqs[:min(3, len(sr.seqs))], r.k)
				}
			}
		}
	}
}
