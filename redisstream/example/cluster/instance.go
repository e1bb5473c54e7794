package main

import (
	"bufio"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	httpsse "github.com/reiver/go-httpsse"
	"github.com/reiver/go-httpsse/redisstream"
)

// runInstance is one server process: it serves the stream at /events, publishes a tick
// every second, and publishes what is POSTed to /publish. It prints "listening ADDRESS" on
// its standard output and exits when its standard input closes (when the command that
// started it ends, however it ends).
func runInstance(n int, redisAddr, stream string) {
	client := redis.NewClient(&redis.Options{Addr: redisAddr})
	route := redisstream.NewRoute(client, stream, redisstream.MaxLen(1000))
	hb := httpsse.HeartBeat(15*time.Second, route)

	mux := http.NewServeMux()
	mux.Handle("GET /events", route)
	mux.HandleFunc("POST /publish", func(w http.ResponseWriter, req *http.Request) {
		msg := strings.TrimSpace(req.FormValue("message"))
		if msg == "" {
			http.Error(w, "empty message", http.StatusBadRequest)
			return
		}
		err := route.PublishEvent(func(w httpsse.EventWriter) error {
			_ = w.WriteEvent("message")
			return w.WriteData(fmt.Sprintf("%s (via instance %d)", msg, n))
		})
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("listening %s\n", l.Addr())

	go func() {
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		hb.Close()
		route.Close()
		client.Close()
		os.Exit(0)
	}()
	go tick(n, route)
	log.Fatal(http.Serve(l, mux))
}

// tick publishes "instance N tick K" every second, K counting from 1: a page that sees
// K go up by one for each instance knows it missed nothing.
func tick(n int, route *redisstream.Route) {
	pid := os.Getpid()
	// Start with the seconds, so the instances take turns rather than publishing at once.
	time.Sleep(time.Duration(n) * time.Second / 3)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for k := 1; ; k++ {
		err := route.PublishEvent(func(w httpsse.EventWriter) error {
			_ = w.WriteEvent("tick")
			_ = w.WriteRetry(time.Second)
			return w.WriteData(fmt.Sprintf(`{"instance":%d,"pid":%d,"tick":%d}`, n, pid, k))
		})
		if err == httpsse.ErrClosed {
			return
		}
		if err != nil {
			log.Printf("instance %d: %v", n, err)
		}
		<-t.C
	}
}
