package push_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
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
)

// modTime is the modification time of every fixture file but the newest.
var modTime = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// newest is the modification time of model.gguf, the newest fixture file:
// the creation time push records.
var newest = modTime.Add(90 * time.Minute)

// writeModel writes a model directory: nested files of each kind, a
// symbolic link to a file inside it, and a .git/ directory that push skips.
func writeModel(t *testing.T) string {
	t.Helper()
	weights := make([]byte, 96<<10)
	rand.Read(weights)
	copy(weights, "GGUF")
	dir := t.TempDir()
	writeFiles(t, dir, map[string][]byte{
		"model.gguf":          weights,
		"config.json":         []byte(`{"architectures":["LlamaForCausalLM"]}`),
		"sub/tokenizer.json":  []byte(`{"version":"1.0"}`),
		"README.md":           []byte("# tiny\n"),
		"LICENSE":             []byte("Apache License 2.0\n"),
		"run.py":              []byte("print('hello')\n"),
		"template.jinja":      []byte("{{ messages }}"),
		".git/HEAD":           []byte("ref: refs/heads/main\n"),
		".gitattributes":      []byte("*.gguf filter=lfs\n"),
		"empty/.keep":         nil,
		"docs/description.md": []byte("A tiny model.\n"),
	})
	if err := os.Symlink("../README.md", filepath.Join(dir, "docs", "readme-link.md")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(filepath.Join(dir, "model.gguf"), newest, newest); err != nil {
		t.Fatal(err)
	}
	return dir
}

// writeFiles writes files (slash-separated paths) under dir, every one with
// modification time modTime unless it is already newer.
func writeFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, modTime, modTime); err != nil {
			t.Fatal(err)
		}
	}
}

// pushedFiles are the files push must publish from writeModel's directory,
// in layer order, with their media types in each format.
var pushedFiles = []struct {
	path, modelpack, docker string
}{
	{"LICENSE", push.MediaTypeModelPackDoc, push.MediaTypeDockerLicense},
	{"README.md", push.MediaTypeModelPackDoc, push.MediaTypeDockerModelFile},
	{"config.json", push.MediaTypeModelPackWeightConfig, push.MediaTypeDockerModelFile},
	{"docs/description.md", push.MediaTypeModelPackDoc, push.MediaTypeDockerModelFile},
	{"docs/readme-link.md", push.MediaTypeModelPackDoc, push.MediaTypeDockerModelFile},
	{"model.gguf", push.MediaTypeModelPackWeight, push.MediaTypeDockerGGUF},
	{"run.py", push.MediaTypeModelPackCode, push.MediaTypeDockerModelFile},
	{"sub/tokenizer.json", push.MediaTypeModelPackWeightConfig, push.MediaTypeDockerModelFile},
	{"template.jinja", push.MediaTypeModelPackCode, push.MediaTypeDockerChatTemplate},
}

func newClient(reg *testregistry.Registry) *oci.Client {
	return oci.NewClient(oci.ClientOptions{
		PlainHTTP: map[string]bool{reg.Host(): true},
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

// openRepo opens repo on the registry's counting front with oras-go alone.
func openRepo(t *testing.T, reg *testregistry.Registry, repo string) *remote.Repository {
	t.Helper()
	r, err := remote.NewRepository(reg.Host() + "/" + repo)
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	return r
}

// fetchArtifact reads back the manifest tagged tag and its config blob.
func fetchArtifact(t *testing.T, repo *remote.Repository, tag string) (ocispec.Descriptor, ocispec.Manifest, []byte) {
	t.Helper()
	ctx := t.Context()
	desc, data, err := oras.FetchBytes(ctx, repo, tag, oras.DefaultFetchBytesOptions)
	if err != nil {
		t.Fatalf("fetch manifest %s: %v", tag, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	config, err := content.FetchAll(ctx, repo, m.Config)
	if err != nil {
		t.Fatalf("fetch config: %v", err)
	}
	return desc, m, config
}

func TestPushWritesEachFormat(t *testing.T) {
	reg := testregistry.Start(t)
	dir := writeModel(t)
	schema := loadSchema(t, "testdata/modelpack-config-schema.json")
	for _, format := range []string{push.FormatModelPack, push.FormatDocker} {
		t.Run(format, func(t *testing.T) {
			ref := reg.Host() + "/models/tiny-" + format + ":v1"
			var progress bytes.Buffer
			res, err := push.Directory(t.Context(), newClient(reg), dir, ref, push.Options{Format: format, Progress: &progress})
			if err != nil {
				t.Fatal(err)
			}
			desc, m, config := fetchArtifact(t, openRepo(t, reg, "models/tiny-"+format), "v1")
			if desc.Digest != res.Manifest.Digest || res.Ref != ref+"@"+desc.Digest.String() {
				t.Errorf("tag points to %s; push returned %s (%s)", desc.Digest, res.Manifest.Digest, res.Ref)
			}
			if m.MediaType != ocispec.MediaTypeImageManifest {
				t.Errorf("manifest media type %q", m.MediaType)
			}
			wantArtifactType, wantConfigType := push.ArtifactTypeModelPack, push.MediaTypeModelPackConfig
			if format == push.FormatDocker {
				wantArtifactType, wantConfigType = "", push.MediaTypeDockerConfig
			}
			if m.ArtifactType != wantArtifactType || m.Config.MediaType != wantConfigType {
				t.Errorf("artifactType %q, config %q; want %q, %q", m.ArtifactType, m.Config.MediaType, wantArtifactType, wantConfigType)
			}
			if got := m.Annotations[ocispec.AnnotationCreated]; got != newest.Format(time.RFC3339) {
				t.Errorf("manifest created %q, want the newest file time %s", got, newest.Format(time.RFC3339))
			}
			if len(m.Layers) != len(pushedFiles) {
				t.Fatalf("%d layers, want %d: %+v", len(m.Layers), len(pushedFiles), m.Layers)
			}
			var diffIDs []digest.Digest
			for i, want := range pushedFiles {
				l := m.Layers[i]
				wantType := want.modelpack
				if format == push.FormatDocker {
					wantType = want.docker
				}
				if l.Annotations[ocispec.AnnotationTitle] != want.path || l.Annotations[push.AnnotationFilepath] != want.path {
					t.Errorf("layer %d annotations %v, want title and filepath %q", i, l.Annotations, want.path)
				}
				if l.MediaType != wantType {
					t.Errorf("%s: media type %q, want %q", want.path, l.MediaType, wantType)
				}
				data, err := os.ReadFile(filepath.Join(dir, want.path))
				if err != nil {
					t.Fatal(err)
				}
				if l.Digest != digest.FromBytes(data) || l.Size != int64(len(data)) {
					t.Errorf("%s: layer %s/%d does not describe the file's bytes", want.path, l.Digest, l.Size)
				}
				diffIDs = append(diffIDs, l.Digest)
			}
			if format == push.FormatModelPack {
				checkModelPackConfig(t, schema, config, diffIDs)
			} else {
				checkDockerConfig(t, config, diffIDs)
			}
			for _, hidden := range []string{".git/", ".gitattributes"} {
				if !strings.Contains(progress.String(), "skipped    "+hidden+" (hidden)") {
					t.Errorf("progress does not report skipping %s:\n%s", hidden, progress.String())
				}
			}
		})
	}
}

func checkModelPackConfig(t *testing.T, schema *jsonSchema, data []byte, diffIDs []digest.Digest) {
	t.Helper()
	if errs := schema.validate(data); len(errs) != 0 {
		t.Errorf("config does not validate against the ModelPack schema:\n%s\n%s", strings.Join(errs, "\n"), data)
	}
	var c struct {
		Descriptor struct{ CreatedAt, Name, Version string }
		Config     struct{ Format string }
		ModelFS    struct {
			Type    string
			DiffIDs []digest.Digest `json:"diffIds"`
		}
	}
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	if c.Descriptor.CreatedAt != newest.Format(time.RFC3339) || c.Descriptor.Name != "tiny-modelpack" || c.Descriptor.Version != "v1" {
		t.Errorf("descriptor %+v", c.Descriptor)
	}
	if c.Config.Format != "gguf" || c.ModelFS.Type != "layers" || !slices.Equal(c.ModelFS.DiffIDs, diffIDs) {
		t.Errorf("config %s, want format gguf and the layer digests as diffIds", data)
	}
}

func checkDockerConfig(t *testing.T, data []byte, diffIDs []digest.Digest) {
	t.Helper()
	var c struct {
		Config     struct{ Format, Size string }
		Descriptor struct{ Created string }
		RootFS     struct {
			Type    string
			DiffIDs []digest.Digest `json:"diff_ids"`
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatalf("config %s: %v", data, err)
	}
	if c.Config.Format != "gguf" || c.Config.Size != "96KiB" || c.Descriptor.Created != newest.Format(time.RFC3339) {
		t.Errorf("config %s", data)
	}
	if c.RootFS.Type != "rootfs" || !slices.Equal(c.RootFS.DiffIDs, diffIDs) {
		t.Errorf("rootfs %+v, want the layer digests", c.RootFS)
	}
}

// TestOrasPullRecreatesTheDirectory: oras-go's file store (what `oras pull`
// uses) lays out what we push as the source directory, byte for byte.
func TestOrasPullRecreatesTheDirectory(t *testing.T) {
	reg := testregistry.Start(t)
	dir := writeModel(t)
	for _, format := range []string{push.FormatModelPack, push.FormatDocker} {
		t.Run(format, func(t *testing.T) {
			ref := reg.Host() + "/models/oras-" + format + ":v1"
			if _, err := push.Directory(t.Context(), newClient(reg), dir, ref, push.Options{Format: format}); err != nil {
				t.Fatal(err)
			}
			out := t.TempDir()
			store, err := file.New(out)
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			if _, err := oras.Copy(t.Context(), openRepo(t, reg, "models/oras-"+format), "v1", store, "v1", oras.DefaultCopyOptions); err != nil {
				t.Fatalf("oras pull: %v", err)
			}
			sameFiles(t, dir, out)
		})
	}
}

// TestModelgatePullRecreatesTheDirectory: modelgate's own fetcher lays out
// what we push as the source directory.
func TestModelgatePullRecreatesTheDirectory(t *testing.T) {
	reg := testregistry.Start(t)
	dir := writeModel(t)
	ref := reg.Host() + "/models/tiny:v1"
	res, err := push.Directory(t.Context(), newClient(reg), dir, ref, push.Options{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.Open(t.TempDir(), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := fetcher.New(c, fetcher.Options{Client: newClient(reg), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	pulled, err := f.Pull(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if pulled.Model.Digest != res.Manifest.Digest || pulled.Model.MainFile != "model.gguf" {
		t.Errorf("pulled %s (main file %q), pushed %s", pulled.Model.Digest, pulled.Model.MainFile, res.Manifest.Digest)
	}
	sameFiles(t, dir, pulled.Model.Dir)
}

// sameFiles checks that got holds exactly the files push publishes from
// want (hidden entries and empty directories left out), with equal bytes.
func sameFiles(t *testing.T, want, got string) {
	t.Helper()
	wantFiles, gotFiles := listFiles(t, want, true), listFiles(t, got, false)
	if !slices.Equal(wantFiles, gotFiles) {
		t.Fatalf("files %v, want %v", gotFiles, wantFiles)
	}
	for _, name := range wantFiles {
		a, err := os.ReadFile(filepath.Join(want, name))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(got, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs: %d bytes pulled, %d pushed", name, len(b), len(a))
		}
	}
}

// listFiles lists the files under root (following no directory link), in
// lexical order, optionally without hidden entries.
func listFiles(t *testing.T, root string, skipHidden bool) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if skipHidden && p != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.IsDir() {
			rel, _ := filepath.Rel(root, p)
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// uploads counts the blob uploads the registry saw: upload sessions opened
// (POST) and content sent (PATCH or PUT).
func uploads(reg *testregistry.Registry) int {
	return reg.Count("POST", "/blobs/uploads") + reg.Count("PATCH", "/blobs/uploads") + reg.Count("PUT", "/blobs/uploads")
}

func TestSecondPushUploadsNothing(t *testing.T) {
	reg := testregistry.Start(t)
	dir := writeModel(t)
	ref := reg.Host() + "/models/tiny:v1"
	client := newClient(reg)
	// README.md and docs/readme-link.md share one blob.
	const blobs = 8

	first, err := push.Directory(t.Context(), client, dir, ref, push.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Uploaded != blobs || first.Existing != 0 || first.Files != len(pushedFiles) {
		t.Errorf("first push: %+v", first)
	}
	// Each blob, the config included, is uploaded once: POST then PUT.
	if n := reg.Count("PUT", "/blobs/uploads"); n != blobs+1 {
		t.Errorf("first push: %d blob uploads, want %d", n, blobs+1)
	}

	reg.ResetRequests()
	var progress bytes.Buffer
	second, err := push.Directory(t.Context(), client, dir, ref, push.Options{Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	if n := uploads(reg); n != 0 {
		t.Errorf("second push made %d upload requests: %v", n, reg.Requests())
	}
	if second.Uploaded != 0 || second.UploadedBytes != 0 || second.Existing != blobs {
		t.Errorf("second push: %+v", second)
	}
	if second.Manifest.Digest != first.Manifest.Digest {
		t.Errorf("same directory, new manifest digest: %s then %s", first.Manifest.Digest, second.Manifest.Digest)
	}
	if n := strings.Count(progress.String(), ", already in the registry)\n"); n != blobs {
		t.Errorf("progress reports %d files already in the registry, want %d:\n%s", n, blobs, progress.String())
	}
	if !strings.Contains(progress.String(), "uploaded 0 blobs (0B), 8 already in the registry") {
		t.Errorf("no summary in progress:\n%s", progress.String())
	}

	// Changing one file uploads that file and a new config, nothing else.
	writeFiles(t, dir, map[string][]byte{"README.md": []byte("# tiny, v2\n")})
	reg.ResetRequests()
	third, err := push.Directory(t.Context(), client, dir, reg.Host()+"/models/tiny:v2", push.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if third.Uploaded != 1 || third.UploadedBytes != int64(len("# tiny, v2\n")) {
		t.Errorf("third push: %+v", third)
	}
	if n := reg.Count("PUT", "/blobs/uploads"); n != 2 {
		t.Errorf("third push: %d blob uploads, want 2 (README.md and the config)", n)
	}
}

// TestPushManyFilesSharingContent: at a low concurrency, many files (empty
// ones, and several with one content) upload each blob once and lay out
// again as they were.
func TestPushManyFilesSharingContent(t *testing.T) {
	reg := testregistry.Start(t)
	dir := t.TempDir()
	files := map[string][]byte{"model.safetensors": bytes.Repeat([]byte("w"), 10<<10)}
	for i := range 24 {
		files[fmt.Sprintf("shard/%02d.bin", i)] = []byte(fmt.Sprintf("content %d", i%6))
	}
	files["empty.txt"] = nil
	files["also-empty.txt"] = []byte{}
	writeFiles(t, dir, files)
	ref := reg.Host() + "/models/many:v1"
	res, err := push.Directory(t.Context(), newClient(reg), dir, ref, push.Options{Format: push.FormatDocker, Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 27 || res.Uploaded != 8 {
		t.Errorf("%d files, %d blobs uploaded; want 27 and 8 (weights, 6 contents, empty)", res.Files, res.Uploaded)
	}
	if n := reg.Count("PUT", "/blobs/uploads"); n != 9 {
		t.Errorf("%d blob uploads, want 9 (8 and the config)", n)
	}
	out := t.TempDir()
	store, err := file.New(out)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := oras.Copy(t.Context(), openRepo(t, reg, "models/many"), "v1", store, "v1", oras.DefaultCopyOptions); err != nil {
		t.Fatal(err)
	}
	sameFiles(t, dir, out)
}

func TestPushRefuses(t *testing.T) {
	reg := testregistry.Start(t)
	outside := filepath.Join(t.TempDir(), "secret")
	writeFiles(t, filepath.Dir(outside), map[string][]byte{"secret": []byte("not part of the model")})
	model := map[string][]byte{"model.gguf": []byte("GGUF weights")}

	tests := []struct {
		name   string
		setup  func(t *testing.T, dir string) string // returns the DIR to push
		ref    string                                // default models/bad:v1
		format string
		want   error  // errors.Is target
		names  string // the error must contain this (a path); "DIR" is replaced by DIR
		asRoot bool   // the case cannot be set up by root (which reads anything)
	}{
		{name: "empty directory", setup: func(t *testing.T, d string) string { return d }, want: push.ErrEmptyDir, names: "DIR"},
		{name: "only hidden entries", setup: func(t *testing.T, d string) string {
			writeFiles(t, d, map[string][]byte{".git/HEAD": []byte("x"), ".env": []byte("x")})
			return d
		}, want: push.ErrEmptyDir, names: "DIR"},
		{name: "missing directory", setup: func(t *testing.T, d string) string { return filepath.Join(d, "missing") }, want: fs.ErrNotExist, names: "DIR"},
		{name: "file, not a directory", setup: func(t *testing.T, d string) string {
			writeFiles(t, d, model)
			return filepath.Join(d, "model.gguf")
		}, want: push.ErrNotDir, names: "DIR"},
		{name: "dangling symbolic link", setup: func(t *testing.T, d string) string {
			writeFiles(t, d, model)
			must(t, os.Symlink("nowhere.bin", filepath.Join(d, "broken.bin")))
			return d
		}, want: fs.ErrNotExist, names: "DIR/broken.bin"},
		{name: "symbolic link out of the directory", setup: func(t *testing.T, d string) string {
			writeFiles(t, d, model)
			must(t, os.Symlink(outside, filepath.Join(d, "escape.txt")))
			return d
		}, want: push.ErrLinkOutside, names: "DIR/escape.txt"},
		{name: "relative symbolic link out of the directory", setup: func(t *testing.T, d string) string {
			writeFiles(t, d, model)
			rel, err := filepath.Rel(d, outside)
			must(t, err)
			must(t, os.Symlink(rel, filepath.Join(d, "secret")))
			return d
		}, want: push.ErrLinkOutside, names: "DIR/secret"},
		{name: "symbolic link to a directory", setup: func(t *testing.T, d string) string {
			writeFiles(t, d, map[string][]byte{"model.gguf": []byte("w"), "sub/a.json": []byte("{}")})
			must(t, os.Symlink("sub", filepath.Join(d, "sub-link")))
			return d
		}, want: push.ErrNotRegular, names: "DIR/sub-link"},
		{name: "named pipe", setup: func(t *testing.T, d string) string {
			writeFiles(t, d, model)
			must(t, syscall.Mkfifo(filepath.Join(d, "pipe"), 0o644))
			return d
		}, want: push.ErrNotRegular, names: "DIR/pipe"},
		{name: "unreadable file", asRoot: true, setup: func(t *testing.T, d string) string {
			writeFiles(t, d, model)
			must(t, os.Chmod(filepath.Join(d, "model.gguf"), 0))
			return d
		}, want: fs.ErrPermission, names: "DIR/model.gguf"},
		{name: "unreadable subdirectory", asRoot: true, setup: func(t *testing.T, d string) string {
			writeFiles(t, d, map[string][]byte{"model.gguf": []byte("w"), "sub/a.json": []byte("{}")})
			must(t, os.Chmod(filepath.Join(d, "sub"), 0))
			t.Cleanup(func() { os.Chmod(filepath.Join(d, "sub"), 0o755) })
			return d
		}, want: fs.ErrPermission, names: "DIR/sub"},
		{name: "docker format without weights", format: push.FormatDocker, setup: func(t *testing.T, d string) string {
			writeFiles(t, d, map[string][]byte{"README.md": []byte("x")})
			return d
		}, want: push.ErrNoWeights, names: "DIR"},
		{name: "unknown format", format: "kitops", setup: func(t *testing.T, d string) string { writeFiles(t, d, model); return d }, want: push.ErrUnknownFormat, names: `"kitops"`},
		{name: "reference without tag", ref: "models/bad", setup: func(t *testing.T, d string) string { writeFiles(t, d, model); return d }, want: push.ErrNoTag, names: "/models/bad"},
		{name: "digest reference", ref: "models/bad@sha256:" + strings.Repeat("a", 64), setup: func(t *testing.T, d string) string { writeFiles(t, d, model); return d }, want: push.ErrNoTag, names: "/models/bad@sha256:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.asRoot && os.Geteuid() == 0 {
				t.Skip("root reads files and directories whatever their mode; the dangling-link case covers an unreadable entry")
			}
			dir := tt.setup(t, t.TempDir())
			ref := tt.ref
			if ref == "" {
				ref = "models/bad:v1"
			}
			reg.ResetRequests()
			_, err := push.Directory(context.Background(), newClient(reg), dir, reg.Host()+"/"+ref, push.Options{Format: tt.format})
			if !errors.Is(err, tt.want) {
				t.Fatalf("error %v, want %v", err, tt.want)
			}
			if want := strings.ReplaceAll(tt.names, "DIR", dir); !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not name %q", err, want)
			}
			if reqs := reg.Requests(); len(reqs) != 0 {
				t.Errorf("refused push still talked to the registry: %v", reqs)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
