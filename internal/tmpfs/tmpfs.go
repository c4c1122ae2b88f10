// Package tmpfs mounts small tmpfs file systems for tests that need a real
// full disk. Mounting needs Linux and root (or CAP_SYS_ADMIN): where it is
// not possible the test is skipped, except in CI (CI=true), where it fails.
package tmpfs

import (
	"bytes"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// Mount mounts a tmpfs of size (mount's syntax: "2m") on a new temporary
// directory, returns the directory, and unmounts it when the test ends.
func Mount(t testing.TB, size string) string {
	t.Helper()
	dir := t.TempDir()
	skip := t.Skipf
	if os.Getenv("CI") == "true" {
		skip = t.Fatalf
	}
	if runtime.GOOS != "linux" {
		skip("mount a tmpfs: needs Linux, this is %s", runtime.GOOS)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput()
	if err != nil {
		skip("mount a %s tmpfs on %s (needs root or CAP_SYS_ADMIN): %v: %s", size, dir, err, bytes.TrimSpace(out))
	}
	// Registered after t.TempDir's removal, so it runs before it.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, bytes.TrimSpace(out))
		}
	})
	return dir
}
