package main

import (
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"strings"
)

// readSize is the most a chunkReader returns from one Read, as a network connection would.
const readSize = 32 << 10

// chunkReader returns b in reads of at most readSize bytes.
type chunkReader struct {
	b   []byte
	off int
}

func newChunkReader(b []byte) *chunkReader { return &chunkReader{b: b} }

func (r *chunkReader) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		return 0, ioEOF
	}
	n := min(len(p), readSize, len(r.b)-r.off)
	copy(p, r.b[r.off:r.off+n])
	r.off += n
	return n, nil
}

// corpus is an event stream with what a conforming parser yields from it.
type corpus struct {
	name      string
	stream    []byte
	events    int    // events dispatched
	dataBytes int    // bytes of their data, lines joined by "\n"
	sum       uint64 // eventSum of every dispatched event, in order
}

// eventSum folds one dispatched event (type, last event ID, data) into a running checksum.
func eventSum(sum uint64, name, id, data string) uint64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|%s|%d|%s|%d|%s|", len(name), name, len(id), id, len(data), data)
	return sum*1099511628211 ^ h.Sum64()
}

// expect records a dispatched event in the corpus's expected results.
func (c *corpus) expect(name, id, data string) {
	c.events++
	c.dataBytes += len(data)
	c.sum = eventSum(c.sum, name, id, data)
}

var words = []string{
	"the", "model", "streams", "tokens", "as", "server-sent", "events", "and", "each", "one",
	"is", "small", "café", "naïve", "über", "日本語", "テキスト", "emoji 🚀", "quote \\\"x\\\"", "tab\\t",
	"JSON", "delta", "content", "of", "a", "reply", "to", "your", "question,", "which",
}

// smallCorpus is the LLM case: many events of 100-200 bytes of JSON data, each with an id and an
// event name, size bytes in all.
func smallCorpus(size int) *corpus {
	rng := rand.New(rand.NewPCG(1, 2))
	c := &corpus{name: "small"}
	var sb strings.Builder
	sb.Grow(size + 1024)
	for i := 0; sb.Len() < size; i++ {
		name := "content_block_delta"
		if rng.IntN(20) == 0 {
			name = "ping"
		}
		id := fmt.Sprintf("evt_%08d", i)
		var text strings.Builder
		for text.Len() < 20+rng.IntN(90) {
			text.WriteString(words[rng.IntN(len(words))])
			text.WriteByte(' ')
		}
		data := fmt.Sprintf(`{"type":"%s","index":%d,"delta":{"type":"text_delta","text":"%s"}}`, name, i%4, text.String())
		fmt.Fprintf(&sb, "event: %s\nid: %s\ndata: %s\n\n", name, id, data)
		c.expect(name, id, data)
	}
	c.stream = []byte(sb.String())
	return c
}

// mixedCorpus has single-line and multi-line data, lines of 16 KiB, comments, retry fields,
// fields with and without the space after the colon, events with and without names and ids,
// size bytes in all. No event is larger than 40 KiB, so parsers with a 64 KiB limit can read it.
func mixedCorpus(size int) *corpus {
	rng := rand.New(rand.NewPCG(3, 4))
	c := &corpus{name: "mixed"}
	var sb strings.Builder
	sb.Grow(size + 64<<10)
	line := func(n int) string {
		var b strings.Builder
		for b.Len() < n {
			b.WriteString(words[rng.IntN(len(words))])
			b.WriteByte(' ')
		}
		s := b.String()
		for len(s) > n {
			s = s[:len(s)-1]
		}
		return strings.TrimRight(strings.ToValidUTF8(s, ""), " ")
	}
	sep := func() string {
		if rng.IntN(10) == 0 {
			return ":"
		}
		return ": "
	}
	lastID := ""
	for i := 0; sb.Len() < size; i++ {
		if rng.IntN(10) == 0 {
			sb.WriteString(": keep-alive " + line(20) + "\n")
		}
		name := ""
		if rng.IntN(2) == 0 {
			name = []string{"update", "patch", "snapshot"}[rng.IntN(3)]
			sb.WriteString("event" + sep() + name + "\n")
		}
		if rng.IntN(3) != 0 {
			lastID = fmt.Sprintf("%d", 1000000+i)
			sb.WriteString("id" + sep() + lastID + "\n")
		}
		if rng.IntN(20) == 0 {
			sb.WriteString("retry: 3000\n")
		}
		var lines []string
		switch k := rng.IntN(100); {
		case k < 45: // one line
			lines = []string{line(20 + rng.IntN(480))}
		case k < 85: // several lines, some empty
			for range 2 + rng.IntN(19) {
				if rng.IntN(8) == 0 {
					lines = append(lines, "")
				} else {
					lines = append(lines, line(rng.IntN(200)))
				}
			}
		default: // lines of 16 KiB
			for range 1 + rng.IntN(2) {
				lines = append(lines, line(16<<10))
			}
			if rng.IntN(2) == 0 {
				lines = append(lines, line(100))
			}
		}
		for j, l := range lines {
			if j > 0 && rng.IntN(10) == 0 {
				sb.WriteString(": comment between data lines\n")
			}
			if l == "" {
				sb.WriteString("data:\n")
			} else {
				sb.WriteString("data" + sep() + l + "\n")
			}
		}
		sb.WriteString("\n")
		c.expect(name, lastID, strings.Join(lines, "\n"))
	}
	c.stream = []byte(sb.String())
	return c
}
