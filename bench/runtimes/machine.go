package main

import (
	"context"
	"debug/buildinfo"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/modelgate/modelgate/bench/internal/hostinfo"
)

// machine describes where the benchmark ran. Fields it could not learn say
// "unknown".
type machine struct {
	cpu       string // model name and the SIMD extensions that matter here
	cores     int    // logical CPUs this process may use
	memory    string // MemTotal
	kernel    string
	loadavg   string // at the start: other work shares the machine
	goVersion string // the toolchain that built tinyllm
	revision  string // the modelgate commit tinyllm was built from, marked if the tree had changes
	llama     string // llama-server's version, commit and compiler
	modelSize int64  // bytes
	date      time.Time
}

// describeMachine gathers the machine description from /proc, the binaries
// and the model file. It never fails: what it cannot read is "unknown".
func describeMachine(ctx context.Context, cfg config) machine {
	m := machine{
		cpu:       hostinfo.CPUModel(),
		cores:     runtime.NumCPU(),
		memory:    hostinfo.MemTotal(),
		kernel:    hostinfo.FirstLine("/proc/sys/kernel/osrelease"),
		loadavg:   hostinfo.LoadAverage(),
		goVersion: "unknown",
		revision:  "unknown",
		llama:     llamaVersion(ctx, cfg.llamaServer),
		date:      time.Now().UTC(),
	}
	if bi, err := buildinfo.ReadFile(cfg.tinyllm); err == nil {
		m.goVersion = bi.GoVersion
		m.revision = hostinfo.VCSRevision(bi)
	}
	if m.revision == "" || m.revision == "unknown" {
		m.revision = hostinfo.GitRevision(ctx)
	}
	if fi, err := os.Stat(cfg.model); err == nil {
		m.modelSize = fi.Size()
	}
	return m
}

// llamaVersion is `llama-server --version` on one line, and the commit of the
// git checkout it was built in where there is one (bench/build-llama-server.sh
// builds in LLAMA_CPP/build/bin).
func llamaVersion(ctx context.Context, path string) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var parts []string
	out, _ := exec.CommandContext(ctx, path, "--version").CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "version:") || strings.HasPrefix(line, "built with") {
			parts = append(parts, strings.TrimSpace(line))
		}
	}
	src := filepath.Join(filepath.Dir(path), "..", "..")
	if rev, err := exec.CommandContext(ctx, "git", "-C", src, "rev-parse", "--short", "HEAD").Output(); err == nil {
		parts = append(parts, "source checkout at "+strings.TrimSpace(string(rev)))
	}
	if len(parts) == 0 {
		return "unknown"
	}
	return strings.Join(parts, "; ")
}
