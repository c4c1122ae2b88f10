package cache

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/unpack"
)

// Entry is one blob's part of a model directory.
type Entry struct {
	Digest digest.Digest
	Size   int64
	// Path is where the blob lands, slash-separated and relative to the
	// model directory: the file itself for a raw blob, the directory an
	// archive is unpacked into ("" is the root).
	Path string
	// Archive, when set, says the blob is a tar archive to unpack; nil
	// means the blob is the file itself.
	Archive *unpack.Options
}

// Commit lays out the model directory of manifest digest d from blobs
// already in the cache, applying entries in order: a raw blob becomes a hard
// link to it (a copy where the file system refuses links), an archive is
// unpacked by the rules of package unpack (nothing escapes the directory,
// sizes capped). mainFile is the main weights file; when it is "" and an
// archive was unpacked, the largest file is taken. The directory appears by
// rename when complete and its record is written last; if the model is
// already present it is returned unchanged.
func (c *Cache) Commit(ctx context.Context, d digest.Digest, ref string, entries []Entry, mainFile string) (*Model, error) {
	if m, err := c.Model(d); err == nil {
		return m, nil
	}
	l, err := c.lockModelCommit(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("commit model %s: %w", d, err)
	}
	defer l.unlock()
	// Another process may have committed it while we waited.
	if m, err := c.Model(d); err == nil {
		return m, nil
	}
	for _, e := range entries {
		if e.Archive != nil && e.Path == "" {
			continue // unpacked at the root
		}
		if err := CheckPath(e.Path); err != nil {
			return nil, fmt.Errorf("commit model %s: %w", d, err)
		}
	}
	tmp, err := os.MkdirTemp(filepath.Join(c.root, "ingest"), "model-"+d.Encoded()+"-")
	if err != nil {
		return nil, fmt.Errorf("commit model %s: %w", d, err)
	}
	defer os.RemoveAll(tmp) // a no-op once renamed
	m := &Model{Digest: d, Refs: []string{ref}, MainFile: mainFile, Created: time.Now().UTC()}
	unpacked := false
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("commit model %s: %w", d, err)
		}
		dst := filepath.Join(tmp, filepath.FromSlash(e.Path))
		if e.Archive == nil {
			err = c.placeRaw(e, dst)
		} else {
			err = c.unpackArchive(ctx, e, dst)
			unpacked = true
		}
		if err != nil {
			return nil, fmt.Errorf("commit model %s: %w", d, err)
		}
		m.Files = append(m.Files, File{Path: e.Path, Digest: e.Digest, Size: e.Size, Unpacked: e.Archive != nil})
	}
	if m.Size, err = dirSize(tmp); err != nil {
		return nil, fmt.Errorf("commit model %s: %w", d, err)
	}
	if m.MainFile == "" && unpacked {
		if m.MainFile, err = largestFile(tmp); err != nil {
			return nil, fmt.Errorf("commit model %s: %w", d, err)
		}
	}
	dir := c.modelDir(d)
	// A directory without a record is a leftover of an interrupted commit.
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("commit model %s: %w", d, err)
	}
	crashpoint("commit-before-rename")
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("commit model %s: %w", d, err)
	}
	crashpoint("commit-before-record")
	if err := writeFileAtomic(c.modelRecordPath(d), m); err != nil {
		return nil, fmt.Errorf("commit model %s: %w", d, err)
	}
	m.Dir = dir
	c.index.added(m)
	return m, nil
}

func (c *Cache) placeRaw(e Entry, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	// A later layer wins over an earlier one at the same path.
	if err := os.Remove(dst); err != nil && !os.IsNotExist(err) {
		return err
	}
	if err := linkOrCopy(c.BlobPath(e.Digest), dst); err != nil {
		return fmt.Errorf("file %s: %w", e.Path, err)
	}
	return nil
}

func (c *Cache) unpackArchive(ctx context.Context, e Entry, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	f, err := os.Open(c.BlobPath(e.Digest))
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := unpack.Extract(ctx, f, dst, *e.Archive); err != nil {
		return fmt.Errorf("unpack layer %s: %w", e.Digest, err)
	}
	return nil
}

// dirSize is the bytes of the regular files under dir.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	return n, err
}

// largestFile is the slash path, relative to dir, of its largest regular
// file ("" if it has none); ties go to the first in lexical order.
func largestFile(dir string) (string, error) {
	best, bestSize := "", int64(-1)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if fi.Size() > bestSize {
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			best, bestSize = filepath.ToSlash(rel), fi.Size()
		}
		return nil
	})
	return best, err
}
