package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/modelgate/modelgate/internal/testregistry"
	"github.com/modelgate/modelgate/push"
)

// writePushDir writes a small model directory and returns it.
func writePushDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range map[string]string{
		"model.gguf":         "GGUF and some weights",
		"sub/tokenizer.json": `{"version":"1.0"}`,
		"README.md":          "# tiny\n",
	} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// pushedLine matches the last line push prints on stdout.
var pushedLine = regexp.MustCompile(`(?m)\Apushed (\S+)@(sha256:[0-9a-f]{64})\n\z`)

// resolveTag returns the digest ref's tag points to, asked with oras-go.
func resolveTag(t *testing.T, reg *testregistry.Registry, repo, tag string) string {
	t.Helper()
	r, err := remote.NewRepository(reg.Host() + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	desc, err := oras.Resolve(context.Background(), r, tag, oras.DefaultResolveOptions)
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest.String()
}

func TestPushPrintsTheDigestAndSkipsWhatTheRegistryHas(t *testing.T) {
	reg := testregistry.Start(t)
	dir := writePushDir(t)
	ref := reg.Host() + "/models/cli:v1"

	var out, errOut bytes.Buffer
	if code := run([]string{"push", "--plain-http", dir, ref}, &out, &errOut); code != 0 {
		t.Fatalf("push exited %d: %s", code, errOut.String())
	}
	m := pushedLine.FindStringSubmatch(out.String())
	if m == nil || m[1] != ref {
		t.Fatalf("stdout %q, want one line \"pushed %s@sha256:...\"", out.String(), ref)
	}
	if got := resolveTag(t, reg, "models/cli", "v1"); got != m[2] {
		t.Errorf("printed %s, the tag points to %s", m[2], got)
	}
	for _, want := range []string{"uploading  model.gguf (21B)", "uploading  sub/tokenizer.json (17B)", "uploaded 3 blobs (45B), 0 already in the registry, in "} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut.String())
		}
	}

	first := out.String()
	out.Reset()
	errOut.Reset()
	reg.ResetRequests()
	if code := run([]string{"push", "--plain-http", dir, ref}, &out, &errOut); code != 0 {
		t.Fatalf("second push exited %d: %s", code, errOut.String())
	}
	if out.String() != first {
		t.Errorf("second push printed %q, first %q", out.String(), first)
	}
	if n := reg.Count("PUT", "/blobs/uploads"); n != 0 {
		t.Errorf("second push uploaded %d blobs", n)
	}
	if !strings.Contains(errOut.String(), "exists     model.gguf (21B, already in the registry)") {
		t.Errorf("stderr does not report model.gguf as present:\n%s", errOut.String())
	}
}

func TestPushDockerFormat(t *testing.T) {
	reg := testregistry.Start(t)
	ref := reg.Host() + "/models/docker:v1"
	var out, errOut bytes.Buffer
	if code := run([]string{"push", "--plain-http", "--format", "docker", "--concurrency", "1", writePushDir(t), ref}, &out, &errOut); code != 0 {
		t.Fatalf("push exited %d: %s", code, errOut.String())
	}
	r, err := remote.NewRepository(reg.Host() + "/models/docker")
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	_, data, err := oras.FetchBytes(context.Background(), r, "v1", oras.DefaultFetchBytesOptions)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"mediaType":"`+push.MediaTypeDockerConfig+`"`) || !strings.Contains(string(data), push.MediaTypeDockerGGUF) {
		t.Errorf("manifest is not a Docker model artifact: %s", data)
	}
}

// TestPushProgressBar: --progress bar draws the bar on stderr, whatever
// stderr is, and leaves stdout to the one "pushed" line.
func TestPushProgressBar(t *testing.T) {
	reg := testregistry.Start(t)
	ref := reg.Host() + "/models/bar:v1"
	var out, errOut bytes.Buffer
	if code := run([]string{"push", "--plain-http", "--progress", "bar", writePushDir(t), ref}, &out, &errOut); code != 0 {
		t.Fatalf("push exited %d: %s", code, errOut.String())
	}
	if m := pushedLine.FindStringSubmatch(out.String()); m == nil || m[1] != ref {
		t.Errorf("stdout %q, want one line \"pushed %s@sha256:...\"", out.String(), ref)
	}
	for _, want := range []string{"uploading  model.gguf (21B)\n", "100% |", "(45/45 B", "\npushed 3 files (45B): uploaded 3 blobs (45B)"} {
		if !strings.Contains(errOut.String(), want) {
			t.Errorf("stderr lacks %q:\n%q", want, errOut.String())
		}
	}

	errOut.Reset()
	if code := run([]string{"push", "--plain-http", "--progress=none", writePushDir(t), reg.Host() + "/models/none:v1"}, &out, &errOut); code != 0 {
		t.Fatalf("push --progress=none exited %d: %s", code, errOut.String())
	}
	if strings.Contains(errOut.String(), "%") || !strings.Contains(errOut.String(), "uploading  model.gguf (21B)\n") {
		t.Errorf("--progress=none: stderr %q, want the per-file lines only", errOut.String())
	}
}

// TestPushWithConfigThenPull: the configuration's registries settings apply
// to push, and `modelgate pull` lays out what push published.
func TestPushWithConfigThenPull(t *testing.T) {
	reg := testregistry.Start(t)
	dir := writePushDir(t)
	ref := reg.Host() + "/models/cfg:v1"
	cfg := filepath.Join(t.TempDir(), "modelgate.yaml")
	yaml := "models:\n  - {name: tiny, ref: \"" + ref + "\", runtime: none}\n" +
		"runtimes:\n  none: {command: [\"true\"]}\n" +
		"cache: {dir: \"" + filepath.Join(t.TempDir(), "cache") + "\"}\n" +
		"registries:\n  \"" + reg.Host() + "\": {plain_http: true}\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}

	var out, errOut bytes.Buffer
	if code := run([]string{"push", "--config", cfg, dir, ref}, &out, &errOut); code != 0 {
		t.Fatalf("push exited %d: %s", code, errOut.String())
	}
	digest := pushedLine.FindStringSubmatch(out.String())
	if digest == nil {
		t.Fatalf("stdout %q", out.String())
	}
	out.Reset()
	if code := run([]string{"pull", "--config", cfg, "tiny"}, &out, &errOut); code != 0 {
		t.Fatalf("pull exited %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "digest:     "+digest[2]) {
		t.Errorf("pull output lacks the pushed digest %s:\n%s", digest[2], out.String())
	}
	path := regexp.MustCompile(`path:\s+(\S+)`).FindStringSubmatch(out.String())
	if path == nil {
		t.Fatalf("no path in %s", out.String())
	}
	for _, name := range []string{"model.gguf", "sub/tokenizer.json", "README.md"} {
		want, _ := os.ReadFile(filepath.Join(dir, name))
		got, err := os.ReadFile(filepath.Join(path[1], name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s not laid out as pushed: %q, %v", name, got, err)
		}
	}
}

func TestPushUsageAndErrors(t *testing.T) {
	reg := testregistry.Start(t)
	empty := t.TempDir()
	ref := reg.Host() + "/models/bad:v1"
	tests := []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"help", []string{"push", "-h"}, 0, "Usage: modelgate push [flags] DIR"},
		{"no arguments", []string{"push"}, 1, "want two arguments: DIR and REF"},
		{"one argument", []string{"push", empty}, 1, "want two arguments"},
		{"empty directory", []string{"push", "--plain-http", empty, ref}, 1, "modelgate push: read model directory " + empty + ": no files to push"},
		{"missing directory", []string{"push", "--plain-http", filepath.Join(empty, "nope"), ref}, 1, filepath.Join(empty, "nope") + ": no such file or directory"},
		{"unknown format", []string{"push", "--format", "kit", writePushDir(t), ref}, 1, `format "kit" (want modelpack or docker)`},
		{"no tag", []string{"push", "--plain-http", writePushDir(t), reg.Host() + "/models/bad"}, 1, "reference has no tag"},
		{"bad concurrency", []string{"push", "--concurrency", "0", writePushDir(t), ref}, 1, "--concurrency 0: must be at least 1"},
		{"bad progress", []string{"push", "--progress", "fancy", writePushDir(t), ref}, 1, `invalid value "fancy" for flag -progress: "fancy" (want auto, bar, plain or none)`},
		{"missing config", []string{"push", "--config", filepath.Join(empty, "none.yaml"), writePushDir(t), ref}, 1, "load config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg.ResetRequests()
			var out, errOut bytes.Buffer
			if code := run(tt.args, &out, &errOut); code != tt.code {
				t.Fatalf("exit %d, want %d: %s", code, tt.code, errOut.String())
			}
			if !strings.Contains(errOut.String(), tt.stderr) {
				t.Errorf("stderr %q lacks %q", errOut.String(), tt.stderr)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q, want nothing", out.String())
			}
			if n := len(reg.Requests()); n != 0 {
				t.Errorf("%d registry requests", n)
			}
		})
	}
}
