package testutil

import "syscall"

// sysProcAttr makes the kernel kill a child when the test process dies, so
// that a test binary that panics or times out leaves no backend behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
