package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// window is how many events the publisher may be ahead of the slowest subscriber in the window
// mode of the fan-out test.
const window = 32

// payload is the data of fan-out event seq: about 100 bytes of JSON.
func payload(seq int) string {
	s := fmt.Sprintf(`{"seq":%d,"pad":"`, seq)
	return s + strings.Repeat("x", max(0, 98-len(s))) + `"}`
}

// childMain is the server process of the fan-out and idle tests: it serves one library's
// handler on 127.0.0.1 and obeys commands, one per line, from its standard input:
//
//	warm            publish one warm-up event; answers "ok"
//	run MODE E      publish E events (MODE burst or window); answers "published"
//	ack N           (window mode) every subscriber has event N
//	steady E R      publish E events at R a second; answers "published" then "times T0 T1 ...",
//	                the Unix nanoseconds at which each publish began
//	stats           answers "cpu NS": CPU time used since run began
//	mem             answers "mem HEAP STACK GOROUTINES" and the same three before any subscriber
//	quit            exits at once
//
// With BENCH_CHILD_CPUPROFILE set, it writes a CPU profile of each run (from run to stats) there;
// with BENCH_CHILD_HEAPPROFILE set, a heap profile at each mem, there with the library's name
// appended; with BENCH_STACKLOG set, the runtime's starting stack size after each garbage
// collection, on standard error.
//
// With -inproc the same loop runs in a goroutine of the bench's own process (see startChild),
// reading its commands from a pipe; quit then closes the server and returns.
func childMain(libName string, in io.Reader, stdout io.Writer) {
	raiseOpenFiles()
	if os.Getenv("BENCH_CHILD_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 1 // every allocation, for exact figures
	}
	l := lookupLibrary(libName)
	if l == nil && libName == referenceLib.name {
		l = referenceLib
	}
	if l == nil {
		fmt.Fprintf(os.Stderr, "bench: unknown library %q\n", libName)
		fmt.Fprintf(stdout, "error unknown library %q\n", libName)
		return
	}
	srv := l.newServer()
	ln, err := listen()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		fmt.Fprintf(stdout, "error %v\n", err)
		return
	}
	mux := http.NewServeMux()
	path, _, _ := strings.Cut(l.path, "?")
	mux.Handle(path, srv.handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	defer func() {
		_ = hs.Close()
		srv.close()
	}()

	if os.Getenv("BENCH_STACKLOG") != "" {
		go func() {
			smp := []metrics.Sample{{Name: "/gc/stack/starting-size:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
			last := uint64(0)
			for {
				metrics.Read(smp)
				if v := smp[1].Value.Uint64(); v != last {
					fmt.Fprintf(os.Stderr, "stackstart %d at gc %d goroutines %d\n", smp[0].Value.Uint64(), v, runtime.NumGoroutine())
					last = v
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	runtime.GC()
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	baseG := runtime.NumGoroutine()

	out := bufio.NewWriter(stdout)
	reply := func(format string, args ...any) {
		fmt.Fprintf(out, format+"\n", args...)
		out.Flush()
	}
	reply("addr %s", ln.Addr())

	var acked atomic.Int64
	acked.Store(-1)
	ackCh := make(chan struct{}, 1) // wakes the publisher; one pending wake-up is enough
	cmds := make(chan string)
	go func() {
		defer close(cmds)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "ack "):
				n, _ := strconv.ParseInt(line[4:], 10, 64)
				acked.Store(n)
				select {
				case ackCh <- struct{}{}:
				default:
				}
			case line == "quit":
				if in == io.Reader(os.Stdin) {
					os.Exit(0) // at once, even with a publish under way
				}
				return
			default:
				cmds <- line
			}
		}
		if in == io.Reader(os.Stdin) {
			os.Exit(0) // the parent went away
		}
	}()

	var cpu0 time.Duration
	for cmd := range cmds {
		f := strings.Fields(cmd)
		switch f[0] {
		case "warm":
			if err := srv.publish("w", "warm"); err != nil {
				reply("error %v", err)
				continue
			}
			reply("ok")
		case "run":
			e, _ := strconv.Atoi(f[2])
			ids, data := make([]string, e), make([]string, e)
			for i := range e {
				ids[i], data[i] = strconv.Itoa(i), payload(i)
			}
			windowed := f[1] == "window"
			if path := os.Getenv("BENCH_CHILD_CPUPROFILE"); path != "" {
				if pf, err := os.Create(path); err == nil {
					_ = pprof.StartCPUProfile(pf)
				}
			}
			cpu0 = cpuTime()
			for i := range e {
				for windowed && acked.Load()+window < int64(i) {
					<-ackCh
				}
				if err := srv.publish(ids[i], data[i]); err != nil {
					reply("error publish %d: %v", i, err)
					break
				}
			}
			reply("published")
		case "steady":
			e, _ := strconv.Atoi(f[1])
			rate, _ := strconv.Atoi(f[2])
			interval := time.Second / time.Duration(max(rate, 1))
			times := make([]int64, e)
			stop := profileSteady(libName)
			t0 := time.Now()
			for i := range e {
				if d := time.Until(t0.Add(time.Duration(i) * interval)); d > 0 {
					time.Sleep(d)
				}
				times[i] = time.Now().UnixNano()
				if err := srv.publish(strconv.Itoa(i), payload(i)); err != nil {
					reply("error publish %d: %v", i, err)
					break
				}
			}
			stop()
			reply("published")
			var b strings.Builder
			b.WriteString("times")
			for _, t := range times {
				b.WriteByte(' ')
				b.WriteString(strconv.FormatInt(t, 10))
			}
			reply("%s", b.String())
		case "stats":
			pprof.StopCPUProfile()
			reply("cpu %d", cpuTime()-cpu0)
		case "mem":
			runtime.GC()
			runtime.GC()
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if path := os.Getenv("BENCH_CHILD_HEAPPROFILE"); path != "" {
				if pf, err := os.Create(path + "." + strings.NewReplacer("/", "-", " ", "-").Replace(libName)); err == nil {
					_ = pprof.Lookup("heap").WriteTo(pf, 0)
					pf.Close()
				}
			}
			reply("mem %d %d %d %d %d %d", m.HeapInuse, m.StackInuse, runtime.NumGoroutine(),
				base.HeapInuse, base.StackInuse, baseG)
		default:
			reply("error unknown command %q", cmd)
		}
	}
}

// profileSteady starts the profiles of a steady run that the environment asks for and
// returns the function that writes them: BENCH_CHILD_CPUPROFILE (CPU),
// BENCH_CHILD_MUTEXPROFILE (mutex contention) and BENCH_CHILD_TRACE (an execution trace),
// each a path with the library's name appended.
func profileSteady(lib string) (stop func()) {
	name := func(env string) string {
		if p := os.Getenv(env); p != "" {
			return p + "." + strings.ReplaceAll(lib, "/", "_")
		}
		return ""
	}
	var stops []func()
	if p := name("BENCH_CHILD_CPUPROFILE"); p != "" {
		if f, err := os.Create(p); err == nil && pprof.StartCPUProfile(f) == nil {
			stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
		}
	}
	if p := name("BENCH_CHILD_MUTEXPROFILE"); p != "" {
		runtime.SetMutexProfileFraction(1)
		stops = append(stops, func() {
			if f, err := os.Create(p); err == nil {
				_ = pprof.Lookup("mutex").WriteTo(f, 0)
				f.Close()
			}
			runtime.SetMutexProfileFraction(0)
		})
	}
	if p := name("BENCH_CHILD_TRACE"); p != "" {
		if f, err := os.Create(p); err == nil && trace.Start(f) == nil {
			stops = append(stops, func() { trace.Stop(); f.Close() })
		}
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}
