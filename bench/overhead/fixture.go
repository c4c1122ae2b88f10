package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/modelgate/modelgate/bench/internal/benchproc"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/oci"

	"github.com/modelgate/modelgate/push"
)

const (
	// modelName is the model the overhead requests name; pinnedName is the
	// same artifact by digest, for the cold start.
	modelName  = "bench"
	pinnedName = "bench-pinned"
	// layoutTag tags the artifact in the layout.
	layoutTag = "v1"
	// pullTimeout bounds the pre-pull of the model into the cache.
	pullTimeout = 2 * time.Minute
	// gatewayReady bounds a gateway's start to its first /healthz 200, and
	// the runtime's.
	gatewayReady = 30 * time.Second
)

// fixture is the benchmark's work directory: the model as an OCI image
// layout, the cache it is pulled into, and what writes the configurations.
type fixture struct {
	cfg       config
	dir       string        // removed by remove
	layout    string        // the OCI image layout
	manifest  digest.Digest // the artifact's manifest in the layout
	modelFile string        // absolute path of cfg.model
	modelSize int64
	cacheDir  string
	starts    int // gateway configurations written, for unique file names
}

// newFixture writes the model into a layout and pulls it into a fresh
// cache with `modelgate pull`.
func newFixture(ctx context.Context, cfg config) (*fixture, error) {
	dir, err := os.MkdirTemp("", "modelgate-overhead-")
	if err != nil {
		return nil, fmt.Errorf("fixture: %w", err)
	}
	fx := &fixture{cfg: cfg, dir: dir, layout: filepath.Join(dir, "layout"), cacheDir: filepath.Join(dir, "cache")}
	if err := fx.prepare(ctx); err != nil {
		fx.remove()
		return nil, err
	}
	return fx, nil
}

func (fx *fixture) prepare(ctx context.Context) error {
	var err error
	if fx.modelFile, err = filepath.Abs(fx.cfg.model); err != nil {
		return fmt.Errorf("fixture: %w", err)
	}
	if fx.manifest, fx.modelSize, err = writeLayout(ctx, fx.layout, fx.modelFile); err != nil {
		return err
	}
	cfgPath, _, err := fx.gatewayConfig(1)
	if err != nil {
		return err
	}
	pctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	out, err := execCommand(pctx, fx.cfg.modelgate, "pull", "--config", cfgPath, "--progress", "none", "--log-level", "warn", modelName).CombinedOutput()
	if err != nil {
		return fmt.Errorf("fixture: modelgate pull: %w\n%s", err, out)
	}
	return nil
}

// remove deletes the work directory.
func (fx *fixture) remove() { _ = os.RemoveAll(fx.dir) }

// path is a file in the work directory.
func (fx *fixture) path(name string) string { return filepath.Join(fx.dir, name) }

// writeLayout writes modelFile as a one-layer CNCF ModelPack artifact into a
// new OCI image layout at dir (oras-go's store, as `oras copy
// --to-oci-layout` writes one), tagged layoutTag. It returns the manifest's
// digest and the file's size.
func writeLayout(ctx context.Context, dir, modelFile string) (digest.Digest, int64, error) {
	store, err := oci.New(dir)
	if err != nil {
		return "", 0, fmt.Errorf("write layout: %w", err)
	}
	f, err := os.Open(modelFile)
	if err != nil {
		return "", 0, fmt.Errorf("write layout: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", 0, fmt.Errorf("write layout: %w", err)
	}
	size := fi.Size()
	d, err := digest.FromReader(f)
	if err != nil {
		return "", 0, fmt.Errorf("write layout: hash %s: %w", modelFile, err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return "", 0, fmt.Errorf("write layout: %w", err)
	}
	name := filepath.Base(modelFile)
	layer := ocispec.Descriptor{MediaType: push.MediaTypeModelPackWeight, Digest: d, Size: size,
		Annotations: map[string]string{push.AnnotationFilepath: name, ocispec.AnnotationTitle: name}}
	if err := store.Push(ctx, layer, f); err != nil {
		return "", 0, fmt.Errorf("write layout: %w", err)
	}
	m, err := oras.PackManifest(ctx, store, oras.PackManifestVersion1_1, push.ArtifactTypeModelPack,
		oras.PackManifestOptions{Layers: []ocispec.Descriptor{layer}})
	if err != nil {
		return "", 0, fmt.Errorf("write layout: %w", err)
	}
	if err := store.Tag(ctx, m, layoutTag); err != nil {
		return "", 0, fmt.Errorf("write layout: %w", err)
	}
	return m.Digest, size, nil
}

// runtimeFlags are the test runtime's flags after --host and --port, the
// same for the gateway's runtime and the runtime alone: answers at once,
// streams of cfg.chunks events without waiting for POST /release.
func (fx *fixture) runtimeFlags(modelFile string) []string {
	return []string{"--model-file", modelFile, "--release-timeout", "0s", "--chunks", strconv.Itoa(fx.cfg.chunks)}
}

// runtimeAloneArgs is the runtime's command line when this program starts
// it on port, as the gateway would.
func (fx *fixture) runtimeAloneArgs(port int) []string {
	return append([]string{"--host", "127.0.0.1", "--port", strconv.Itoa(port)}, fx.runtimeFlags(fx.modelFile)...)
}

// tagRef and digestRef reference the artifact in the layout.
func (fx *fixture) tagRef() string { return "oci-layout://" + fx.layout + ":" + layoutTag }
func (fx *fixture) digestRef() string {
	return "oci-layout://" + fx.layout + "@" + fx.manifest.String()
}

// gatewayConfig writes a modelgate.yaml listening on a free port with
// models models: 1 is "bench" alone (by tag); 2 adds "bench-pinned" (by
// digest); more adds models that reference a registry on 127.0.0.1:9 (the
// discard port; never contacted, since nothing requests them) and are not
// in the cache. It returns the file and the gateway's base URL.
func (fx *fixture) gatewayConfig(models int) (path, base string, err error) {
	port, err := benchproc.FreePort()
	if err != nil {
		return "", "", err
	}
	argv := append([]string{fx.cfg.testruntime, "--host", "{{.Host}}", "--port", "{{.Port}}"}, fx.runtimeFlags("{{.ModelFile}}")...)
	var b strings.Builder
	fmt.Fprintf(&b, "listen: 127.0.0.1:%d\nshutdown_grace: 5s\nmodels:\n", port)
	fmt.Fprintf(&b, "  - {name: %s, ref: %s, runtime: testruntime}\n", modelName, quote(fx.tagRef()))
	if models >= 2 {
		fmt.Fprintf(&b, "  - {name: %s, ref: %s, runtime: testruntime}\n", pinnedName, quote(fx.digestRef()))
	}
	for i := 3; i <= models; i++ {
		fmt.Fprintf(&b, "  - {name: model-%05d, ref: \"127.0.0.1:9/bench/model-%05d:v1\", runtime: testruntime}\n", i, i)
	}
	fmt.Fprintf(&b, "runtimes:\n  testruntime:\n    command: %s\n    health: /health\n    startup_timeout: 30s\n    stop_timeout: 5s\n", quote(argv))
	fmt.Fprintf(&b, "cache: {dir: %s}\n", quote(fx.cacheDir))
	fx.starts++
	path = fx.path(fmt.Sprintf("modelgate-%d-%d.yaml", models, fx.starts))
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		return "", "", fmt.Errorf("write gateway config: %w", err)
	}
	return path, fmt.Sprintf("http://127.0.0.1:%d", port), nil
}

// quote writes v as JSON, which YAML reads as a flow scalar or sequence.
func quote(v any) string {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // strings and string slices always marshal
	}
	return string(data)
}
