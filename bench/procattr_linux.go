package main

import (
	"os/exec"
	"syscall"
)

// endWithBench has the kernel send the server process SIGTERM when the bench's process ends,
// however it ends (a panic runs no deferred stop), so that no server is left behind.
func endWithBench(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
