package gateway_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/testregistry"
)

// modelPinned reports whether some holder pins model d in the cache at
// cacheDir, as an eviction would see it: a pin is a shared flock on
// locks/models/<hex>, so an exclusive non-blocking flock fails while one
// is held.
func modelPinned(t *testing.T, cacheDir string, d digest.Digest) bool {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(cacheDir, "locks", "models", d.Encoded()), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close() // drops the exclusive lock if we got it
	err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
	if errors.Is(err, unix.EWOULDBLOCK) {
		return true
	}
	if err != nil {
		t.Fatalf("flock: %v", err)
	}
	return false
}

// waitUnpinned waits until model d is no longer pinned.
func waitUnpinned(t *testing.T, cacheDir string, d digest.Digest) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for modelPinned(t, cacheDir, d) {
		if time.Now().After(deadline) {
			t.Fatalf("model %s still pinned after its runtime exited", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRunningModelIsPinnedUntilStopped: from its runtime's start to the
// gateway's shutdown, the model cannot be evicted; afterwards it can.
func TestRunningModelIsPinnedUntilStopped(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	g := startGateway(t, reg, gatewayOptions{}, gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t)})
	if modelPinned(t, g.cache, a.manifest.Digest) {
		t.Fatalf("model pinned before any request")
	}
	if resp, data := do(t, "POST", g.url+"/v1/chat/completions", chatBody); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	if !modelPinned(t, g.cache, a.manifest.Digest) {
		t.Fatalf("running model is not pinned")
	}
	// More requests share the pin of the one runtime.
	for range 3 {
		if resp, data := do(t, "POST", g.url+"/v1/chat/completions", chatBody); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, data)
		}
	}
	g.stop(t)
	// Shutdown releases the pin before it returns.
	if modelPinned(t, g.cache, a.manifest.Digest) {
		t.Errorf("model still pinned after the gateway stopped it")
	}
}

// TestCrashedRuntimeReleasesItsPin: a runtime that dies on its own
// releases the pin without waiting for another request; the next start
// pins again, and that pin is not released by the dead runtime's.
func TestCrashedRuntimeReleasesItsPin(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	g := startGateway(t, reg, gatewayOptions{}, gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t)})
	if resp, data := do(t, "POST", g.url+"/v1/chat/completions", chatBody); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	resp, data := do(t, "POST", g.url+"/models/tiny/crash", "")
	checkError(t, resp, data, 502, "runtime_error")
	waitUnpinned(t, g.cache, a.manifest.Digest)

	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, data = do(t, "POST", g.url+"/v1/chat/completions", chatBody)
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after crash: %d %s", resp.StatusCode, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !modelPinned(t, g.cache, a.manifest.Digest) {
		t.Fatalf("restarted model is not pinned")
	}
	g.stop(t)
	if modelPinned(t, g.cache, a.manifest.Digest) {
		t.Errorf("model still pinned after the gateway stopped it")
	}
}

// TestFailedStartReleasesItsPin: a runtime that exits before it is ready
// leaves no pin behind, however many times the start is retried.
func TestFailedStartReleasesItsPin(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	g := startGateway(t, reg, gatewayOptions{}, gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t, "--exit-at-start", "3")})
	for range 2 {
		resp, data := do(t, "POST", g.url+"/v1/chat/completions", chatBody)
		checkError(t, resp, data, 500, "runtime_exited")
		if modelPinned(t, g.cache, a.manifest.Digest) {
			t.Fatalf("model pinned after a failed start")
		}
	}
}
