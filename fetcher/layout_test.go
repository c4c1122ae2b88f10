package fetcher_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/fetcher"
)

// writeLayout writes a ModelPack-like artifact with files into a new OCI
// image layout (oras-go's store, as `oras copy --to-oci-layout` writes
// one) tagged tag, and returns the layout directory and the manifest.
func writeLayout(t *testing.T, tag string, files map[string][]byte) (string, ocispec.Descriptor) {
	t.Helper()
	ctx := t.Context()
	dir := t.TempDir()
	store, err := oci.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	var layers []ocispec.Descriptor
	for name, data := range files {
		d := content.NewDescriptorFromBytes("application/vnd.cncf.model.weight.v1.raw", data)
		d.Annotations = map[string]string{"org.cncf.model.filepath": name, ocispec.AnnotationTitle: name}
		if err := store.Push(ctx, d, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		layers = append(layers, d)
	}
	m, err := oras.PackManifest(ctx, store, oras.PackManifestVersion1_1, "application/vnd.cncf.model.manifest.v1+json", oras.PackManifestOptions{Layers: layers})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Tag(ctx, m, tag); err != nil {
		t.Fatal(err)
	}
	return dir, m
}

func newLayoutFetcher(t *testing.T) *fetcher.Fetcher {
	t.Helper()
	c, err := cache.Open(t.TempDir(), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return fetcher.New(c, fetcher.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func TestPullLayout(t *testing.T) {
	files := map[string][]byte{
		"model.safetensors": []byte("weights from an air-gapped layout, the largest file"),
		"tokenizer.json":    []byte(`{"vocab":{}}`),
	}
	dir, m := writeLayout(t, "v1", files)
	ctx := context.Background()

	for _, ref := range []string{"oci-layout://" + dir + ":v1", "oci-layout://" + dir + "@" + m.Digest.String()} {
		t.Run(ref[strings.LastIndexAny(ref, ":@"):], func(t *testing.T) {
			f := newLayoutFetcher(t)
			desc, err := f.Resolve(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if desc.Digest != m.Digest {
				t.Errorf("resolved %s, want %s", desc.Digest, m.Digest)
			}
			res, err := f.Pull(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if res.Model.Digest != m.Digest || res.Format != fetcher.FormatModelPack || res.Model.MainFile != "model.safetensors" {
				t.Errorf("pulled %+v, format %q", res.Model, res.Format)
			}
			var total int64
			for name, want := range files {
				total += int64(len(want))
				got, err := os.ReadFile(filepath.Join(res.Model.Dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if res.Downloaded != total {
				t.Errorf("copied %d bytes, want %d", res.Downloaded, total)
			}
			again, err := f.Pull(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if again.Downloaded != 0 || again.Model.Dir != res.Model.Dir {
				t.Errorf("second pull copied %d bytes into %s", again.Downloaded, again.Model.Dir)
			}
		})
	}
}

func TestPullLayoutNotFound(t *testing.T) {
	dir, _ := writeLayout(t, "v1", map[string][]byte{"model.gguf": []byte("gguf")})
	missing := filepath.Join(t.TempDir(), "nowhere")
	notLayout := t.TempDir()
	for name, ref := range map[string]string{
		"tag":        "oci-layout://" + dir + ":v2",
		"digest":     "oci-layout://" + dir + "@sha256:" + strings.Repeat("0", 64),
		"dir":        "oci-layout://" + missing + ":v1",
		"not layout": "oci-layout://" + notLayout + ":v1",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := newLayoutFetcher(t).Pull(context.Background(), ref)
			if !errors.Is(err, fetcher.ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
			if want := ref[len("oci-layout://"):strings.LastIndexAny(ref, ":@")]; !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v, want it to name %s", err, want)
			}
		})
	}
}

func TestPullLayoutCorruptBlob(t *testing.T) {
	data := []byte("weights that will be altered on disk")
	dir, _ := writeLayout(t, "v1", map[string][]byte{"model.gguf": data})
	blob := filepath.Join(dir, "blobs", "sha256", content.NewDescriptorFromBytes("", data).Digest.Encoded())
	if err := os.WriteFile(blob, bytes.ToUpper(data), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := newLayoutFetcher(t).Pull(context.Background(), "oci-layout://"+dir+":v1")
	if !errors.Is(err, cache.ErrDigestMismatch) {
		t.Fatalf("err = %v, want ErrDigestMismatch", err)
	}
}

func TestPullLayoutRelativePath(t *testing.T) {
	_, err := newLayoutFetcher(t).Pull(context.Background(), "oci-layout://models/tiny:v1")
	if err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Fatalf("err = %v, want a refusal of the relative path", err)
	}
}
