// Package cache is modelgate's content-addressed disk cache.
//
// Layout under the root directory (see docs/cache.md):
//
//	blobs/sha256/<hex>                 verified blobs, read-only, written once
//	ingest/<hex>.partial               a download in progress
//	ingest/<hex>.ranges                parts of a ranged download done
//	ingest/model-<hex>-*/              a model directory being assembled
//	models/sha256/<manifest-hex>/      the model as the runtime sees it
//	models/sha256/<manifest-hex>.json  what the directory holds and where it came from
//	refs/<sha256-of-ref>.json          the digest a reference last resolved to
//	locks/                             pins and the eviction lock (flock)
//
// A blob becomes visible only by rename after its size and digest are
// verified; a model directory only by rename after every file is in place,
// and it counts as present only once its .json record is written. Files of a
// model are hard links to blobs, so a blob shared by two models is stored once
// and the files a runtime reads never change under it.
//
// Models are evicted least recently used first to stay within a byte
// budget (Reserve), never while pinned (PinModel, PinBlobs). Pins and the
// locks of writers are flock(2) locks, so several processes may share one
// directory: they download each blob once, and none evicts what another
// uses. A Cache is safe for use by several goroutines.
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
)

// Cache is a disk cache rooted at one directory.
type Cache struct {
	root     string
	maxBytes int64
	minFree  int64
	noSync   bool
	pins     pins
	index    *index
}

// Options configure a cache.
type Options struct {
	// MaxBytes is the byte budget; 0 means no limit. Reserve evicts least
	// recently used models that no one holds to stay within it.
	MaxBytes int64
	// MinFreeBytes is the free space Reserve keeps on the cache's file
	// system, evicting as for MaxBytes; 0 means none.
	MinFreeBytes int64
	// Logger receives what Open repairs (default slog.Default()).
	Logger *slog.Logger
	// NoSync skips the fsync of each blob's bytes before it becomes
	// visible. A blob is then durable only once the kernel wrote it back
	// (within about 30 s), and a power loss or kernel crash before that may
	// leave a torn blob that the cache trusts. Meant for caches that do not
	// outlive their pod (an emptyDir); see docs/cache.md.
	NoSync bool
}

// File is one file of a model directory, backed by one blob.
type File struct {
	Path   string        `json:"path"` // slash-separated, relative to the model directory
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
	// Unpacked is set when the blob is an archive unpacked at Path.
	Unpacked bool `json:"unpacked,omitempty"`
}

// Model is a complete model directory in the cache.
type Model struct {
	Digest   digest.Digest `json:"digest"`    // manifest digest
	Refs     []string      `json:"refs"`      // references that resolved to Digest
	Files    []File        `json:"files"`     // every file of the directory
	MainFile string        `json:"main_file"` // path of the main weights file, relative
	Size     int64         `json:"size"`      // sum of file sizes
	Created  time.Time     `json:"created"`

	// Dir is the absolute path of the model directory (not stored).
	Dir string `json:"-"`
}

// MainFilePath is the absolute path of the main weights file, or "" if the
// model has none.
func (m *Model) MainFilePath() string {
	if m.MainFile == "" {
		return ""
	}
	return filepath.Join(m.Dir, filepath.FromSlash(m.MainFile))
}

// Open creates the layout under root if needed and returns the cache.
func Open(root string, opts Options) (*Cache, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("open cache %s: %w", root, err)
	}
	for _, d := range []string{"blobs/sha256", "ingest", "models/sha256", "locks/models", "locks/blobs"} {
		if err := os.MkdirAll(filepath.Join(abs, filepath.FromSlash(d)), 0o755); err != nil {
			return nil, fmt.Errorf("open cache %s: %w", abs, err)
		}
	}
	c := &Cache{root: abs, maxBytes: opts.MaxBytes, minFree: opts.MinFreeBytes, noSync: opts.NoSync, index: newIndex()}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	// Leftovers of a crash are removed before any record is read, so that a
	// removed record is never indexed. A repair that could not finish is not
	// fatal: what is left over never counts as present. The records
	// themselves are read when first needed (an eviction, a listing, the
	// stats): a start with thousands of models reads none of them, and a
	// lookup reads only its own.
	if rep, err := c.Repair(context.Background()); err != nil {
		log.Warn("cache repair incomplete", "dir", abs, "repair", rep, "error", err)
	} else if rep.Removed() > 0 || rep.Busy > 0 {
		log.Info("cache repaired", "dir", abs, "repair", rep)
	}
	return c, nil
}

// Root is the cache's root directory.
func (c *Cache) Root() string { return c.root }

// BlobPath is where the verified blob d lives (whether or not it exists).
func (c *Cache) BlobPath(d digest.Digest) string {
	return filepath.Join(c.root, "blobs", string(d.Algorithm()), d.Encoded())
}

// HasBlob reports whether the verified blob d of the given size is present.
func (c *Cache) HasBlob(d digest.Digest, size int64) bool {
	fi, err := os.Stat(c.BlobPath(d))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == size
}

// CheckFits refuses a model of size bytes that exceeds the byte budget.
func (c *Cache) CheckFits(size int64) error {
	if c.maxBytes > 0 && size > c.maxBytes {
		return fmt.Errorf("check cache budget: model needs %d bytes, budget is %d: %w", size, c.maxBytes, ErrTooLarge)
	}
	return nil
}

// Model returns the complete model directory for manifest digest d, or an
// error wrapping ErrModelNotFound.
func (c *Cache) Model(d digest.Digest) (*Model, error) {
	data, err := os.ReadFile(c.modelRecordPath(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read model %s: %w", d, ErrModelNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read model %s: %w", d, err)
	}
	var m Model
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("read model %s: corrupt record: %w", d, err)
	}
	m.Dir = c.modelDir(d)
	if fi, err := os.Stat(m.Dir); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("read model %s: directory missing: %w", d, ErrModelNotFound)
	}
	return &m, nil
}

func (c *Cache) modelDir(d digest.Digest) string {
	return filepath.Join(c.root, "models", string(d.Algorithm()), d.Encoded())
}

func (c *Cache) modelRecordPath(d digest.Digest) string {
	return c.modelDir(d) + ".json"
}

// CheckPath accepts a slash-separated relative path that stays inside the
// directory it is joined to, and refuses anything else with ErrUnsafePath.
func CheckPath(p string) error {
	if p == "" || p == "." || path.Clean(p) != p || !filepath.IsLocal(filepath.FromSlash(p)) {
		return fmt.Errorf("file path %q: %w", p, ErrUnsafePath)
	}
	return nil
}

func linkOrCopy(src, dst string) error {
	if err := os.Link(src, dst); err == nil {
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeFileAtomic writes v as JSON to a temporary file, syncs it and renames
// it over path.
func writeFileAtomic(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

// syncBlob makes the bytes of an ingest file durable before it is renamed
// into blobs/, unless the cache was opened with NoSync.
func (c *Cache) syncBlob(f *os.File) error {
	if c.noSync {
		return nil
	}
	return f.Sync()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// contextReader stops a long copy once ctx is done.
type contextReader struct {
	ctx context.Context
	r   io.Reader
}

func (r contextReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
