// Command server is the httpsse demo: a page that shows, live, what the
// browser's own EventSource receives from two httpsse streams.
//
//	go run ./examples/server            # then open http://localhost:8080
//	go run ./examples/server -addr :9000
//
// It serves:
//
//	GET /        the page (embedded, self-contained: no CDN, no build step)
//	GET /events  one shared Route mounted on the mux: every tab sees the same events
//	GET /stream  a new Route per request, as in the original README
//	GET /answer  one response written directly with NewStream: an answer, word by word
//
// Ctrl-C shuts it down gracefully: the Routes are closed from
// [http.Server.RegisterOnShutdown], so [http.Server.Shutdown] returns at once
// even with streams open.
package main

import (
	"context"
	"errors"
	"flag"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("addr", "localhost:8080", "address to listen on")
	flag.Parse()

	handler, closer := newDemo(defaultDemoConfig)
	srv := &http.Server{
		Addr:              *addr,
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
	}
	// Shutdown does not end open streams by itself; closing the Routes does.
	srv.RegisterOnShutdown(func() { closer.Close() })

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		log.Print("shutting down")
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(shutdownCtx); err != nil {
			log.Printf("shutdown: %v", err)
		}
	}()

	// Bind first, so that a busy port is one clear error and the URL printed is where the
	// demo really is (with -addr :0, the port the system chose).
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatalf("httpsse demo: cannot listen on %s: %v", *addr, err)
	}
	log.Printf("httpsse demo on http://%s (shared stream: /events, per-request stream: /stream)", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	// Serve returns as soon as Shutdown starts; wait for it to end.
	<-done
	closer.Close()
	log.Print("bye")
}
