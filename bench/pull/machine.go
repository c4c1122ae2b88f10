package main

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
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
		cpu:       cpuModel(),
		cores:     runtime.NumCPU(),
		memory:    memTotal(),
		diskFree:  diskFree(dir),
		kernel:    firstLine("/proc/sys/kernel/osrelease"),
		loadStart: loadAverage(),
		goVersion: "unknown",
		revision:  "unknown",
		oras:      versionLine(ctx, cfg.oras, "version"),
		registry:  versionLine(ctx, cfg.registry, "--version"),
		date:      time.Now().UTC(),
	}
	if bi, err := buildinfo.ReadFile(cfg.modelgate); err == nil {
		m.goVersion = bi.GoVersion
		m.revision = vcsRevision(bi)
	}
	if m.revision == "" || m.revision == "unknown" {
		m.revision = gitRevision(ctx)
	}
	return m
}

// finish records the end of the run.
func (m *machine) finish() {
	m.loadEnd = loadAverage()
	m.end = time.Now().UTC()
}

// vcsRevision is the commit stamped in a binary by go build, with a mark if
// the working tree had uncommitted changes; "" if the build was not stamped.
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

// cpuModel is /proc/cpuinfo's first "model name".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown"
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

// diskFree is the space available to this user on dir's file system.
func diskFree(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return "unknown"
	}
	return formatBytes(int64(st.Bavail) * int64(st.Bsize))
}

// loadAverage is the 1, 5 and 15 minute load averages.
func loadAverage() string {
	f := strings.Fields(firstLine("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
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
