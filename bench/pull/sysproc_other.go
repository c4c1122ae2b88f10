//go:build !linux

package main

import (
	"runtime"
	"syscall"
)

// sysProcAttr has nothing to add outside Linux: an interrupted benchmark
// stops its children itself, but a killed one may leave them behind.
func sysProcAttr() *syscall.SysProcAttr { return nil }

// maxRSSBytes converts getrusage's ru_maxrss to bytes: bytes on macOS, KiB
// on the BSDs.
func maxRSSBytes(maxrss int64) int64 {
	if runtime.GOOS == "darwin" {
		return maxrss
	}
	return maxrss << 10
}
