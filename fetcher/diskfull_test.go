package fetcher_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/internal/testregistry"
	"github.com/modelgate/modelgate/internal/tmpfs"
)

func TestPullDiskFull(t *testing.T) {
	r := newFaultRig(t) // a 4 MiB blob
	r.dir = tmpfs.Mount(t, "2m")
	small := make([]byte, 64<<10)
	_, _ = rand.NewChaCha8([32]byte{4}).Read(small)
	r.reg.Push(t, "models/small", "v1", []testregistry.Layer{{Title: "small.bin", Data: small}})
	smallRef := r.proxy.Host() + "/models/small:v1"
	f, c := r.fetcher(t, fetcher.Options{})

	// A model pulled before the disk filled up.
	pre, err := f.Pull(t.Context(), smallRef)
	if err != nil {
		t.Fatalf("pull of the small model: %v", err)
	}
	desc, err := f.Resolve(t.Context(), r.ref)
	if err != nil {
		t.Fatal(err)
	}

	for i := range 2 { // the failure is not remembered: the second pull tries again
		before := len(r.blobGets())
		_, err = f.Pull(t.Context(), r.ref)
		if !errors.Is(err, cache.ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("pull %d of a model larger than the free space: %v, want cache.ErrNoSpace wrapping ENOSPC", i+1, err)
		}
		for _, want := range []string{"cache full", r.dir, r.ref} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
		}
		t.Logf("pull %d: %v", i+1, err)
		if n := len(r.blobGets()) - before; n != 1 {
			t.Errorf("pull %d sent %d blob GETs, want 1 (a full disk is not retried)", i+1, n)
		}
	}

	// The cache is consistent: nothing unverified is visible.
	if _, err := c.Model(desc.Digest); !errors.Is(err, cache.ErrModelNotFound) {
		t.Errorf("model lookup after a failed pull: %v, want ErrModelNotFound", err)
	}
	if c.HasBlob(r.blob, faultBlobSize) {
		t.Error("blob of the failed pull is in the cache")
	}
	blobs, _ := filepath.Glob(filepath.Join(r.dir, "blobs", "sha256", "*"))
	if want := filepath.Join(r.dir, "blobs", "sha256", digest.FromBytes(small).Encoded()); len(blobs) != 1 || blobs[0] != want {
		t.Errorf("blobs after the failed pull: %v, want only the small model's %s", blobs, want)
	}
	// (ingest/model-<hex>.lock, the commit's lock file, may stay: it holds
	// nothing.)
	if left, _ := filepath.Glob(filepath.Join(r.dir, "ingest", "model-*-*")); len(left) != 0 {
		t.Errorf("half-built model directory left: %v", left)
	}
	// The partial file of the failed blob stays as the resume point for
	// when space is freed (documented on cache.ErrNoSpace).
	if got := r.partialSize(t); got <= 0 || got >= faultBlobSize {
		t.Errorf("partial file has %d bytes, want part of the blob", got)
	}

	// The model pulled before is still there and readable.
	again, err := f.Pull(t.Context(), smallRef)
	if err != nil {
		t.Fatalf("pull of the cached small model with the disk full: %v", err)
	}
	if again.Downloaded != 0 || again.Model.Dir != pre.Model.Dir {
		t.Errorf("cached model pulled again: %+v", again)
	}
	got, err := os.ReadFile(filepath.Join(again.Model.Dir, "small.bin"))
	if err != nil || !bytes.Equal(got, small) {
		t.Errorf("small.bin with the disk full: %v, equal %v", err, bytes.Equal(got, small))
	}

	// Once space is freed (here: the file system grows), the pull resumes
	// from the partial file.
	out, err := exec.Command("mount", "-o", "remount,size=8m", r.dir).CombinedOutput()
	if err != nil {
		t.Fatalf("grow the tmpfs: %v: %s", err, out)
	}
	kept := r.partialSize(t)
	r.proxy.ResetRequests()
	res, err := f.Pull(t.Context(), r.ref)
	r.checkPulled(t, res, err)
	if res.Downloaded != faultBlobSize-kept {
		t.Errorf("pull after freeing space downloaded %d bytes, want the %d missing", res.Downloaded, faultBlobSize-kept)
	}
}
