package unpack

import (
	"errors"
	"io/fs"
	"path"
	"strings"
)

// Whiteout names of image layers
// (https://github.com/opencontainers/image-spec/blob/main/layer.md#whiteouts).
const (
	whiteoutPrefix     = ".wh."
	whiteoutMetaPrefix = ".wh..wh." // aufs metadata; only the opaque marker means anything
	opaqueWhiteout     = ".wh..wh..opq"
)

// whiteout applies the whiteout file name (a cleaned archive name): it hides
// what earlier layers put at the named sibling, or, for the opaque marker,
// in its directory. Entries of this archive are left alone whatever their
// order: whiteouts apply to earlier layers only. The whiteout file itself is
// never written.
func (x *extractor) whiteout(name string) error {
	dir, base := path.Dir(name), path.Base(name)
	if base == opaqueWhiteout {
		return x.hide(dir, true)
	}
	if strings.HasPrefix(base, whiteoutMetaPrefix) {
		return nil // ".wh..wh.plnk" and the like, which Docker skips too
	}
	victim := strings.TrimPrefix(base, whiteoutPrefix)
	if victim == "" || victim == "." || victim == ".." {
		return unsafef("whiteout of %q", victim)
	}
	return x.hide(path.Join(dir, victim), false)
}

// hide removes from dst what earlier layers put at the archive name: all of
// it, or, when opaque, what is inside the directory. A whiteout of Subdir
// or a directory above it empties dst (which itself stays); one elsewhere
// outside Subdir is ignored.
func (x *extractor) hide(name string, opaque bool) error {
	rel, ok := x.strip(name)
	if !ok {
		if !isWithin(x.sub, name) {
			return nil
		}
		rel = "."
	}
	if rel == "." {
		opaque = true
	}
	if err := x.parents(rel, false); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // nothing there to hide
		}
		return err
	}
	if !opaque {
		if _, ok := x.touched[rel]; ok {
			return nil
		}
		x.removed()
		return x.root.RemoveAll(rel)
	}
	fi, err := x.root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.Mode()&fs.ModeSymlink != 0:
		return unsafef("%q is a symbolic link", rel)
	case !fi.IsDir():
		return nil
	}
	return x.prune(rel)
}

// prune removes from the real directory dir everything this archive has
// not written.
func (x *extractor) prune(dir string) error {
	if err := x.ctx.Err(); err != nil {
		return err
	}
	f, err := x.root.Open(dir)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if _, ok := x.touched[p]; !ok {
			x.removed()
			if err := x.root.RemoveAll(p); err != nil {
				return err
			}
			continue
		}
		fi, err := x.root.Lstat(p)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			if err := x.prune(p); err != nil {
				return err
			}
		}
	}
	return nil
}
