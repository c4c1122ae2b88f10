package testregistry_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/modelgate/modelgate/internal/testregistry"
)

// frontRepo opens repo through the counting front with a client the test owns.
func frontRepo(t *testing.T, reg *testregistry.Registry, client *http.Client, repo string) *remote.Repository {
	t.Helper()
	r, err := remote.NewRepository(reg.Host() + "/" + repo)
	if err != nil {
		t.Fatalf("open repository: %v", err)
	}
	r.PlainHTTP = true
	r.Client = client
	return r
}

func TestRegistry(t *testing.T) {
	reg := testregistry.Start(t)
	client := &http.Client{Transport: &http.Transport{}}
	t.Cleanup(client.CloseIdleConnections)
	ctx := t.Context()

	layers := []testregistry.Layer{
		{Title: "config.json", MediaType: "application/json", Data: []byte(`{"dim":8}`)},
		{Title: "weights.bin", Data: bytes.Repeat([]byte{0xAB}, 1<<20)},
	}
	manifest := reg.Push(t, "models/tiny", "v1", layers)
	if n := len(reg.Requests()); n != 0 {
		t.Fatalf("Push went through the front: %d requests recorded", n)
	}

	repo := frontRepo(t, reg, client, "models/tiny")
	t.Run("copy through front", func(t *testing.T) {
		reg.ResetRequests()
		store := memory.New()
		got, err := oras.Copy(ctx, repo, "v1", store, "v1", oras.DefaultCopyOptions)
		if err != nil {
			t.Fatalf("copy: %v", err)
		}
		if got.Digest != manifest.Digest {
			t.Fatalf("copied manifest %s, pushed %s", got.Digest, manifest.Digest)
		}
		mb, err := content.FetchAll(ctx, store, got)
		if err != nil {
			t.Fatalf("fetch manifest: %v", err)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(mb, &m); err != nil {
			t.Fatalf("decode manifest: %v", err)
		}
		if m.ArtifactType != testregistry.DefaultArtifactType || m.Config.MediaType != ocispec.MediaTypeEmptyJSON {
			t.Errorf("artifactType %q config %q", m.ArtifactType, m.Config.MediaType)
		}
		if len(m.Layers) != len(layers) {
			t.Fatalf("manifest has %d layers, want %d", len(m.Layers), len(layers))
		}
		for i, l := range m.Layers {
			if title := l.Annotations[ocispec.AnnotationTitle]; title != layers[i].Title {
				t.Errorf("layer %d title %q, want %q", i, title, layers[i].Title)
			}
			data, err := content.FetchAll(ctx, store, l)
			if err != nil {
				t.Fatalf("fetch layer %d: %v", i, err)
			}
			if !bytes.Equal(data, layers[i].Data) {
				t.Errorf("layer %d bytes differ", i)
			}
			if n := reg.Count("GET", "/blobs/"+l.Digest.String()); n != 1 {
				t.Errorf("layer %d fetched %d times through the front, want 1", i, n)
			}
			disk, err := os.ReadFile(reg.BlobDataPath(l.Digest))
			if err != nil || !bytes.Equal(disk, layers[i].Data) {
				t.Errorf("BlobDataPath(layer %d): err %v, equal %v", i, err, bytes.Equal(disk, layers[i].Data))
			}
		}
		for _, q := range reg.Requests() {
			if q.Status != http.StatusOK {
				t.Errorf("request %+v: want status 200", q)
			}
		}
	})

	t.Run("tag", func(t *testing.T) {
		reg.Tag(t, "models/tiny", manifest.Digest, "latest")
		got, err := repo.Resolve(ctx, "latest")
		if err != nil || got.Digest != manifest.Digest {
			t.Fatalf("resolve latest: %v, %s want %s", err, got.Digest, manifest.Digest)
		}
	})

	t.Run("upload through front", func(t *testing.T) {
		data := []byte("uploaded via the front")
		d := content.NewDescriptorFromBytes("application/octet-stream", data)
		if err := repo.Blobs().Push(ctx, d, bytes.NewReader(data)); err != nil {
			t.Fatalf("push blob via front: %v", err)
		}
		if n := reg.Count("POST", "/blobs/uploads/"); n != 1 {
			t.Errorf("upload POSTs counted %d, want 1", n)
		}
	})

	t.Run("stop", func(t *testing.T) {
		reg.Stop()
		reg.Stop() // idempotent
		for _, host := range []string{reg.Host(), reg.DirectHost()} {
			resp, err := client.Get("http://" + host + "/v2/")
			if err == nil {
				resp.Body.Close()
				t.Errorf("GET %s/v2/ after Stop: status %d, want error", host, resp.StatusCode)
			}
		}
	})
}
