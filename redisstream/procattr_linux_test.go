package redisstream

import "syscall"

// dieWithParent is the process attributes of the redis-servers and server processes that
// the tests start: on Linux they are killed if the test binary dies (a timeout, a crash)
// before it could stop them.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
