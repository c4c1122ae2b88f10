package main

import "syscall"

// sysProcAttr asks the kernel to kill a server if this program dies without
// stopping it, so that an interrupted benchmark leaves no server behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
