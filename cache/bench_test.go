package cache_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/cache"
)

// fillCache commits n small models (one blob of their own each) under dir,
// without fsync, and returns their digests.
func fillCache(b *testing.B, dir string, n int) []digest.Digest {
	b.Helper()
	c, err := cache.Open(dir, cache.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	var out []digest.Digest
	for i := range n {
		data := fmt.Appendf(nil, "weights of model %d", i)
		d := digest.FromBytes(data)
		if err := c.WriteBlob(b.Context(), d, int64(len(data)), bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		md := digest.FromString(fmt.Sprintf("manifest %d", i))
		if _, err := c.Commit(b.Context(), md, fmt.Sprintf("127.0.0.1:5000/models/m%d:v1", i),
			[]cache.Entry{{Digest: d, Size: int64(len(data)), Path: "model.gguf"}}, "model.gguf"); err != nil {
			b.Fatal(err)
		}
		out = append(out, md)
	}
	return out
}

// BenchmarkCacheHit measures the hit path of a cold start whose model is on
// disk (the fetcher's Lookup: model directory ready to hand to a runtime),
// beside reading the model's record from disk (Model, the path before the
// index), and a stat of its directory (the floor: one system call).
func BenchmarkCacheHit(b *testing.B) {
	dir := b.TempDir()
	ds := fillCache(b, dir, 100)
	c, err := cache.Open(dir, cache.Options{})
	if err != nil {
		b.Fatal(err)
	}
	d := ds[42]
	b.Run("lookup", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Lookup(d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("record", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.Model(d); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("stat", func(b *testing.B) {
		p := filepath.Join(dir, "models", "sha256", d.Encoded())
		for b.Loop() {
			if _, err := os.Stat(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkOpen measures opening a cache that holds 1,000 models (their
// records read, their order of use loaded, leftovers checked) beside an
// empty one.
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{0, 1000} {
		dir := b.TempDir()
		fillCache(b, dir, n)
		b.Run(fmt.Sprintf("models=%d", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := cache.Open(dir, cache.Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
