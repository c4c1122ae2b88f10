package push

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

// file is one regular file of the model directory.
type file struct {
	rel     string // slash-separated path relative to the directory
	path    string // path to open (a symbolic link inside the directory is opened through)
	modTime time.Time
	digest  digest.Digest // set by hashFiles
	size    int64         // bytes hashed, set by hashFiles
}

// scan lists the regular files under dir in lexical order, and the hidden
// entries it skipped (directories with a trailing slash). It refuses what it
// cannot push faithfully: a symbolic link that resolves outside dir or to
// something other than a regular file, a device, socket or named pipe, and
// a directory with no file at all.
func scan(dir string) (files []file, skipped []string, err error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read model directory: %w", err)
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return nil, nil, fmt.Errorf("read model directory %s: %w", dir, err)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, nil, fmt.Errorf("read model directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, nil, fmt.Errorf("read model directory %s: %w", dir, ErrNotDir)
	}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("read model directory %s: %w", dir, err)
		}
		if p == root {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return fmt.Errorf("read model directory %s: %w", dir, err)
		}
		rel = filepath.ToSlash(rel)
		// Hidden files and directories (.git/, .cache/, .gitattributes)
		// are skipped, as Docker's and modctl's packagers do.
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				skipped = append(skipped, rel+"/")
				return filepath.SkipDir
			}
			skipped = append(skipped, rel)
			return nil
		}
		switch t := d.Type(); {
		case t.IsDir():
			return nil
		case t.IsRegular():
			info, err := d.Info()
			if err != nil {
				return fmt.Errorf("read %s: %w", p, err)
			}
			files = append(files, file{rel: rel, path: p, modTime: info.ModTime()})
			return nil
		case t&fs.ModeSymlink != 0:
			f, err := followLink(root, p)
			if err != nil {
				return err
			}
			f.rel = rel
			files = append(files, f)
			return nil
		default:
			return fmt.Errorf("read %s: %w (%s)", p, ErrNotRegular, t.Type())
		}
	})
	if err != nil {
		return nil, nil, err
	}
	if len(files) == 0 {
		return nil, nil, fmt.Errorf("read model directory %s: %w", dir, ErrEmptyDir)
	}
	return files, skipped, nil
}

// followLink resolves the symbolic link p, which must lead to a regular file
// inside root; the file is then pushed under the link's own path.
func followLink(root, p string) (file, error) {
	target, err := filepath.EvalSymlinks(p)
	if err != nil {
		return file{}, fmt.Errorf("follow symbolic link %s: %w", p, err)
	}
	if rel, err := filepath.Rel(root, target); err != nil || !filepath.IsLocal(rel) {
		return file{}, fmt.Errorf("follow symbolic link %s to %s: %w", p, target, ErrLinkOutside)
	}
	info, err := os.Stat(target)
	if err != nil {
		return file{}, fmt.Errorf("follow symbolic link %s: %w", p, err)
	}
	if !info.Mode().IsRegular() {
		return file{}, fmt.Errorf("follow symbolic link %s to %s: %w (%s)", p, target, ErrNotRegular, info.Mode().Type())
	}
	return file{path: p, modTime: info.ModTime()}, nil
}

// hashFiles computes the sha256 digest and size of every file by streaming
// it from disk, at most limit files at once. Reading every file here also
// proves each one readable before anything is pushed.
func hashFiles(ctx context.Context, files []file, limit int) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(limit)
	for i := range files {
		f := &files[i]
		g.Go(func() error {
			d, n, err := hashFile(ctx, f.path)
			if err != nil {
				return err
			}
			f.digest, f.size = d, n
			return nil
		})
	}
	return g.Wait()
}

func hashFile(ctx context.Context, p string) (digest.Digest, int64, error) {
	fh, err := os.Open(p)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", p, err)
	}
	defer fh.Close()
	h := digest.Canonical.Digester()
	n, err := io.Copy(h.Hash(), contextReader{ctx, fh})
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", p, err)
	}
	return h.Digest(), n, nil
}

// contextReader stops a long read once ctx is done.
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
