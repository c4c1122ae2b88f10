package cache

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// verifyFixture is a cache with two committed models sharing a tokenizer:
// "a" (weights a + tokenizer) and "b" (weights b + tokenizer).
type verifyFixture struct {
	c                  *Cache
	a, b               *Model
	weightsA, weightsB []byte
	tok                []byte
}

func newVerifyFixture(t *testing.T) *verifyFixture {
	t.Helper()
	ctx := context.Background()
	c := openTemp(t, 0)
	f := &verifyFixture{
		c:        c,
		weightsA: bytes.Repeat([]byte("weights of model a "), 4096),
		weightsB: bytes.Repeat([]byte("weights of model b "), 4096),
		tok:      []byte(`{"tokenizer": true}`),
	}
	for _, b := range [][]byte{f.weightsA, f.weightsB, f.tok} {
		if err := c.WriteBlob(ctx, digest.FromBytes(b), int64(len(b)), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	commit := func(ref string, weights []byte) *Model {
		m, err := c.Commit(ctx, digest.FromString(ref), ref, []Entry{
			{Path: "model.gguf", Digest: digest.FromBytes(weights), Size: int64(len(weights))},
			{Path: "tokenizer.json", Digest: digest.FromBytes(f.tok), Size: int64(len(f.tok))},
		}, "model.gguf")
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	f.a = commit("r/a:1", f.weightsA)
	f.b = commit("r/b:1", f.weightsB)
	return f
}

// flipByte corrupts the blob of data on disk in place, as a bad disk
// would: one byte at offset, same length.
func flipByte(t *testing.T, c *Cache, data []byte, offset int64) {
	t.Helper()
	p := c.BlobPath(digest.FromBytes(data))
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt([]byte{data[offset] ^ 0xff}, offset); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o444); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyCleanCache(t *testing.T) {
	f := newVerifyFixture(t)
	rep, err := f.c.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantBytes := int64(len(f.weightsA) + len(f.weightsB) + len(f.tok))
	if !rep.Clean() || rep.Blobs != 3 || rep.Bytes != wantBytes || len(rep.ModelsRemoved)+len(rep.ModelsInUse) != 0 {
		t.Errorf("report %+v, want 3 clean blobs of %d bytes", rep, wantBytes)
	}
	if _, err := os.Stat(f.c.quarantineDir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("quarantine/ created on a clean cache: %v", err)
	}
}

func TestVerifyQuarantinesCorruptBlobAndRemovesItsModel(t *testing.T) {
	f := newVerifyFixture(t)
	ctx := context.Background()
	flipByte(t, f.c, f.weightsA, 1000)
	bad := digest.FromBytes(f.weightsA)
	corrupted, err := os.ReadFile(f.c.BlobPath(bad))
	if err != nil {
		t.Fatal(err)
	}

	rep, err := f.c.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Clean() || len(rep.Corrupt) != 1 || rep.Blobs != 3 {
		t.Fatalf("report %+v, want one corrupt blob of three", rep)
	}
	cb := rep.Corrupt[0]
	q := filepath.Join(f.c.Root(), "quarantine", bad.Encoded())
	if cb.Digest != bad || cb.Actual != digest.FromBytes(corrupted) || cb.Size != int64(len(f.weightsA)) || cb.Quarantine != q || cb.Error != "" {
		t.Errorf("corrupt blob %+v, want %s hashing to %s, moved to %s", cb, bad, digest.FromBytes(corrupted), q)
	}
	if got, err := os.ReadFile(q); err != nil || !bytes.Equal(got, corrupted) {
		t.Errorf("quarantined bytes differ from the corrupt blob (err %v)", err)
	}
	if _, err := os.Stat(f.c.BlobPath(bad)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("corrupt blob still under blobs/: %v", err)
	}
	if !slices.Equal(rep.ModelsRemoved, []digest.Digest{f.a.Digest}) || len(rep.ModelsInUse) != 0 || len(rep.Missing) != 0 {
		t.Errorf("models removed %v, in use %v, missing %v; want only %s removed", rep.ModelsRemoved, rep.ModelsInUse, rep.Missing, f.a.Digest)
	}
	if _, err := f.c.Model(f.a.Digest); !errors.Is(err, ErrModelNotFound) {
		t.Errorf("model a after verify: %v, want ErrModelNotFound", err)
	}
	if _, err := os.Stat(f.a.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("model a's directory still there: %v", err)
	}
	if _, err := f.c.Lookup(f.a.Digest); !errors.Is(err, ErrModelNotFound) {
		t.Errorf("Lookup of model a: %v, want ErrModelNotFound (the index forgets it)", err)
	}
	// The good model and the shared blob stay.
	if m, err := f.c.Model(f.b.Digest); err != nil {
		t.Errorf("model b after verify: %v", err)
	} else if got, _ := os.ReadFile(m.MainFilePath()); !bytes.Equal(got, f.weightsB) {
		t.Error("model b's weights changed")
	}
	if !f.c.HasBlob(digest.FromBytes(f.tok), int64(len(f.tok))) {
		t.Error("the shared tokenizer blob went with model a")
	}

	// The next verify is clean, and the model can be pulled again.
	if rep, err := f.c.Verify(ctx); err != nil || !rep.Clean() || rep.Blobs != 2 {
		t.Errorf("second verify: %+v, %v; want 2 clean blobs", rep, err)
	}
	if err := f.c.WriteBlob(ctx, bad, int64(len(f.weightsA)), bytes.NewReader(f.weightsA)); err != nil {
		t.Fatal(err)
	}
	m, err := f.c.Commit(ctx, f.a.Digest, "r/a:1", []Entry{
		{Path: "model.gguf", Digest: bad, Size: int64(len(f.weightsA))},
		{Path: "tokenizer.json", Digest: digest.FromBytes(f.tok), Size: int64(len(f.tok))},
	}, "model.gguf")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(m.MainFilePath()); !bytes.Equal(got, f.weightsA) {
		t.Error("re-committed model a has the wrong weights")
	}
}

func TestVerifyKeepsDirectoryOfModelInUse(t *testing.T) {
	f := newVerifyFixture(t)
	// Another process sharing the directory runs model a.
	other, err := Open(f.c.Root(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	release, err := other.PinModel(f.a.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	// And this process holds model b.
	releaseB, err := f.c.PinModel(f.b.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer releaseB()
	flipByte(t, f.c, f.weightsA, 0)
	flipByte(t, f.c, f.weightsB, 0)

	rep, err := f.c.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Corrupt) != 2 || len(rep.ModelsRemoved) != 0 {
		t.Fatalf("report %+v, want two corrupt blobs and no model removed", rep)
	}
	want := []digest.Digest{f.a.Digest, f.b.Digest}
	slices.Sort(want)
	if !slices.Equal(rep.ModelsInUse, want) {
		t.Errorf("models in use %v, want %v", rep.ModelsInUse, want)
	}
	for _, m := range []*Model{f.a, f.b} {
		// The runtime's files stay; the record goes, so nothing starts it again.
		if _, err := os.Stat(m.MainFilePath()); err != nil {
			t.Errorf("%s: the directory of a model in use was touched: %v", m.Digest, err)
		}
		if _, err := f.c.Model(m.Digest); !errors.Is(err, ErrModelNotFound) {
			t.Errorf("%s: Model = %v, want ErrModelNotFound", m.Digest, err)
		}
	}
}

func TestVerifyRemovesModelsWithMissingBlobs(t *testing.T) {
	f := newVerifyFixture(t)
	gone := digest.FromBytes(f.weightsB)
	if err := os.Remove(f.c.BlobPath(gone)); err != nil {
		t.Fatal(err)
	}
	rep, err := f.c.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Clean() || len(rep.Corrupt) != 0 || !slices.Equal(rep.Missing, []digest.Digest{gone}) {
		t.Errorf("report %+v, want %s missing", rep, gone)
	}
	if !slices.Equal(rep.ModelsRemoved, []digest.Digest{f.b.Digest}) {
		t.Errorf("models removed %v, want %s", rep.ModelsRemoved, f.b.Digest)
	}
	if _, err := f.c.Model(f.a.Digest); err != nil {
		t.Errorf("model a: %v", err)
	}
}

func TestVerifyQuarantinesUnreadableBlob(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root reads a file of mode 0")
	}
	f := newVerifyFixture(t)
	d := digest.FromBytes(f.tok)
	if err := os.Chmod(f.c.BlobPath(d), 0); err != nil {
		t.Fatal(err)
	}
	rep, err := f.c.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Corrupt) != 1 || rep.Corrupt[0].Digest != d || rep.Corrupt[0].Error == "" || rep.Corrupt[0].Actual != "" {
		t.Fatalf("report %+v, want %s unreadable", rep, d)
	}
	// Both models list the tokenizer.
	if len(rep.ModelsRemoved) != 2 {
		t.Errorf("models removed %v, want both", rep.ModelsRemoved)
	}
}

func TestVerifyWaitsForTheGCLock(t *testing.T) {
	f := newVerifyFixture(t)
	// An eviction in another process holds the gc lock.
	gc, err := lock(context.Background(), f.c.gcLockPath(), true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := f.c.Verify(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Verify while the gc lock is held = %v, want to wait until the deadline", err)
	}
	gc.unlock()

	// And Verify holds it: an eviction waits for it.
	done := make(chan struct{})
	flipByte(t, f.c, f.weightsA, 0)
	go func() {
		defer close(done)
		if _, err := f.c.Verify(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	// Whether Remove ran before or after Verify, model b is removed and
	// model a is gone; they never interleave (-race and the gc lock).
	if _, err := f.c.Remove(context.Background(), f.b.Digest); err != nil {
		t.Errorf("Remove beside Verify: %v", err)
	}
	<-done
	if _, err := f.c.Model(f.a.Digest); !errors.Is(err, ErrModelNotFound) {
		t.Errorf("model a: %v", err)
	}
}

func TestVerifyStopsWhenContextEnds(t *testing.T) {
	f := newVerifyFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.c.Verify(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Verify = %v, want context.Canceled", err)
	}
	if _, err := f.c.Model(f.a.Digest); err != nil {
		t.Errorf("a cancelled verify removed model a: %v", err)
	}
}
