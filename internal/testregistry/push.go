package testregistry

import (
	"bytes"
	"maps"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"
)

// DefaultArtifactType is the artifactType of manifests pushed by Push.
const DefaultArtifactType = "application/vnd.modelgate.test.v1"

// Layer is one file of an artifact pushed by Push.
type Layer struct {
	Title       string // org.opencontainers.image.title annotation
	MediaType   string // default application/octet-stream
	Data        []byte
	Annotations map[string]string // extra annotations; Title wins over a title here
}

// Push pushes an OCI 1.1 artifact of type DefaultArtifactType with an empty
// config and one layer per Layer to repo (e.g. "models/tiny") directly on the
// registry, bypassing the front's counters, and tags it tag. It returns the
// manifest descriptor and fails the test on error.
func (r *Registry) Push(t testing.TB, repo, tag string, layers []Layer) ocispec.Descriptor {
	t.Helper()
	return r.PushArtifact(t, repo, tag, DefaultArtifactType, layers)
}

// PushArtifact is Push with an explicit artifactType.
func (r *Registry) PushArtifact(t testing.TB, repo, tag, artifactType string, layers []Layer) ocispec.Descriptor {
	t.Helper()
	ctx := t.Context()
	dst := r.directRepo(t, repo)
	descs := make([]ocispec.Descriptor, 0, len(layers))
	for _, l := range layers {
		mt := l.MediaType
		if mt == "" {
			mt = "application/octet-stream"
		}
		d := content.NewDescriptorFromBytes(mt, l.Data)
		d.Annotations = maps.Clone(l.Annotations)
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[ocispec.AnnotationTitle] = l.Title
		if err := dst.Push(ctx, d, bytes.NewReader(l.Data)); err != nil {
			t.Fatalf("push layer %q to %s: %v", l.Title, repo, err)
		}
		descs = append(descs, d)
	}
	m, err := oras.PackManifest(ctx, dst, oras.PackManifestVersion1_1, artifactType,
		oras.PackManifestOptions{Layers: descs})
	if err != nil {
		t.Fatalf("push manifest to %s: %v", repo, err)
	}
	if err := dst.Tag(ctx, m, tag); err != nil {
		t.Fatalf("tag %s:%s: %v", repo, tag, err)
	}
	return m
}

// Tag points tag at the existing manifest d in repo, directly on the registry.
func (r *Registry) Tag(t testing.TB, repo string, d digest.Digest, tag string) {
	t.Helper()
	ctx := t.Context()
	dst := r.directRepo(t, repo)
	m, err := dst.Resolve(ctx, d.String())
	if err != nil {
		t.Fatalf("resolve %s@%s: %v", repo, d, err)
	}
	if err := dst.Tag(ctx, m, tag); err != nil {
		t.Fatalf("tag %s:%s: %v", repo, tag, err)
	}
}

// directRepo returns an oras repository for repo on the registry process.
func (r *Registry) directRepo(t testing.TB, repo string) *remote.Repository {
	t.Helper()
	dst, err := remote.NewRepository(r.direct + "/" + repo)
	if err != nil {
		t.Fatalf("open repository %s: %v", repo, err)
	}
	dst.PlainHTTP = true
	dst.Client = r.repoClient()
	return dst
}
