//go:build unix

package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// raiseOpenFileLimit raises the soft limit of open files to want, raising the hard limit
// too when it is lower and the process may (root, or CAP_SYS_RESOURCE; up to
// fs.nr_open), and otherwise as far as the hard limit allows.
func raiseOpenFileLimit(want uint64, verbose bool) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return
	}
	if lim.Cur >= want {
		return
	}
	if lim.Max < want {
		raised := syscall.Rlimit{Cur: want, Max: want}
		err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised)
		if err == nil {
			return
		}
		if verbose {
			fmt.Fprintf(os.Stderr, "httpsse-load: raising RLIMIT_NOFILE to %d: %v; the hard limit is %d\n", want, err, lim.Max)
		}
	}
	lim.Cur = min(want, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil && verbose {
		fmt.Fprintf(os.Stderr, "httpsse-load: raising RLIMIT_NOFILE: %v\n", err)
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

// processCPU returns the user and system CPU time this process has used (getrusage).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus returns a field of /proc/self/status given in kB (VmRSS, VmHWM), in bytes;
// 0 where there is no /proc.
func procStatus(field string) uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n << 10
		}
	}
	return 0
}

// resetPeakRSS resets VmHWM to the current RSS (Linux 4.0 and later: "5" to
// /proc/self/clear_refs), and reports whether it could.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}
