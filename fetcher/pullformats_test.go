package fetcher_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/file"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/internal/testregistry"
)

// TestPullORASDirectoryLaysOutWhatOrasPulls: a directory pushed the way
// `oras push dir/` does (a tar+gzip layer to unpack) and a plain file come
// out of modelgate's pull exactly as they went in.
func TestPullORASDirectoryLaysOutWhatOrasPulls(t *testing.T) {
	ctx := context.Background()
	reg := testregistry.Start(t)
	src := t.TempDir()
	files := map[string]string{
		"tok/tokenizer.json": `{"v":1}`,
		"tok/sub/merges.txt": "a b",
		"weights.gguf":       "GGUF weights, the largest file of this artifact",
	}
	for name, data := range files {
		p := filepath.Join(src, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	store, err := file.New(src)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dir, err := store.Add(ctx, "tok", "", filepath.Join(src, "tok"))
	if err != nil {
		t.Fatal(err)
	}
	weights, err := store.Add(ctx, "weights.gguf", "", filepath.Join(src, "weights.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := oras.PackManifest(ctx, store, oras.PackManifestVersion1_1, "application/vnd.example.model", oras.PackManifestOptions{Layers: []ocispec.Descriptor{dir, weights}})
	if err != nil {
		t.Fatal(err)
	}
	store.Tag(ctx, m, "v1")
	dst, _ := remote.NewRepository(reg.Host() + "/oras/dir")
	dst.PlainHTTP = true
	if _, err := oras.Copy(ctx, store, "v1", dst, "v1", oras.DefaultCopyOptions); err != nil {
		t.Fatal(err)
	}

	f, _ := newFetcher(t, reg, fetcher.Options{})
	res, err := f.Pull(ctx, reg.Host()+"/oras/dir:v1")
	if err != nil {
		t.Fatal(err)
	}
	if res.Format != "oras" || res.Model.MainFile != "weights.gguf" {
		t.Errorf("format %q, main file %q", res.Format, res.Model.MainFile)
	}
	if got := readTree(t, res.Model.Dir); !equalMaps(got, files) {
		t.Errorf("laid out %v, want %v", got, files)
	}
}

// TestPullModelcarImageTakesModelsDirWithWhiteouts: an image whose second
// layer deletes a file of the first; only /models is laid out.
func TestPullModelcarImageTakesModelsDirWithWhiteouts(t *testing.T) {
	reg := testregistry.Start(t)
	base := tarGzip(t, map[string]string{
		"etc/passwd":                "root:x:0:0",
		"models/model.safetensors":  "the weights, the largest file of the model",
		"models/old-checkpoint.bin": "stale",
		"models/config.json":        "{}",
	})
	top := tarGzip(t, map[string]string{
		"models/.wh.old-checkpoint.bin": "",
		"models/README.md":              "read me",
	})
	layers := []ocispec.Descriptor{
		reg.PushBlob(t, "kserve/modelcar", ocispec.MediaTypeImageLayerGzip, base),
		reg.PushBlob(t, "kserve/modelcar", ocispec.MediaTypeImageLayerGzip, top),
	}
	config := reg.PushBlob(t, "kserve/modelcar", ocispec.MediaTypeImageConfig, []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	manifest := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: layers}
	manifest.SchemaVersion = 2
	reg.PushManifest(t, "kserve/modelcar", "v1", ocispec.MediaTypeImageManifest, manifest)

	f, _ := newFetcher(t, reg, fetcher.Options{})
	res, err := f.Pull(context.Background(), reg.Host()+"/kserve/modelcar:v1")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"model.safetensors": "the weights, the largest file of the model",
		"config.json":       "{}",
		"README.md":         "read me",
	}
	if got := readTree(t, res.Model.Dir); !equalMaps(got, want) {
		t.Errorf("laid out %v, want %v", got, want)
	}
	if res.Format != "image" || res.Model.MainFile != "model.safetensors" {
		t.Errorf("format %q, main file %q", res.Format, res.Model.MainFile)
	}
}

func tarGzip(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// readTree maps every regular file under dir (slash paths) to its content.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
