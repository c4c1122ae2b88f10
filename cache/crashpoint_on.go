//go:build crashpoints

package cache

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// crashpointEnv names the crash point a binary built with -tags crashpoints
// dies at: "NAME" kills the process the first time it reaches
// crashpoint("NAME"), "NAME:N" the Nth time (counting every goroutine of
// the process).
const crashpointEnv = "MODELGATE_CRASHPOINT"

// The crash point this process dies at, read once at start.
var (
	crashName, crashAt = parseCrashpoint(os.Getenv(crashpointEnv))
	crashHits          atomic.Int64
)

// crashpoint kills the process with SIGKILL when MODELGATE_CRASHPOINT names
// this point (and this is the hit it asks for). It exists for the crash
// tests (cmd/modelgate/crash_test.go): a crash at an exact line, between
// two writes whose order the cache's safety depends on, is a fault no real
// disk, kernel or registry can show on demand. SIGKILL is what an OOM kill,
// a node failure or `kill -9` delivers: no deferred function runs, no file
// is closed by Go, the kernel drops the process's flocks, and what was
// written stays in the page cache exactly as it was.
//
// Built only with -tags crashpoints, and only on Unix (syscall.Kill); the
// release build has the no-op in crashpoint.go.
func crashpoint(name string) {
	if crashName == "" || name != crashName || crashHits.Add(1) != crashAt {
		return
	}
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	// The signal may take a moment to reach every thread: this goroutine
	// must not run the next line meanwhile. (A sleep, not select{}, which
	// the runtime might report as a deadlock.)
	for {
		time.Sleep(time.Hour)
	}
}

// parseCrashpoint splits "NAME" or "NAME:N" (N >= 1; 1 if absent or not a
// number, in which case the whole value is the name).
func parseCrashpoint(v string) (string, int64) {
	if i := strings.LastIndexByte(v, ':'); i >= 0 {
		if n, err := strconv.ParseInt(v[i+1:], 10, 64); err == nil && n >= 1 {
			return v[:i], n
		}
	}
	return v, 1
}
