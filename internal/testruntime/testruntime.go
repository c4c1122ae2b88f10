// Package testruntime builds the testruntime program (see
// cmd/testruntime): a real model runtime process for tests of the gateway,
// which starts it, polls its /health and proxies requests to it.
package testruntime

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"
)

// pkg is the import path of the program that Build compiles.
const pkg = "github.com/modelgate/modelgate/internal/testruntime/cmd/testruntime"

// buildTimeout bounds the one shared build; it is not tied to any caller's
// context so that one test ending early cannot fail the build for the rest.
const buildTimeout = 5 * time.Minute

var (
	once     sync.Once
	dir      string // temp dir holding the binary; set by once
	binPath  string // set by once
	buildErr error  // set by once
)

// Build compiles the testruntime program once per test binary and returns the
// path of the executable. Every call after the first returns the same path;
// if the build failed, every caller fails with the compiler output.
//
// The binary stays in a temp dir for the life of the test process; call
// Cleanup from TestMain, after m.Run, to remove it. Build is safe for
// concurrent use.
func Build(t testing.TB) string {
	t.Helper()
	once.Do(func() { binPath, buildErr = build() })
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// Cleanup removes the directory holding the binary built by Build, if any.
// Call it once no test can call Build any more (typically at the end of
// TestMain); a later Build returns a path that no longer exists.
func Cleanup() error {
	once.Do(func() { buildErr = fmt.Errorf("build testruntime: Build called after Cleanup") })
	if dir == "" {
		return nil
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove testruntime dir: %w", err)
	}
	return nil
}

func build() (string, error) {
	var err error
	dir, err = os.MkdirTemp("", "testruntime-")
	if err != nil {
		return "", fmt.Errorf("build testruntime: %w", err)
	}
	out := filepath.Join(dir, "testruntime")
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-o", out, pkg)
	if output, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build testruntime: %w\n%s", err, output)
	}
	return out, nil
}

// goTool returns the go command of the toolchain that built the test binary
// when it is present, else "go" from PATH.
func goTool() string {
	p := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return "go"
}
