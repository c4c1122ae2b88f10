package cache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
)

// staleTempAge is how old a temporary file of an atomic write (.tmp-*,
// *.tmp) whose owner cannot be told by a lock must be before Repair removes
// it. Such a write (a small JSON record: write, fsync, rename) lives for
// milliseconds; ten minutes leaves room for a very slow disk, and a leftover
// younger than that is a few hundred bytes that the next start removes.
const staleTempAge = 10 * time.Minute

// RepairReport says what Repair found and did. The zero value is a clean
// cache. It is a slog.LogValuer: log it as one attribute.
type RepairReport struct {
	// TempDirs counts the ingest/model-<hex>-* directories of interrupted
	// commits, removed.
	TempDirs int
	// ModelDirs counts the models/<alg>/<hex>/ directories without a record
	// (a commit interrupted before its record, an eviction after it),
	// removed.
	ModelDirs int
	// Records counts the model records whose directory is missing, removed.
	Records int
	// Partials counts the ingest/<hex>.partial files of blobs already
	// verified under blobs/, removed with their records of parts.
	Partials int
	// TempFiles counts the temporary files of interrupted atomic writes
	// (.tmp-*, *.tmp) and the records of parts whose partial file is gone,
	// removed.
	TempFiles int
	// Resumable counts the partial downloads kept: the next pull of their
	// blob resumes from them and verifies every byte.
	Resumable int
	// Busy counts the leftovers left alone because their lock is held (a
	// pull, commit or eviction in this process or another is using them) or,
	// for a temporary file no lock covers, because it is younger than
	// staleTempAge.
	Busy int
}

// Removed is how many leftovers Repair removed.
func (r RepairReport) Removed() int {
	return r.TempDirs + r.ModelDirs + r.Records + r.Partials + r.TempFiles
}

// LogValue implements slog.LogValuer with stable keys.
func (r RepairReport) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("temp_dirs", r.TempDirs),
		slog.Int("model_dirs", r.ModelDirs),
		slog.Int("records", r.Records),
		slog.Int("partials", r.Partials),
		slog.Int("temp_files", r.TempFiles),
		slog.Int("resumable", r.Resumable),
		slog.Int("busy", r.Busy),
	)
}

// Repair removes what interrupted writers (a crash, a kill, a power loss)
// left in the cache directory, and keeps what a later pull can use:
//
//   - ingest/model-<hex>-*/, a model directory being assembled, is removed
//     unless its commit lock (ingest/model-<hex>.lock) is held;
//   - models/<alg>/<hex>/ without its record, or a record without its
//     directory, is removed unless the model's commit lock or its pin lock
//     (locks/models/<hex>: in use, or being evicted) is held;
//   - ingest/<hex>.partial is kept for a resume (a pull re-hashes every
//     byte of it), unless its blob is already in blobs/: then it goes with
//     its record of parts (ingest/<hex>.ranges); a record of parts without
//     a partial file, and ingest/<hex>.ranges.tmp, go too; all of this only
//     while the blob's ingest lock (ingest/<hex>.lock) is free. A kept
//     partial file that was made read-only just before a rename that never
//     happened is made writable again, so that a writer can reopen it;
//   - the temporary files of atomic writes (.tmp-* and *.tmp in the root,
//     ingest/, models/<alg>/ and refs/), which no lock names, are removed
//     once older than staleTempAge.
//
// Every removal happens while the lock that covers the object is held by
// Repair itself (taken without waiting: a lock held elsewhere means the
// object is in use, and it is counted as Busy), so Repair is safe while
// other processes pull, commit, pin and evict in the same directory. Lock
// files are never removed: removing one would race with a process opening
// it. Verified blobs and complete models are never touched.
//
// Repair goes on past a file it cannot remove and returns the errors
// joined, with the report of what it did; it stops when ctx ends.
func (c *Cache) Repair(ctx context.Context) (RepairReport, error) {
	var r RepairReport
	var errs []error
	for _, step := range []func(context.Context, *RepairReport) error{c.repairIngest, c.repairModels, c.repairTempFiles} {
		if err := ctx.Err(); err != nil {
			return r, fmt.Errorf("repair cache %s: %w", c.root, err)
		}
		if err := step(ctx, &r); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return r, fmt.Errorf("repair cache %s: %w", c.root, err)
	}
	return r, nil
}

// ingestLockPath and commitLockPath are the locks LockBlobIngest and
// lockModelCommit take, for the encoded digest hex.
func (c *Cache) ingestLockPath(hex string) string {
	return filepath.Join(c.root, "ingest", hex+".lock")
}

func (c *Cache) commitLockPath(hex string) string {
	return filepath.Join(c.root, "ingest", "model-"+hex+".lock")
}

// blobAlgorithms are the algorithms whose blobs Repair looks for, by the
// length of their encoded digests.
var blobAlgorithms = []digest.Algorithm{digest.SHA256, digest.SHA384, digest.SHA512}

// validHex reports whether hex is an encoded digest of some algorithm the
// cache may hold, so that no name built from it leaves its directory.
func validHex(hex string) bool {
	for _, alg := range blobAlgorithms {
		if digest.NewDigestFromEncoded(alg, hex).Validate() == nil {
			return true
		}
	}
	return false
}

// hasBlobHex reports whether a verified blob with encoded digest hex is in
// blobs/, whatever its algorithm.
func (c *Cache) hasBlobHex(hex string) bool {
	for _, alg := range blobAlgorithms {
		d := digest.NewDigestFromEncoded(alg, hex)
		if d.Validate() != nil {
			continue
		}
		if fi, err := os.Stat(c.BlobPath(d)); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// ingestFiles is what ingest/ holds for one blob.
type ingestFiles struct{ partial, ranges, rangesTmp bool }

// repairIngest removes the model directories of interrupted commits and
// the partial downloads of blobs already present.
func (c *Cache) repairIngest(ctx context.Context, r *RepairReport) error {
	dir := filepath.Join(c.root, "ingest")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	blobs := map[string]*ingestFiles{}
	of := func(hex string) *ingestFiles {
		if blobs[hex] == nil {
			blobs[hex] = &ingestFiles{}
		}
		return blobs[hex]
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		if e.IsDir() {
			// model-<hex>-<random>, from os.MkdirTemp in Commit.
			rest, ok := strings.CutPrefix(name, "model-")
			i := strings.LastIndexByte(rest, '-')
			if !ok || i < 0 || !validHex(rest[:i]) {
				continue
			}
			if err := c.removeLocked(c.commitLockPath(rest[:i]), r, &r.TempDirs, filepath.Join(dir, name)); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if hex, ok := strings.CutSuffix(name, ".partial"); ok && validHex(hex) {
			of(hex).partial = true
		} else if hex, ok := strings.CutSuffix(name, ".ranges"); ok && validHex(hex) {
			of(hex).ranges = true
		} else if hex, ok := strings.CutSuffix(name, ".ranges.tmp"); ok && validHex(hex) {
			of(hex).rangesTmp = true
		}
	}
	for hex, files := range blobs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := c.repairBlobIngest(hex, *files, r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// repairBlobIngest handles the ingest files of one blob under its ingest
// lock.
func (c *Cache) repairBlobIngest(hex string, files ingestFiles, r *RepairReport) error {
	l, err := tryLock(c.ingestLockPath(hex), true)
	if errors.Is(err, errLocked) {
		r.Busy++
		return nil
	}
	if err != nil {
		return err
	}
	defer l.unlock()
	base := filepath.Join(c.root, "ingest", hex)
	var errs []error
	remove := func(path string, n *int) {
		switch err := os.Remove(path); {
		case err == nil:
			*n++
		case !errors.Is(err, fs.ErrNotExist):
			errs = append(errs, err)
		}
	}
	if files.rangesTmp {
		remove(base+".ranges.tmp", &r.TempFiles)
	}
	// The listing is from before the lock: look again.
	fi, err := os.Stat(base + ".partial")
	switch {
	case err == nil && c.hasBlobHex(hex):
		remove(base+".partial", &r.Partials)
		remove(base+".ranges", new(int))
	case err == nil:
		r.Resumable++
		if fi.Mode().Perm()&0o200 == 0 {
			// A crash between the chmod and the rename of publish.
			if err := os.Chmod(base+".partial", 0o644); err != nil {
				errs = append(errs, err)
			}
		}
	case errors.Is(err, fs.ErrNotExist):
		remove(base+".ranges", &r.TempFiles)
	default:
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// repairModels removes model directories without a record and records
// without a directory.
func (c *Cache) repairModels(ctx context.Context, r *RepairReport) error {
	algs, err := os.ReadDir(filepath.Join(c.root, "models"))
	if err != nil {
		return err
	}
	var errs []error
	for _, a := range algs {
		alg := digest.Algorithm(a.Name())
		if !a.IsDir() || !alg.Available() {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(c.root, "models", a.Name()))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		dirs, records := map[string]bool{}, map[string]bool{}
		for _, e := range ents {
			name := e.Name()
			if e.IsDir() {
				dirs[name] = true
			} else if hex, ok := strings.CutSuffix(name, ".json"); ok && e.Type().IsRegular() {
				records[hex] = true
			}
		}
		for hex := range dirs {
			if records[hex] {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := c.repairModel(digest.NewDigestFromEncoded(alg, hex), r); err != nil {
				errs = append(errs, err)
			}
		}
		for hex := range records {
			if dirs[hex] {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := c.repairModel(digest.NewDigestFromEncoded(alg, hex), r); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// repairModel removes model d's directory if it has no record, or its
// record if it has no directory, holding the model's commit lock (no
// commit is between its rename and its record) and its pin lock (no one
// uses it, no eviction is between its record and its directory).
func (c *Cache) repairModel(d digest.Digest, r *RepairReport) error {
	if d.Validate() != nil {
		return nil // not a name the cache writes
	}
	commit, err := tryLock(c.commitLockPath(d.Encoded()), true)
	if errors.Is(err, errLocked) {
		r.Busy++
		return nil
	}
	if err != nil {
		return err
	}
	defer commit.unlock()
	pin, err := tryLock(c.modelLockPath(d), true)
	if errors.Is(err, errLocked) || err == nil && c.pins.pinnedHere(c.modelLockPath(d)) {
		pin.unlock()
		r.Busy++
		return nil
	}
	if err != nil {
		return err
	}
	defer pin.unlock()
	// The listing is from before the locks: look again.
	_, dirErr := os.Stat(c.modelDir(d))
	_, recErr := os.Stat(c.modelRecordPath(d))
	switch {
	case dirErr == nil && errors.Is(recErr, fs.ErrNotExist):
		if err := os.RemoveAll(c.modelDir(d)); err != nil {
			return err
		}
		r.ModelDirs++
	case recErr == nil && errors.Is(dirErr, fs.ErrNotExist):
		if err := os.Remove(c.modelRecordPath(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		r.Records++
	}
	return nil
}

// repairTempFiles removes the temporary files of atomic writes that no
// lock covers, once they are older than staleTempAge. Those of ranged
// downloads (ingest/<hex>.ranges.tmp) are left to repairIngest. Only the
// cache's own directories are looked at, never the inside of a model
// directory, whose files may have any name.
func (c *Cache) repairTempFiles(ctx context.Context, r *RepairReport) error {
	dirs := []string{c.root, filepath.Join(c.root, "ingest"), filepath.Join(c.root, "refs")}
	if algs, err := os.ReadDir(filepath.Join(c.root, "models")); err == nil {
		for _, a := range algs {
			if a.IsDir() {
				dirs = append(dirs, filepath.Join(c.root, "models", a.Name()))
			}
		}
	}
	var errs []error
	for _, dir := range dirs {
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			name := e.Name()
			if !e.Type().IsRegular() || !strings.HasPrefix(name, ".tmp-") && !strings.HasSuffix(name, ".tmp") {
				continue
			}
			if hex, ok := strings.CutSuffix(name, ".ranges.tmp"); ok && validHex(hex) && dir == filepath.Join(c.root, "ingest") {
				continue
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // renamed meanwhile: it was being written
			}
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if time.Since(fi.ModTime()) < staleTempAge {
				r.Busy++
				continue
			}
			switch err := os.Remove(filepath.Join(dir, name)); {
			case err == nil:
				r.TempFiles++
			case !errors.Is(err, fs.ErrNotExist):
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeLocked removes path (a directory and all it holds) while holding
// the exclusive lock lockPath, and counts it in n; when the lock is held
// elsewhere it counts r.Busy instead.
func (c *Cache) removeLocked(lockPath string, r *RepairReport, n *int, path string) error {
	l, err := tryLock(lockPath, true)
	if errors.Is(err, errLocked) {
		r.Busy++
		return nil
	}
	if err != nil {
		return err
	}
	defer l.unlock()
	if err := os.RemoveAll(path); err != nil {
		return err
	}
	*n++
	return nil
}
