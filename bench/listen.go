package main

import (
	"context"
	"net"
	"os"
	"strconv"
	"syscall"
)

// listen opens the server's listener on 127.0.0.1. With BENCH_MAXSEG=N it sets TCP_MAXSEG to
// N bytes on it (accepted connections inherit it), for the diagnosis of the stalls in
// docs/stalls-and-latency.md: on loopback the MSS is about 64 KiB, more than the window a
// reader advertises after a burst, and a sender with nothing in flight then waits for the
// 200 ms persist timer.
func listen() (net.Listener, error) {
	lc := net.ListenConfig{}
	if n, err := strconv.Atoi(os.Getenv("BENCH_MAXSEG")); err == nil && n > 0 {
		lc.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_MAXSEG, n)
			})
			if err != nil {
				return err
			}
			return serr
		}
	}
	return lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
}
