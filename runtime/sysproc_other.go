//go:build !linux

package runtime

import "syscall"

// sysProcAttr puts the runtime in its own process group, so that stopping it
// reaches its children too.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
