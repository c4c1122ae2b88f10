package main

import "syscall"

// sysProcAttr asks the kernel to send sig to a child if this program dies
// without stopping it, so that an interrupted benchmark leaves no process
// behind: SIGKILL for servers whose own children die with them (the
// gateway's runtimes do), SIGTERM for nginx, whose master stops its workers
// on SIGTERM but not when it is killed.
func sysProcAttr(sig syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: sig}
}
