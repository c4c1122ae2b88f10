package main

import (
	"context"
	"debug/buildinfo"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/modelgate/modelgate/bench/internal/hostinfo"
)

// machine describes where the benchmark ran. Fields it could not learn say
// "unknown".
type machine struct {
	cpu       string // model name and SIMD extensions
	cores     int    // logical CPUs this process may use
	memory    string // MemTotal
	kernel    string
	loadStart string // load averages at the start: other work shares the machine
	loadEnd   string // and at the end
	goVersion string // the toolchain that built modelgate
	revision  string // the modelgate commit, marked if the tree had changes
	nginx     string // `nginx -v`
	date      time.Time
	end       time.Time
}

// describeMachine gathers the machine description from /proc and the
// binaries. It never fails: what it cannot read is "unknown".
func describeMachine(ctx context.Context, cfg config) machine {
	m := machine{
		cpu:       hostinfo.CPUModel(),
		cores:     runtime.NumCPU(),
		memory:    hostinfo.MemTotal(),
		kernel:    hostinfo.FirstLine("/proc/sys/kernel/osrelease"),
		loadStart: hostinfo.LoadAverage(),
		goVersion: "unknown",
		revision:  "unknown",
		nginx:     nginxVersion(ctx, cfg.nginx),
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

// nginxVersion is `nginx -v` ("nginx version: nginx/1.22.1", on stderr)
// without its prefix; "unknown" if it fails.
func nginxVersion(ctx context.Context, bin string) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-v").CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	line = strings.TrimSpace(strings.TrimPrefix(line, "nginx version:"))
	if err != nil || line == "" {
		return "unknown"
	}
	return line
}
