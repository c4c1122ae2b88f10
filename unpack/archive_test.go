package unpack

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// ent is one entry of a test archive; typ defaults to a regular file.
type ent struct {
	name string
	typ  byte
	body string
	link string
	mode int64
}

func file(name, body string) ent { return ent{name: name, typ: tar.TypeReg, body: body} }
func dir(name string) ent        { return ent{name: name, typ: tar.TypeDir} }
func symlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeSymlink, link: target}
}
func hardlink(name, target string) ent {
	return ent{name: name, typ: tar.TypeLink, link: target}
}

// tarball builds a real archive of es, compressed as c.
func tarball(t testing.TB, c Compression, es ...ent) []byte {
	t.Helper()
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	for _, e := range es {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.name, Typeflag: typ, Linkname: e.link, Mode: mode, Format: tar.FormatPAX}
		if typ == tar.TypeXGlobalHeader {
			hdr = &tar.Header{Typeflag: typ, PAXRecords: map[string]string{"comment": e.name}}
		}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatalf("tar header %q: %v", e.name, err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatalf("tar body %q: %v", e.name, err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return compress(t, c, raw.Bytes())
}

func compress(t testing.TB, c Compression, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	switch c {
	case None:
		return b
	case Gzip:
		zw := gzip.NewWriter(&out)
		zw.Write(b)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	case Zstd:
		zw, err := zstd.NewWriter(&out)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(b)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out.Bytes()
}

// sandbox is a destination with a sibling sentinel directory that every
// escape attempt in the tests aims at ("../sentinel/...").
type sandbox struct {
	base, dst, sentinel string
}

func newSandbox(t testing.TB) sandbox {
	t.Helper()
	base := t.TempDir()
	s := sandbox{base: base, dst: filepath.Join(base, "dst"), sentinel: filepath.Join(base, "sentinel")}
	for _, d := range []string{s.dst, s.sentinel} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// checkContained fails unless the sentinel is empty, the base holds only
// dst and sentinel, and every path under dst resolves inside dst: no
// absolute link, no link whose resolution (or, dangling, whose lexical
// target) leaves dst, no device, FIFO or socket, no temporary file left.
func (s sandbox) checkContained(t testing.TB) {
	t.Helper()
	if es, err := os.ReadDir(s.sentinel); err != nil || len(es) != 0 {
		t.Fatalf("sentinel: %d entries, %v", len(es), err)
	}
	if es, err := os.ReadDir(s.base); err != nil || len(es) != 2 {
		t.Fatalf("base: %v entries, %v", es, err)
	}
	realDst, err := filepath.EvalSymlinks(s.dst)
	if err != nil {
		t.Fatal(err)
	}
	inside := func(p string) bool {
		rel, err := filepath.Rel(realDst, p)
		return err == nil && filepath.IsLocal(rel)
	}
	err = filepath.WalkDir(s.dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if tempPattern.MatchString(d.Name()) {
			t.Errorf("temporary file left: %s", p)
		}
		switch m := fi.Mode(); {
		case m&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if filepath.IsAbs(target) {
				t.Errorf("%s: absolute link target %q", p, target)
			}
			resolved, err := filepath.EvalSymlinks(p)
			if err != nil { // dangling or a loop: judge the target as written
				resolved = filepath.Join(filepath.Dir(p), target)
			}
			if !inside(resolved) {
				t.Errorf("%s -> %q resolves to %s, outside dst", p, target, resolved)
			}
		case m.IsDir(), m.IsRegular():
			if m&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 || m.Perm()&0o022 != 0 {
				t.Errorf("%s: mode %v", p, m)
			}
		default:
			t.Errorf("%s: special file %v", p, m)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

var tempPattern = regexp.MustCompile(`^\.unpack-[0-9a-f]{16}\.tmp$`)

func readFile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func exists(name string) bool {
	_, err := os.Lstat(name)
	return err == nil
}
