package cache

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
)

// ErrPinned refuses to remove a model that is in use (its runtime runs, a
// request or a pull holds it), in this process or another.
var ErrPinned = errors.New("model in use")

// gcLockPath is the lock every eviction, removal, prune and verify takes
// exclusively, so that two processes never evict at once. Pulls and pins do
// not take it.
func (c *Cache) gcLockPath() string { return filepath.Join(c.root, "locks", "gc") }

// Reserve makes room for a pull that will add need bytes: while the cache
// plus the bytes promised to pulls in flight plus need exceeds
// cache.max_bytes, or the file system's free space minus need is under
// cache.min_free_bytes, it evicts the least recently used model that no one
// holds (see PinModel), here or in another process sharing the directory.
// A blob goes with its last model. When the cache cannot fit need even so,
// it returns an error wrapping ErrTooLarge, before any byte is downloaded.
// release returns the promise once the pull has committed (its bytes are then
// on disk and counted) or failed.
func (c *Cache) Reserve(ctx context.Context, need int64) (release func(), err error) {
	if c.maxBytes <= 0 && c.minFree <= 0 {
		return func() {}, nil
	}
	if c.maxBytes > 0 && need > c.maxBytes {
		return nil, fmt.Errorf("make room in the cache: the model needs %s, the budget is %s: %w", human(need), human(c.maxBytes), ErrTooLarge)
	}
	gc, err := lock(ctx, c.gcLockPath(), true)
	if err != nil {
		return nil, fmt.Errorf("make room in the cache: %w", err)
	}
	defer gc.unlock()
	if err := c.loadIndex(); err != nil {
		return nil, err
	}
	used, err := c.scanUsage()
	if err != nil {
		return nil, err
	}
	promised := c.index.reserved.Load()
	var free int64 // the file system's, when min_free_bytes is set
	over := func() (bool, error) {
		if c.maxBytes > 0 && used+promised+need > c.maxBytes {
			return true, nil
		}
		if c.minFree > 0 {
			var err error
			if free, err = freeBytes(c.root); err != nil {
				return false, err
			}
			if free-need < c.minFree {
				return true, nil
			}
		}
		return false, nil
	}
	orphansRemoved := false
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("make room in the cache: %w", context.Cause(ctx))
		}
		isOver, err := over()
		if err != nil {
			return nil, fmt.Errorf("make room in the cache: %w", err)
		}
		if !isOver {
			break
		}
		// Blobs no model lists (a pull or an eviction cut short by a
		// crash) go before any model does.
		if !orphansRemoved {
			orphansRemoved = true
			freed, _, err := c.removeOrphans()
			if err != nil {
				return nil, err
			}
			used -= freed
			continue
		}
		_, freed, ok, err := c.evictOldest()
		if err != nil {
			return nil, err
		}
		if !ok {
			if c.maxBytes > 0 && used+promised+need > c.maxBytes {
				return nil, fmt.Errorf("make room in the cache: the model needs %s, %s is used (%s promised to pulls in flight) of a %s budget, and every model left is in use: %w",
					human(need), human(used), human(promised), human(c.maxBytes), ErrTooLarge)
			}
			return nil, fmt.Errorf("make room in the cache: the model needs %s, %s is free and min_free_bytes keeps %s, and every model left is in use: %w",
				human(need), human(free), human(c.minFree), ErrTooLarge)
		}
		used -= freed
	}
	c.index.reserved.Add(need)
	var once sync.Once
	return func() { once.Do(func() { c.index.reserved.Add(-need) }) }, nil
}

// evictOldest evicts the least recently used model that no one holds and
// returns it and the bytes freed; ok is false when every model is held (or
// there is none). The gc lock is held.
func (c *Cache) evictOldest() (d digest.Digest, freed int64, ok bool, err error) {
	c.index.mu.Lock()
	order := c.index.recency.Keys()
	c.index.mu.Unlock()
	for _, d := range order {
		freed, err := c.evict(d)
		if errors.Is(err, ErrPinned) {
			continue
		}
		if err != nil {
			return "", 0, false, err
		}
		return d, freed, true, nil
	}
	return "", 0, false, nil
}

// evict removes model d unless someone holds it (ErrPinned), then every blob
// it listed that no model lists any more, is linked from no directory and
// no pull holds. The record goes first: from then on the model is absent,
// and a crash leaves a directory without a record, which Repair removes.
// The gc lock is held.
func (c *Cache) evict(d digest.Digest) (int64, error) {
	l, err := tryLock(c.modelLockPath(d), true)
	if errors.Is(err, errLocked) || err == nil && c.pins.pinnedHere(c.modelLockPath(d)) {
		l.unlock()
		return 0, fmt.Errorf("evict model %s: %w", d, ErrPinned)
	}
	if err != nil {
		return 0, fmt.Errorf("evict model %s: %w", d, err)
	}
	defer l.unlock()
	m, err := c.readModel(d)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("evict model %s: %w", d, err)
	}
	var freed int64
	if m != nil {
		freed = unpackedBytes(m)
	}
	if err := os.Remove(c.modelRecordPath(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("evict model %s: %w", d, err)
	}
	c.index.removed(d)
	crashpoint("evict-after-record")
	if err := os.RemoveAll(c.modelDir(d)); err != nil {
		return 0, fmt.Errorf("evict model %s: %w", d, err)
	}
	crashpoint("evict-after-dir")
	c.index.evictions.Add(1)
	if m == nil {
		return freed, nil
	}
	refs, err := c.blobRefs()
	if err != nil {
		return freed, err
	}
	for _, f := range m.Files {
		if refs[f.Digest] > 0 {
			continue
		}
		n, err := c.removeBlobIfUnused(f.Digest)
		if err != nil {
			return freed, fmt.Errorf("evict model %s: %w", d, err)
		}
		freed += n
	}
	c.index.used.Add(-freed)
	return freed, nil
}

// removeBlobIfUnused removes blob d when no model directory links it (its
// link count is 1: blobs/ alone) and no pull holds it, and returns its size.
// A blob still in use is kept (0, nil). The gc lock is held.
func (c *Cache) removeBlobIfUnused(d digest.Digest) (int64, error) {
	p := c.BlobPath(d)
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("remove blob %s: %w", d, err)
	}
	if links(fi) > 1 {
		return 0, nil
	}
	l, err := tryLock(c.blobLockPath(d), true)
	if errors.Is(err, errLocked) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("remove blob %s: %w", d, err)
	}
	defer l.unlock()
	if c.pins.pinnedHere(c.blobLockPath(d)) {
		return 0, nil
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("remove blob %s: %w", d, err)
	}
	return fi.Size(), nil
}

// Remove evicts model d now, or refuses with ErrPinned when it is in use
// (ErrModelNotFound when it is not in the cache).
func (c *Cache) Remove(ctx context.Context, d digest.Digest) (freed int64, err error) {
	gc, err := lock(ctx, c.gcLockPath(), true)
	if err != nil {
		return 0, fmt.Errorf("remove model %s: %w", d, err)
	}
	defer gc.unlock()
	if _, err := c.Model(d); err != nil {
		return 0, err
	}
	if err := c.loadIndex(); err != nil {
		return 0, err
	}
	return c.evict(d)
}

// PruneReport says what Prune removed.
type PruneReport struct {
	Models      []digest.Digest `json:"models"`       // evicted, least recently used first
	OrphanBlobs int             `json:"orphan_blobs"` // blobs no model listed
	Freed       int64           `json:"freed"`        // bytes
	Used        int64           `json:"used"`         // bytes left
}

// Prune evicts least recently used models that no one holds until the cache
// uses at most maxBytes (no eviction when maxBytes < 0), then removes the
// blobs no model lists and no pull holds (a pull that died before its
// commit leaves such blobs).
func (c *Cache) Prune(ctx context.Context, maxBytes int64) (PruneReport, error) {
	var rep PruneReport
	gc, err := lock(ctx, c.gcLockPath(), true)
	if err != nil {
		return rep, fmt.Errorf("prune cache: %w", err)
	}
	defer gc.unlock()
	if err := c.loadIndex(); err != nil {
		return rep, err
	}
	used, err := c.scanUsage()
	if err != nil {
		return rep, err
	}
	// Blobs no model lists go first: they are no one's.
	freed, n, err := c.removeOrphans()
	if err != nil {
		return rep, err
	}
	rep.OrphanBlobs, rep.Freed = n, freed
	used -= freed
	for maxBytes >= 0 && used > maxBytes {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("prune cache: %w", context.Cause(ctx))
		}
		d, freed, ok, err := c.evictOldest()
		if err != nil {
			return rep, err
		}
		if !ok {
			break // every model left is in use
		}
		rep.Models = append(rep.Models, d)
		rep.Freed += freed
		used -= freed
	}
	rep.Used, err = c.scanUsage()
	return rep, err
}

// removeOrphans removes the blobs that no model lists, no directory links
// and no pull holds (a pull that died before its commit, or an eviction cut
// short, leaves such blobs), and returns the bytes freed and their count.
// The gc lock is held and the index loaded.
func (c *Cache) removeOrphans() (int64, int, error) {
	refs, err := c.blobRefs()
	if err != nil {
		return 0, 0, err
	}
	ents, err := os.ReadDir(filepath.Join(c.root, "blobs", "sha256"))
	if err != nil {
		return 0, 0, fmt.Errorf("remove orphan blobs: %w", err)
	}
	var freed int64
	count := 0
	for _, e := range ents {
		d := digest.NewDigestFromEncoded(digest.SHA256, e.Name())
		if d.Validate() != nil || strings.HasPrefix(e.Name(), ".") || refs[d] > 0 {
			continue
		}
		n, err := c.removeBlobIfUnused(d)
		if err != nil {
			return freed, count, err
		}
		if n > 0 {
			freed += n
			count++
		}
	}
	c.index.used.Add(-freed)
	return freed, count, nil
}

// human formats a byte count for messages, in binary units.
func human(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
