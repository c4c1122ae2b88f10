package push

import (
	"path"
	"testing"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		rel       string
		modelpack string
		docker    string
		weight    string
	}{
		{"model.gguf", MediaTypeModelPackWeight, MediaTypeDockerGGUF, "gguf"},
		{"Model-Q4_K_M.GGUF", MediaTypeModelPackWeight, MediaTypeDockerGGUF, "gguf"},
		{"shards/model-00001-of-00002.safetensors", MediaTypeModelPackWeight, MediaTypeDockerSafetensors, "safetensors"},
		{"pytorch_model.bin", MediaTypeModelPackWeight, MediaTypeDockerModelFile, ""},
		{"model.onnx", MediaTypeModelPackWeight, MediaTypeDockerModelFile, ""},
		{"unet.dduf", MediaTypeModelPackCode, MediaTypeDockerDDUF, ""},
		{"vision.mmproj", MediaTypeModelPackCode, MediaTypeDockerMMProj, ""},
		{"config.json", MediaTypeModelPackWeightConfig, MediaTypeDockerModelFile, ""},
		{"sub/tokenizer.json", MediaTypeModelPackWeightConfig, MediaTypeDockerModelFile, ""},
		{"tokenizer.model", MediaTypeModelPackWeightConfig, MediaTypeDockerModelFile, ""},
		{"vocab.txt", MediaTypeModelPackWeightConfig, MediaTypeDockerModelFile, ""},
		{"merges.txt", MediaTypeModelPackWeightConfig, MediaTypeDockerModelFile, ""},
		{"cl100k_base.tiktoken", MediaTypeModelPackWeightConfig, MediaTypeDockerModelFile, ""},
		{"model.safetensors.index.json", MediaTypeModelPackWeightConfig, MediaTypeDockerModelFile, ""},
		{"chat_template.json", MediaTypeModelPackWeightConfig, MediaTypeDockerChatTemplate, ""},
		{"README.md", MediaTypeModelPackDoc, MediaTypeDockerModelFile, ""},
		{"readme", MediaTypeModelPackDoc, MediaTypeDockerModelFile, ""},
		{"LICENSE", MediaTypeModelPackDoc, MediaTypeDockerLicense, ""},
		{"LICENSE.txt", MediaTypeModelPackDoc, MediaTypeDockerLicense, ""},
		{"NOTICE", MediaTypeModelPackDoc, MediaTypeDockerLicense, ""},
		{"docs/USAGE.md", MediaTypeModelPackDoc, MediaTypeDockerModelFile, ""},
		{"notes.txt", MediaTypeModelPackDoc, MediaTypeDockerModelFile, ""},
		{"paper.pdf", MediaTypeModelPackDoc, MediaTypeDockerModelFile, ""},
		{"template.jinja", MediaTypeModelPackCode, MediaTypeDockerChatTemplate, ""},
		{"modeling.py", MediaTypeModelPackCode, MediaTypeDockerModelFile, ""},
		{"run.sh", MediaTypeModelPackCode, MediaTypeDockerModelFile, ""},
		{"weights.unknownext", MediaTypeModelPackCode, MediaTypeDockerModelFile, ""},
	}
	for _, tt := range tests {
		t.Run(tt.rel, func(t *testing.T) {
			mt, w := formats[FormatModelPack].classify(tt.rel)
			if mt != tt.modelpack {
				t.Errorf("modelpack: %s, want %s", mt, tt.modelpack)
			}
			if w != tt.weight {
				t.Errorf("modelpack weight format %q, want %q", w, tt.weight)
			}
			mt, w = formats[FormatDocker].classify(tt.rel)
			if mt != tt.docker {
				t.Errorf("docker: %s, want %s", mt, tt.docker)
			}
			want := tt.weight
			if tt.docker == MediaTypeDockerDDUF {
				want = weightDDUF
			}
			if w != want {
				t.Errorf("docker weight format %q, want %q", w, want)
			}
		})
	}
}

// TestRulesAreValidLowerCaseGlobs: classify matches lower-case names, so an
// upper-case or malformed pattern would silently never match.
func TestRulesAreValidLowerCaseGlobs(t *testing.T) {
	for name, f := range formats {
		if f.name != name || f.configMediaType == "" || f.fallback == "" {
			t.Errorf("format %q is incomplete: %+v", name, f)
		}
		for _, r := range f.rules {
			if _, err := path.Match(r.glob, "x"); err != nil {
				t.Errorf("%s: glob %q: %v", name, r.glob, err)
			}
			for _, c := range r.glob {
				if c >= 'A' && c <= 'Z' {
					t.Errorf("%s: glob %q is not lower case", name, r.glob)
					break
				}
			}
		}
	}
}

func TestHumanSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 512: "512B", 1536: "1.5KiB", 3 << 20: "3MiB", 1<<30 + 1<<29: "1.5GiB", 4_000_000_000: "3.725GiB"} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
