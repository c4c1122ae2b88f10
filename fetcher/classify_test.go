package fetcher_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/file"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/internal/testregistry"
	"github.com/modelgate/modelgate/oci"
	"github.com/modelgate/modelgate/push"
	"github.com/modelgate/modelgate/unpack"
)

// layer returns a descriptor of mediaType for data with annotations given
// as key, value pairs.
func layer(mediaType, data string, kv ...string) ocispec.Descriptor {
	d := content.NewDescriptorFromBytes(mediaType, []byte(data))
	if len(kv) > 0 {
		d.Annotations = map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			d.Annotations[kv[i]] = kv[i+1]
		}
	}
	return d
}

func manifest(artifactType, configMediaType string, layers ...ocispec.Descriptor) *ocispec.Manifest {
	m := &ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: artifactType,
		Config:       content.NewDescriptorFromBytes(configMediaType, []byte("{}")),
		Layers:       layers,
	}
	m.SchemaVersion = 2
	return m
}

// entry is a PlanEntry in a comparable form: path, kind, subdir,
// whiteouts, layer digest prefix.
type entry struct {
	Path, Kind, Subdir string
	Whiteouts          bool
	Layer              string
}

func entries(p *fetcher.Plan) []entry {
	var out []entry
	for _, e := range p.Entries {
		x := entry{Path: e.Path, Kind: e.Kind(), Layer: e.Layer.Digest.String()}
		if e.Archive != nil {
			x.Subdir, x.Whiteouts = e.Archive.Subdir, e.Archive.Whiteouts
		}
		out = append(out, x)
	}
	return out
}

const (
	title       = ocispec.AnnotationTitle
	annFilepath = "org.cncf.model.filepath" // model-spec AnnotationFilepath
)

func TestClassifyFormats(t *testing.T) {
	// ModelPack as modctl writes it (a tar per file, with the path) and as
	// our pusher writes it (raw), plus the pre-v0.0.7 names and a Kitfile
	// layer that `kit pack --use-model-pack` adds.
	mpWeight := layer("application/vnd.cncf.model.weight.v1.raw", "a large gguf weights file", annFilepath, "model.gguf", title, "model.gguf")
	mpShard := layer("application/vnd.cncf.model.weight.v1.tar", "tar of shard-2 ...", annFilepath, "weights/model-00002.safetensors")
	mpTok := layer("application/vnd.cncf.model.weight.config.v1.raw", `{"tok":1}`, annFilepath, "tokenizer.json")
	mpDocs := layer("application/vnd.cncf.model.doc.v1.tar+zstd", "zstd tar of docs", annFilepath, "docs")
	mpKitfile := layer("application/vnd.kitops.modelkit.config.v1+json", "manifestVersion: 1.0")
	legacy := layer("application/vnd.cnai.model.weight.v1.raw", "legacy weights", "org.cnai.model.filepath", "old/model.bin")

	// KitOps ModelKit: the Kitfile (config) lists the layers in order.
	kitModel := layer("application/vnd.kitops.modelkit.model.v1.tar+gzip", "gzip tar of models/llama.gguf, the biggest", annFilepath, "models/llama.gguf")
	kitCode := layer("application/vnd.kitops.modelkit.code.v1.tar", "tar of src", annFilepath, "src")
	kitPrompt := layer("application/vnd.kitops.modelkit.code.v1.tar", "tar of prompts", annFilepath, "prompts", "ml.kitops.modelkit.layer-subtype", "prompt")
	kitDocs := layer("application/vnd.kitops.modelkit.docs.v1.raw", "# readme", annFilepath, "README.md")
	kitRawZ := layer("application/vnd.kitops.modelkit.dataset.v1.raw+zstd", "zstd of data.csv", annFilepath, "data.csv")
	kitfile, _ := json.Marshal(map[string]any{
		"manifestVersion": "1.0",
		"package":         map[string]any{"name": "llama"},
		"model":           map[string]any{"name": "llama", "path": "models/llama.gguf", "digest": kitModel.Digest.String()},
		"code":            []any{map[string]any{"path": "src", "digest": kitCode.Digest.String()}},
		"prompts":         []any{map[string]any{"path": "prompts", "digest": kitPrompt.Digest.String()}},
		"docs":            []any{map[string]any{"path": "README.md", "digest": kitDocs.Digest.String()}},
		"datasets":        []any{map[string]any{"path": "data.csv", "digest": kitRawZ.Digest.String()}},
	})
	// An old ModelKit: no digests, no filepath annotations; tar entries are
	// relative to the Kitfile path's directory.
	oldModel := layer("application/vnd.kitops.modelkit.model.v1.tar+gzip", "old gzip tar of model.safetensors")
	oldKitfile := []byte(`{"manifestVersion":"1.0","model":{"path":"weights/model.safetensors"}}`)

	// Docker model artifacts.
	dGGUF1 := layer("application/vnd.docker.ai.gguf.v3", "shard one of the gguf")
	dGGUF2 := layer("application/vnd.docker.ai.gguf.v3", "shard two of the gguf")
	dMMProj := layer("application/vnd.docker.ai.mmproj", "projector")
	dTmpl := layer("application/vnd.docker.ai.chat.template.jinja", "{{ messages }}")
	dLic := layer("application/vnd.docker.ai.license", "MIT")
	dLic2 := layer("application/vnd.docker.ai.license", "Apache-2.0")
	dVLLM := layer("application/vnd.docker.ai.vllm.config.tar", "tar of config.json")
	v2ST := layer("application/vnd.docker.ai.safetensors", "safetensors weights", annFilepath, "model.safetensors")
	v2Cfg := layer("application/vnd.docker.ai.model.file", `{"arch":1}`, annFilepath, "config.json")
	v2Dir := layer("application/vnd.docker.ai.dir.tar", "tar of tokenizer/", annFilepath, "tokenizer")
	v2Shard := layer("application/vnd.docker.ai.gguf.v3", "second shard", annFilepath, "q4/m-00002-of-00002.gguf")
	v2Shard1 := layer("application/vnd.docker.ai.gguf.v3", "first shard", annFilepath, "q4/m-00001-of-00002.gguf")

	// Ollama, as registry.ollama.ai serves llava (Docker v2 manifest).
	oModel := layer("application/vnd.ollama.image.model", "GGUF llava weights")
	oProj := layer("application/vnd.ollama.image.projector", "GGUF clip projector")
	oTmpl := layer("application/vnd.ollama.image.template", "{{ .Prompt }}")
	oParams := layer("application/vnd.ollama.image.params", `{"stop":["</s>"]}`)
	oSys := layer("application/vnd.ollama.image.system", "You are helpful.")
	oLic := layer("application/vnd.ollama.image.license", "LLAMA 2 LICENSE")
	oLic2 := layer("application/vnd.ollama.image.license", "Apache")
	oAd := layer("application/vnd.ollama.image.adapter", "lora")
	oEmbed := layer("application/vnd.ollama.image.embed", "old embed")
	ollama := manifest("", "application/vnd.docker.container.image.v1+json", oModel, oProj, oTmpl, oParams, oSys, oLic, oLic2, oAd, oEmbed)
	ollama.MediaType = "application/vnd.docker.distribution.manifest.v2+json"

	// A KServe modelcar image.
	iBase := layer("application/vnd.docker.image.rootfs.diff.tar.gzip", "busybox rootfs")
	iModels := layer("application/vnd.oci.image.layer.v1.tar+zstd", "models/ layer")
	iForeign := layer("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "windows base")

	// ORAS: `oras push` of two files and a directory.
	orasFile := layer("application/vnd.oci.image.layer.v1.tar", "tiny gguf weights file", title, "tiny.gguf")
	orasCfg := layer("application/json", "{}", title, "config.json")
	orasDir := layer("application/vnd.oci.image.layer.v1.tar+gzip", "gzip of tokenizer dir", title, "tokenizer",
		"io.deis.oras.content.unpack", "true", "io.deis.oras.content.digest", "sha256:0000")

	tests := []struct {
		name     string
		m        *ocispec.Manifest
		config   []byte
		opts     fetcher.ClassifyOptions
		format   string
		main     string
		entries  []entry
		nSkipped int
	}{
		{
			name:   "modelpack",
			m:      manifest("application/vnd.cncf.model.manifest.v1+json", "application/vnd.cncf.model.config.v1+json", mpWeight, mpShard, mpTok, mpDocs, mpKitfile),
			format: "modelpack", main: "model.gguf", nSkipped: 1,
			entries: []entry{
				{Path: "model.gguf", Kind: "raw", Layer: mpWeight.Digest.String()},
				{Path: "", Kind: "tar", Layer: mpShard.Digest.String()},
				{Path: "tokenizer.json", Kind: "raw", Layer: mpTok.Digest.String()},
				{Path: "", Kind: "tar+zstd", Layer: mpDocs.Digest.String()},
			},
		},
		{
			name:   "modelpack by layers only, legacy names",
			m:      manifest("", "application/vnd.cnai.model.config.v1+json", legacy),
			format: "modelpack", main: "old/model.bin",
			entries: []entry{{Path: "old/model.bin", Kind: "raw", Layer: legacy.Digest.String()}},
		},
		{
			name:   "modelpack tar weights name the main file",
			m:      manifest("application/vnd.cncf.model.manifest.v1+json", "", mpShard, mpTok),
			format: "modelpack", main: "weights/model-00002.safetensors",
			entries: []entry{
				{Path: "", Kind: "tar", Layer: mpShard.Digest.String()},
				{Path: "tokenizer.json", Kind: "raw", Layer: mpTok.Digest.String()},
			},
		},
		{
			name:   "kitops",
			m:      manifest("application/vnd.kitops.modelkit.manifest.v1+json", "application/vnd.kitops.modelkit.config.v1+json", kitModel, kitCode, kitPrompt, kitDocs, kitRawZ),
			config: kitfile,
			format: "kitops", main: "models/llama.gguf", nSkipped: 1,
			entries: []entry{
				{Path: "", Kind: "tar+gzip", Layer: kitModel.Digest.String()},
				{Path: "", Kind: "tar", Layer: kitCode.Digest.String()},
				{Path: "", Kind: "tar", Layer: kitPrompt.Digest.String()},
				{Path: "README.md", Kind: "raw", Layer: kitDocs.Digest.String()},
			},
		},
		{
			name:   "kitops without its Kitfile",
			m:      manifest("", "application/vnd.kitops.modelkit.config.v1+json", kitModel, kitDocs),
			format: "kitops", main: "models/llama.gguf",
			entries: []entry{
				{Path: "", Kind: "tar+gzip", Layer: kitModel.Digest.String()},
				{Path: "README.md", Kind: "raw", Layer: kitDocs.Digest.String()},
			},
		},
		{
			name:   "kitops before layer digests",
			m:      manifest("", "application/vnd.kitops.modelkit.config.v1+json", oldModel),
			config: oldKitfile,
			format: "kitops", main: "weights/model.safetensors",
			entries: []entry{{Path: "weights", Kind: "tar+gzip", Layer: oldModel.Digest.String()}},
		},
		{
			name:   "docker v0.1 fixed names",
			m:      manifest("", "application/vnd.docker.ai.model.config.v0.1+json", dGGUF1, dGGUF2, dMMProj, dTmpl, dLic, dLic2, dVLLM),
			format: "docker-model", main: "model-00001-of-00002.gguf",
			entries: []entry{
				{Path: "model-00001-of-00002.gguf", Kind: "raw", Layer: dGGUF1.Digest.String()},
				{Path: "model-00002-of-00002.gguf", Kind: "raw", Layer: dGGUF2.Digest.String()},
				{Path: "model.mmproj", Kind: "raw", Layer: dMMProj.Digest.String()},
				{Path: "template.jinja", Kind: "raw", Layer: dTmpl.Digest.String()},
				{Path: "LICENSE", Kind: "raw", Layer: dLic.Digest.String()},
				{Path: "LICENSE-2", Kind: "raw", Layer: dLic2.Digest.String()},
				{Path: "", Kind: "tar", Layer: dVLLM.Digest.String()},
			},
		},
		{
			name:   "docker v0.1 one gguf",
			m:      manifest("", "application/vnd.docker.ai.model.config.v0.1+json", dGGUF1, dLic),
			format: "docker-model", main: "model.gguf",
			entries: []entry{
				{Path: "model.gguf", Kind: "raw", Layer: dGGUF1.Digest.String()},
				{Path: "LICENSE", Kind: "raw", Layer: dLic.Digest.String()},
			},
		},
		{
			name:   "docker v0.2 file paths",
			m:      manifest("", "application/vnd.docker.ai.model.config.v0.2+json", v2Cfg, v2Shard, v2Shard1, v2ST, v2Dir),
			format: "docker-model", main: "q4/m-00001-of-00002.gguf",
			entries: []entry{
				{Path: "config.json", Kind: "raw", Layer: v2Cfg.Digest.String()},
				{Path: "q4/m-00002-of-00002.gguf", Kind: "raw", Layer: v2Shard.Digest.String()},
				{Path: "q4/m-00001-of-00002.gguf", Kind: "raw", Layer: v2Shard1.Digest.String()},
				{Path: "model.safetensors", Kind: "raw", Layer: v2ST.Digest.String()},
				{Path: "", Kind: "tar", Layer: v2Dir.Digest.String()},
			},
		},
		{
			name:   "ollama",
			m:      ollama,
			format: "ollama", main: "model.gguf", nSkipped: 1,
			entries: []entry{
				{Path: "model.gguf", Kind: "raw", Layer: oModel.Digest.String()},
				{Path: "mmproj.gguf", Kind: "raw", Layer: oProj.Digest.String()},
				{Path: "template.txt", Kind: "raw", Layer: oTmpl.Digest.String()},
				{Path: "params.json", Kind: "raw", Layer: oParams.Digest.String()},
				{Path: "system.txt", Kind: "raw", Layer: oSys.Digest.String()},
				{Path: "LICENSE", Kind: "raw", Layer: oLic.Digest.String()},
				{Path: "LICENSE-2", Kind: "raw", Layer: oLic2.Digest.String()},
				{Path: "adapter.gguf", Kind: "raw", Layer: oAd.Digest.String()},
			},
		},
		{
			name:   "image",
			m:      manifest("", "application/vnd.oci.image.config.v1+json", iBase, iForeign, iModels),
			format: "image", main: "", nSkipped: 1,
			entries: []entry{
				{Path: "", Kind: "tar+gzip", Subdir: "models", Whiteouts: true, Layer: iBase.Digest.String()},
				{Path: "", Kind: "tar+zstd", Subdir: "models", Whiteouts: true, Layer: iModels.Digest.String()},
			},
		},
		{
			name:   "image with another model directory",
			m:      manifest("", "application/vnd.docker.container.image.v1+json", iBase),
			opts:   fetcher.ClassifyOptions{ImageModelDir: "/mnt/models/"},
			format: "image",
			entries: []entry{
				{Path: "", Kind: "tar+gzip", Subdir: "mnt/models", Whiteouts: true, Layer: iBase.Digest.String()},
			},
		},
		{
			name:   "oras",
			m:      manifest("application/vnd.example.model", "application/vnd.oci.empty.v1+json", orasCfg, orasFile, orasDir, layer("text/plain", "untitled")),
			format: "oras", main: "tiny.gguf", nSkipped: 1,
			entries: []entry{
				{Path: "config.json", Kind: "raw", Layer: orasCfg.Digest.String()},
				{Path: "tiny.gguf", Kind: "raw", Layer: orasFile.Digest.String()},
				{Path: "tokenizer", Kind: "tar+gzip", Subdir: "tokenizer", Layer: orasDir.Digest.String()},
			},
		},
		{
			name:   "oras titles win over an image config",
			m:      manifest("", "application/vnd.oci.image.config.v1+json", orasFile),
			format: "oras", main: "tiny.gguf",
			entries: []entry{{Path: "tiny.gguf", Kind: "raw", Layer: orasFile.Digest.String()}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := fetcher.Classify(tc.m, tc.config, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if p.Format != tc.format || p.MainFile != tc.main {
				t.Errorf("format %q main %q, want %q %q", p.Format, p.MainFile, tc.format, tc.main)
			}
			if got := entries(p); !reflect.DeepEqual(got, tc.entries) {
				t.Errorf("entries\n got %+v\nwant %+v", got, tc.entries)
			}
			if len(p.Skipped) != tc.nSkipped {
				t.Errorf("skipped %q, want %d", p.Skipped, tc.nSkipped)
			}
		})
	}
}

func TestClassifyRefuses(t *testing.T) {
	w := layer("application/vnd.cncf.model.weight.v1.raw", "w", annFilepath, "model.gguf")
	tests := []struct {
		name string
		m    *ocispec.Manifest
		cfg  []byte
		want error
	}{
		{"artifactType and config disagree", manifest("application/vnd.cncf.model.manifest.v1+json", "application/vnd.kitops.modelkit.config.v1+json", w), nil, fetcher.ErrConflictingFormat},
		{"layers of two formats", manifest("", "application/vnd.oci.empty.v1+json", w, layer("application/vnd.ollama.image.model", "m")), nil, fetcher.ErrConflictingFormat},
		{"nothing known", manifest("application/vnd.example", "application/vnd.example.config", layer("application/octet-stream", "x")), nil, fetcher.ErrUnsupported},
		{"no usable layer", manifest("application/vnd.cncf.model.manifest.v1+json", "", layer("application/vnd.cncf.model.weight.v1.raw", "unnamed")), nil, fetcher.ErrUnsupported},
		{"escaping path", manifest("application/vnd.cncf.model.manifest.v1+json", "", layer("application/vnd.cncf.model.weight.v1.raw", "w", annFilepath, "../../etc/passwd")), nil, cache.ErrUnsafePath},
		{"absolute path", manifest("", "", layer("text/plain", "w", title, "/etc/passwd")), nil, cache.ErrUnsafePath},
		{"unclean path", manifest("", "", layer("text/plain", "w", title, "a//b")), nil, cache.ErrUnsafePath},
		{"escaping oras directory", manifest("", "", layer("application/vnd.oci.image.layer.v1.tar+gzip", "d", title, "..", "io.deis.oras.content.unpack", "true")), nil, cache.ErrUnsafePath},
		{"duplicate path", manifest("", "", layer("text/plain", "a", title, "m.bin"), layer("text/plain", "b", title, "m.bin")), nil, fetcher.ErrDuplicatePath},
		{"file is a directory", manifest("", "", layer("text/plain", "a", title, "m"), layer("text/plain", "b", title, "m/x.bin")), nil, fetcher.ErrDuplicatePath},
		{"directory is a file", manifest("", "", layer("text/plain", "a", title, "m/x.bin"), layer("text/plain", "b", title, "m")), nil, fetcher.ErrDuplicatePath},
		{"archive over a file", manifest("", "", layer("text/plain", "a", title, "tok"), layer("application/vnd.oci.image.layer.v1.tar+gzip", "d", title, "tok", "io.deis.oras.content.unpack", "true")), nil, fetcher.ErrDuplicatePath},
		{"ollama without a model", func() *ocispec.Manifest {
			return manifest("", "application/vnd.docker.container.image.v1+json", layer("application/vnd.ollama.image.template", "t"))
		}(), nil, fetcher.ErrUnsupported},
		{"kitfile digest mismatch", manifest("", "application/vnd.kitops.modelkit.config.v1+json", layer("application/vnd.kitops.modelkit.model.v1.tar", "m")),
			[]byte(`{"model":{"path":"m.gguf","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"}}`), fetcher.ErrUnsupported},
		{"image model dir escapes", manifest("", "application/vnd.oci.image.config.v1+json", layer("application/vnd.oci.image.layer.v1.tar", "l")), nil, cache.ErrUnsafePath},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := fetcher.ClassifyOptions{}
			if tc.name == "image model dir escapes" {
				opts.ImageModelDir = "../x"
			}
			p, err := fetcher.Classify(tc.m, tc.cfg, opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Classify = %+v, %v; want %v", p, err, tc.want)
			}
			if !errors.Is(err, fetcher.ErrUnsupported) && !errors.Is(err, cache.ErrUnsafePath) {
				t.Errorf("%v wraps neither ErrUnsupported nor ErrUnsafePath", err)
			}
		})
	}
}

// fetchManifest reads ref's manifest from the registry.
func fetchManifest(t *testing.T, reg *testregistry.Registry, repo, ref string) *ocispec.Manifest {
	t.Helper()
	r, err := remote.NewRepository(reg.Host() + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	desc, rc, err := r.FetchReference(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := content.ReadAll(rc, desc)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return &m
}

// TestClassifyORASDirectory pushes a directory with oras-go's file store
// (what `oras push DIR` uses), classifies the manifest, then checks that
// the plan's reading of the tar (entries under Subdir, placed under Path)
// gives exactly the files oras-go's own pull lays out.
func TestClassifyORASDirectory(t *testing.T) {
	ctx := context.Background()
	reg := testregistry.Start(t)
	src := t.TempDir()
	for name, data := range map[string]string{
		"tok/tokenizer.json":   `{"v":1}`,
		"tok/sub/merges.txt":   "a b",
		"weights.gguf":         "GGUF weights, the largest file here",
		"tok/special_map.json": "{}",
	} {
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	store, err := file.New(src)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	dirDesc, err := store.Add(ctx, "tok", "", filepath.Join(src, "tok"))
	if err != nil {
		t.Fatal(err)
	}
	fileDesc, err := store.Add(ctx, "weights.gguf", "", filepath.Join(src, "weights.gguf"))
	if err != nil {
		t.Fatal(err)
	}
	mdesc, err := oras.PackManifest(ctx, store, oras.PackManifestVersion1_1, "application/vnd.example.model",
		oras.PackManifestOptions{Layers: []ocispec.Descriptor{dirDesc, fileDesc}})
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Tag(ctx, mdesc, "v1"); err != nil {
		t.Fatal(err)
	}
	dst, err := remote.NewRepository(reg.Host() + "/oras/dir")
	if err != nil {
		t.Fatal(err)
	}
	dst.PlainHTTP = true
	if _, err := oras.Copy(ctx, store, "v1", dst, "v1", oras.DefaultCopyOptions); err != nil {
		t.Fatal(err)
	}

	m := fetchManifest(t, reg, "oras/dir", "v1")
	p, err := fetcher.Classify(m, nil, fetcher.ClassifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if p.Format != "oras" || p.MainFile != "weights.gguf" || len(p.Entries) != 2 {
		t.Fatalf("plan %+v", p)
	}
	e := p.Entries[0]
	if e.Path != "tok" || e.Archive == nil || e.Archive.Compression != unpack.Gzip || e.Archive.Subdir != "tok" {
		t.Fatalf("directory entry %+v archive %+v", e, e.Archive)
	}

	// What the plan says the archive lays out.
	want := map[string]string{}
	rc, err := dst.Blobs().Fetch(ctx, e.Layer)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	zr, err := gzip.NewReader(rc)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		rel, ok := strings.CutPrefix(h.Name, e.Archive.Subdir+"/")
		if !ok {
			if strings.TrimSuffix(h.Name, "/") != e.Archive.Subdir {
				t.Errorf("entry %q is outside the title", h.Name)
			}
			continue // the directory itself
		}
		if h.Typeflag == tar.TypeReg {
			data, _ := io.ReadAll(tr)
			want[path.Join(e.Path, rel)] = string(data)
		}
	}
	// What oras-go's pull lays out.
	out := t.TempDir()
	pulled, err := file.New(out)
	if err != nil {
		t.Fatal(err)
	}
	defer pulled.Close()
	if _, err := oras.Copy(ctx, dst, "v1", pulled, "v1", oras.DefaultCopyOptions); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	filepath.WalkDir(filepath.Join(out, "tok"), func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(out, p)
			data, _ := os.ReadFile(p)
			got[filepath.ToSlash(rel)] = string(data)
		}
		return err
	})
	if len(got) != 3 || !reflect.DeepEqual(got, want) {
		t.Errorf("oras pull laid out %v; the plan reads %v", got, want)
	}
}

// TestClassifyPushedDirectory checks that what our own pusher writes, in
// both formats, classifies with the pushed paths.
func TestClassifyPushedDirectory(t *testing.T) {
	reg := testregistry.Start(t)
	dir := t.TempDir()
	files := map[string]string{
		"model.gguf":         "GGUF and some weights, the largest",
		"sub/tokenizer.json": `{"version":"1.0"}`,
		"README.md":          "# tiny\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	client := oci.NewClient(oci.ClientOptions{PlainHTTP: map[string]bool{reg.Host(): true}})
	for format, want := range map[string]string{push.FormatModelPack: "modelpack", push.FormatDocker: "docker-model"} {
		t.Run(format, func(t *testing.T) {
			if _, err := push.Directory(t.Context(), client, dir, reg.Host()+"/pushed/"+format+":v1", push.Options{Format: format}); err != nil {
				t.Fatal(err)
			}
			m := fetchManifest(t, reg, "pushed/"+format, "v1")
			p, err := fetcher.Classify(m, nil, fetcher.ClassifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if p.Format != want || p.MainFile != "model.gguf" || len(p.Skipped) != 0 {
				t.Errorf("plan %+v", p)
			}
			got := map[string]bool{}
			for _, e := range p.Entries {
				if e.Archive != nil {
					t.Errorf("archive entry %+v", e)
				}
				got[e.Path] = true
			}
			for name := range files {
				if !got[name] {
					t.Errorf("no entry for %s in %v", name, got)
				}
			}
		})
	}
}

func TestSelectManifest(t *testing.T) {
	d := func(mt, os, arch, variant string) ocispec.Descriptor {
		desc := content.NewDescriptorFromBytes(mt, []byte(os+arch+variant))
		desc.Platform = &ocispec.Platform{OS: os, Architecture: arch, Variant: variant}
		return desc
	}
	const mt = ocispec.MediaTypeImageManifest
	amd := d(mt, "linux", "amd64", "")
	amdV3 := d(mt, "linux", "amd64", "v3")
	arm64 := d(mt, "linux", "arm64", "v8")
	armV6 := d(mt, "linux", "arm", "v6")
	armV7 := d(mt, "linux", "arm", "v7")
	attest := d(mt, "unknown", "unknown", "")
	win := d("application/vnd.docker.distribution.manifest.v2+json", "windows", "amd64", "")
	nested := d(ocispec.MediaTypeImageIndex, "linux", "amd64", "")
	index := &ocispec.Index{Manifests: []ocispec.Descriptor{attest, nested, win, amdV3, amd, arm64, armV6, armV7}}
	tests := []struct {
		platform ocispec.Platform
		want     ocispec.Descriptor
	}{
		{ocispec.Platform{}, amd},
		{ocispec.Platform{OS: "linux", Architecture: "amd64", Variant: "v3"}, amdV3},
		{ocispec.Platform{OS: "linux", Architecture: "amd64", Variant: "v2"}, amd},
		{ocispec.Platform{OS: "linux", Architecture: "arm64"}, arm64},
		{ocispec.Platform{OS: "linux", Architecture: "arm"}, armV7},
		{ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v6"}, armV6},
		{ocispec.Platform{OS: "windows", Architecture: "amd64"}, win},
	}
	for _, tc := range tests {
		got, err := fetcher.SelectManifest(index, tc.platform)
		if err != nil || got.Digest != tc.want.Digest {
			t.Errorf("%+v: got %v %v, want %v", tc.platform, got.Platform, err, tc.want.Platform)
		}
	}
	for _, p := range []ocispec.Platform{{OS: "linux", Architecture: "s390x"}, {OS: "linux", Architecture: "arm", Variant: "v5"}} {
		if _, err := fetcher.SelectManifest(index, p); !errors.Is(err, fetcher.ErrNoPlatform) || !errors.Is(err, fetcher.ErrUnsupported) {
			t.Errorf("%+v: %v, want ErrNoPlatform", p, err)
		}
	}
	if _, err := fetcher.SelectManifest(&ocispec.Index{Manifests: []ocispec.Descriptor{amdV3}}, ocispec.Platform{}); !errors.Is(err, fetcher.ErrNoPlatform) {
		t.Errorf("amd64/v3 only, want plain amd64: %v", err)
	}
}

func FuzzClassify(f *testing.F) {
	for _, s := range []string{
		`{"schemaVersion":2,"artifactType":"application/vnd.cncf.model.manifest.v1+json","config":{"mediaType":"application/vnd.cncf.model.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[{"mediaType":"application/vnd.cncf.model.weight.v1.raw","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2,"annotations":{"org.cncf.model.filepath":"a/b.gguf"}}]}`,
		`{"config":{"mediaType":"application/vnd.docker.ai.model.config.v0.1+json"},"layers":[{"mediaType":"application/vnd.docker.ai.gguf.v3","digest":"x"},{"mediaType":"application/vnd.docker.ai.gguf.v3"}]}`,
		`{"config":{"mediaType":"application/vnd.docker.container.image.v1+json"},"layers":[{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:zz"}]}`,
		`{"layers":[{"mediaType":"x","annotations":{"org.opencontainers.image.title":"../a","io.deis.oras.content.unpack":"true"}}]}`,
		`{"config":{"mediaType":"application/vnd.kitops.modelkit.config.v1+json"},"layers":[{"mediaType":"application/vnd.kitops.modelkit.model.v1.tar"}]}`,
		`{"config":{"mediaType":"application/vnd.oci.image.config.v1+json"},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar"}]}`,
	} {
		f.Add([]byte(s), []byte(`{"model":{"path":"./m/x.gguf"},"code":[{"path":"/abs"}]}`))
	}
	f.Fuzz(func(t *testing.T, data, config []byte) {
		var m ocispec.Manifest
		if json.Unmarshal(data, &m) != nil {
			return
		}
		p, err := fetcher.Classify(&m, config, fetcher.ClassifyOptions{})
		if err != nil {
			if !errors.Is(err, fetcher.ErrUnsupported) && !errors.Is(err, cache.ErrUnsafePath) {
				t.Fatalf("error wraps neither ErrUnsupported nor ErrUnsafePath: %v", err)
			}
			return
		}
		if len(p.Entries) == 0 {
			t.Fatal("a plan without entries")
		}
		seen := map[string]bool{}
		for _, e := range p.Entries {
			if e.Archive == nil || e.Path != "" {
				if err := cache.CheckPath(e.Path); err != nil {
					t.Fatalf("entry path: %v", err)
				}
			}
			if e.Archive == nil {
				if seen[e.Path] {
					t.Fatalf("duplicate raw path %q", e.Path)
				}
				seen[e.Path] = true
			} else if e.Archive.Subdir != "" {
				if err := cache.CheckPath(e.Archive.Subdir); err != nil {
					t.Fatalf("subdir: %v", err)
				}
			}
		}
		if p.MainFile != "" {
			if err := cache.CheckPath(p.MainFile); err != nil {
				t.Fatalf("main file: %v", err)
			}
		}
	})
}
