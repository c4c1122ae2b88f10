package fetcher

import (
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/modelgate/modelgate/cache"
)

const (
	mediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	// annotationFilepath names a layer's path in CNCF ModelPack and Docker
	// model artifacts (model-spec v0.0.7+).
	annotationFilepath = "org.cncf.model.filepath"
)

// filesOf turns a manifest into the files of the model directory: one file
// per layer named by org.opencontainers.image.title (as `oras push` writes)
// or org.cncf.model.filepath. The main weights file is the largest one.
// Archive layers and the other formats of the field are not laid out yet.
func filesOf(m *ocispec.Manifest) ([]cache.File, string, error) {
	var files []cache.File
	seen := map[string]bool{}
	mainFile, mainSize := "", int64(-1)
	for _, l := range m.Layers {
		name := l.Annotations[ocispec.AnnotationTitle]
		if name == "" {
			name = l.Annotations[annotationFilepath]
		}
		if name == "" {
			continue
		}
		if err := cache.CheckPath(name); err != nil {
			return nil, "", fmt.Errorf("lay out files: layer %s: %w", l.Digest, err)
		}
		if seen[name] {
			return nil, "", fmt.Errorf("lay out files: two layers named %q: %w", name, ErrUnsupported)
		}
		seen[name] = true
		files = append(files, cache.File{Path: name, Digest: l.Digest, Size: l.Size})
		if l.Size > mainSize {
			mainFile, mainSize = name, l.Size
		}
	}
	if len(files) == 0 {
		return nil, "", fmt.Errorf("lay out files: no layer carries %s or %s: %w", ocispec.AnnotationTitle, annotationFilepath, ErrUnsupported)
	}
	return files, mainFile, nil
}
