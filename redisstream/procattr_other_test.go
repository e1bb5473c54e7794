//go:build !linux

package redisstream

import "syscall"

// dieWithParent is nil where there is no parent-death signal: a test binary that dies may
// leave its processes behind.
func dieWithParent() *syscall.SysProcAttr { return nil }
