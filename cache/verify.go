package cache

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// verifyConcurrency is how many blobs Verify hashes at once: enough to keep
// an SSD and a few cores busy (SHA-256 runs at 1-2 GB/s per core), few
// enough to leave the CPU to a gateway and its runtimes on the same machine.
const verifyConcurrency = 4

// verifyBufferSize is the read buffer of each blob being hashed.
const verifyBufferSize = 1 << 20

// VerifyReport says what Verify checked, found and did. The zero value of
// a finished run is an empty cache.
type VerifyReport struct {
	Blobs int   `json:"blobs"` // blobs hashed
	Bytes int64 `json:"bytes"` // bytes hashed
	// Corrupt are the blobs whose bytes do not hash to their name, or that
	// could not be read, by digest; each was moved to quarantine/.
	Corrupt []CorruptBlob `json:"corrupt"`
	// Missing are blobs that a complete model lists but that are not under
	// blobs/ (removed by hand, or quarantined by an earlier Verify while a
	// pull was laying them out), by digest.
	Missing []digest.Digest `json:"missing"`
	// ModelsRemoved are the models that listed a corrupt or missing blob and
	// that no one held: their record and directory are gone, and the next
	// pull downloads what they lack.
	ModelsRemoved []digest.Digest `json:"models_removed"`
	// ModelsInUse are the models that listed a corrupt or missing blob but
	// were held (a runtime runs them, a pull or a request holds them): their
	// record is gone, so that a process opening the cache from then on does
	// not find them (one that loaded them before may, while the directory
	// exists: see Lookup), and their directory stays while its runtime has
	// the files open; Repair removes it once the model is no longer held, or
	// the next pull replaces it.
	ModelsInUse []digest.Digest `json:"models_in_use"`
}

// Clean reports whether Verify found nothing wrong.
func (r VerifyReport) Clean() bool { return len(r.Corrupt) == 0 && len(r.Missing) == 0 }

// CorruptBlob is one blob Verify found corrupt.
type CorruptBlob struct {
	Digest digest.Digest `json:"digest"` // its name under blobs/
	// Actual is what its bytes hash to; empty when it could not be read.
	Actual digest.Digest `json:"actual,omitempty"`
	Size   int64         `json:"size"`            // bytes on disk
	Error  string        `json:"error,omitempty"` // why it could not be read
	// Quarantine is where the bytes were moved, kept for inspection
	// (quarantine/<hex>; nothing removes them).
	Quarantine string `json:"quarantine"`
}

// Verify re-hashes every blob under blobs/sha256, streaming (a buffer per
// blob being hashed, whatever its size), and moves each one whose bytes do
// not hash to its name, or that cannot be read, to quarantine/<hex> (by
// rename: the bytes are kept for inspection; a blob quarantined earlier
// under the same name is replaced). Then every complete model that lists a
// quarantined blob, or a blob missing from blobs/, is no longer complete:
// its record is removed (it is absent from then on, and the next pull
// downloads what it lacks; its good blobs stay for that pull, and Prune
// removes them if none comes), then its directory, unless the model is
// held, here or in another process (see PinModel): a held model's
// directory stays, since its runtime has the files open, and the model is
// reported in ModelsInUse.
//
// Verify holds the gc lock exclusively throughout, so evictions, removals
// and prunes of every process sharing the directory wait for it (and so do
// pulls that need room under a byte budget); pulls that need none go on. A
// pull that already laid out a corrupt blob when Verify moved it may
// commit a model Verify does not see; the next Verify finds its blob
// missing and removes it.
//
// When ctx ends during the hashing, what was found corrupt so far is still
// quarantined and its models removed, and the error wraps ctx's cause.
func (c *Cache) Verify(ctx context.Context) (VerifyReport, error) {
	var rep VerifyReport
	gc, err := lock(ctx, c.gcLockPath(), true)
	if err != nil {
		return rep, fmt.Errorf("verify cache: %w", err)
	}
	defer gc.unlock()
	hashErr := c.hashBlobs(ctx, &rep)
	if hashErr != nil && ctx.Err() == nil {
		return rep, hashErr // the blob directory cannot be read
	}
	slices.SortFunc(rep.Corrupt, func(a, b CorruptBlob) int { return cmp.Compare(a.Digest, b.Digest) })
	bad := map[digest.Digest]bool{}
	for i := range rep.Corrupt {
		q, err := c.quarantine(rep.Corrupt[i].Digest)
		if err != nil {
			return rep, errors.Join(hashErr, err)
		}
		rep.Corrupt[i].Quarantine = q
		bad[rep.Corrupt[i].Digest] = true
	}
	if err := c.removeIncomplete(bad, &rep); err != nil {
		return rep, errors.Join(hashErr, err)
	}
	return rep, hashErr
}

// hashBlobs hashes every blob, verifyConcurrency at a time, and records
// the corrupt ones in rep. It returns the error of reading the blob
// directory, or ctx's.
func (c *Cache) hashBlobs(ctx context.Context, rep *VerifyReport) error {
	dir := filepath.Join(c.root, "blobs", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("verify cache: %w", err)
	}
	bufs := sync.Pool{New: func() any { b := make([]byte, verifyBufferSize); return &b }}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(verifyConcurrency)
	for _, e := range ents {
		if gctx.Err() != nil {
			break
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() || d.Validate() != nil {
			continue // not a blob
		}
		g.Go(func() error {
			buf := bufs.Get().(*[]byte)
			defer bufs.Put(buf)
			actual, n, err := hashFile(gctx, c.BlobPath(d), *buf)
			if gctx.Err() != nil {
				return fmt.Errorf("verify cache: %w", context.Cause(gctx))
			}
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone since the listing (Repair, or by hand)
			}
			mu.Lock()
			defer mu.Unlock()
			rep.Blobs++
			rep.Bytes += n
			switch {
			case err != nil:
				rep.Corrupt = append(rep.Corrupt, CorruptBlob{Digest: d, Size: n, Error: err.Error()})
			case actual != d:
				rep.Corrupt = append(rep.Corrupt, CorruptBlob{Digest: d, Actual: actual, Size: n})
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("verify cache: %w", context.Cause(ctx))
	}
	return nil
}

// hashFile returns the SHA-256 digest of the file at path and its length,
// reading it through buf; it stops when ctx ends.
func hashFile(ctx context.Context, path string, buf []byte) (digest.Digest, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	dg := digest.SHA256.Digester()
	n, err := io.CopyBuffer(dg.Hash(), contextReader{ctx: ctx, r: f}, buf)
	if err != nil {
		return "", n, err
	}
	return dg.Digest(), n, nil
}

func (c *Cache) quarantineDir() string { return filepath.Join(c.root, "quarantine") }

// quarantine moves blob d to quarantine/<hex> (created on first use) and
// returns the new path. A blob already gone is no error. The gc lock is
// held.
func (c *Cache) quarantine(d digest.Digest) (string, error) {
	dst := filepath.Join(c.quarantineDir(), d.Encoded())
	if err := os.MkdirAll(c.quarantineDir(), 0o755); err != nil {
		return "", fmt.Errorf("quarantine blob %s: %w", d, err)
	}
	src := c.BlobPath(d)
	if err := os.Rename(src, dst); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return dst, nil
		}
		return "", fmt.Errorf("quarantine blob %s: %w", d, err)
	}
	for _, dir := range []string{filepath.Dir(src), c.quarantineDir()} {
		if err := syncDir(dir); err != nil {
			return "", fmt.Errorf("quarantine blob %s: %w", d, err)
		}
	}
	return dst, nil
}

// removeIncomplete removes the models that list a blob of bad or a blob
// missing from blobs/, as Verify says, and records them and the missing
// blobs in rep. The gc lock is held.
func (c *Cache) removeIncomplete(bad map[digest.Digest]bool, rep *VerifyReport) error {
	if err := c.loadIndex(); err != nil {
		return fmt.Errorf("verify cache: %w", err)
	}
	c.index.mu.Lock()
	models := make([]*Model, 0, len(c.index.models))
	for _, e := range c.index.models {
		models = append(models, e.model)
	}
	c.index.mu.Unlock()
	slices.SortFunc(models, func(a, b *Model) int { return cmp.Compare(a.Digest, b.Digest) })
	missing := map[digest.Digest]bool{}
	for _, m := range models {
		incomplete := false
		for _, f := range m.Files {
			if bad[f.Digest] {
				incomplete = true
				continue
			}
			if _, err := os.Stat(c.BlobPath(f.Digest)); errors.Is(err, fs.ErrNotExist) {
				missing[f.Digest] = true
				incomplete = true
			}
		}
		if !incomplete {
			continue
		}
		inUse, err := c.removeModelRecord(m.Digest)
		if err != nil {
			return err
		}
		if inUse {
			rep.ModelsInUse = append(rep.ModelsInUse, m.Digest)
		} else {
			rep.ModelsRemoved = append(rep.ModelsRemoved, m.Digest)
		}
	}
	for d := range missing {
		rep.Missing = append(rep.Missing, d)
	}
	slices.Sort(rep.Missing)
	return nil
}

// removeModelRecord removes the record of model d, then its directory
// unless someone holds the model (inUse). The record goes first: from then
// on the model is absent, and a crash leaves a directory without a record,
// which Repair removes. The gc lock is held.
func (c *Cache) removeModelRecord(d digest.Digest) (inUse bool, err error) {
	l, err := tryLock(c.modelLockPath(d), true)
	switch {
	case errors.Is(err, errLocked):
		inUse = true
	case err != nil:
		return false, fmt.Errorf("verify cache: remove model %s: %w", d, err)
	default:
		defer l.unlock()
		inUse = c.pins.pinnedHere(c.modelLockPath(d))
	}
	if err := os.Remove(c.modelRecordPath(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return inUse, fmt.Errorf("verify cache: remove model %s: %w", d, err)
	}
	c.index.removed(d)
	if inUse {
		return true, nil
	}
	if err := os.RemoveAll(c.modelDir(d)); err != nil {
		return false, fmt.Errorf("verify cache: remove model %s: %w", d, err)
	}
	return false, nil
}
