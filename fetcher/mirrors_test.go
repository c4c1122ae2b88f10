package fetcher_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/internal/testregistry"
	"github.com/modelgate/modelgate/oci"
)

// mirrorModel is the artifact the mirror tests pull: a tokenizer and weights.
var mirrorModel = []testregistry.Layer{
	{Title: "tokenizer.json", Data: []byte(`{"vocab": "mirrored"}`)},
	{Title: "model.gguf", Data: []byte("weights served by a mirror or its upstream")},
}

// pushModel pushes mirrorModel to models/tiny:v1 on reg as a manifest that
// is byte for byte the same on every registry (Push stamps a creation time),
// and returns its descriptor.
func pushModel(t *testing.T, reg *testregistry.Registry) ocispec.Descriptor {
	t.Helper()
	config := reg.PushBlob(t, "models/tiny", ocispec.MediaTypeEmptyJSON, []byte("{}"))
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: testregistry.DefaultArtifactType,
		Config:       config,
	}
	m.SchemaVersion = 2
	for _, l := range mirrorModel {
		d := reg.PushBlob(t, "models/tiny", "application/octet-stream", l.Data)
		d.Annotations = map[string]string{ocispec.AnnotationTitle: l.Title}
		m.Layers = append(m.Layers, d)
	}
	return reg.PushManifest(t, "models/tiny", "v1", ocispec.MediaTypeImageManifest, m)
}

// newMirroredFetcher returns a fetcher whose client tries mirror before
// upstream (both plain HTTP), logging into log.
func newMirroredFetcher(t *testing.T, upstream, mirror string, log io.Writer) *fetcher.Fetcher {
	t.Helper()
	c, err := cache.Open(t.TempDir(), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(log, nil))
	client := oci.NewClient(oci.ClientOptions{
		PlainHTTP: map[string]bool{upstream: true, mirror: true},
		Mirrors:   map[string][]string{upstream: {mirror}},
		Logger:    logger,
	})
	return fetcher.New(c, fetcher.Options{Client: client, Logger: logger})
}

// closedPort returns a 127.0.0.1 address that nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// checkPulled checks that res is mirrorModel as desc and that the cache
// records the upstream reference.
func checkPulled(t *testing.T, res *fetcher.Result, desc ocispec.Descriptor, ref string) {
	t.Helper()
	if res.Model.Digest != desc.Digest {
		t.Fatalf("pulled %s, want %s", res.Model.Digest, desc.Digest)
	}
	for _, l := range mirrorModel {
		got, err := os.ReadFile(filepath.Join(res.Model.Dir, l.Title))
		if err != nil || !bytes.Equal(got, l.Data) {
			t.Errorf("%s = %q, %v", l.Title, got, err)
		}
	}
	if !slices.Equal(res.Model.Refs, []string{ref}) {
		t.Errorf("recorded refs %q, want the upstream reference %q", res.Model.Refs, ref)
	}
}

func TestPullFromEmptyMirrorFallsThroughToUpstream(t *testing.T) {
	upstream, mirror := testregistry.Start(t), testregistry.Start(t)
	desc := pushModel(t, upstream)
	var log bytes.Buffer
	f := newMirroredFetcher(t, upstream.Host(), mirror.Host(), &log)
	ref := upstream.Host() + "/models/tiny:v1"

	res, err := f.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	checkPulled(t, res, desc, ref)
	if n := mirror.Count("", "/manifests/v1"); n != 1 {
		t.Errorf("mirror was asked for the tag %d times, want 1 (HEAD, 404)", n)
	}
	if n := mirror.Count("", "/blobs/"); n != 0 {
		t.Errorf("mirror without the manifest was asked for %d blobs", n)
	}
	if n := upstream.Count("GET", "/blobs/"); n != len(mirrorModel) {
		t.Errorf("upstream served %d blobs, want %d", n, len(mirrorModel))
	}
	if !strings.Contains(log.String(), "registry mirror skipped") || !strings.Contains(log.String(), "mirror="+mirror.Host()) {
		t.Errorf("skipped mirror not logged:\n%s", log.String())
	}
}

func TestPullFromMirrorNeedsNoUpstream(t *testing.T) {
	upstream, mirror := testregistry.Start(t), testregistry.Start(t)
	desc := pushModel(t, upstream)
	if d := pushModel(t, mirror); d.Digest != desc.Digest {
		t.Fatalf("mirror's manifest %s differs from upstream's %s", d.Digest, desc.Digest)
	}
	f := newMirroredFetcher(t, upstream.Host(), mirror.Host(), io.Discard)
	ref := upstream.Host() + "/models/tiny:v1"
	res, err := f.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	checkPulled(t, res, desc, ref)
	if n := len(upstream.Requests()); n != 0 {
		t.Errorf("upstream got %d requests: %v", n, upstream.Requests())
	}

	upstream.Stop()
	for name, ref := range map[string]string{"tag": ref, "digest": upstream.Host() + "/models/tiny@" + desc.Digest.String()} {
		t.Run(name+" with the upstream down", func(t *testing.T) {
			got, err := f.Resolve(context.Background(), ref)
			if err != nil || got.Digest != desc.Digest {
				t.Fatalf("resolve = %s, %v", got.Digest, err)
			}
		})
	}
}

func TestPullSkipsUnreachableMirror(t *testing.T) {
	upstream := testregistry.Start(t)
	desc := pushModel(t, upstream)
	down := closedPort(t)
	var log bytes.Buffer
	f := newMirroredFetcher(t, upstream.Host(), down, &log)
	ref := upstream.Host() + "/models/tiny:v1"

	res, err := f.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	checkPulled(t, res, desc, ref)
	if !strings.Contains(log.String(), "mirror="+down) || !strings.Contains(log.String(), "level=WARN") {
		t.Errorf("unreachable mirror not logged as a warning:\n%s", log.String())
	}
}

func TestPullTakesBlobMissingFromMirrorFromUpstream(t *testing.T) {
	upstream, mirror := testregistry.Start(t), testregistry.Start(t)
	desc := pushModel(t, upstream)
	pushModel(t, mirror)
	// The registry refuses a manifest whose blobs are absent: unlink the
	// weights from the mirror's repository after the push instead.
	weights := digest.FromBytes(mirrorModel[1].Data)
	link := filepath.Join(mirror.StorageDir(), "docker", "registry", "v2", "repositories", "models", "tiny", "_layers", "sha256", weights.Encoded(), "link")
	if err := os.Remove(link); err != nil {
		t.Fatal(err)
	}
	f := newMirroredFetcher(t, upstream.Host(), mirror.Host(), io.Discard)
	ref := upstream.Host() + "/models/tiny:v1"

	res, err := f.Pull(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	checkPulled(t, res, desc, ref)
	tokenizer := digest.FromBytes(mirrorModel[0].Data)
	for _, c := range []struct {
		reg     *testregistry.Registry
		name    string
		d       digest.Digest
		want    int
		allowed string
	}{
		{mirror, "mirror", tokenizer, 1, "serves the tokenizer"},
		{upstream, "upstream", tokenizer, 0, "is not asked for the tokenizer"},
		{mirror, "mirror", weights, 1, "is asked for the weights (404)"},
		{upstream, "upstream", weights, 1, "serves the weights"},
		{upstream, "upstream", "manifests", 0, "is not asked for the manifest"},
	} {
		if n := c.reg.Count("GET", string(c.d)); n != c.want {
			t.Errorf("%s %s: %d GETs, want %d", c.name, c.allowed, n, c.want)
		}
	}
}
