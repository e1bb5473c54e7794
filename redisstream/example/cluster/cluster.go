package main

import (
	"bufio"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

//go:embed index.html
var page []byte

// cluster is the server processes and the round-robin reverse proxy in front of them.
type cluster struct {
	redisAddr, stream string

	mu        sync.Mutex
	instances []*instance
	next      int // the instance the next request tries first
}

// instance is one server process.
type instance struct {
	n    int
	cmd  *exec.Cmd
	in   io.Closer // its standard input: closing it ends the process
	addr string
	exit chan struct{} // closed when the process has ended
}

func (in *instance) alive() bool {
	select {
	case <-in.exit:
		return false
	default:
		return true
	}
}

func newCluster(redisAddr, stream string, n int) *cluster {
	return &cluster{redisAddr: redisAddr, stream: stream, instances: make([]*instance, n)}
}

func (c *cluster) startAll() error {
	for i := range c.instances {
		if err := c.start(i + 1); err != nil {
			return err
		}
	}
	return nil
}

// start starts server process n (from 1), this same command with -instance n.
func (c *cluster) start(n int) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "-instance", strconv.Itoa(n), "-redis", c.redisAddr, "-stream", c.stream)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	in := &instance{n: n, cmd: cmd, in: stdin, exit: make(chan struct{})}
	go func() {
		_ = cmd.Wait()
		close(in.exit)
		log.Printf("instance %d (pid %d) ended: %v", n, cmd.Process.Pid, cmd.ProcessState)
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		_ = cmd.Process.Kill()
		return fmt.Errorf("instance %d did not start: %q %v", n, line, err)
	}
	in.addr = addr
	c.mu.Lock()
	c.instances[n-1] = in
	c.mu.Unlock()
	log.Printf("instance %d: pid %d, %s", n, cmd.Process.Pid, addr)
	return nil
}

func (c *cluster) stopAll() {
	c.mu.Lock()
	instances := append([]*instance(nil), c.instances...)
	c.mu.Unlock()
	for _, in := range instances {
		if in != nil {
			in.in.Close()
		}
	}
	for _, in := range instances {
		if in != nil {
			<-in.exit
		}
	}
}

// handler serves the page, the cluster's state and controls, and proxies the rest to the
// instances.
func (c *cluster) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	})
	mux.HandleFunc("GET /cluster", c.serveState)
	mux.HandleFunc("POST /cluster/kill", func(w http.ResponseWriter, req *http.Request) {
		in := c.instance(req.FormValue("n"))
		if in == nil || !in.alive() {
			http.Error(w, "no such instance running", http.StatusBadRequest)
			return
		}
		log.Printf("killing instance %d (pid %d) with SIGKILL", in.n, in.cmd.Process.Pid)
		_ = in.cmd.Process.Signal(syscall.SIGKILL)
		<-in.exit
	})
	mux.HandleFunc("POST /cluster/start", func(w http.ResponseWriter, req *http.Request) {
		in := c.instance(req.FormValue("n"))
		if in == nil || in.alive() {
			http.Error(w, "no such instance stopped", http.StatusBadRequest)
			return
		}
		if err := c.start(in.n); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	mux.Handle("/", &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.SetXForwarded()
		},
		Transport: c,
		// A stream ends when its instance dies: then the proxy cuts the client's connection,
		// and EventSource reconnects. It does the same when no instance answers, rather
		// than answer 502, which would make EventSource give up for good.
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			log.Printf("proxy: %s %s: %v", req.Method, req.URL.Path, err)
			panic(http.ErrAbortHandler)
		},
	})
	return mux
}

func (c *cluster) instance(n string) *instance {
	i, err := strconv.Atoi(n)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil || i < 1 || i > len(c.instances) {
		return nil
	}
	return c.instances[i-1]
}

// RoundTrip sends the request to the instances in turn: each request to the next one, and,
// when an instance cannot be reached (killed), on to the one after it.
func (c *cluster) RoundTrip(req *http.Request) (*http.Response, error) {
	c.mu.Lock()
	first := c.next
	c.next = (c.next + 1) % len(c.instances)
	instances := append([]*instance(nil), c.instances...)
	c.mu.Unlock()
	err := errors.New("no instance is running")
	for i := range instances {
		in := instances[(first+i)%len(instances)]
		if in == nil || !in.alive() {
			continue
		}
		out := req.Clone(req.Context())
		out.URL.Host = in.addr
		out.Host = in.addr
		var resp *http.Response
		resp, err = http.DefaultTransport.RoundTrip(out)
		var op *net.OpError
		if err == nil {
			resp.Header.Set("X-Instance", strconv.Itoa(in.n))
			return resp, nil
		}
		if !errors.As(err, &op) || op.Op != "dial" {
			return nil, err
		}
	}
	return nil, err
}

// serveState answers the instances and whether each is running, as JSON.
func (c *cluster) serveState(w http.ResponseWriter, req *http.Request) {
	type state struct {
		N     int    `json:"n"`
		PID   int    `json:"pid"`
		Addr  string `json:"addr"`
		Alive bool   `json:"alive"`
	}
	c.mu.Lock()
	var list []state
	for _, in := range c.instances {
		if in != nil {
			list = append(list, state{N: in.n, PID: in.cmd.Process.Pid, Addr: in.addr, Alive: in.alive()})
		}
	}
	c.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]interface{}{"redis": c.redisAddr, "stream": c.stream, "instances": list})
}
