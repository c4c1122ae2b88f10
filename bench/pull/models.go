package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
)

// model is one artifact in the registry.
type model struct {
	name  string // "single", "layers": the row label and the modelgate model name
	repo  string // repository in the registry
	files int    // layers
	bytes int64  // bytes of all layers: what a pull must download and write
}

// describe is the model's shape for the report, e.g. "1 x 2 GiB".
func (m model) describe() string {
	return fmt.Sprintf("%d x %s", m.files, formatBytes(m.bytes/int64(m.files)))
}

// makeModels writes the two models of cfg under dir from random bytes,
// pushes them to the registry at host with modelgate push and deletes the
// files again. The registry keeps the only copy.
func makeModels(ctx context.Context, cfg benchConfig, dir, host string) ([]model, error) {
	models := []model{
		{name: "single", repo: "bench/single", files: 1, bytes: cfg.single},
		{name: "layers", repo: "bench/layers", files: cfg.layers, bytes: int64(cfg.layers) * cfg.layerSize},
	}
	for i, m := range models {
		src := filepath.Join(dir, m.name)
		if err := os.MkdirAll(src, 0o755); err != nil {
			return nil, fmt.Errorf("make model %s: %w", m.name, err)
		}
		for f := range m.files {
			name := "model.bin"
			if m.files > 1 {
				name = fmt.Sprintf("model-%05d-of-%05d.bin", f+1, m.files)
			}
			seed := uint64(i)<<32 | uint64(f)
			if err := writeRandom(ctx, filepath.Join(src, name), m.bytes/int64(m.files), seed); err != nil {
				return nil, fmt.Errorf("make model %s: %w", m.name, err)
			}
		}
		fmt.Fprintf(os.Stderr, "pushing %s (%s) to %s/%s:v1\n", m.name, m.describe(), host, m.repo)
		_, err := runChild(ctx, cfg.pullTimeout, dir, cfg.modelgate,
			"push", "--plain-http", "--progress", "none", "--log-level", "warn", src, host+"/"+m.repo+":v1")
		if err != nil {
			return nil, fmt.Errorf("push model %s: %w", m.name, err)
		}
		if err := os.RemoveAll(src); err != nil {
			return nil, fmt.Errorf("make model %s: %w", m.name, err)
		}
	}
	return models, nil
}

// writeRandom writes size pseudo-random bytes (ChaCha8 from seed:
// incompressible, reproducible, about 1 GB/s) to path, 1 MiB at a time.
func writeRandom(ctx context.Context, path string, size int64, seed uint64) error {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	rng := rand.NewChaCha8(key)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		if err := ctx.Err(); err != nil {
			f.Close()
			return err
		}
		n := min(left, int64(len(buf)))
		_, _ = rng.Read(buf[:n]) // never fails
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		left -= n
	}
	return f.Close()
}
