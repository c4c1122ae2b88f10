package unpack

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// Fuzz mode bits: the compression (0-1), Whiteouts, Subdir "m", and a
// second pass of the same archive as a later layer.
const (
	fuzzCompression = 0b11
	fuzzWhiteouts   = 1 << 2
	fuzzSubdir      = 1 << 3
	fuzzTwice       = 1 << 4
)

// FuzzExtract asserts that Extract never panics and that, whatever it
// returns, nothing exists outside dst and every path in dst resolves inside
// it.
func FuzzExtract(f *testing.F) {
	seeds := [][]ent{
		{dir("a/"), file("a/b", "b"), symlink("a/l", "b"), hardlink("a/h", "a/b")},
		{file("../sentinel/x", "x")},
		{file("a/../../sentinel/x", "x")},
		{symlink("l", "../sentinel"), file("l/x", "x")},
		{symlink("l", "."), symlink("e", "l/../sentinel"), file("e/x", "x")},
		{symlink("l", "."), file("l/x", "x"), dir("l/d/"), hardlink("l/h", "x")},
		{symlink("in/l", "../../sentinel")},
		{file("in/x", "through the pre-existing link")},
		{dir("d/"), file("d/x", "x"), file("d", "file over dir"), dir("d/")},
		{file("a/x", "x"), file("a/.wh.x", ""), file("a/.wh..wh..opq", ""), file(".wh.a", "")},
		{file("m/x", "x"), symlink("m/up", "../x"), hardlink("m/h", "x"), file("m/.wh..wh..opq", "")},
		{hardlink("h", "/etc/passwd"), {name: "dev", typ: tar.TypeChar}, {name: "fifo", typ: tar.TypeFifo}},
	}
	for i, es := range seeds {
		for _, c := range []Compression{None, Gzip, Zstd} {
			mode := uint8(i) &^ fuzzCompression
			switch c {
			case Gzip:
				mode |= 1
			case Zstd:
				mode |= 2
			}
			f.Add(tarball(f, c, es...), mode)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		opts := Options{
			Compression: []Compression{None, Gzip, Zstd, None}[mode&fuzzCompression],
			Whiteouts:   mode&fuzzWhiteouts != 0,
			MaxBytes:    1 << 20,
			MaxEntries:  1000,
		}
		if mode&fuzzSubdir != 0 {
			opts.Subdir = "m"
		}
		s := newSandbox(t)
		// A link already in dst, pointing inside: entries through it must
		// be refused all the same.
		if err := os.Symlink(".", filepath.Join(s.dst, "in")); err != nil {
			t.Fatal(err)
		}
		passes := 1
		if mode&fuzzTwice != 0 {
			passes = 2
		}
		for range passes {
			_, _ = Extract(context.Background(), bytes.NewReader(data), s.dst, opts)
		}
		s.checkContained(t)
	})
}
