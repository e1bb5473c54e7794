package main

import (
	"fmt"
	"runtime"
	"time"
)

// parseResult is one library's median on one corpus.
type parseResult struct {
	lib, corpus    string
	mbps           float64 // MB/s (10^6 bytes), wall-clock
	cpuMBps        float64 // MB per second of this process's CPU time
	nsPerEvent     float64
	allocsPerEvent float64
	bytesPerEvent  float64
	problem        string // why the library is not ranked; "" when it parsed the corpus exactly
}

// checkParse parses the corpus once with each and compares every event with the expected ones.
func checkParse(l *library, c *corpus) string {
	var n, b int
	var sum uint64
	err := l.each(newChunkReader(c.stream), func(name, id, data string) {
		n++
		b += len(data)
		sum = eventSum(sum, name, id, data)
	})
	switch {
	case err != nil:
		return fmt.Sprintf("error after %d of %d events: %v", n, c.events, err)
	case n != c.events:
		return fmt.Sprintf("%d events, want %d", n, c.events)
	case b != c.dataBytes:
		return fmt.Sprintf("%d data bytes, want %d", b, c.dataBytes)
	case sum != c.sum:
		return "event names, ids or data differ from the stream's"
	}
	return ""
}

// timeParse parses the corpus once through the library's counting loop. It returns the
// wall-clock time and the CPU time of the process (which includes the GC's work on the
// other core and any goroutines the library starts, but not time lost to other processes).
func timeParse(l *library, c *corpus) (d, cpu time.Duration, allocs, bytes uint64, err error) {
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	start, cpu0 := time.Now(), cpuTime()
	n, b, err := l.count(newChunkReader(c.stream))
	d, cpu = time.Since(start), cpuTime()-cpu0
	runtime.ReadMemStats(&m1)
	if err == nil && (n != c.events || b != c.dataBytes) {
		err = fmt.Errorf("%d events with %d data bytes, want %d with %d", n, b, c.events, c.dataBytes)
	}
	return d, cpu, m1.Mallocs - m0.Mallocs, m1.TotalAlloc - m0.TotalAlloc, err
}

// runParse measures every library on every corpus, rounds times, interleaved: each round runs
// the libraries in a rotated order.
func runParse(libs []*library, corpora []*corpus, rounds int, logf func(string, ...any)) []parseResult {
	type key struct{ lib, corpus int }
	durs := map[key][]float64{}
	cpus := map[key][]float64{}
	allocs := map[key][]float64{}
	bytes := map[key][]float64{}
	problems := map[key]string{}
	for ci, c := range corpora {
		for li, l := range libs {
			if p := checkParse(l, c); p != "" {
				problems[key{li, ci}] = p
				logf("parse %s: %s: %s", c.name, l.name, p)
			}
		}
	}
	for r := range rounds {
		for ci, c := range corpora {
			for i := range libs {
				li := (i + r) % len(libs)
				k := key{li, ci}
				d, cpu, a, b, err := timeParse(libs[li], c)
				if err != nil && problems[k] == "" {
					problems[k] = err.Error()
				}
				durs[k] = append(durs[k], float64(d.Nanoseconds()))
				cpus[k] = append(cpus[k], float64(cpu.Nanoseconds()))
				allocs[k] = append(allocs[k], float64(a))
				bytes[k] = append(bytes[k], float64(b))
			}
		}
		logf("parse round %d/%d done", r+1, rounds)
	}
	var out []parseResult
	for ci, c := range corpora {
		for li, l := range libs {
			k := key{li, ci}
			ns := median(durs[k])
			out = append(out, parseResult{
				lib: l.name, corpus: c.name,
				mbps:           float64(len(c.stream)) / ns * 1e3,
				cpuMBps:        float64(len(c.stream)) / median(cpus[k]) * 1e3,
				nsPerEvent:     ns / float64(c.events),
				allocsPerEvent: median(allocs[k]) / float64(c.events),
				bytesPerEvent:  median(bytes[k]) / float64(c.events),
				problem:        problems[k],
			})
		}
	}
	return out
}
