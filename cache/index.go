package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/opencontainers/go-digest"
)

// touchInterval bounds how often a use of a model is written to disk (the
// model directory's mtime, which other processes and restarts read): the
// recency order needs minutes, not every request.
const touchInterval = time.Minute

// index is what the cache knows of its models in memory: their records and
// the order of their last use, for eviction. The directory is the truth:
// the index fills as models are looked up and committed, and is reloaded
// from every record under the gc lock before an eviction and for a listing,
// since other processes may have added, used or removed models.
type index struct {
	mu     sync.Mutex
	models map[digest.Digest]*indexed
	// recency orders the models by last use, oldest first (golang-lru's
	// list; its size is unbounded here: evicting is ours, by bytes).
	recency *simplelru.LRU[digest.Digest, struct{}]

	loadOnce sync.Once // the first Stats reads every record

	hits, misses, evictions atomic.Int64
	reserved                atomic.Int64 // bytes promised to pulls in flight
	used                    atomic.Int64 // bytes on disk at the last scan or change
}

// indexed is one model of the index.
type indexed struct {
	model    *Model
	lastUse  time.Time
	diskUse  time.Time // the last use written to disk
	unpacked int64     // bytes of the directory that are not links to blobs
}

func newIndex() *index {
	// The capacity only bounds the list; models are evicted by bytes, so
	// it is never reached.
	r, _ := simplelru.NewLRU[digest.Digest, struct{}](1<<30, nil)
	return &index{models: map[digest.Digest]*indexed{}, recency: r}
}

// loadIndex reads every model record and orders the models by the mtime of
// their directories (the last use any process wrote).
func (c *Cache) loadIndex() error {
	dir := filepath.Join(c.root, "models", "sha256")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("load cache index: %w", err)
	}
	var found []*indexed
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, name)
		if d.Validate() != nil {
			continue
		}
		m, err := c.readModel(d)
		if err != nil {
			continue // a leftover; Repair deals with it
		}
		fi, err := os.Stat(m.Dir)
		if err != nil {
			continue
		}
		found = append(found, &indexed{model: m, lastUse: fi.ModTime(), diskUse: fi.ModTime(), unpacked: unpackedBytes(m)})
	}
	ix := c.index
	ix.mu.Lock()
	defer ix.mu.Unlock()
	// Uses this process knows of and has not written yet count too.
	for _, e := range found {
		if old := ix.models[e.model.Digest]; old != nil && old.lastUse.After(e.lastUse) {
			e.lastUse, e.diskUse = old.lastUse, old.diskUse
		}
	}
	slices.SortFunc(found, func(a, b *indexed) int { return a.lastUse.Compare(b.lastUse) })
	ix.models = map[digest.Digest]*indexed{}
	ix.recency.Purge()
	for _, e := range found {
		ix.models[e.model.Digest] = e
		ix.recency.Add(e.model.Digest, struct{}{})
	}
	return nil
}

// unpackedBytes is the part of a model's size that is not hard links to
// blobs: the files unpacked from archives.
func unpackedBytes(m *Model) int64 {
	n := m.Size
	for _, f := range m.Files {
		if !f.Unpacked {
			n -= f.Size
		}
	}
	return max(n, 0)
}

// added records a model just committed, as used now.
func (ix *index) added(m *Model) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	now := time.Now()
	ix.models[m.Digest] = &indexed{model: m, lastUse: now, diskUse: now, unpacked: unpackedBytes(m)}
	ix.recency.Add(m.Digest, struct{}{})
}

// removed forgets a model.
func (ix *index) removed(d digest.Digest) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	delete(ix.models, d)
	ix.recency.Remove(d)
}

// Touch records a use of model d: it becomes the most recently used. The
// use reaches the disk (the directory's mtime, read by other processes and
// after a restart) at most once per touchInterval.
func (c *Cache) Touch(d digest.Digest) {
	ix := c.index
	ix.mu.Lock()
	e := ix.models[d]
	if e == nil {
		ix.mu.Unlock()
		return
	}
	now := time.Now()
	e.lastUse = now
	ix.recency.Get(d) // moves it to the recent end
	write := now.Sub(e.diskUse) >= touchInterval
	if write {
		e.diskUse = now
	}
	dir := e.model.Dir
	ix.mu.Unlock()
	if write {
		_ = os.Chtimes(dir, now, now) // a hint for the order; never fatal
	}
}

// Lookup returns the complete model d, from the index when it knows it,
// counting a hit or a miss, and records the use.
func (c *Cache) Lookup(d digest.Digest) (*Model, error) {
	c.index.mu.Lock()
	e := c.index.models[d]
	c.index.mu.Unlock()
	if e != nil {
		// Another process may have evicted it, or verify found it
		// corrupt: the record decides (it goes first, and comes last).
		if _, err := os.Stat(c.modelRecordPath(d)); err == nil {
			c.index.hits.Add(1)
			c.Touch(d)
			return e.model, nil
		}
		c.index.removed(d)
	}
	m, err := c.Model(d)
	if err != nil {
		c.index.misses.Add(1)
		return nil, err
	}
	c.index.hits.Add(1)
	c.index.added(m)
	now := time.Now()
	_ = os.Chtimes(m.Dir, now, now) // the use, for other processes; a hint
	return m, nil
}

// Stats are the cache's counters, for the gateway's metrics.
type Stats struct {
	BytesUsed   int64 // on disk at the last scan or change: blobs, unpacked files, downloads in progress
	BytesBudget int64 // cache.max_bytes; 0: no budget
	Models      int   // complete models
	Hits        int64 // lookups that found the model on disk
	Misses      int64 // lookups that did not (a pull follows)
	Evictions   int64 // models evicted to make room or by prune
}

// Stats returns the counters. BytesUsed is measured now (a walk of blobs/
// and ingest/: milliseconds for thousands of files), or the last measure if
// that fails.
func (c *Cache) Stats() Stats {
	c.index.loadOnce.Do(func() { _ = c.loadIndex() })
	_, _ = c.scanUsage()
	c.index.mu.Lock()
	n := len(c.index.models)
	c.index.mu.Unlock()
	return Stats{
		BytesUsed: c.index.used.Load(), BytesBudget: c.maxBytes, Models: n,
		Hits: c.index.hits.Load(), Misses: c.index.misses.Load(), Evictions: c.index.evictions.Load(),
	}
}

// ModelInfo is one model as `modelgate cache ls` shows it.
type ModelInfo struct {
	Digest   digest.Digest `json:"digest"`
	Refs     []string      `json:"refs"`
	Size     int64         `json:"size"` // bytes of its directory
	Own      int64         `json:"own"`  // bytes evicting it would free now
	LastUsed time.Time     `json:"last_used"`
	Pinned   bool          `json:"pinned"` // in use by this or another process
	Dir      string        `json:"dir"`
}

// List returns every complete model, least recently used first, from the
// directory (reloaded: other processes may have changed it).
func (c *Cache) List() ([]ModelInfo, error) {
	if err := c.loadIndex(); err != nil {
		return nil, err
	}
	refs, err := c.blobRefs()
	if err != nil {
		return nil, err
	}
	c.index.mu.Lock()
	var out []ModelInfo
	for _, d := range c.index.recency.Keys() {
		e := c.index.models[d]
		out = append(out, ModelInfo{
			Digest: d, Refs: e.model.Refs, Size: e.model.Size, Own: c.ownBytes(e, refs),
			LastUsed: e.lastUse, Dir: e.model.Dir,
		})
	}
	c.index.mu.Unlock()
	for i := range out {
		out[i].Pinned = c.inUse(out[i].Digest)
	}
	return out, nil
}

// inUse reports whether a pin on model d is held, here or elsewhere.
func (c *Cache) inUse(d digest.Digest) bool {
	if c.pins.pinnedHere(c.modelLockPath(d)) {
		return true
	}
	l, err := tryLock(c.modelLockPath(d), true)
	if err != nil {
		return errors.Is(err, errLocked)
	}
	l.unlock()
	return false
}

// blobRefs counts, for each blob, the complete models that list it.
func (c *Cache) blobRefs() (map[digest.Digest]int, error) {
	c.index.mu.Lock()
	defer c.index.mu.Unlock()
	refs := map[digest.Digest]int{}
	for _, e := range c.index.models {
		seen := map[digest.Digest]bool{}
		for _, f := range e.model.Files {
			if !seen[f.Digest] {
				seen[f.Digest] = true
				refs[f.Digest]++
			}
		}
	}
	return refs, nil
}

// ownBytes is what evicting e frees: its unpacked files and the blobs no
// other model lists. c.index.mu is held.
func (c *Cache) ownBytes(e *indexed, refs map[digest.Digest]int) int64 {
	n := e.unpacked
	seen := map[digest.Digest]bool{}
	for _, f := range e.model.Files {
		if !seen[f.Digest] && refs[f.Digest] <= 1 {
			n += f.Size
		}
		seen[f.Digest] = true
	}
	return n
}

// scanUsage measures the bytes of the cache on disk: every blob, the
// unpacked files of the models, and the downloads and model directories in
// progress under ingest/.
func (c *Cache) scanUsage() (int64, error) {
	var n int64
	for _, sub := range []string{"blobs", "ingest"} {
		err := filepath.WalkDir(filepath.Join(c.root, sub), func(_ string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil // removed while we walked
				}
				return err
			}
			if !d.Type().IsRegular() {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return nil
			}
			n += fi.Size()
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("measure cache: %w", err)
		}
	}
	c.index.mu.Lock()
	for _, e := range c.index.models {
		n += e.unpacked
	}
	c.index.mu.Unlock()
	c.index.used.Store(n)
	return n, nil
}

// readModel reads the record of model d without checking its directory.
func (c *Cache) readModel(d digest.Digest) (*Model, error) {
	data, err := os.ReadFile(c.modelRecordPath(d))
	if err != nil {
		return nil, err
	}
	var m Model
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read model %s: corrupt record: %w", d, err)
	}
	m.Dir = c.modelDir(d)
	return &m, nil
}
