//go:build !unix

package main

import (
	"syscall"
	"time"
)

// raiseOpenFileLimit does nothing where there is no RLIMIT_NOFILE.
func raiseOpenFileLimit(want uint64, verbose bool) {}

func openFileLimit() uint64 { return 0 }

// setReceiveBuffer returns nil: the receive buffer is set after connecting instead, which
// shrinks the buffer but not the window already announced.
func setReceiveBuffer(size int) func(network, address string, rc syscall.RawConn) error {
	return nil
}

func processCPU() time.Duration { return 0 }

func procStatus(field string) uint64 { return 0 }

func resetPeakRSS() bool { return false }
