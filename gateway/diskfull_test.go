package gateway_test

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/testregistry"
	"github.com/modelgate/modelgate/internal/tmpfs"
)

// TestDiskFullIsCacheFull: a model larger than the free space of the
// cache's file system (within the cache budget) is answered 507 cache_full,
// naming the cache directory, and no model directory appears.
func TestDiskFullIsCacheFull(t *testing.T) {
	dir := tmpfs.Mount(t, "2m")
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
