package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExtractCompressions(t *testing.T) {
	es := []ent{
		dir("./"),
		dir("./models/"),
		file("./models/model.gguf", "weights"),
		{name: "./models/run.sh", body: "#!/bin/sh\n", mode: 0o4775},
		file("models/deep/er/still/config.json", "{}"), // parents made implicitly
		symlink("models/latest", "model.gguf"),
		symlink("models/deep/up", "../model.gguf"),
		hardlink("models/copy.gguf", "models/model.gguf"),
	}
	for _, c := range []Compression{None, Gzip, Zstd} {
		name := string(c)
		if c == None {
			name = "none"
		}
		t.Run(name, func(t *testing.T) {
			s := newSandbox(t)
			st, err := Extract(context.Background(), bytes.NewReader(tarball(t, c, es...)), s.dst, Options{Compression: c})
			if err != nil {
				t.Fatal(err)
			}
			want := Stats{Files: 3, Dirs: 4, Links: 3, Bytes: int64(len("weights") + len("#!/bin/sh\n") + len("{}"))}
			if st != want {
				t.Errorf("stats %+v, want %+v", st, want)
			}
			m := filepath.Join(s.dst, "models")
			for name, body := range map[string]string{
				"model.gguf": "weights", "run.sh": "#!/bin/sh\n", "deep/er/still/config.json": "{}",
				"latest": "weights", "deep/up": "weights", "copy.gguf": "weights",
			} {
				if got := readFile(t, filepath.Join(m, name)); got != body {
					t.Errorf("%s = %q, want %q", name, got, body)
				}
			}
			for name, mode := range map[string]fs.FileMode{"model.gguf": 0o644, "run.sh": 0o755, "deep": fs.ModeDir | 0o755} {
				if fi, err := os.Lstat(filepath.Join(m, name)); err != nil || fi.Mode() != mode {
					t.Errorf("%s: mode %v (%v), want %v", name, fi.Mode(), err, mode)
				}
			}
			a, _ := os.Stat(filepath.Join(m, "model.gguf"))
			b, _ := os.Lstat(filepath.Join(m, "copy.gguf"))
			if !os.SameFile(a, b) {
				t.Error("hard link is not the same file")
			}
			s.checkContained(t)
		})
	}
}

func TestExtractSubdir(t *testing.T) {
	image := []ent{
		dir("etc/"), file("etc/passwd", "root:x:0:0"),
		dir("models/"), file("models/other.txt", "no"),
		dir("models/tiny/"), file("models/tiny/model.gguf", "tiny"),
		symlink("models/tiny/alias", "model.gguf"),
		hardlink("models/tiny/again.gguf", "models/tiny/model.gguf"),
		file("models/tinyish/x", "not under models/tiny"),
	}
	for _, sub := range []string{"models/tiny", "/models/tiny/", "./models/tiny"} {
		t.Run(sub, func(t *testing.T) {
			s := newSandbox(t)
			st, err := Extract(context.Background(), bytes.NewReader(tarball(t, Gzip, image...)), s.dst, Options{Compression: Gzip, Subdir: sub})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			filepath.WalkDir(s.dst, func(p string, d fs.DirEntry, err error) error {
				rel, _ := filepath.Rel(s.dst, p)
				got = append(got, rel)
				return err
			})
			if want := ". again.gguf alias model.gguf"; strings.Join(got, " ") != want {
				t.Errorf("tree %q, want %q", got, want)
			}
			if st != (Stats{Files: 1, Links: 2, Bytes: 4}) {
				t.Errorf("stats %+v", st)
			}
			s.checkContained(t)
		})
	}
	t.Run("hard link out of subdir", func(t *testing.T) {
		s := newSandbox(t)
		_, err := Extract(context.Background(), bytes.NewReader(tarball(t, None,
			file("etc/passwd", "root"), hardlink("models/pw", "etc/passwd"))), s.dst, Options{Subdir: "models"})
		if !errors.Is(err, ErrUnsafe) {
			t.Fatalf("err %v, want ErrUnsafe", err)
		}
	})
}

func TestExtractUnsafe(t *testing.T) {
	tests := []struct {
		name   string
		layers [][]ent // all but the last must succeed
		entry  string  // the entry the error must name
		opts   Options
	}{
		{name: "dotdot", layers: [][]ent{{file("../sentinel/evil", "x")}}, entry: "../sentinel/evil"},
		{name: "dotdot inside", layers: [][]ent{{file("a/../../sentinel/evil", "x")}}, entry: "a/../../sentinel/evil"},
		{name: "absolute", layers: [][]ent{{file("/tmp/evil", "x")}}, entry: "/tmp/evil"},
		{name: "absolute dir", layers: [][]ent{{dir("/")}}, entry: "/"},
		{name: "root as file", layers: [][]ent{{file(".", "x")}}, entry: "."},
		{name: "symlink absolute", layers: [][]ent{{symlink("etc", "/etc")}}, entry: "etc"},
		{name: "symlink dotdot", layers: [][]ent{{symlink("up", "../..")}}, entry: "up"},
		{name: "symlink deep dotdot", layers: [][]ent{{symlink("a/b/up", "../../../sentinel")}}, entry: "a/b/up"},
		{name: "symlink via subdir strip", opts: Options{Subdir: "m"},
			layers: [][]ent{{symlink("m/up", "../sentinel")}}, entry: "m/up"},
		{name: "file through symlink dir", layers: [][]ent{{
			dir("real/"), symlink("link", "real"), file("link/f", "x"),
		}}, entry: "link/f"},
		{name: "dir through symlink dir", layers: [][]ent{{
			symlink("link", "."), dir("link/d/"),
		}}, entry: "link/d/"},
		{name: "symlink through symlink dir", layers: [][]ent{{
			symlink("link", "."), symlink("link/l", "x"),
		}}, entry: "link/l"},
		{name: "file through symlink of earlier layer", layers: [][]ent{
			{dir("real/"), symlink("link", "real")},
			{file("link/f", "x")},
		}, entry: "link/f"},
		{name: "hard link dotdot", layers: [][]ent{{hardlink("h", "../sentinel/x")}}, entry: "h"},
		{name: "hard link absolute", layers: [][]ent{{hardlink("h", "/etc/passwd")}}, entry: "h"},
		{name: "hard link missing", layers: [][]ent{{hardlink("h", "nothing")}}, entry: "h"},
		{name: "hard link to dir", layers: [][]ent{{dir("d/"), hardlink("h", "d")}}, entry: "h"},
		{name: "hard link to symlink", layers: [][]ent{{
			symlink("s", "f"), file("f", "x"), hardlink("h", "s"),
		}}, entry: "h"},
		{name: "hard link through symlink", layers: [][]ent{{
			dir("real/"), file("real/f", "x"), symlink("link", "real"), hardlink("h", "link/f"),
		}}, entry: "h"},
		{name: "char device", layers: [][]ent{{{name: "dev/null", typ: tar.TypeChar}}}, entry: "dev/null"},
		{name: "block device", layers: [][]ent{{{name: "sda", typ: tar.TypeBlock}}}, entry: "sda"},
		{name: "fifo", layers: [][]ent{{{name: "pipe", typ: tar.TypeFifo}}}, entry: "pipe"},
		{name: "unknown type", layers: [][]ent{{{name: "c", typ: tar.TypeCont}}}, entry: "c"},
		{name: "file over dir", layers: [][]ent{{dir("d/"), file("d", "x")}}, entry: "d"},
		{name: "dir over file", layers: [][]ent{{file("d", "x"), dir("d/")}}, entry: "d/"},
		{name: "file under file", layers: [][]ent{{file("f", "x"), file("f/g", "y")}}, entry: "f/g"},
		{name: "too deep", layers: [][]ent{{file(strings.Repeat("d/", maxNameDepth)+"f", "x")}},
			entry: strings.Repeat("d/", maxNameDepth) + "f"},
		{name: "opaque through symlink", opts: Options{Whiteouts: true}, layers: [][]ent{
			{dir("real/"), symlink("link", "real")},
			{file("link/.wh..wh..opq", "")},
		}, entry: "link/.wh..wh..opq"},
		{name: "whiteout through symlink", opts: Options{Whiteouts: true}, layers: [][]ent{
			{dir("real/"), file("real/f", "x"), symlink("link", "real")},
			{file("link/.wh.f", "")},
		}, entry: "link/.wh.f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			var err error
			for i, layer := range tt.layers {
				_, err = Extract(context.Background(), bytes.NewReader(tarball(t, None, layer...)), s.dst, tt.opts)
				if i < len(tt.layers)-1 && err != nil {
					t.Fatalf("layer %d: %v", i, err)
				}
			}
			if !errors.Is(err, ErrUnsafe) {
				t.Fatalf("err %v, want ErrUnsafe", err)
			}
			if want := "unpack entry " + `"` + tt.entry + `"`; !strings.HasPrefix(err.Error(), want) {
				t.Errorf("err %q does not start with %q", err, want)
			}
			t.Log(err)
			s.checkContained(t)
		})
	}
}

func TestCleanName(t *testing.T) {
	for name, want := range map[string]string{
		"a":         "a",
		"./a/b/":    "a/b",
		"a/../b":    "b",
		"a//b/./c":  "a/b/c",
		".":         ".",
		"./":        ".",
		"a/b/../..": ".",
	} {
		if got, err := cleanName(name); err != nil || got != want {
			t.Errorf("cleanName(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	for _, name := range []string{"", "/", "/a", "..", "../a", "a/../..", "a/../../b", "a\x00b", strings.Repeat("a", maxNameLen+1)} {
		if got, err := cleanName(name); !errors.Is(err, ErrUnsafe) {
			t.Errorf("cleanName(%q) = %q, %v; want ErrUnsafe", name, got, err)
		}
	}
}

func TestSymlinkTargetCleaned(t *testing.T) {
	// "s/../x" written as is would climb out of wherever s points ("s" -> "."
	// makes it dst/..); cleaned, it is "x".
	s := newSandbox(t)
	_, err := Extract(context.Background(), bytes.NewReader(tarball(t, None,
		symlink("s", "."), symlink("e", "s/../sentinel"), symlink("d/u", "../x/./y/"))), s.dst, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"e": "sentinel", "d/u": "../x/y"} {
		if got, _ := os.Readlink(filepath.Join(s.dst, name)); got != want {
			t.Errorf("%s -> %q, want %q", name, got, want)
		}
	}
	s.checkContained(t)
}

func TestExtractPreexistingSymlinkOut(t *testing.T) {
	// A link out of dst that is already there (not made by Extract) is
	// neither followed nor written through.
	s := newSandbox(t)
	if err := os.Symlink(s.sentinel, filepath.Join(s.dst, "out")); err != nil {
		t.Fatal(err)
	}
	for _, e := range []ent{file("out/f", "x"), dir("out/d/"), symlink("out/l", "x"), hardlink("h", "out/f")} {
		_, err := Extract(context.Background(), bytes.NewReader(tarball(t, None, file("out/f", "x"), e)), s.dst, Options{})
		if !errors.Is(err, ErrUnsafe) {
			t.Errorf("%s: err %v, want ErrUnsafe", e.name, err)
		}
	}
	// Replacing the link itself is fine: the file takes its place.
	if _, err := Extract(context.Background(), bytes.NewReader(tarball(t, None, file("out", "x"))), s.dst, Options{}); err != nil {
		t.Fatal(err)
	}
	s.checkContained(t)
}

func TestExtractReplace(t *testing.T) {
	s := newSandbox(t)
	layers := [][]ent{
		{file("f", "old"), file("t", "target"), symlink("l", "t"), hardlink("h", "f")},
		{file("f", "new"), file("l", "replaced the link")},
	}
	for _, l := range layers {
		if _, err := Extract(context.Background(), bytes.NewReader(tarball(t, None, l...)), s.dst, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]string{"f": "new", "t": "target", "l": "replaced the link", "h": "old"} {
		if got := readFile(t, filepath.Join(s.dst, name)); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if fi, _ := os.Lstat(filepath.Join(s.dst, "l")); !fi.Mode().IsRegular() {
		t.Errorf("l: %v, want a regular file", fi.Mode())
	}
	s.checkContained(t)
}

func TestExtractLimits(t *testing.T) {
	big := strings.Repeat("x", 100)
	tests := []struct {
		name    string
		es      []ent
		opts    Options
		wantErr error
		absent  string // must not exist after
	}{
		{name: "header over budget", es: []ent{file("big", big)}, opts: Options{MaxBytes: 99}, wantErr: ErrTooLarge, absent: "big"},
		{name: "budget exact", es: []ent{file("big", big)}, opts: Options{MaxBytes: 100}},
		{name: "budget across files", es: []ent{file("a", big), file("b", big)}, opts: Options{MaxBytes: 150}, wantErr: ErrTooLarge, absent: "b"},
		{name: "hard link copies count", es: []ent{file("a", big), hardlink("b", "a")}, opts: Options{MaxBytes: 100}},
		{name: "entries", es: []ent{file("a", ""), file("b", ""), file("c", "")}, opts: Options{MaxEntries: 2}, wantErr: ErrTooLarge, absent: "c"},
		{name: "entries exact", es: []ent{file("a", ""), file("b", "")}, opts: Options{MaxEntries: 2}},
		{name: "implicit dirs count", es: []ent{file("a/b/c", "")}, opts: Options{MaxEntries: 2}, wantErr: ErrTooLarge, absent: "a/b"},
		{name: "ignored entries count", es: []ent{file("x", ""), file("y", ""), file("m/a", "")},
			opts: Options{Subdir: "m", MaxEntries: 2}, wantErr: ErrTooLarge},
		{name: "skipped bytes count", es: []ent{file("x", big), file("y", big), file("m/a", "")},
			opts: Options{Subdir: "m", MaxBytes: 150}, wantErr: ErrTooLarge},
		{name: "skipped bytes own budget", es: []ent{file("x", big), file("m/a", big)},
			opts: Options{Subdir: "m", MaxBytes: 100}},
		{name: "global headers count", es: []ent{{name: "g", typ: tar.TypeXGlobalHeader}, file("a", ""), file("b", "")},
			opts: Options{MaxEntries: 2}, wantErr: ErrTooLarge, absent: "b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			_, err := Extract(context.Background(), bytes.NewReader(tarball(t, None, tt.es...)), s.dst, tt.opts)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if tt.absent != "" && exists(filepath.Join(s.dst, tt.absent)) {
				t.Errorf("%s was written", tt.absent)
			}
			s.checkContained(t)
		})
	}
}

// lyingReader serves a tar header claiming a huge file and then fails the
// test if more than the header is read: the refusal must come first.
func TestExtractHugeHeaderRefusedBeforeReading(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	tw.WriteHeader(&tar.Header{Name: "huge", Typeflag: tar.TypeReg, Size: 1 << 40, Mode: 0o644})
	hdr := b.Bytes() // the header blocks (PAX, then ustar), no data
	s := newSandbox(t)
	r := io.MultiReader(bytes.NewReader(hdr), readerFunc(func([]byte) (int, error) {
		t.Error("data read after an over-budget header")
		return 0, io.ErrUnexpectedEOF
	}))
	_, err := Extract(context.Background(), r, s.dst, Options{MaxBytes: 1 << 30})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
	if exists(filepath.Join(s.dst, "huge")) {
		t.Error("huge was created")
	}
	s.checkContained(t)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestExtractWhiteouts(t *testing.T) {
	tests := []struct {
		name    string
		layers  [][]ent
		opts    Options
		present []string
		absent  []string
	}{
		{
			name: "whiteout",
			layers: [][]ent{
				{dir("a/"), file("a/b", "b"), file("a/c", "c"), dir("d/"), file("d/x", "x")},
				{file("a/.wh.b", ""), file(".wh.d", "")},
			},
			present: []string{"a/c"},
			absent:  []string{"a/b", "a/.wh.b", "d", ".wh.d"},
		},
		{
			name: "opaque",
			layers: [][]ent{
				{dir("a/"), file("a/x", "x"), dir("a/d/"), file("a/d/y", "y"), file("keep", "k")},
				{dir("a/"), dir("a/d/"), file("a/d/z", "z"), file("a/.wh..wh..opq", ""), file("a/new", "n")},
			},
			present: []string{"a/d/z", "a/new", "keep"},
			absent:  []string{"a/x", "a/d/y", "a/.wh..wh..opq"},
		},
		{
			name: "whiteout leaves this layer's entry",
			layers: [][]ent{
				{file("f", "old")},
				{file("f", "new"), file(".wh.f", "")},
			},
			present: []string{"f"},
		},
		{
			name: "file replaces dir",
			layers: [][]ent{
				{dir("d/"), file("d/x", "x")},
				{file("d", "now a file")},
			},
			present: []string{"d"},
			absent:  []string{"d/x"},
		},
		{
			name: "dir replaces file",
			layers: [][]ent{
				{file("d", "a file")},
				{dir("d/"), file("d/x", "x")},
			},
			present: []string{"d/x"},
		},
		{
			name: "whiteout of missing is fine",
			layers: [][]ent{
				{file("a", "a")},
				{file("nope/.wh.x", ""), file(".wh.nothing", ""), file(".wh..wh.plnk", "")},
			},
			present: []string{"a"},
			absent:  []string{"nope"},
		},
		{
			name: "whiteout of subdir empties dst",
			opts: Options{Subdir: "models/tiny"},
			layers: [][]ent{
				{file("models/tiny/old", "o")},
				{file("models/.wh.tiny", ""), file("models/tiny/new", "n"), file("models/.wh.unrelated", "")},
			},
			present: []string{"new"},
			absent:  []string{"old"},
		},
		{
			name: "without Whiteouts they are files",
			opts: Options{Whiteouts: false},
			layers: [][]ent{
				{file("a/b", "b")},
				{file("a/.wh.b", ""), file("a/.wh..wh..opq", "")},
			},
			present: []string{"a/b", "a/.wh.b", "a/.wh..wh..opq"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			opts := tt.opts
			if tt.name != "without Whiteouts they are files" {
				opts.Whiteouts = true
			}
			for i, l := range tt.layers {
				if _, err := Extract(context.Background(), bytes.NewReader(tarball(t, Zstd, l...)), s.dst,
					Options{Compression: Zstd, Subdir: opts.Subdir, Whiteouts: opts.Whiteouts}); err != nil {
					t.Fatalf("layer %d: %v", i, err)
				}
			}
			for _, p := range tt.present {
				if !exists(filepath.Join(s.dst, p)) {
					t.Errorf("%s missing", p)
				}
			}
			for _, p := range tt.absent {
				if exists(filepath.Join(s.dst, p)) {
					t.Errorf("%s present", p)
				}
			}
			s.checkContained(t)
		})
	}
}

func TestExtractCorrupt(t *testing.T) {
	plain := tarball(t, None, file("a", strings.Repeat("model ", 1000)), file("b", "b"))
	gz := compress(t, Gzip, plain)
	badCRC := bytes.Clone(gz)
	badCRC[len(badCRC)-8] ^= 0xff // the CRC-32 of the gzip trailer
	tests := []struct {
		name string
		c    Compression
		data []byte
	}{
		{"truncated gzip", Gzip, gz[:len(gz)/2]},
		{"gzip trailer cut", Gzip, gz[:len(gz)-4]},
		{"gzip bad checksum", Gzip, badCRC},
		{"gzip garbage", Gzip, []byte("this is not gzip at all")},
		{"empty gzip", Gzip, nil},
		{"garbage zstd", Zstd, bytes.Repeat([]byte("garbage!"), 100)},
		{"truncated zstd", Zstd, func() []byte { z := compress(t, Zstd, plain); return z[:len(z)-10] }()},
		{"truncated tar", None, plain[:1024]},
		{"garbage tar", None, bytes.Repeat([]byte("garbage!"), 100)},
		{"gzip of garbage", Gzip, compress(t, Gzip, bytes.Repeat([]byte("garbage!"), 100))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSandbox(t)
			_, err := Extract(context.Background(), bytes.NewReader(tt.data), s.dst, Options{Compression: tt.c})
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err %v, want ErrCorrupt", err)
			}
			t.Log(err)
			s.checkContained(t)
		})
	}
}

func TestExtractSourceError(t *testing.T) {
	boom := errors.New("connection reset")
	data := tarball(t, Gzip, file("a", strings.Repeat("x", 100000)))
	r := io.MultiReader(bytes.NewReader(data[:len(data)/2]), readerFunc(func([]byte) (int, error) { return 0, boom }))
	s := newSandbox(t)
	_, err := Extract(context.Background(), r, s.dst, Options{Compression: Gzip})
	if !errors.Is(err, boom) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("err %v, want the source's error and not ErrCorrupt", err)
	}
}

func TestExtractContext(t *testing.T) {
	t.Run("cancelled before", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		s := newSandbox(t)
		_, err := Extract(ctx, bytes.NewReader(tarball(t, None, file("a", "a"))), s.dst, Options{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
		if exists(filepath.Join(s.dst, "a")) {
			t.Error("a was written")
		}
	})
	t.Run("cancelled during a copy", func(t *testing.T) {
		// A gzip bomb of zeros: few compressed reads, so the check must be
		// in the copy loop too.
		data := tarball(t, Gzip, file("big", strings.Repeat("\x00", 16<<20)))
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		s := newSandbox(t)
		src := bytes.NewReader(data)
		reads := 0
		dr := readerFunc(func(p []byte) (int, error) {
			if reads++; reads == 3 {
				cancel()
			}
			return src.Read(p[:min(len(p), 1024)])
		})
		_, err := Extract(ctx, dr, s.dst, Options{Compression: Gzip})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
		if !strings.HasPrefix(err.Error(), `unpack entry "big"`) {
			t.Errorf("err %q does not name the entry", err)
		}
		if exists(filepath.Join(s.dst, "big")) {
			t.Error("a cancelled file was put in place")
		}
		s.checkContained(t)
	})
}

func TestExtractOptions(t *testing.T) {
	s := newSandbox(t)
	for _, o := range []Options{
		{Compression: "brotli"},
		{MaxBytes: -1},
		{MaxEntries: -1},
		{Subdir: "../x"},
		{Subdir: "a\x00"},
	} {
		if _, err := Extract(context.Background(), bytes.NewReader(nil), s.dst, o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	if _, err := Extract(context.Background(), bytes.NewReader(nil), filepath.Join(s.base, "missing"), Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing dst: %v", err)
	}
	// An empty plain stream is an empty archive.
	if st, err := Extract(context.Background(), bytes.NewReader(nil), s.dst, Options{}); err != nil || st != (Stats{}) {
		t.Errorf("empty: %+v, %v", st, err)
	}
}

func TestExtractStreamLimit(t *testing.T) {
	// archive/tar reads consecutive PAX headers without returning an entry;
	// repeated, they must still hit a limit.
	var one bytes.Buffer
	tw := tar.NewWriter(&one)
	tw.WriteHeader(&tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644, PAXRecords: map[string]string{"comment": "x"}, Format: tar.FormatPAX})
	tw.Close()
	pax := one.Bytes()[:1024] // the 'x' header block and its records
	if pax[156] != tar.TypeXHeader {
		t.Fatalf("type %q, want a PAX header", pax[156])
	}
	stream := append(bytes.Repeat(pax, 2000), one.Bytes()...)
	s := newSandbox(t)
	opts := Options{MaxBytes: 1, MaxEntries: 1}
	_, err := Extract(context.Background(), bytes.NewReader(stream), s.dst, opts)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
	// The same, short of the limit, is a valid archive.
	if _, err := Extract(context.Background(), bytes.NewReader(append(bytes.Repeat(pax, 10), one.Bytes()...)), s.dst, opts); err != nil {
		t.Fatal(err)
	}
	if !exists(filepath.Join(s.dst, "a")) {
		t.Error("a missing")
	}
}
