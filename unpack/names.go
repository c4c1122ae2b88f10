package unpack

import (
	"path"
	"path/filepath"
	"strings"
)

// Bounds on a name, so that a hostile archive cannot make each entry cost
// thousands of path walks. Linux's PATH_MAX is 4096; real models nest a
// handful of directories deep.
const (
	maxNameLen   = 4096
	maxNameDepth = 128
)

// cleanName validates an archive name and returns it cleaned, relative and
// slash-separated ("." for the root). A leading "./" is allowed; a NUL, an
// absolute name and ".." escaping the root are ErrUnsafe.
func cleanName(name string) (string, error) {
	switch {
	case name == "":
		return "", unsafef("empty name")
	case len(name) > maxNameLen:
		return "", unsafef("name longer than %d bytes", maxNameLen)
	case strings.IndexByte(name, 0) >= 0:
		return "", unsafef("NUL in name")
	case strings.HasPrefix(name, "/"):
		return "", unsafef("absolute path")
	}
	c := path.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", unsafef("escapes the destination")
	}
	if strings.Count(c, "/") >= maxNameDepth {
		return "", unsafef("deeper than %d directories", maxNameDepth)
	}
	// Also catches what is not local on other systems (Windows drive
	// letters and reserved names).
	if c != "." && !filepath.IsLocal(filepath.FromSlash(c)) {
		return "", unsafef("not a local path")
	}
	return c, nil
}

// symlinkTarget validates the target of a symbolic link at rel (relative to
// the destination) and returns it cleaned. The target, resolved from the
// link's directory, must stay inside the destination; absolute targets are
// refused.
//
// The cleaned target is what is written: after path.Clean, ".." can only
// lead the target, so it climbs the link's own parent directories, which
// are real directories (a name under a symbolic link is refused), and then
// descends. A target like "s/../x" written as is would let the kernel climb
// out of wherever the link "s" points.
func symlinkTarget(rel, target string) (string, error) {
	switch {
	case target == "":
		return "", unsafef("empty link target")
	case len(target) > maxNameLen:
		return "", unsafef("link target longer than %d bytes", maxNameLen)
	case strings.IndexByte(target, 0) >= 0:
		return "", unsafef("NUL in link target")
	case strings.HasPrefix(target, "/"):
		return "", unsafef("absolute link target %q", target)
	}
	t := path.Clean(target)
	resolved := path.Join(path.Dir(rel), t)
	if resolved == ".." || strings.HasPrefix(resolved, "../") {
		return "", unsafef("link target %q leaves the destination", target)
	}
	return t, nil
}

// isWithin reports whether name is dir or below it (both cleaned, "." for
// the root).
func isWithin(name, dir string) bool {
	return dir == "." || name == dir || strings.HasPrefix(name, dir+"/")
}
