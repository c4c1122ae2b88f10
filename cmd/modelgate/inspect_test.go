package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/modelgate/modelgate/internal/testregistry"
)

func TestInspectPushedModelReadsNoBlob(t *testing.T) {
	reg := testregistry.Start(t)
	ref := reg.Host() + "/models/inspect:v1"
	var out, errOut bytes.Buffer
	if code := run([]string{"push", "--plain-http", "--progress=none", writePushDir(t), ref}, &out, &errOut); code != 0 {
		t.Fatalf("push: %d %s", code, errOut.String())
	}
	reg.ResetRequests()
	out.Reset()
	if code := run([]string{"inspect", "--plain-http", ref}, &out, &errOut); code != 0 {
		t.Fatalf("inspect: %d %s", code, errOut.String())
	}
	for _, want := range []string{
		"reference:     " + ref,
		"media type:    application/vnd.oci.image.manifest.v1+json",
		"artifact type: application/vnd.cncf.model.manifest.v1+json",
		"format:        modelpack",
		"main file:     model.gguf",
		"PATH", "model.gguf ", "sub/tokenizer.json ", "README.md ", " raw ", "21 B",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if n := reg.Count("GET", "/blobs/"); n != 0 {
		t.Errorf("inspect read %d blobs; want none:\n%v", n, reg.Requests())
	}
}

func TestInspectKitOpsReadsOnlyTheConfig(t *testing.T) {
	reg := testregistry.Start(t)
	const repo = "kit/llama"
	model := reg.PushBlob(t, repo, "application/vnd.kitops.modelkit.model.v1.tar+gzip", []byte("pretend this is a gzip tar of models/llama.gguf"))
	model.Annotations = map[string]string{"org.cncf.model.filepath": "models/llama.gguf"}
	readme := reg.PushBlob(t, repo, "application/vnd.kitops.modelkit.docs.v1.raw", []byte("# llama"))
	readme.Annotations = map[string]string{"org.cncf.model.filepath": "README.md"}
	kitfile, _ := json.Marshal(map[string]any{
		"manifestVersion": "1.0",
		"model":           map[string]any{"path": "models/llama.gguf", "digest": model.Digest.String()},
		"docs":            []any{map[string]any{"path": "README.md", "digest": readme.Digest.String()}},
	})
	cfg := reg.PushBlob(t, repo, "application/vnd.kitops.modelkit.config.v1+json", kitfile)
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: "application/vnd.kitops.modelkit.manifest.v1+json",
		Config:       cfg,
		Layers:       []ocispec.Descriptor{model, readme},
	}
	m.SchemaVersion = 2
	desc := reg.PushManifest(t, repo, "v1", ocispec.MediaTypeImageManifest, m)

	reg.ResetRequests()
	var out, errOut bytes.Buffer
	if code := run([]string{"inspect", "--plain-http", "--json", reg.Host() + "/" + repo + ":v1"}, &out, &errOut); code != 0 {
		t.Fatalf("inspect: %d %s", code, errOut.String())
	}
	var rep inspectReport
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, out.String())
	}
	if rep.Digest != desc.Digest.String() || rep.Format != "kitops" || rep.MainFile != "models/llama.gguf" || !rep.Config.Read {
		t.Errorf("report %+v", rep)
	}
	if len(rep.Entries) != 2 || rep.Entries[0].Kind != "tar+gzip" || rep.Entries[0].Path != "" ||
		rep.Entries[1].Path != "README.md" || rep.Entries[1].Size != readme.Size {
		t.Errorf("entries %+v", rep.Entries)
	}
	if n, c := reg.Count("GET", "/blobs/"), reg.Count("GET", "/blobs/"+cfg.Digest.String()); n != 1 || c != 1 {
		t.Errorf("inspect read %d blobs (%d of them the config); want the config only", n, c)
	}
}

func TestInspectImageIndex(t *testing.T) {
	reg := testregistry.Start(t)
	const repo = "kserve/modelcar"
	var children []ocispec.Descriptor
	for _, arch := range []string{"arm64", "amd64"} {
		l := reg.PushBlob(t, repo, "application/vnd.oci.image.layer.v1.tar+gzip", []byte("layer for "+arch))
		cfg := reg.PushBlob(t, repo, ocispec.MediaTypeImageConfig, []byte(`{"architecture":"`+arch+`","os":"linux"}`))
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{l}}
		m.SchemaVersion = 2
		d := reg.PushManifest(t, repo, "", ocispec.MediaTypeImageManifest, m)
		d.Platform = &ocispec.Platform{OS: "linux", Architecture: arch}
		children = append(children, d)
	}
	index := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: children}
	index.SchemaVersion = 2
	reg.PushManifest(t, repo, "v1", ocispec.MediaTypeImageIndex, index)

	reg.ResetRequests()
	var out, errOut bytes.Buffer
	if code := run([]string{"inspect", "--plain-http", reg.Host() + "/" + repo + ":v1"}, &out, &errOut); code != 0 {
		t.Fatalf("inspect: %d %s", code, errOut.String())
	}
	for _, want := range []string{
		"linux/arm64", "linux/amd64          " + children[1].Digest.String() + "  (selected)",
		"digest:        " + children[1].Digest.String(),
		"format:        image", "main file:     (none)", ". (from models/)", "tar+gzip",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if n := reg.Count("GET", "/blobs/"); n != 0 {
		t.Errorf("inspect read %d blobs; want none", n)
	}

	out.Reset()
	errOut.Reset()
	if code := run([]string{"inspect", "--plain-http", "--platform", "linux/s390x", reg.Host() + "/" + repo + ":v1"}, &out, &errOut); code != 1 ||
		!strings.Contains(errOut.String(), "no manifest for the platform") {
		t.Errorf("inspect for a missing platform: %d %s", code, errOut.String())
	}
}

func TestInspectRefusals(t *testing.T) {
	reg := testregistry.Start(t)
	reg.PushArtifact(t, "odd/untitled", "v1", "application/vnd.example", []testregistry.Layer{{Title: "", Data: []byte("x")}})
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"inspect"}, 1, "want one argument"},
		{[]string{"inspect", "--platform", "linux", "x/y:z"}, 1, "want os/arch"},
		{[]string{"inspect", "--plain-http", reg.Host() + "/odd/untitled:v1"}, 1, "unsupported artifact"},
		{[]string{"inspect", "--plain-http", reg.Host() + "/odd/absent:v1"}, 1, "not found"},
	} {
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != tc.code || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errOut.String(), tc.code, tc.want)
		}
	}
}
