package cache

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// ingestBufSize is the copy buffer of an ingest: large enough that a fast
// link is not limited by syscalls, small enough to not matter per download.
const ingestBufSize = 256 << 10

// errIngestBroken refuses to go on with an ingest whose file may no longer
// match what was hashed (a write to it failed).
var errIngestBroken = errors.New("ingest file in an unknown state after a failed write")

// BlobWriter is a resumable download of one blob into
// ingest/<hex>.partial. The bytes already in the partial file, from this
// process or an earlier one, are kept: Offset says where the download goes on
// (the start of an HTTP Range), Append adds bytes from there, Reset starts
// over, and Commit verifies the size and the SHA-256 of the whole blob (the
// kept bytes are re-read and hashed from disk, never trusted) before making
// it visible under blobs/.
//
// A partial file left by a ranged download (RangeWriter; a record of parts
// beside it) is not a prefix: OpenBlobWriter empties it and drops the record.
//
// A BlobWriter is not safe for concurrent use, and two writers of one digest
// must not exist at the same time (the fetcher deduplicates by digest). The
// caller must Close it; the partial file stays for a later resume unless it
// was committed or deleted.
type BlobWriter struct {
	ingestFile
	size   int64
	off    int64     // bytes in the file, all of them hashed when hashed is true
	h      hash.Hash // hash of f[0:off] when hashed
	hashed bool
	broken bool
}

// OpenBlobWriter opens the ingest file for blob d of the given size without
// truncating it. A partial file longer than size cannot be a prefix of the
// blob and is emptied. Callers check HasBlob first: a writer for a blob
// already present still works but downloads it again.
func (c *Cache) OpenBlobWriter(d digest.Digest, size int64) (*BlobWriter, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("open ingest %s: %w", d, err)
	}
	if size < 0 {
		return nil, fmt.Errorf("open ingest %s: negative size %d", d, size)
	}
	path := c.partialPath(d)
	f, err := openPartial(path)
	if err != nil {
		return nil, fmt.Errorf("open ingest %s: %w", d, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open ingest %s: %w", d, err)
	}
	w := &BlobWriter{ingestFile: ingestFile{c: c, d: d, path: path, f: f}, size: size, off: fi.Size(), h: d.Algorithm().Hash()}
	// A record of parts beside the file means a ranged download (see
	// RangeWriter) left it: pre-sized, with holes, not a prefix.
	ranged := false
	switch err := os.Remove(c.rangesPath(d)); {
	case err == nil:
		ranged = true
	case !errors.Is(err, fs.ErrNotExist):
		f.Close()
		return nil, fmt.Errorf("open ingest %s: %w", d, err)
	}
	if w.off > size || ranged {
		if err := w.Reset(); err != nil {
			f.Close()
			return nil, err
		}
	}
	return w, nil
}

// Offset is the number of bytes in the partial file: the next Append must
// supply the blob's bytes from this offset on.
func (w *BlobWriter) Offset() int64 { return w.off }

// Size is the blob's size.
func (w *BlobWriter) Size() int64 { return w.size }

// Reset empties the partial file, for a server that answered the whole blob
// or refused the range.
func (w *BlobWriter) Reset() error {
	if err := w.f.Truncate(0); err != nil {
		w.broken = true
		return fmt.Errorf("reset ingest %s: %w", w.d, err)
	}
	w.off = 0
	w.h.Reset()
	w.hashed = true
	w.broken = false
	return nil
}

// Append copies the blob's bytes from Offset on from r to the end of the
// partial file and returns how many it wrote. It reads at most one byte past
// the blob's end, so that an over-long body is caught by Commit. Before the
// first append of a writer, the bytes already in the file are hashed from
// disk. On an error of r (a broken connection) the bytes written so far stay
// and Offset includes them: the caller may resume. ctx stops a long copy. The
// caller closes r.
func (w *BlobWriter) Append(ctx context.Context, r io.Reader) (int64, error) {
	if w.broken {
		return 0, fmt.Errorf("append to ingest %s: %w", w.d, errIngestBroken)
	}
	if err := w.hashPrefix(ctx); err != nil {
		return 0, err
	}
	if _, err := w.f.Seek(w.off, io.SeekStart); err != nil {
		w.broken = true
		return 0, fmt.Errorf("append to ingest %s: %w", w.d, err)
	}
	lr := io.LimitReader(contextReader{ctx, r}, w.size-w.off+1)
	buf := make([]byte, ingestBufSize)
	var written, flushed int64
	from := w.off
	defer func() { w.startWriteback(from+flushed, written-flushed) }()
	for {
		if written-flushed >= writebackChunk {
			w.startWriteback(from+flushed, written-flushed)
			flushed = written
		}
		nr, rerr := lr.Read(buf)
		if nr > 0 {
			nw, werr := w.f.Write(buf[:nr])
			// The hash follows exactly what reached the file.
			w.h.Write(buf[:nw])
			w.off += int64(nw)
			written += int64(nw)
			if werr != nil {
				w.broken = true
				return written, fmt.Errorf("append to ingest %s: %w", w.d, werr)
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, fmt.Errorf("append to ingest %s: %w", w.d, rerr)
		}
	}
}

// hashPrefix hashes the bytes already in the file once per writer. The hash
// state is never stored on disk: bytes left by an earlier process are only
// trusted once the digest of the whole blob matches.
func (w *BlobWriter) hashPrefix(ctx context.Context) error {
	if w.hashed {
		return nil
	}
	w.h.Reset()
	n, err := io.CopyBuffer(w.h, contextReader{ctx, io.NewSectionReader(w.f, 0, w.off)}, make([]byte, ingestBufSize))
	if err != nil {
		return fmt.Errorf("hash ingest %s: %w", w.d, err)
	}
	if n != w.off {
		return fmt.Errorf("hash ingest %s: read %d of %d bytes: %w", w.d, n, w.off, io.ErrUnexpectedEOF)
	}
	w.hashed = true
	return nil
}

// Commit verifies the partial file against the blob's size and digest and,
// when both match, syncs it, makes it read-only and renames it into blobs/.
// On a mismatch it deletes the partial file and returns an error wrapping
// ErrDigestMismatch. A blob already present is success.
func (w *BlobWriter) Commit(ctx context.Context) error {
	if w.broken {
		return fmt.Errorf("commit blob %s: %w", w.d, errIngestBroken)
	}
	if w.off != w.size {
		w.remove()
		return fmt.Errorf("commit blob %s: got %d bytes, descriptor says %d: %w", w.d, w.off, w.size, ErrDigestMismatch)
	}
	if err := w.hashPrefix(ctx); err != nil {
		return err
	}
	if got := digest.NewDigest(w.d.Algorithm(), w.h); got != w.d {
		w.remove()
		return fmt.Errorf("commit blob %s: content hashes to %s: %w", w.d, got, ErrDigestMismatch)
	}
	if err := w.c.syncBlob(w.f); err != nil {
		return fmt.Errorf("commit blob %s: %w", w.d, err)
	}
	if err := w.close(); err != nil {
		return fmt.Errorf("commit blob %s: %w", w.d, err)
	}
	return w.c.publish(w.d, w.size, w.path)
}

// publish makes the verified, synced and closed ingest file at path visible
// as blob d: read-only, renamed into blobs/. A blob already present is
// success, and the ingest file is removed.
func (c *Cache) publish(d digest.Digest, size int64, path string) error {
	if c.HasBlob(d, size) {
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("commit blob %s: %w", d, err)
		}
		return nil
	}
	if err := os.Chmod(path, 0o444); err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	dst := c.BlobPath(d)
	crashpoint("publish-before-rename")
	if err := os.Rename(path, dst); err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	if err := syncDir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("commit blob %s: %w", d, err)
	}
	return nil
}

// Delete closes the writer and removes the partial file (and a record of
// ranged parts, should one have appeared beside it).
func (w *BlobWriter) Delete() error {
	w.remove()
	for _, p := range []string{w.path, w.c.rangesPath(w.d)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete ingest %s: %w", w.d, err)
		}
	}
	return nil
}

// ingestFile is the open partial file of one blob, shared by the two
// writers.
type ingestFile struct {
	c    *Cache
	d    digest.Digest
	path string
	f    *os.File
}

// Close releases the file. The partial file (and a ranged download's
// record) stays for a later resume. Close after Commit or Delete is a no-op.
func (w *ingestFile) Close() error {
	if err := w.close(); err != nil {
		return fmt.Errorf("close ingest %s: %w", w.d, err)
	}
	return nil
}

func (w *ingestFile) close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	return err
}

// remove closes the file and deletes it, ignoring errors: it runs on paths
// that already return one.
func (w *BlobWriter) remove() {
	_ = w.close()
	_ = os.Remove(w.path)
	w.broken = true
}

// WriteBlob streams r into the cache as the blob d of the given size, from
// the first byte (any partial file is discarded). It hashes while writing and
// makes the blob visible only when the size and the digest match; otherwise
// it deletes what it wrote and returns an error wrapping ErrDigestMismatch. A
// blob already present is success. Nothing proportional to the blob's size is
// held in memory. The caller closes r. Use OpenBlobWriter to resume.
func (c *Cache) WriteBlob(ctx context.Context, d digest.Digest, size int64, r io.Reader) (err error) {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("write blob %s: %w", d, err)
	}
	if c.HasBlob(d, size) {
		return nil
	}
	w, err := c.OpenBlobWriter(d, size)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = w.Delete()
		}
		_ = w.Close()
	}()
	if err := w.Reset(); err != nil {
		return err
	}
	if _, err := w.Append(ctx, r); err != nil {
		return err
	}
	return w.Commit(ctx)
}

func (c *Cache) partialPath(d digest.Digest) string {
	return filepath.Join(c.root, "ingest", d.Encoded()+".partial")
}

// rangesPath is the record of the parts done of a ranged download, beside
// its partial file (see RangeWriter).
func (c *Cache) rangesPath(d digest.Digest) string {
	return filepath.Join(c.root, "ingest", d.Encoded()+".ranges")
}

// openPartial opens (creating it) the partial file of a download for
// writing. A partial file left read-only (publish makes it read-only just
// before the rename into blobs/, and a crash can fall in between) is made
// writable again: the caller holds the blob's ingest lock, and nothing in
// it is trusted before it is hashed.
func openPartial(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if errors.Is(err, fs.ErrPermission) {
		if cerr := os.Chmod(path, 0o644); cerr == nil {
			f, err = os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
		}
	}
	return f, err
}
