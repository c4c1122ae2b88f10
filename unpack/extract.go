package unpack

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
)

// Stats reports what Extract wrote.
type Stats struct {
	// Files is the regular files written; Dirs the directories created,
	// explicit entries and missing parents alike; Links the symbolic and
	// hard links made.
	Files, Dirs, Links int
	// Bytes is the bytes of regular files written.
	Bytes int64
}

// Extract reads one tar archive, compressed as opts.Compression says, from r
// and writes it under dst, an existing directory. It returns what it wrote,
// also on error.
//
// The contract (see the package comment and errors.go):
//   - Names are cleaned, slash-separated paths relative to dst; absolute
//     names, ".." escaping dst and NULs are ErrUnsafe. With opts.Subdir only
//     the entries under it are taken, the prefix stripped.
//   - All file system operations go through an os.Root opened on dst, and
//     no symbolic link is followed to create anything: an entry whose parent
//     is a symbolic link is ErrUnsafe. Symbolic links are made only if their
//     target stays inside dst; hard links only to a regular file already in
//     dst.
//   - Regular files are 0644, or 0755 when the tar mode has an execute bit;
//     directories 0755; ownership and times are not restored. A file is
//     written to a temporary name and renamed into place, so a file it
//     replaces is never half-written and a hard link to it keeps the old
//     bytes. Devices and FIFOs are ErrUnsafe.
//   - opts.MaxBytes caps the bytes of regular files, checked against each
//     header before writing and against the bytes copied; the data of
//     entries skipped (outside Subdir, whiteout files) is capped by a
//     second budget of the same size. opts.MaxEntries caps the headers read
//     (ignored ones included) plus the parent directories created
//     implicitly. Any exceeded is ErrTooLarge.
//   - A stream that is not valid tar, gzip or zstd is ErrCorrupt. For
//     compressed streams the compressor's trailer is read and its checksum
//     verified after the tar end marker (up to a bounded tail); a plain tar
//     cut exactly between entries cannot be told from a complete one, so
//     callers verify the blob's digest as they do anyway.
//   - ctx is checked before each entry and each read.
//
// On error, what was extracted before stays in dst: unpack into a fresh
// directory and remove it on failure. Extract does not fsync; callers that
// publish dst sync it first. Extract reads r no further than the archive
// (and the bounded tail) and does not close it. Two Extract calls must not
// write to the same dst at the same time.
func Extract(ctx context.Context, r io.Reader, dst string, opts Options) (Stats, error) {
	opts, sub, err := opts.normalize()
	if err != nil {
		return Stats{}, err
	}
	root, err := os.OpenRoot(dst)
	if err != nil {
		return Stats{}, fmt.Errorf("unpack: open destination: %w", err)
	}
	defer root.Close()

	src := &sourceReader{ctx: ctx, r: r}
	dr, release, err := decompressor(src, opts.Compression)
	if err != nil {
		return Stats{}, fmt.Errorf("unpack archive: %w", src.readError(err))
	}
	defer release()
	dr = &limitReader{r: dr, n: streamLimit(opts)}

	x := &extractor{
		ctx:        ctx,
		root:       root,
		src:        src,
		opts:       opts,
		sub:        sub,
		budget:     opts.MaxBytes,
		skipBudget: opts.MaxBytes,
		entries:    opts.MaxEntries,
		dirs:       make(map[string]struct{}),
	}
	if opts.Whiteouts {
		x.touched = make(map[string]struct{})
	}
	tr := tar.NewReader(dr)
	for {
		if err := ctx.Err(); err != nil {
			return x.stats, fmt.Errorf("unpack archive: %w", err)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if errors.Is(err, tar.ErrInsecurePath) && hdr != nil {
			// Only with GODEBUG=tarinsecurepath=0: the entry is read
			// all the same, and cleanName (stricter) or Subdir judges it.
			err = nil
		}
		if err != nil {
			return x.stats, fmt.Errorf("unpack archive: %w", src.readError(err))
		}
		if err := x.count(); err != nil {
			return x.stats, entryError(hdr.Name, err)
		}
		if err := x.entry(hdr, ctxReader{ctx: ctx, r: tr}); err != nil {
			return x.stats, entryError(hdr.Name, err)
		}
	}
	if opts.Compression != None {
		if _, err := io.Copy(io.Discard, io.LimitReader(dr, maxTrailer)); err != nil {
			return x.stats, fmt.Errorf("unpack archive: after the tar end: %w", src.readError(err))
		}
	}
	return x.stats, nil
}

// normalize validates o and fills in the defaults; it returns the cleaned
// Subdir, "" for none.
func (o Options) normalize() (Options, string, error) {
	switch o.Compression {
	case None, Gzip, Zstd:
	default:
		return o, "", fmt.Errorf("unpack: unknown compression %q", string(o.Compression))
	}
	if o.MaxBytes < 0 || o.MaxEntries < 0 {
		return o, "", fmt.Errorf("unpack: negative MaxBytes or MaxEntries")
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = DefaultMaxBytes
	}
	if o.MaxEntries == 0 {
		o.MaxEntries = DefaultMaxEntries
	}
	var sub string
	if o.Subdir != "" {
		c := path.Clean(strings.TrimLeft(o.Subdir, "/")) // "/models/" and "./models" alike
		if strings.IndexByte(c, 0) >= 0 || c == ".." || strings.HasPrefix(c, "../") {
			return o, "", fmt.Errorf("unpack: invalid subdir %q", o.Subdir)
		}
		if c != "." {
			sub = c
		}
	}
	return o, sub, nil
}

// extractor is the state of one Extract call.
type extractor struct {
	ctx  context.Context
	root *os.Root
	src  *sourceReader
	opts Options
	sub  string // cleaned Options.Subdir, "" for none

	stats      Stats
	budget     int64 // bytes left to write
	skipBudget int64 // bytes left to skip
	entries    int   // entries left
	buf        []byte

	// dirs holds the paths verified or made real directories (not
	// symbolic links) during this call; cleared whenever anything is
	// removed, since a removal may take a verified directory with it.
	dirs map[string]struct{}
	// touched holds, for image layers, every path this archive wrote and
	// their parents: what whiteouts, which apply to earlier layers only,
	// leave alone.
	touched map[string]struct{}
}

// count takes one entry (a header or an implicit directory) from the budget.
func (x *extractor) count() error {
	if x.entries <= 0 {
		return fmt.Errorf("%w: more than %d entries", ErrTooLarge, x.opts.MaxEntries)
	}
	x.entries--
	return nil
}

// skip takes the data of an entry left unread, which archive/tar reads and
// discards, from a budget of its own as large as MaxBytes: a few bytes of
// zstd outside Subdir could otherwise expand into hours of decompression,
// while an image's base layers must not eat the model's budget.
func (x *extractor) skip(hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeLink, tar.TypeSymlink, tar.TypeChar, tar.TypeBlock, tar.TypeDir, tar.TypeFifo:
		return nil // no data section, whatever the size field says
	}
	if hdr.Size > x.skipBudget {
		return fmt.Errorf("%w: %d bytes to skip, %d left of MaxBytes %d for skipped entries", ErrTooLarge, hdr.Size, x.skipBudget, x.opts.MaxBytes)
	}
	x.skipBudget -= hdr.Size
	return nil
}

// strip maps a cleaned archive name to its path under dst, or reports that
// it lies outside Subdir.
func (x *extractor) strip(name string) (string, bool) {
	if x.sub == "" {
		return name, true
	}
	if name == x.sub {
		return ".", true
	}
	if rest, ok := strings.CutPrefix(name, x.sub+"/"); ok {
		return rest, true
	}
	return "", false
}

// entry extracts one entry whose data is r.
func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // archive-wide PAX records; nothing to write
	}
	name, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if x.opts.Whiteouts && strings.HasPrefix(path.Base(name), whiteoutPrefix) {
		if err := x.skip(hdr); err != nil {
			return err
		}
		return x.whiteout(name)
	}
	rel, ok := x.strip(name)
	if !ok {
		return x.skip(hdr)
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.dir(rel)
	case tar.TypeReg, tar.TypeGNUSparse: // archive/tar expands sparse holes
		return x.file(rel, hdr, r)
	case tar.TypeSymlink:
		return x.symlink(rel, hdr.Linkname)
	case tar.TypeLink:
		return x.hardlink(rel, hdr.Linkname)
	case tar.TypeChar:
		return unsafef("character device")
	case tar.TypeBlock:
		return unsafef("block device")
	case tar.TypeFifo:
		return unsafef("FIFO")
	default:
		return unsafef("unsupported entry type %q", hdr.Typeflag)
	}
}
