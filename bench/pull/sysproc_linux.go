package main

import "syscall"

// sysProcAttr asks the kernel to kill a child if this program dies without
// stopping it, so that an interrupted benchmark leaves no process behind.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// maxRSSBytes converts getrusage's ru_maxrss, in KiB on Linux, to bytes.
func maxRSSBytes(maxrss int64) int64 { return maxrss << 10 }
