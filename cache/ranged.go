package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"github.com/opencontainers/go-digest"
)

// rangesFormat is the version of the sidecar file; a sidecar of another
// version is discarded.
const rangesFormat = 1

// rangesRecord is the content of ingest/<hex>.ranges: which parts of the
// partial file hold their bytes. It describes the blob it belongs to, so
// that a sidecar of another size or part size is recognised and discarded.
type rangesRecord struct {
	Format   int           `json:"format"`
	Digest   digest.Digest `json:"digest"`
	Size     int64         `json:"size"`
	PartSize int64         `json:"part_size"`
	Done     []int         `json:"done"`
}

// RangeWriter is a download of one blob in parts of a fixed size, written
// in any order and concurrently into ingest/<hex>.partial, which is
// pre-sized to the blob's size. The parts done are recorded in
// ingest/<hex>.ranges beside it (rewritten atomically after each part), so a
// later attempt, or a later process, fetches only the missing parts. The
// record is a hint, not a proof: Commit hashes the whole file from disk and
// makes it visible under blobs/ only when its digest matches.
//
// WriteAt (through CopyAt) and MarkDone are safe for concurrent use, on
// distinct byte ranges; Commit, Delete and Close are not, and must follow
// the writes. Two writers of one digest must not exist at the same time (the
// fetcher deduplicates by digest). The caller must Close the writer; the
// partial file and the record stay for a later resume unless it was
// committed or deleted.
type RangeWriter struct {
	ingestFile // the partial file
	size       int64
	partSize   int64
	rpath      string // the sidecar record

	mu   sync.Mutex
	done []bool

	hash *prefixHasher // hashes the written prefix while parts arrive
}

// OpenRangeWriter opens the ingest of blob d of the given size, split in
// parts of partSize bytes (the last one shorter). The parts recorded as
// done by an earlier writer with the same size and part size are kept; a
// record that does not match, or a partial file of the wrong length, is
// discarded and the download starts over. A partial file without a record is
// the prefix left by a single-stream download: the parts it covers entirely
// count as done.
func (c *Cache) OpenRangeWriter(d digest.Digest, size, partSize int64) (*RangeWriter, error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("open ingest %s: %w", d, err)
	}
	if size <= 0 || partSize <= 0 {
		return nil, fmt.Errorf("open ingest %s: size %d in parts of %d: invalid", d, size, partSize)
	}
	w := &RangeWriter{ingestFile: ingestFile{c: c, d: d, path: c.partialPath(d)}, size: size, partSize: partSize, rpath: c.rangesPath(d)}
	w.done = make([]bool, w.Parts())
	f, err := openPartial(w.path)
	if err != nil {
		return nil, fmt.Errorf("open ingest %s: %w", d, err)
	}
	w.f = f
	if err := w.load(); err != nil {
		_ = w.close()
		return nil, err
	}
	w.hash = newPrefixHasher(f, size, partSize, d.Algorithm().Hash(), w.Parts())
	for i, ok := range w.done {
		if ok {
			w.hash.complete(i)
		}
	}
	return w, nil
}

// load restores the parts done from the record or the partial file's prefix
// and brings the partial file to the blob's size, recording the state first:
// a pre-sized file always has a record beside it.
func (w *RangeWriter) load() error {
	fi, err := w.f.Stat()
	if err != nil {
		return fmt.Errorf("open ingest %s: %w", w.d, err)
	}
	data, err := os.ReadFile(w.rpath)
	switch {
	case err == nil:
		var rec rangesRecord
		if json.Unmarshal(data, &rec) == nil && rec.Format == rangesFormat && rec.Digest == w.d &&
			rec.Size == w.size && rec.PartSize == w.partSize && fi.Size() == w.size {
			for _, i := range rec.Done {
				if i >= 0 && i < len(w.done) {
					w.done[i] = true
				}
			}
			return nil
		}
		// Another size, part size or format: nothing in the file can be
		// placed. Start over.
		if err := w.f.Truncate(0); err != nil {
			return fmt.Errorf("open ingest %s: %w", w.d, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		if n := fi.Size(); n <= w.size {
			for i := range w.done {
				_, end := w.Part(i)
				w.done[i] = end <= n
			}
		} else if err := w.f.Truncate(0); err != nil {
			return fmt.Errorf("open ingest %s: %w", w.d, err)
		}
	default:
		return fmt.Errorf("open ingest %s: %w", w.d, err)
	}
	w.mu.Lock()
	err = w.saveLocked()
	w.mu.Unlock()
	if err != nil {
		return err
	}
	if err := w.f.Truncate(w.size); err != nil {
		return fmt.Errorf("open ingest %s: %w", w.d, err)
	}
	return nil
}

// Size is the blob's size.
func (w *RangeWriter) Size() int64 { return w.size }

// Parts is the number of parts.
func (w *RangeWriter) Parts() int { return int((w.size + w.partSize - 1) / w.partSize) }

// Part returns the byte range [start, end) of part i.
func (w *RangeWriter) Part(i int) (start, end int64) {
	start = int64(i) * w.partSize
	return start, min(start+w.partSize, w.size)
}

// PartOf returns the part that holds byte off.
func (w *RangeWriter) PartOf(off int64) int { return int(off / w.partSize) }

// Missing returns the parts not done, in order.
func (w *RangeWriter) Missing() []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int
	for i, ok := range w.done {
		if !ok {
			out = append(out, i)
		}
	}
	return out
}

// CopyAt copies the blob's bytes [off, end) from r into the partial file and
// returns how many it wrote. It reads exactly end-off bytes from r, so that
// the rest of r can go on into the next part; a body that ends early fails
// with io.ErrUnexpectedEOF, and the bytes written stay where they belong:
// the caller may go on from off plus the count. ctx stops a long copy. The
// caller closes r.
func (w *RangeWriter) CopyAt(ctx context.Context, off, end int64, r io.Reader) (int64, error) {
	if off < 0 || end > w.size || off > end {
		return 0, fmt.Errorf("write ingest %s: range [%d, %d) outside the blob's %d bytes", w.d, off, end, w.size)
	}
	buf := make([]byte, min(ingestBufSize, end-off))
	var written, flushed int64
	defer func() { w.startWriteback(off+flushed, written-flushed) }()
	for written < end-off {
		if written-flushed >= writebackChunk {
			w.startWriteback(off+flushed, written-flushed)
			flushed = written
		}
		if err := ctx.Err(); err != nil {
			return written, fmt.Errorf("write ingest %s: %w", w.d, context.Cause(ctx))
		}
		nr, rerr := r.Read(buf[:min(int64(len(buf)), end-off-written)])
		if nr > 0 {
			nw, werr := w.f.WriteAt(buf[:nr], off+written)
			w.noteWritten(off+written, buf[:nw])
			written += int64(nw)
			if werr != nil {
				return written, fmt.Errorf("write ingest %s: %w", w.d, werr)
			}
		}
		switch {
		case rerr == nil:
		case errors.Is(rerr, io.EOF):
			if written < end-off {
				return written, fmt.Errorf("write ingest %s: body ended at byte %d of the range [%d, %d): %w", w.d, off+written, off, end, io.ErrUnexpectedEOF)
			}
		default:
			return written, fmt.Errorf("write ingest %s: %w", w.d, rerr)
		}
	}
	return written, nil
}

// noteWritten tells the hasher that data was written at from.
func (w *RangeWriter) noteWritten(from int64, data []byte) {
	to := from + int64(len(data))
	for i := int(from / w.partSize); i < w.Parts() && int64(i)*w.partSize < to; i++ {
		start, end := w.Part(i)
		s, e := max(from, start), min(to, end)
		w.hash.written(i, s-start, e-s, data[s-from:e-from])
	}
}

// MarkDone records part i as done, in memory and in the sidecar record,
// which is replaced atomically (write and rename). It does not sync:
// a record lost or stale after a crash costs a refetch or a failed digest,
// never a wrong blob.
func (w *RangeWriter) MarkDone(i int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if i < 0 || i >= len(w.done) {
		return fmt.Errorf("record ingest %s: part %d of %d", w.d, i, len(w.done))
	}
	w.done[i] = true
	return w.saveLocked()
}

func (w *RangeWriter) saveLocked() error {
	rec := rangesRecord{Format: rangesFormat, Digest: w.d, Size: w.size, PartSize: w.partSize, Done: []int{}}
	for i, ok := range w.done {
		if ok {
			rec.Done = append(rec.Done, i)
		}
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("record ingest %s: %w", w.d, err)
	}
	tmp := w.rpath + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("record ingest %s: %w", w.d, err)
	}
	if err := os.Rename(tmp, w.rpath); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("record ingest %s: %w", w.d, err)
	}
	return nil
}

// Commit verifies the whole partial file, read back from disk, against the
// blob's digest and, when it matches, syncs it, makes it read-only and
// renames it into blobs/. Every part must be done. On a mismatch it deletes
// the partial file and the record and returns an error wrapping
// ErrDigestMismatch. A blob already present is success.
func (w *RangeWriter) Commit(ctx context.Context) error {
	if w.f == nil {
		return fmt.Errorf("commit blob %s: writer closed", w.d)
	}
	if m := w.Missing(); len(m) > 0 {
		return fmt.Errorf("commit blob %s: parts %v of %d not done", w.d, m, w.Parts())
	}
	if _, err := w.hash.wait(ctx); err != nil {
		return fmt.Errorf("commit blob %s: %w", w.d, err)
	}
	if got := digest.NewDigest(w.d.Algorithm(), w.hash.sum()); got != w.d {
		w.remove()
		return fmt.Errorf("commit blob %s: content hashes to %s: %w", w.d, got, ErrDigestMismatch)
	}
	if err := w.c.syncBlob(w.f); err != nil {
		return fmt.Errorf("commit blob %s: %w", w.d, err)
	}
	if err := w.close(); err != nil {
		return fmt.Errorf("commit blob %s: %w", w.d, err)
	}
	// The record goes first: a crash before the rename leaves a whole
	// partial file without a record, which the next writer takes as done
	// and verifies.
	if err := os.Remove(w.rpath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("commit blob %s: %w", w.d, err)
	}
	return w.c.publish(w.d, w.size, w.path)
}

// Close stops the hasher and releases the file. The partial file and the
// record stay for a later resume. Close after Commit or Delete is a no-op.
func (w *RangeWriter) Close() error {
	if err := w.close(); err != nil {
		return fmt.Errorf("close ingest %s: %w", w.d, err)
	}
	return nil
}

func (w *RangeWriter) close() error {
	if w.hash != nil {
		w.hash.close()
	}
	return w.ingestFile.close()
}

// Delete closes the writer and removes the partial file and its record.
func (w *RangeWriter) Delete() error {
	_ = w.close()
	var errs []error
	for _, p := range []string{w.path, w.rpath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("delete ingest %s: %w", w.d, err)
	}
	return nil
}

// remove deletes the partial file and its record, ignoring errors: it runs
// on paths that already return one.
func (w *RangeWriter) remove() {
	_ = w.Delete()
}
