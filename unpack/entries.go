package unpack

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"strings"
)

// copyBufferSize is the chunk of an entry copied between context checks.
const copyBufferSize = 256 << 10

// dir makes the directory rel (0755). A directory already there is kept; a
// non-directory is replaced only for image layers.
func (x *extractor) dir(rel string) error {
	if rel == "." {
		return nil
	}
	if err := x.parents(rel, true); err != nil {
		return err
	}
	fi, err := x.root.Lstat(rel)
	switch {
	case err == nil && fi.IsDir():
	case err == nil:
		if !x.opts.Whiteouts {
			return unsafef("duplicate path: a non-directory is there")
		}
		x.removed()
		if err := x.root.Remove(rel); err != nil {
			return err
		}
		if err := x.root.Mkdir(rel, 0o755); err != nil {
			return err
		}
		x.stats.Dirs++
	case errors.Is(err, fs.ErrNotExist):
		if err := x.root.Mkdir(rel, 0o755); err != nil {
			return err
		}
		x.stats.Dirs++
	default:
		return err
	}
	x.dirs[rel] = struct{}{}
	x.touch(rel)
	return nil
}

// file writes the regular file rel from r, hdr.Size bytes.
func (x *extractor) file(rel string, hdr *tar.Header, r io.Reader) error {
	if hdr.Size > x.budget {
		return fmt.Errorf("%w: %d bytes, %d left of MaxBytes %d", ErrTooLarge, hdr.Size, x.budget, x.opts.MaxBytes)
	}
	if err := x.parents(rel, true); err != nil {
		return err
	}
	if err := x.makeRoom(rel); err != nil {
		return err
	}
	perm := fs.FileMode(0o644)
	if hdr.Mode&0o111 != 0 {
		perm = 0o755
	}
	if err := x.writeFile(rel, perm, r, x.src.readError); err != nil {
		return err
	}
	x.stats.Files++
	x.touch(rel)
	return nil
}

// symlink makes rel a symbolic link to target, which must stay inside dst.
func (x *extractor) symlink(rel, target string) error {
	t, err := symlinkTarget(rel, target)
	if err != nil {
		return err
	}
	if err := x.parents(rel, true); err != nil {
		return err
	}
	if err := x.makeRoom(rel); err != nil {
		return err
	}
	tmp := tempName(rel)
	if err := x.root.Symlink(t, tmp); err != nil {
		return err
	}
	if err := x.place(tmp, rel); err != nil {
		return err
	}
	x.stats.Links++
	x.touch(rel)
	return nil
}

// hardlink makes rel a hard link to the archive name linkname, which must be
// a regular file already in dst, reached without symbolic links. Where the
// file system refuses the link, the file is copied.
func (x *extractor) hardlink(rel, linkname string) error {
	name, err := cleanName(linkname)
	if err != nil {
		return fmt.Errorf("hard link target %q: %w", linkname, err)
	}
	target, ok := x.strip(name)
	if !ok {
		return unsafef("hard link target %q is outside %q", linkname, x.sub)
	}
	err = x.parents(target, false)
	var fi fs.FileInfo
	if err == nil {
		fi, err = x.root.Lstat(target)
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return unsafef("hard link target %q does not exist", linkname)
	case err != nil:
		return err
	case !fi.Mode().IsRegular():
		return unsafef("hard link target %q is not a regular file", linkname)
	case target == rel:
		return nil // a link to itself: already there
	}
	if err := x.parents(rel, true); err != nil {
		return err
	}
	if err := x.makeRoom(rel); err != nil {
		return err
	}
	tmp := tempName(rel)
	if err := x.root.Link(target, tmp); err == nil {
		if err := x.place(tmp, rel); err != nil {
			return err
		}
	} else if err := x.copyFile(target, fi, rel); err != nil {
		return err
	}
	x.stats.Links++
	x.touch(rel)
	return nil
}

// copyFile copies the regular file target (described by fi) to rel.
func (x *extractor) copyFile(target string, fi fs.FileInfo, rel string) error {
	if fi.Size() > x.budget {
		return fmt.Errorf("%w: copy of %d bytes, %d left of MaxBytes %d", ErrTooLarge, fi.Size(), x.budget, x.opts.MaxBytes)
	}
	f, err := x.root.Open(target)
	if err != nil {
		return err
	}
	defer f.Close()
	return x.writeFile(rel, fi.Mode().Perm(), ctxReader{ctx: x.ctx, r: f}, func(err error) error {
		if cerr := x.ctx.Err(); cerr != nil {
			return cerr
		}
		return err
	})
}

// writeFile writes r to a new file beside rel and renames it to rel, so
// that whatever rel was (a file, a symbolic link) is replaced, never written
// through. readError classifies errors of r.
func (x *extractor) writeFile(rel string, perm fs.FileMode, r io.Reader, readError func(error) error) error {
	tmp := tempName(rel)
	f, err := x.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	n, err := x.copy(f, r, readError)
	if err == nil {
		err = f.Chmod(perm) // exactly perm, whatever the umask
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = x.root.Remove(tmp)
		return err
	}
	if err := x.place(tmp, rel); err != nil {
		return err
	}
	x.stats.Bytes += n
	return nil
}

// copy copies r to w, taking every byte from the byte budget before it is
// written.
func (x *extractor) copy(w io.Writer, r io.Reader, readError func(error) error) (int64, error) {
	if x.buf == nil {
		x.buf = make([]byte, copyBufferSize)
	}
	var n int64
	for {
		nr, rerr := r.Read(x.buf)
		if nr > 0 {
			if int64(nr) > x.budget {
				return n, fmt.Errorf("%w: more than MaxBytes %d", ErrTooLarge, x.opts.MaxBytes)
			}
			x.budget -= int64(nr)
			nw, werr := w.Write(x.buf[:nr])
			n += int64(nw)
			if werr != nil {
				return n, werr
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, readError(rerr)
		}
	}
}

// place renames tmp to rel, removing tmp if that fails.
func (x *extractor) place(tmp, rel string) error {
	if err := x.root.Rename(tmp, rel); err != nil {
		_ = x.root.Remove(tmp)
		return err
	}
	return nil
}

// makeRoom prepares rel to receive a non-directory. A non-directory there
// is left for the rename to replace (later layers win); a directory is
// removed with its tree for image layers and is ErrUnsafe otherwise.
func (x *extractor) makeRoom(rel string) error {
	if rel == "." {
		return unsafef("cannot replace the destination directory")
	}
	fi, err := x.root.Lstat(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case !fi.IsDir():
		return nil
	case !x.opts.Whiteouts:
		return unsafef("duplicate path: a directory is there")
	}
	x.removed()
	return x.root.RemoveAll(rel)
}

// parents makes sure every parent directory of rel is a real directory, not
// a symbolic link, creating the missing ones (0755, each counted as an
// entry) when create is set. A parent that is a symbolic link or another
// non-directory is ErrUnsafe; without create, a missing parent is an error
// matching fs.ErrNotExist.
//
// The walk goes from dst down, one component at a time, so Lstat through
// the os.Root never follows a link this walk has not refused.
func (x *extractor) parents(rel string, create bool) error {
	dir := path.Dir(rel)
	if dir == "." {
		return nil
	}
	if _, ok := x.dirs[dir]; ok {
		return nil
	}
	for i := 0; ; {
		p := dir
		j := strings.IndexByte(dir[i:], '/')
		if j >= 0 {
			p = dir[:i+j]
		}
		if err := x.realDir(p, create); err != nil {
			return err
		}
		if j < 0 {
			return nil
		}
		i += j + 1
	}
}

// realDir checks (or makes) p, whose parents are checked, a real directory.
func (x *extractor) realDir(p string, create bool) error {
	if _, ok := x.dirs[p]; ok {
		return nil
	}
	fi, err := x.root.Lstat(p)
	switch {
	case err == nil && fi.IsDir():
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		return unsafef("parent %q is a symbolic link", p)
	case err == nil:
		return unsafef("parent %q is not a directory", p)
	case errors.Is(err, fs.ErrNotExist) && create:
		if err := x.count(); err != nil {
			return err
		}
		if err := x.root.Mkdir(p, 0o755); err != nil {
			return err
		}
		x.stats.Dirs++
	default:
		return err
	}
	x.dirs[p] = struct{}{}
	return nil
}

// removed forgets the verified directories: a removal may have taken some.
func (x *extractor) removed() {
	clear(x.dirs)
}

// touch records, for image layers, that this archive wrote rel.
func (x *extractor) touch(rel string) {
	if x.touched == nil {
		return
	}
	for p := rel; p != "."; p = path.Dir(p) {
		if _, ok := x.touched[p]; ok {
			return // its parents are in too
		}
		x.touched[p] = struct{}{}
	}
}

// tempName is a fresh name beside rel for a file being written.
func tempName(rel string) string {
	return path.Join(path.Dir(rel), fmt.Sprintf(".unpack-%016x.tmp", rand.Uint64()))
}
