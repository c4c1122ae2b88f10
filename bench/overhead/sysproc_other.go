//go:build !linux

package main

import "syscall"

// sysProcAttr has nothing to add outside Linux.
func sysProcAttr(syscall.Signal) *syscall.SysProcAttr { return nil }
