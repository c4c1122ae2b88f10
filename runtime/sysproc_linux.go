package runtime

import "syscall"

// sysProcAttr puts the runtime in its own process group, so that stopping it
// reaches its children too, and asks the kernel to kill it if the gateway
// dies without stopping it (no orphan survives a crashed gateway).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
