package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// program is one runtime under test: its binary and its command line.
type program struct {
	name  string   // as printed: "tinyllm", "llama.cpp"
	path  string   // binary
	flags []string // everything but the port
	notes []string // flags left out, and why
}

// args is the full command line for a server on port.
func (p program) args(port int) []string {
	return append([]string{"--host", "127.0.0.1", "--port", strconv.Itoa(port)}, p.flags...)
}

// commandLine is the command as recorded in the report: the binary's base
// name (the wrapper builds tinyllm in a temporary directory), PORT for the
// port.
func (p program) commandLine() string {
	args := append([]string{filepath.Base(p.path), "--host", "127.0.0.1", "--port", "PORT"}, p.flags...)
	return strings.Join(args, " ")
}

// newPrograms returns tinyllm and llama-server, in the order they alternate.
// Both get the same model, threads and context; llama-server also one slot
// (tinyllm serves one generation at a time), no web UI and errors-only
// logging where its --help offers those flags.
func newPrograms(ctx context.Context, cfg config) ([]program, error) {
	common := []string{"-m", cfg.model, "-t", strconv.Itoa(cfg.threads), "-c", strconv.Itoa(cfg.ctxSize)}
	tiny := program{name: "tinyllm", path: cfg.tinyllm, flags: common}

	help, err := llamaHelp(ctx, cfg.llamaServer)
	if err != nil {
		return nil, err
	}
	llama := program{name: "llama.cpp", path: cfg.llamaServer}
	llama.flags = append(append([]string{}, common...), "-tb", strconv.Itoa(cfg.threads), "-np", "1")
	optional := []struct {
		flag   string
		args   []string
		reason string
	}{
		{"--no-webui", []string{"--no-webui"}, "serve no web UI"},
		{"--log-verbosity", []string{"-lv", "1"}, "log errors only"},
	}
	for _, o := range optional {
		if strings.Contains(help, o.flag) {
			llama.flags = append(llama.flags, o.args...)
		} else {
			llama.notes = append(llama.notes, fmt.Sprintf("llama-server lacks %s (%s); left out", o.flag, o.reason))
		}
	}
	return []program{tiny, llama}, nil
}

// llamaHelp returns llama-server's --help text.
func llamaHelp(ctx context.Context, path string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--help").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("run %s --help: %w", path, err)
	}
	return string(out), nil
}
