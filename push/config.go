package push

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
)

// modelPackConfig is the ModelPack config (application/vnd.cncf.model.config.v1+json),
// as schema/config-schema.json of github.com/modelpack/model-spec defines it:
// descriptor, config and modelfs are required, and no other key is allowed.
type modelPackConfig struct {
	Descriptor modelPackDescriptor `json:"descriptor"`
	Config     modelPackModel      `json:"config"`
	ModelFS    modelPackFS         `json:"modelfs"`
}

type modelPackDescriptor struct {
	CreatedAt string `json:"createdAt,omitempty"` // RFC 3339
	Name      string `json:"name,omitempty"`      // the repository's last path element
	Version   string `json:"version,omitempty"`   // the tag
}

type modelPackModel struct {
	Format string `json:"format,omitempty"` // gguf, safetensors, or left out
}

type modelPackFS struct {
	Type    string          `json:"type"`    // always "layers"
	DiffIDs []digest.Digest `json:"diffIds"` // raw layers: the layer digests
}

// dockerConfig is the Docker model config v0.2
// (application/vnd.docker.ai.model.config.v0.2+json): types.ConfigFile of
// github.com/docker/model-runner pkg/distribution/types/config.go.
type dockerConfig struct {
	Config     dockerModel      `json:"config"`
	Descriptor dockerDescriptor `json:"descriptor"`
	RootFS     dockerRootFS     `json:"rootfs"`
}

type dockerModel struct {
	Format string `json:"format,omitempty"`
	// Size is the weight files' size in Docker's human-readable form
	// ("1.5GiB"), as Docker's packager writes it; it is shown, not parsed.
	Size string `json:"size,omitempty"`
}

type dockerDescriptor struct {
	Created string `json:"created,omitempty"` // RFC 3339
}

type dockerRootFS struct {
	Type    string          `json:"type"`     // always "rootfs"
	DiffIDs []digest.Digest `json:"diff_ids"` // raw layers: the layer digests
}

// configMeta is what a config says besides its layers.
type configMeta struct {
	created     time.Time
	name        string // repository basename
	version     string // tag
	weight      string // format of the first weight file, or ""
	weightBytes int64  // total size of the weight files of that format
}

// marshalConfig returns the config blob of format f for layers with the
// given digests, in layer order. For raw layers a layer's DiffID (the digest
// of its uncompressed content) is its digest.
func marshalConfig(f *artifactFormat, diffIDs []digest.Digest, m configMeta) ([]byte, error) {
	created := m.created.UTC().Format(time.RFC3339)
	var v any
	switch f.name {
	case FormatModelPack:
		v = modelPackConfig{
			Descriptor: modelPackDescriptor{CreatedAt: created, Name: m.name, Version: m.version},
			Config:     modelPackModel{Format: m.weight},
			ModelFS:    modelPackFS{Type: "layers", DiffIDs: diffIDs},
		}
	case FormatDocker:
		c := dockerConfig{
			Config:     dockerModel{Format: m.weight},
			Descriptor: dockerDescriptor{Created: created},
			RootFS:     dockerRootFS{Type: "rootfs", DiffIDs: diffIDs},
		}
		if m.weight != "" {
			c.Config.Size = humanSize(m.weightBytes)
		}
		v = c
	default:
		return nil, fmt.Errorf("write config: format %q: %w", f.name, ErrUnknownFormat)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	return data, nil
}
