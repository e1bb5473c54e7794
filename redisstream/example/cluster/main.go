// Command cluster runs one event stream on three server processes behind a round-robin
// reverse proxy, through Redis, and serves a page that shows it. Kill an instance (with the
// page's buttons, or kill -9 from a shell) and the page's stream goes on through another
// one, with nothing missed: the browser's EventSource reconnects with Last-Event-ID and the
// instance it lands on sends what it missed.
//
//	go run ./example/cluster                  # then open http://localhost:8080
//	go run ./example/cluster -redis host:port # a Redis of your own
//
// Without -redis it uses the Redis at localhost:6379, or, when none answers there, starts a
// redis-server of its own (Debian: apt-get install redis-server) on a free port, with a
// temporary directory, and stops it on exit.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

const defaultRedis = "localhost:6379"

func main() {
	addr := flag.String("addr", "localhost:8080", "address of the proxy, which serves the page")
	redisAddr := flag.String("redis", "", "Redis address (default "+defaultRedis+", or a redis-server of its own if none answers there)")
	stream := flag.String("stream", "httpsse:cluster-demo", "name of the Redis stream")
	instances := flag.Int("instances", 3, "number of server processes")
	instance := flag.Int("instance", 0, "run as server process number n (used by the command itself)")
	flag.Parse()

	if *instance > 0 {
		runInstance(*instance, *redisAddr, *stream)
		return
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *redisAddr == "" {
		a, cleanup, err := findRedis()
		if err != nil {
			log.Fatal(err)
		}
		defer cleanup()
		*redisAddr = a
	}
	log.Printf("Redis at %s, stream %q", *redisAddr, *stream)

	c := newCluster(*redisAddr, *stream, *instances)
	defer c.stopAll()
	if err := c.startAll(); err != nil {
		log.Print(err)
		return
	}
	srv := &http.Server{Addr: *addr, Handler: c.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Printf("open http://%s (kill an instance there, or with kill -9 PID)", *addr)
	if err := srv.ListenAndServe(); err != http.ErrServerClosed {
		log.Print(err)
	}
}

// findRedis returns the address of a Redis: the one at defaultRedis if it answers, else
// one it starts, which cleanup stops.
func findRedis() (addr string, cleanup func(), err error) {
	if ping(defaultRedis) == nil {
		return defaultRedis, func() {}, nil
	}
	path, err := exec.LookPath("redis-server")
	if err != nil {
		return "", nil, fmt.Errorf("no Redis answers at %s and redis-server is not installed (Debian: apt-get install redis-server); or pass -redis host:port", defaultRedis)
	}
	dir, err := os.MkdirTemp("", "httpsse-cluster-redis-")
	if err != nil {
		return "", nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	addr = l.Addr().String()
	l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(path, "--port", port, "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "no",
		"--logfile", filepath.Join(dir, "redis.log"))
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	cleanup = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		os.RemoveAll(dir)
	}
	for start := time.Now(); ping(addr) != nil; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			cleanup()
			return "", nil, fmt.Errorf("the redis-server started on %s does not answer", addr)
		}
	}
	log.Printf("started redis-server (pid %d) on %s", cmd.Process.Pid, addr)
	return addr, cleanup, nil
}

// ping checks that a Redis answers at addr, with a bare connection (go-redis would log
// the failures).
func ping(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("%s answered PING with %q", addr, line)
	}
	return nil
}
