package gateway_test

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/testregistry"
)

// mountTmpfs mounts a tmpfs of the given size ("2m") on a new directory and
// unmounts it in t.Cleanup: a real file system that fills up. Mounting needs
// Linux and root (CAP_SYS_ADMIN); without them the test is skipped, or fails
// when CI=true, where it must run.
func mountTmpfs(t *testing.T, size string) string {
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

// TestDiskFullIsCacheFull: a model larger than the free space of the
// cache's file system (within the cache budget) is answered 507 cache_full,
// naming the cache directory, and no model directory appears.
func TestDiskFullIsCacheFull(t *testing.T) {
	dir := mountTmpfs(t, "2m")
	reg := testregistry.Start(t)
	weights := make([]byte, 4<<20)
	if _, err := rand.Read(weights); err != nil {
		t.Fatal(err)
	}
	desc := reg.Push(t, "models/big", "v1", []testregistry.Layer{
		{Title: "model.bin", Data: weights},
		{Title: "config/params.json", Data: []byte(`{"dim":64}`)},
	})
	ref := reg.Host() + "/models/big:v1"
	g := startGateway(t, reg, gatewayOptions{cacheDir: dir}, gateway.ModelSpec{Name: "tiny", Ref: ref, Profile: profile(t)})

	resp, data := do(t, "POST", g.url+"/v1/chat/completions", chatBody)
	checkError(t, resp, data, 507, "cache_full", "cache full", dir, ref)
	if _, err := os.Stat(filepath.Join(dir, "models", "sha256", desc.Digest.Encoded())); !os.IsNotExist(err) {
		t.Errorf("model directory laid out on a full disk (stat: %v)", err)
	}
}
