package testregistry

import (
	"bytes"
	"encoding/json"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
)

// PushBlob pushes data to repo directly on the registry and returns its
// descriptor with mediaType. It fails the test on error.
func (r *Registry) PushBlob(t testing.TB, repo, mediaType string, data []byte) ocispec.Descriptor {
	t.Helper()
	d := content.NewDescriptorFromBytes(mediaType, data)
	if err := r.directRepo(t, repo).Push(t.Context(), d, bytes.NewReader(data)); err != nil {
		t.Fatalf("push blob %s to %s: %v", d.Digest, repo, err)
	}
	return d
}

// PushManifest pushes v (a manifest or index, marshalled as JSON unless it
// is already []byte) with mediaType to repo directly on the registry, tags
// it tag unless tag is empty, and returns its descriptor. The blobs it
// refers to must have been pushed first (PushBlob). It fails the test on
// error.
func (r *Registry) PushManifest(t testing.TB, repo, tag, mediaType string, v any) ocispec.Descriptor {
	t.Helper()
	data, ok := v.([]byte)
	if !ok {
		var err error
		if data, err = json.Marshal(v); err != nil {
			t.Fatalf("marshal manifest: %v", err)
		}
	}
	d := content.NewDescriptorFromBytes(mediaType, data)
	dst := r.directRepo(t, repo)
	if err := dst.Push(t.Context(), d, bytes.NewReader(data)); err != nil {
		t.Fatalf("push manifest to %s: %v", repo, err)
	}
	if tag != "" {
		if err := dst.Tag(t.Context(), d, tag); err != nil {
			t.Fatalf("tag %s:%s: %v", repo, tag, err)
		}
	}
	return d
}
