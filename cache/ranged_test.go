package cache_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/cache"
)

func rangesPath(c *cache.Cache, d digest.Digest) string {
	return filepath.Join(c.Root(), "ingest", d.Encoded()+".ranges")
}

func openRanged(t *testing.T, c *cache.Cache, d digest.Digest, size, partSize int) *cache.RangeWriter {
	t.Helper()
	w, err := c.OpenRangeWriter(d, int64(size), int64(partSize))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

// writePart copies part i of data into w and marks it done.
func writePart(t *testing.T, w *cache.RangeWriter, data []byte, i int) {
	t.Helper()
	start, end := w.Part(i)
	if n, err := w.CopyAt(t.Context(), start, end, bytes.NewReader(data[start:end])); err != nil || n != end-start {
		t.Fatalf("part %d: wrote %d: %v", i, n, err)
	}
	if err := w.MarkDone(i); err != nil {
		t.Fatal(err)
	}
}

func wantMissing(t *testing.T, w *cache.RangeWriter, want ...int) {
	t.Helper()
	if got := w.Missing(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("missing parts %v, want %v", got, want)
	}
}

func TestRangeWriterPartsInAnyOrder(t *testing.T) {
	c := openCache(t)
	data := blob(10_000)
	d := digest.FromBytes(data)
	w := openRanged(t, c, d, len(data), 3000)
	if w.Parts() != 4 {
		t.Fatalf("%d parts, want 4", w.Parts())
	}
	if s, e := w.Part(3); s != 9000 || e != 10_000 {
		t.Errorf("last part [%d, %d), want [9000, 10000)", s, e)
	}
	if fi, err := os.Stat(partialPath(c, d)); err != nil || fi.Size() != int64(len(data)) {
		t.Fatalf("partial not pre-sized: %v", err)
	}
	var wg sync.WaitGroup
	for _, i := range []int{3, 1, 0, 2} {
		wg.Go(func() { writePart(t, w, data, i) })
	}
	wg.Wait()
	wantMissing(t, w)
	if err := w.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(c.BlobPath(d))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blob: %v, equal %v", err, bytes.Equal(got, data))
	}
	for _, p := range []string{partialPath(c, d), rangesPath(c, d)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after commit: %v", filepath.Base(p), err)
		}
	}
}

func TestRangeWriterResumesFromRecord(t *testing.T) {
	c := openCache(t)
	data := blob(10_000)
	d := digest.FromBytes(data)
	w := openRanged(t, c, d, len(data), 3000)
	writePart(t, w, data, 1)
	writePart(t, w, data, 3)
	// Part 0 got half its bytes, not marked done: a later writer fetches it
	// whole.
	if _, err := w.CopyAt(t.Context(), 0, 3000, cutReader(data, 1500)); !errors.Is(err, errCut) {
		t.Fatalf("cut part: %v, want errCut", err)
	}
	if err := w.Commit(t.Context()); err == nil {
		t.Fatal("commit with parts missing succeeded")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	w2 := openRanged(t, c, d, len(data), 3000)
	wantMissing(t, w2, 0, 2)
	writePart(t, w2, data, 0)
	writePart(t, w2, data, 2)
	if err := w2.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !c.HasBlob(d, int64(len(data))) {
		t.Error("blob not present")
	}
}

func TestRangeWriterDiscardsForeignRecord(t *testing.T) {
	data := blob(10_000)
	d := digest.FromBytes(data)
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, c *cache.Cache)
	}{
		{"other part size", func(t *testing.T, c *cache.Cache) {
			w := openRanged(t, c, d, len(data), 2000)
			writePart(t, w, data, 0)
			_ = w.Close()
		}},
		{"garbage record", func(t *testing.T, c *cache.Cache) {
			w := openRanged(t, c, d, len(data), 3000)
			writePart(t, w, data, 0)
			_ = w.Close()
			if err := os.WriteFile(rangesPath(c, d), []byte("{not json"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"partial of another length", func(t *testing.T, c *cache.Cache) {
			w := openRanged(t, c, d, len(data), 3000)
			writePart(t, w, data, 0)
			_ = w.Close()
			if err := os.Truncate(partialPath(c, d), 5000); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := openCache(t)
			tc.spoil(t, c)
			w := openRanged(t, c, d, len(data), 3000)
			wantMissing(t, w, 0, 1, 2, 3)
		})
	}
}

func TestRangeWriterTakesSingleStreamPrefix(t *testing.T) {
	c := openCache(t)
	data := blob(10_000)
	d := digest.FromBytes(data)
	if err := os.WriteFile(partialPath(c, d), data[:6500], 0o644); err != nil {
		t.Fatal(err)
	}
	w := openRanged(t, c, d, len(data), 3000)
	wantMissing(t, w, 2, 3)
	writePart(t, w, data, 2)
	writePart(t, w, data, 3)
	if err := w.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestRangeWriterCommitMismatchDeletesBoth(t *testing.T) {
	c := openCache(t)
	data := blob(10_000)
	d := digest.FromBytes(data)
	w := openRanged(t, c, d, len(data), 3000)
	bad := bytes.Clone(data)
	bad[4321] ^= 1
	for i := range w.Parts() {
		writePart(t, w, bad, i)
	}
	if err := w.Commit(t.Context()); !errors.Is(err, cache.ErrDigestMismatch) {
		t.Fatalf("commit of corrupt parts: %v, want ErrDigestMismatch", err)
	}
	for _, p := range []string{partialPath(c, d), rangesPath(c, d)} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left after a mismatch: %v", filepath.Base(p), err)
		}
	}
	if c.HasBlob(d, int64(len(data))) {
		t.Error("corrupt blob became visible")
	}
}

func TestRangeWriterCopyAtBounds(t *testing.T) {
	c := openCache(t)
	data := blob(10_000)
	d := digest.FromBytes(data)
	w := openRanged(t, c, d, len(data), 3000)
	// A body longer than its range writes only the range and leaves the
	// rest unread, for the next part.
	body := bytes.NewReader(data[3000:7000])
	n, err := w.CopyAt(t.Context(), 3000, 6000, body)
	if err != nil || n != 3000 || body.Len() != 1000 {
		t.Errorf("longer body: wrote %d, %v, left %d unread; want 3000, nil, 1000", n, err, body.Len())
	}
	// A body that ends early is an unexpected EOF.
	n, err = w.CopyAt(t.Context(), 6000, 9000, bytes.NewReader(data[6000:8000]))
	if !errors.Is(err, io.ErrUnexpectedEOF) || n != 2000 {
		t.Errorf("short body: wrote %d, %v; want 2000 and io.ErrUnexpectedEOF", n, err)
	}
	if _, err := w.CopyAt(t.Context(), 9000, 10_001, bytes.NewReader(nil)); err == nil {
		t.Error("range past the blob's end accepted")
	}
}

func TestBlobWriterDropsRangedPartial(t *testing.T) {
	c := openCache(t)
	data := blob(10_000)
	d := digest.FromBytes(data)
	w := openRanged(t, c, d, len(data), 3000)
	writePart(t, w, data, 2)
	_ = w.Close()

	bw := openWriter(t, c, d, len(data))
	if bw.Offset() != 0 {
		t.Errorf("single-stream writer resumes at %d from a ranged partial, want 0", bw.Offset())
	}
	if _, err := os.Stat(rangesPath(c, d)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("record kept: %v", err)
	}
}

// Parts written at once from many goroutines, in no order, are hashed as
// the written prefix grows; Commit verifies the whole blob.
func TestRangeWriterConcurrentParts(t *testing.T) {
	c := openCache(t)
	data := blob(1 << 20)
	d := digest.FromBytes(data)
	w := openRanged(t, c, d, len(data), 64<<10)
	var wg sync.WaitGroup
	for i := w.Parts() - 1; i >= 0; i-- {
		wg.Go(func() { writePart(t, w, data, i) })
	}
	wg.Wait()
	if err := w.Commit(t.Context()); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(c.BlobPath(d))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("blob after concurrent parts: %d bytes, %v", len(got), err)
	}
}

// A byte changed on disk in a part recorded as done by an earlier writer is
// caught: bytes left by another writer are hashed from the file.
func TestRangeWriterVerifiesRecordedParts(t *testing.T) {
	c := openCache(t)
	data := blob(10_000)
	d := digest.FromBytes(data)
	w := openRanged(t, c, d, len(data), 3000)
	writePart(t, w, data, 0)
	_ = w.Close()
	f, err := os.OpenFile(filepath.Join(c.Root(), "ingest", d.Encoded()+".partial"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{^data[10]}, 10); err != nil {
		t.Fatal(err)
	}
	_ = f.Close()

	w = openRanged(t, c, d, len(data), 3000)
	wantMissing(t, w, 1, 2, 3)
	for i := 1; i < w.Parts(); i++ {
		writePart(t, w, data, i)
	}
	if err := w.Commit(t.Context()); !errors.Is(err, cache.ErrDigestMismatch) {
		t.Fatalf("commit over a corrupt recorded part: %v, want ErrDigestMismatch", err)
	}
	if c.HasBlob(d, int64(len(data))) {
		t.Error("corrupt blob became visible")
	}
}
