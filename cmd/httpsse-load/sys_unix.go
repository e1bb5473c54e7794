//go:build unix

package main

import (
	"fmt"
	"os"
	"syscall"
)

// raiseOpenFileLimit raises the soft limit of open files as far as the hard limit allows.
// Each subscriber holds one socket in each process.
func raiseOpenFileLimit(verbose bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil && verbose {
			fmt.Fprintf(os.Stderr, "httpsse-load: raising RLIMIT_NOFILE: %v\n", err)
		}
	}
}

func openFileLimit() uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0
	}
	return uint64(lim.Cur)
}

// setReceiveBuffer returns a net.Dialer Control function that sets SO_RCVBUF before the
// connection is made, so that the TCP window it announces stays that small.
func setReceiveBuffer(size int) func(network, address string, rc syscall.RawConn) error {
	return func(network, address string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, size)
		})
		if err != nil {
			return err
		}
		return serr
	}
}
