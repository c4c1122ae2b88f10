package main

import (
	"context"
	"debug/buildinfo"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/modelgate/modelgate/bench/internal/hostinfo"
)

// machine describes where the benchmark ran. Fields it could not learn say
// "unknown".
type machine struct {
	cpu       string // /proc/cpuinfo's model name
	cores     int    // logical CPUs this process may use
	memory    string // MemTotal
	diskFree  string // free space of the file system the pulls write to, at the start
	kernel    string
	loadStart string // load averages at the start: other work shares the machine
	loadEnd   string // and at the end
	goVersion string // the toolchain that built modelgate
	revision  string // the modelgate commit, marked if the tree had changes
	oras      string // `oras version`
	registry  string // `docker-registry --version`
	date      time.Time
	end       time.Time
}

// describeMachine gathers the machine description from /proc, the file
// system of dir and the binaries. It never fails: what it cannot read is
// "unknown".
func describeMachine(ctx context.Context, cfg benchConfig, dir string) machine {
	m := machine{
		cpu:       hostinfo.CPUModel(),
		cores:     runtime.NumCPU(),
		memory:    hostinfo.MemTotal(),
		diskFree:  diskFree(dir),
		kernel:    hostinfo.FirstLine("/proc/sys/kernel/osrelease"),
		loadStart: hostinfo.LoadAverage(),
		goVersion: "unknown",
		revision:  "unknown",
		oras:      versionLine(ctx, cfg.oras, "version"),
		registry:  versionLine(ctx, cfg.registry, "--version"),
		date:      time.Now().UTC(),
	}
	if bi, err := buildinfo.ReadFile(cfg.modelgate); err == nil {
		m.goVersion = bi.GoVersion
		m.revision = hostinfo.VCSRevision(bi)
	}
	if m.revision == "" || m.revision == "unknown" {
		m.revision = hostinfo.GitRevision(ctx)
	}
	return m
}

// finish records the end of the run.
func (m *machine) finish() {
	m.loadEnd = hostinfo.LoadAverage()
	m.end = time.Now().UTC()
}

// versionLine runs bin with args and returns the first line of its output,
// with oras's "Version:" prefix dropped; "unknown" if it fails.
func versionLine(ctx context.Context, bin string, args ...string) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, args...).Output()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	line = strings.TrimSpace(strings.TrimPrefix(line, "Version:"))
	if err != nil || line == "" {
		return "unknown"
	}
	return line
}

// diskFree is the space available to this user on dir's file system.
func diskFree(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	return formatBytes(int64(st.Bavail) * int64(st.Bsize))
}
