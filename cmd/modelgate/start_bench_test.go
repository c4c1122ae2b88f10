package main

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/cache"
)

// BenchmarkServeStart measures a gateway's start: from exec of
// `modelgate serve` to its first 200 on /healthz (config read, cache opened
// and checked, listener up), with 1,000 models in the cache beside an empty
// cache. Each start is stopped with SIGTERM before the next.
func BenchmarkServeStart(b *testing.B) {
	bin := filepath.Join(b.TempDir(), "modelgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	for _, n := range []int{0, 1000} {
		dir := filepath.Join(b.TempDir(), "cache")
		fillModels(b, dir, n)
		b.Run(fmt.Sprintf("models=%d", n), func(b *testing.B) {
			for b.Loop() {
				startAndStop(b, bin, dir)
			}
		})
	}
}

// fillModels commits n small models into the cache at dir.
func fillModels(b *testing.B, dir string, n int) {
	b.Helper()
	c, err := cache.Open(dir, cache.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
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
	}
}

// startAndStop runs `modelgate serve` on cacheDir until /healthz answers
// 200, then stops it with SIGTERM and waits for it.
func startAndStop(b *testing.B, bin, cacheDir string) {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cfg := filepath.Join(b.TempDir(), "modelgate.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `listen: %s
models:
  - {name: tiny, ref: "127.0.0.1:5000/models/m0:v1", runtime: rt}
runtimes:
  rt: {command: ["true"]}
cache: {dir: %s}
`, addr, cacheDir), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", "--config", cfg, "--log-level", "warn")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("modelgate serve on %s never answered 200", addr)
		}
		time.Sleep(time.Millisecond)
	}
}
