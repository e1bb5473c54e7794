// Command server is the httpsse demo: a page that shows, live, what the
// browser's own EventSource receives from httpsse streams.
//
//	go run ./examples/server            # then open http://localhost:8080
//	go run ./examples/server -addr :9000
//
// It serves:
//
//	GET /topics  the topics "shared" and "user/NAME" on one connection (Topics.Serve):
//	             the page's one EventSource for the shared stream and its notifications
//	GET /events  the shared topic alone: every tab sees the same events
//	GET /notify  a user's notifications alone (POST /notify sends one)
//	GET /stream  a new Route per request, as in the original README
//	GET /answer  one response written directly with NewStream: an answer, word by word
//
// Every topic has Replay and KeepAlive(15 s). Ctrl-C shuts it down gracefully: the
// topics are closed from
// [http.Server.RegisterOnShutdown], so [http.Server.Shutdown] returns at once
// even with streams open.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/reiver/go-httpsse"
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
	log.Printf("httpsse demo on %s (the page's one EventSource: /topics?user=NAME)", clickableURL(*addr, ln.Addr()))
	// The event streams are served by httpsse's own listener (a third of the memory per
	// idle subscriber); the page and the other requests by srv, as usual.
	if err := srv.Serve(httpsse.NewListener(ln, srv)); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	// Serve returns as soon as Shutdown starts; wait for it to end.
	<-done
	closer.Close()
	log.Print("bye")
}

// clickableURL returns the URL a person can open for the listener at addr, made for the
// -addr flag asked: a listener on every interface (-addr :8080, [::]:8080, 0.0.0.0:8080) is
// reached at localhost, which http://[::]:8080 does not say, and -addr localhost:8080 stays
// localhost rather than the address it resolved to.
func clickableURL(asked string, addr net.Addr) string {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return "http://" + addr.String()
	}
	host, _, _ := net.SplitHostPort(asked)
	if ap.Addr().IsUnspecified() || strings.EqualFold(host, "localhost") {
		return fmt.Sprintf("http://localhost:%d", ap.Port())
	}
	return "http://" + ap.String()
}
