package main

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
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
		cpu:       cpuModel(),
		cores:     runtime.NumCPU(),
		memory:    memTotal(),
		kernel:    firstLine("/proc/sys/kernel/osrelease"),
		loadavg:   loadAverage(),
		goVersion: "unknown",
		revision:  "unknown",
		llama:     llamaVersion(ctx, cfg.llamaServer),
		date:      time.Now().UTC(),
	}
	if bi, err := buildinfo.ReadFile(cfg.tinyllm); err == nil {
		m.goVersion = bi.GoVersion
		m.revision = vcsRevision(bi)
	}
	if m.revision == "" || m.revision == "unknown" {
		m.revision = gitRevision(ctx)
	}
	if fi, err := os.Stat(cfg.model); err == nil {
		m.modelSize = fi.Size()
	}
	return m
}

// vcsRevision is the commit stamped in a binary by go build, with a mark if
// the working tree had uncommitted changes; "" if the build was not stamped
// (-buildvcs=false).
func vcsRevision(bi *buildinfo.BuildInfo) string {
	rev, modified := "", false
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			rev = kv.Value[:min(len(kv.Value), 12)]
		case "vcs.modified":
			modified = kv.Value == "true"
		}
	}
	if rev != "" && modified {
		rev += " + uncommitted changes"
	}
	return rev
}

// gitRevision is the commit of the git checkout in the current directory,
// with a mark if tracked files have uncommitted changes; "unknown" without
// git.
func gitRevision(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rev, err := exec.CommandContext(ctx, "git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	out := strings.TrimSpace(string(rev))
	if st, err := exec.CommandContext(ctx, "git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		out += " + uncommitted changes"
	}
	return out
}

// cpuModel is /proc/cpuinfo's first "model name", with the vector extensions
// llama.cpp's kernels use where the CPU has them.
func cpuModel() string {
	name, flags := "unknown", ""
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return name
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() && (name == "unknown" || flags == "") {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "model name":
			name = strings.TrimSpace(value)
		case "flags":
			flags = value
		}
	}
	var have []string
	for _, ext := range []string{"avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16"} {
		if strings.Contains(flags+" ", " "+ext+" ") {
			have = append(have, ext)
		}
	}
	if len(have) > 0 {
		name += " (" + strings.Join(have, ", ") + ")"
	}
	return name
}

// memTotal is /proc/meminfo's MemTotal in GiB.
func memTotal() string {
	for _, line := range strings.Split(readSmall("/proc/meminfo"), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err == nil {
				return fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	return "unknown"
}

// loadAverage is the 1, 5 and 15 minute load averages.
func loadAverage() string {
	f := strings.Fields(firstLine("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
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

func firstLine(path string) string {
	line, _, _ := strings.Cut(readSmall(path), "\n")
	if line == "" {
		return "unknown"
	}
	return strings.TrimSpace(line)
}

// readSmall reads at most 64 KiB of a /proc file; "" if it cannot.
func readSmall(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	data, _ := io.ReadAll(io.LimitReader(f, 64<<10))
	return string(data)
}
