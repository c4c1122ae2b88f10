package push

import (
	"path"
	"strings"
)

// Format names accepted by Options.Format.
const (
	// FormatModelPack writes a CNCF ModelPack artifact (the default).
	FormatModelPack = "modelpack"
	// FormatDocker writes a Docker model artifact (config v0.2).
	FormatDocker = "docker"
)

// CNCF ModelPack media types, model-spec v0.0.7+: specs-go/v1/mediatype.go of
// https://github.com/modelpack/model-spec. Layers are raw: the blob is the
// file itself.
const (
	ArtifactTypeModelPack          = "application/vnd.cncf.model.manifest.v1+json"
	MediaTypeModelPackConfig       = "application/vnd.cncf.model.config.v1+json"
	MediaTypeModelPackWeight       = "application/vnd.cncf.model.weight.v1.raw"
	MediaTypeModelPackWeightConfig = "application/vnd.cncf.model.weight.config.v1.raw"
	MediaTypeModelPackDoc          = "application/vnd.cncf.model.doc.v1.raw"
	MediaTypeModelPackCode         = "application/vnd.cncf.model.code.v1.raw"
)

// Docker model artifact media types: pkg/distribution/types/config.go of
// https://github.com/docker/model-runner (formerly docker/model-distribution).
// Docker's directory packager (pkg/distribution/builder/from_directory.go)
// writes config v0.2, one layer per file, and leaves the manifest's
// artifactType empty: readers go by the config media type.
const (
	MediaTypeDockerConfig       = "application/vnd.docker.ai.model.config.v0.2+json"
	MediaTypeDockerGGUF         = "application/vnd.docker.ai.gguf.v3"
	MediaTypeDockerSafetensors  = "application/vnd.docker.ai.safetensors"
	MediaTypeDockerDDUF         = "application/vnd.docker.ai.dduf"
	MediaTypeDockerMMProj       = "application/vnd.docker.ai.mmproj"
	MediaTypeDockerChatTemplate = "application/vnd.docker.ai.chat.template.jinja"
	MediaTypeDockerLicense      = "application/vnd.docker.ai.license"
	MediaTypeDockerModelFile    = "application/vnd.docker.ai.model.file"
)

// AnnotationFilepath names a layer's file, relative to the model root, in
// ModelPack (specs-go/v1/annotations.go) and Docker v0.2 artifacts. Every
// layer also carries org.opencontainers.image.title with the same path, as
// `oras push` writes it.
const AnnotationFilepath = "org.cncf.model.filepath"

// Weight formats recorded in the config ("format") from the first weight
// file in layer order.
const (
	weightGGUF        = "gguf"
	weightSafetensors = "safetensors"
	weightDDUF        = "dduf"
)

// rule gives the files whose lower-case base name matches glob (path.Match
// syntax) a layer media type. weight names the config "format" when the
// file is a weight file of a known format.
type rule struct {
	glob      string
	mediaType string
	weight    string
}

// artifactFormat is everything that differs between the formats we write.
type artifactFormat struct {
	name            string
	artifactType    string // manifest artifactType; empty for Docker
	configMediaType string
	rules           []rule // first match wins
	fallback        string // media type of a file no rule matches
	needsWeights    bool   // refuse a directory without a weight file
}

// formats is the classification table: rules are tried in order and the
// first match wins.
var formats = map[string]*artifactFormat{
	FormatModelPack: {
		name:            FormatModelPack,
		artifactType:    ArtifactTypeModelPack,
		configMediaType: MediaTypeModelPackConfig,
		fallback:        MediaTypeModelPackCode,
		rules: []rule{
			// Weights.
			{"*.gguf", MediaTypeModelPackWeight, weightGGUF},
			{"*.safetensors", MediaTypeModelPackWeight, weightSafetensors},
			{"*.bin", MediaTypeModelPackWeight, ""},
			{"*.pt", MediaTypeModelPackWeight, ""},
			{"*.pth", MediaTypeModelPackWeight, ""},
			{"*.onnx", MediaTypeModelPackWeight, ""},
			{"*.h5", MediaTypeModelPackWeight, ""},
			{"*.ckpt", MediaTypeModelPackWeight, ""},
			{"*.pb", MediaTypeModelPackWeight, ""},
			{"*.tflite", MediaTypeModelPackWeight, ""},
			{"*.mlmodel", MediaTypeModelPackWeight, ""},
			{"*.npz", MediaTypeModelPackWeight, ""},
			{"*.ggml", MediaTypeModelPackWeight, ""},
			{"*.llamafile", MediaTypeModelPackWeight, ""},
			// Configuration of the weights: model and tokenizer files.
			{"config.json", MediaTypeModelPackWeightConfig, ""},
			{"generation_config.json", MediaTypeModelPackWeightConfig, ""},
			{"tokenizer.json", MediaTypeModelPackWeightConfig, ""},
			{"tokenizer_config.json", MediaTypeModelPackWeightConfig, ""},
			{"tokenizer.model", MediaTypeModelPackWeightConfig, ""},
			{"special_tokens_map.json", MediaTypeModelPackWeightConfig, ""},
			{"vocab.json", MediaTypeModelPackWeightConfig, ""},
			{"vocab.txt", MediaTypeModelPackWeightConfig, ""},
			{"merges.txt", MediaTypeModelPackWeightConfig, ""},
			{"*.tiktoken", MediaTypeModelPackWeightConfig, ""},
			{"preprocessor_config.json", MediaTypeModelPackWeightConfig, ""},
			{"params.json", MediaTypeModelPackWeightConfig, ""},
			{"added_tokens.json", MediaTypeModelPackWeightConfig, ""},
			// Any other JSON or YAML file (model.safetensors.index.json,
			// chat_template.json, ...) is configuration too, as modctl's
			// ConfigFilePatterns (pkg/modelfile/constants.go) class them.
			{"*.json", MediaTypeModelPackWeightConfig, ""},
			{"*.yaml", MediaTypeModelPackWeightConfig, ""},
			{"*.yml", MediaTypeModelPackWeightConfig, ""},
			// Documentation.
			{"readme*", MediaTypeModelPackDoc, ""},
			{"license*", MediaTypeModelPackDoc, ""},
			{"licence*", MediaTypeModelPackDoc, ""},
			{"notice*", MediaTypeModelPackDoc, ""},
			{"*.md", MediaTypeModelPackDoc, ""},
			{"*.txt", MediaTypeModelPackDoc, ""},
			{"*.pdf", MediaTypeModelPackDoc, ""},
			// Code, listed for the reader: code is also the fallback.
			{"*.py", MediaTypeModelPackCode, ""},
			{"*.sh", MediaTypeModelPackCode, ""},
			{"*.ipynb", MediaTypeModelPackCode, ""},
			{"*.js", MediaTypeModelPackCode, ""},
			{"*.go", MediaTypeModelPackCode, ""},
			{"*.jinja", MediaTypeModelPackCode, ""},
			{"*.j2", MediaTypeModelPackCode, ""},
		},
	},
	FormatDocker: {
		name:            FormatDocker,
		configMediaType: MediaTypeDockerConfig,
		fallback:        MediaTypeDockerModelFile,
		needsWeights:    true,
		// In the order of Docker's classifier
		// (pkg/distribution/files/classify.go): weights, chat templates,
		// then licenses by substring, anything else a model file.
		rules: []rule{
			{"*.gguf", MediaTypeDockerGGUF, weightGGUF},
			{"*.safetensors", MediaTypeDockerSafetensors, weightSafetensors},
			{"*.dduf", MediaTypeDockerDDUF, weightDDUF},
			{"*.mmproj", MediaTypeDockerMMProj, ""},
			{"*.jinja", MediaTypeDockerChatTemplate, ""},
			{"*chat_template*", MediaTypeDockerChatTemplate, ""},
			{"*license*", MediaTypeDockerLicense, ""},
			{"*licence*", MediaTypeDockerLicense, ""},
			{"*copying*", MediaTypeDockerLicense, ""},
			{"*notice*", MediaTypeDockerLicense, ""},
		},
	},
}

// classify returns the layer media type of the file at rel (a slash-separated
// path) and, for a weight file of a known format, that format.
func (f *artifactFormat) classify(rel string) (mediaType, weight string) {
	base := strings.ToLower(path.Base(rel))
	for _, r := range f.rules {
		if ok, _ := path.Match(r.glob, base); ok {
			return r.mediaType, r.weight
		}
	}
	return f.fallback, ""
}
