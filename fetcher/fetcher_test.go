package fetcher_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/internal/testregistry"
	"github.com/modelgate/modelgate/oci"
)

func newFetcher(t *testing.T, reg *testregistry.Registry, opts fetcher.Options) (*fetcher.Fetcher, *cache.Cache) {
	t.Helper()
	c, err := cache.Open(t.TempDir(), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	opts.Client = oci.NewClient(oci.ClientOptions{PlainHTTP: map[string]bool{reg.Host(): true}, Logger: opts.Logger})
	return fetcher.New(c, opts), c
}

func TestPullSharesBlobsAcrossModels(t *testing.T) {
	reg := testregistry.Start(t)
	shared := []byte("tokenizer shared by a model family")
	one := reg.Push(t, "family/small", "v1", []testregistry.Layer{{Title: "tokenizer.json", Data: shared}, {Title: "small.gguf", Data: []byte("small weights, larger than the tokenizer file")}})
	reg.Push(t, "family/large", "v1", []testregistry.Layer{{Title: "tokenizer.json", Data: shared}, {Title: "large.gguf", Data: []byte("the large weights, larger than the tokenizer file")}})
	f, c := newFetcher(t, reg, fetcher.Options{})
	ctx := context.Background()

	small, err := f.Pull(ctx, reg.Host()+"/family/small:v1")
	if err != nil {
		t.Fatal(err)
	}
	if small.Model.Digest != one.Digest || small.Model.MainFile != "small.gguf" {
		t.Errorf("pulled %+v", small.Model)
	}
	large, err := f.Pull(ctx, reg.Host()+"/family/large:v1")
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len("the large weights, larger than the tokenizer file")); large.Downloaded != want {
		t.Errorf("second model downloaded %d bytes, want only its own weights (%d)", large.Downloaded, want)
	}
	if n := reg.Count("GET", "/blobs/"+digest.FromBytes(shared).String()); n != 1 {
		t.Errorf("shared blob downloaded %d times", n)
	}
	a, _ := os.Stat(filepath.Join(small.Model.Dir, "tokenizer.json"))
	b, _ := os.Stat(filepath.Join(large.Model.Dir, "tokenizer.json"))
	if a == nil || b == nil || !os.SameFile(a, b) {
		t.Error("shared file is not one blob on disk")
	}
	if _, err := c.Model(large.Model.Digest); err != nil {
		t.Errorf("model not recorded: %v", err)
	}
}

func TestPullByCachedDigestNeedsNoRegistry(t *testing.T) {
	reg := testregistry.Start(t)
	desc := reg.Push(t, "models/tiny", "v1", []testregistry.Layer{{Title: "m.bin", Data: []byte("w")}})
	f, _ := newFetcher(t, reg, fetcher.Options{})
	ref := reg.Host() + "/models/tiny@" + desc.Digest.String()
	if _, err := f.Pull(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	reg.Stop()
	res, err := f.Pull(context.Background(), ref)
	if err != nil {
		t.Fatalf("pull of a cached digest with the registry down: %v", err)
	}
	if res.Downloaded != 0 || res.Model.Digest != desc.Digest {
		t.Errorf("got %+v", res)
	}
	if _, err := f.Pull(context.Background(), reg.Host()+"/models/tiny:v1"); !errors.Is(err, fetcher.ErrUnreachable) {
		t.Errorf("pull of a tag with the registry down = %v, want ErrUnreachable", err)
	}
}

func TestPullRefusesWhatItCannotLayOut(t *testing.T) {
	reg := testregistry.Start(t)
	reg.Push(t, "models/big-manifest", "v1", []testregistry.Layer{{Title: "m.bin", Data: []byte("w"), Annotations: map[string]string{"pad": string(make([]byte, 2000))}}})
	reg.Push(t, "models/untitled", "v1", []testregistry.Layer{{Title: "", Data: []byte("w")}})
	reg.Push(t, "models/escape", "v1", []testregistry.Layer{{Title: "../../etc/cron.d/x", Data: []byte("w")}})
	f, c := newFetcher(t, reg, fetcher.Options{MaxManifestBytes: 1024})
	for ref, want := range map[string]error{
		"models/big-manifest:v1": fetcher.ErrManifestTooLarge,
		"models/untitled:v1":     fetcher.ErrUnsupported,
		"models/escape:v1":       cache.ErrUnsafePath,
		"models/absent:v1":       fetcher.ErrNotFound,
	} {
		reg.ResetRequests()
		_, err := f.Pull(context.Background(), reg.Host()+"/"+ref)
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", ref, err, want)
		}
		if n := reg.Count("GET", "/blobs/"); n != 0 {
			t.Errorf("%s: refused pull downloaded %d blobs", ref, n)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(c.Root(), "models", "sha256")); len(entries) != 0 {
		t.Errorf("refused pulls left models: %v", entries)
	}
}
