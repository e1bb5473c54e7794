// Command mercurehub is the Mercure hub that bench's servers part measures: the
// github.com/dunglas/mercure module embedded in a small program, with its local (in-memory)
// transport, anonymous subscribers allowed and publishers authorized by an HS256 JWT. It is
// a module of its own so that bench's other parts never download Mercure's dependencies;
// bench builds it into its cache directory (see bench/servers.go).
//
// Usage:
//
//	mercurehub -addr 127.0.0.1:PORT -key SECRET [-tls-addr 127.0.0.1:PORT -cert FILE -keyfile FILE]
//
// Subscribe with GET /.well-known/mercure?topic=T; publish with POST /.well-known/mercure,
// the form fields topic and data, and Authorization: Bearer JWT, where the JWT is signed with
// SECRET and has the claim {"mercure":{"publish":["*"]}}.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/dunglas/mercure"
	"go.uber.org/zap"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address of the cleartext HTTP/1.1 listener")
	key := flag.String("key", "", "HS256 key of the publishers' JWTs")
	tlsAddr := flag.String("tls-addr", "", "address of a TLS listener (HTTP/2 and HTTP/1.1), if any")
	cert := flag.String("cert", "", "TLS certificate (PEM)")
	keyFile := flag.String("keyfile", "", "TLS key (PEM)")
	flag.Parse()
	if *key == "" {
		fmt.Fprintln(os.Stderr, "mercurehub: -key is required")
		os.Exit(2)
	}
	hub, err := mercure.NewHub(
		mercure.WithAnonymous(),
		mercure.WithPublisherJWT([]byte(*key), "HS256"),
		mercure.WithTransport(mercure.NewLocalTransport()),
		mercure.WithLogger(zap.NewNop()),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mercurehub:", err)
		os.Exit(1)
	}
	errs := make(chan error, 2) // one for each listener
	go func() {
		srv := &http.Server{Addr: *addr, Handler: hub, ReadHeaderTimeout: 10 * time.Second}
		errs <- srv.ListenAndServe()
	}()
	if *tlsAddr != "" {
		go func() {
			srv := &http.Server{Addr: *tlsAddr, Handler: hub, ReadHeaderTimeout: 10 * time.Second,
				TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}}
			errs <- srv.ListenAndServeTLS(*cert, *keyFile)
		}()
	}
	fmt.Fprintln(os.Stderr, "mercurehub:", <-errs)
	os.Exit(1)
}
