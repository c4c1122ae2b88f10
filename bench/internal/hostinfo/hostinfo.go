// Package hostinfo describes the machine a benchmark ran on (CPU, memory,
// load, kernel) and the revision of the code it measured, for the machine
// line of docs/benchmarks.md.
package hostinfo

import (
	"bufio"
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// VCSRevision is the commit stamped in a binary by go build, with a mark if
// the working tree had uncommitted changes; "" if the build was not stamped
// (-buildvcs=false).
func VCSRevision(bi *buildinfo.BuildInfo) string {
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

// GitRevision is the commit of the git checkout in the current directory,
// with a mark if tracked files have uncommitted changes; "unknown" without
// git.
func GitRevision(ctx context.Context) string {
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

// CPUModel is /proc/cpuinfo's first "model name", with the vector extensions
// llama.cpp's kernels use where the CPU has them.
func CPUModel() string {
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

// MemTotal is /proc/meminfo's MemTotal in GiB.
func MemTotal() string {
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

// LoadAverage is the 1, 5 and 15 minute load averages.
func LoadAverage() string {
	f := strings.Fields(FirstLine("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// FirstLine is the first line of a small file such as one under /proc, or
// "unknown".
func FirstLine(path string) string {
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
