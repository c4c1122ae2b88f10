package cache_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/cache"
)

var errCut = errors.New("connection cut")

// cutReader returns data[:n] and then errCut, as a broken download does.
func cutReader(data []byte, n int) io.Reader {
	return io.MultiReader(bytes.NewReader(data[:n]), iotest.ErrReader(errCut))
}

func partialPath(c *cache.Cache, d digest.Digest) string {
	return filepath.Join(c.Root(), "ingest", d.Encoded()+".partial")
}

func openCache(t *testing.T) *cache.Cache {
	t.Helper()
	c, err := cache.Open(t.TempDir(), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func openWriter(t *testing.T, c *cache.Cache, d digest.Digest, size int) *cache.BlobWriter {
	t.Helper()
	w, err := c.OpenBlobWriter(d, int64(size))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Close() })
	return w
}

func blob(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestBlobWriterResumesAcrossWriters(t *testing.T) {
	c := openCache(t)
	ctx := context.Background()
	data := blob(1 << 20)
	d := digest.FromBytes(data)

	w := openWriter(t, c, d, len(data))
	n, err := w.Append(ctx, cutReader(data, 300000))
	if !errors.Is(err, errCut) || n != 300000 || w.Offset() != 300000 {
		t.Fatalf("cut append: n %d, offset %d, err %v", n, w.Offset(), err)
	}
	// Resuming in the same writer.
	n, err = w.Append(ctx, cutReader(data[300000:], 100000))
	if !errors.Is(err, errCut) || n != 100000 || w.Offset() != 400000 {
		t.Fatalf("second cut append: n %d, offset %d, err %v", n, w.Offset(), err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	// A later run finds the bytes on disk.
	w = openWriter(t, c, d, len(data))
	if w.Offset() != 400000 {
		t.Fatalf("reopened offset %d, want 400000", w.Offset())
	}
	if n, err := w.Append(ctx, bytes.NewReader(data[400000:])); err != nil || n != int64(len(data)-400000) {
		t.Fatalf("append the rest: %d, %v", n, err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if !c.HasBlob(d, int64(len(data))) {
		t.Fatal("blob not visible after Commit")
	}
	if _, err := os.Stat(partialPath(c, d)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial file left after Commit: %v", err)
	}
	if got, _ := os.ReadFile(c.BlobPath(d)); !bytes.Equal(got, data) {
		t.Error("blob bytes differ")
	}
}

func TestBlobWriterVerifiesBytesLeftOnDisk(t *testing.T) {
	c := openCache(t)
	ctx := context.Background()
	data := blob(100000)
	d := digest.FromBytes(data)
	corrupt := bytes.Clone(data[:40000])
	corrupt[123] ^= 0xFF
	if err := os.WriteFile(partialPath(c, d), corrupt, 0o644); err != nil {
		t.Fatal(err)
	}

	w := openWriter(t, c, d, len(data))
	if w.Offset() != 40000 {
		t.Fatalf("offset %d, want the partial's 40000", w.Offset())
	}
	if _, err := w.Append(ctx, bytes.NewReader(data[40000:])); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); !errors.Is(err, cache.ErrDigestMismatch) {
		t.Fatalf("Commit = %v, want ErrDigestMismatch", err)
	}
	if c.HasBlob(d, int64(len(data))) {
		t.Error("corrupt blob became visible")
	}
	if _, err := os.Stat(partialPath(c, d)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial file kept after a mismatch: %v", err)
	}
}

func TestBlobWriterStartsOverOnTooLongPartial(t *testing.T) {
	c := openCache(t)
	data := blob(1000)
	d := digest.FromBytes(data)
	if err := os.WriteFile(partialPath(c, d), blob(2000), 0o644); err != nil {
		t.Fatal(err)
	}
	w := openWriter(t, c, d, len(data))
	if w.Offset() != 0 {
		t.Fatalf("offset %d, want 0 for a partial longer than the blob", w.Offset())
	}
	if _, err := w.Append(context.Background(), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestBlobWriterReset(t *testing.T) {
	c := openCache(t)
	ctx := context.Background()
	data := blob(5000)
	d := digest.FromBytes(data)
	w := openWriter(t, c, d, len(data))
	if _, err := w.Append(ctx, cutReader(data, 1000)); !errors.Is(err, errCut) {
		t.Fatal(err)
	}
	// The server answered 200 with the whole blob: start over.
	if err := w.Reset(); err != nil {
		t.Fatal(err)
	}
	if w.Offset() != 0 {
		t.Fatalf("offset after Reset %d", w.Offset())
	}
	if _, err := w.Append(ctx, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(c.BlobPath(d)); !bytes.Equal(got, data) {
		t.Error("blob bytes differ")
	}
}

func TestBlobWriterCommitsCompletePartial(t *testing.T) {
	// A crash between the last write and the rename leaves the whole blob
	// in ingest/: it is verified from disk and committed without a byte
	// downloaded.
	c := openCache(t)
	data := blob(3000)
	d := digest.FromBytes(data)
	if err := os.WriteFile(partialPath(c, d), data, 0o644); err != nil {
		t.Fatal(err)
	}
	w := openWriter(t, c, d, len(data))
	if w.Offset() != int64(len(data)) {
		t.Fatalf("offset %d", w.Offset())
	}
	if err := w.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !c.HasBlob(d, int64(len(data))) {
		t.Error("blob not visible")
	}
}

func TestBlobWriterRefusesOverlongBody(t *testing.T) {
	c := openCache(t)
	data := blob(3000)
	d := digest.FromBytes(data)
	w := openWriter(t, c, d, len(data))
	if _, err := w.Append(context.Background(), bytes.NewReader(append(bytes.Clone(data), 'x', 'y'))); err != nil {
		t.Fatal(err)
	}
	if w.Offset() != int64(len(data))+1 {
		t.Errorf("read %d bytes, want one past the size", w.Offset())
	}
	if err := w.Commit(context.Background()); !errors.Is(err, cache.ErrDigestMismatch) {
		t.Fatalf("Commit = %v, want ErrDigestMismatch", err)
	}
	if _, err := os.Stat(partialPath(c, d)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial kept: %v", err)
	}
}

func TestBlobWriterDelete(t *testing.T) {
	c := openCache(t)
	data := blob(10)
	d := digest.FromBytes(data)
	w := openWriter(t, c, d, len(data))
	if _, err := w.Append(context.Background(), cutReader(data, 5)); !errors.Is(err, errCut) {
		t.Fatal(err)
	}
	if err := w.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(partialPath(c, d)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial kept after Delete: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Errorf("Close after Delete: %v", err)
	}
}

func TestWriteBlobDiscardsPartial(t *testing.T) {
	c := openCache(t)
	data := blob(4000)
	d := digest.FromBytes(data)
	if err := os.WriteFile(partialPath(c, d), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteBlob(context.Background(), d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(c.BlobPath(d)); !bytes.Equal(got, data) {
		t.Error("blob bytes differ")
	}
}
