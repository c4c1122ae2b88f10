package gateway_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/testregistry"
	"github.com/modelgate/modelgate/internal/testruntime"
	"github.com/modelgate/modelgate/oci"
	"github.com/modelgate/modelgate/runtime"
)

func TestMain(m *testing.M) {
	code := m.Run()
	_ = testruntime.Cleanup()
	os.Exit(code)
}

// artifact is a small model pushed to the test registry: a 256 KiB weights
// file (the largest, so it is {{.ModelFile}}) and a config file.
type artifact struct {
	ref      string
	manifest ocispec.Descriptor
	weights  []byte
	layers   []testregistry.Layer
}

func (a artifact) weightsSHA256() string {
	sum := sha256.Sum256(a.weights)
	return hex.EncodeToString(sum[:])
}

func pushModel(t *testing.T, reg *testregistry.Registry, repo, tag string) artifact {
	t.Helper()
	weights := make([]byte, 256<<10)
	if _, err := rand.Read(weights); err != nil {
		t.Fatal(err)
	}
	layers := []testregistry.Layer{
		{Title: "model.bin", Data: weights},
		{Title: "config/params.json", Data: []byte(`{"dim":64}`)},
	}
	desc := reg.Push(t, repo, tag, layers)
	return artifact{ref: reg.Host() + "/" + repo + ":" + tag, manifest: desc, weights: weights, layers: layers}
}

// profile runs the test runtime with extra flags.
func profile(t *testing.T, extra ...string) runtime.Profile {
	bin := testruntime.Build(t)
	cmd := append([]string{bin, "--port", "{{.Port}}", "--host", "{{.Host}}", "--model-dir", "{{.ModelDir}}", "--model-file", "{{.ModelFile}}"}, extra...)
	return runtime.Profile{
		Name: "testrt", Command: cmd, HealthPath: "/health", ReadyStatus: 200,
		StartupTimeout: 30 * time.Second, StopSignal: syscall.SIGTERM, StopTimeout: 5 * time.Second,
	}
}

// gatewayUnderTest is a gateway serving on 127.0.0.1 in this process.
type gatewayUnderTest struct {
	url   string
	srv   *gateway.Server
	fleet *gateway.Fleet
	done  chan error
	cache string
}

type gatewayOptions struct {
	cacheDir        string
	maxCacheBytes   int64
	maxRequestBytes int64
	// plainHosts are more registries spoken to over plain HTTP (a fault
	// proxy in front of the test registry).
	plainHosts []string
	// fleet sets max_running, groups and the restart policy (its Logger
	// is the test's).
	fleet       gateway.FleetOptions
	adminToken  string
	unloadGrace time.Duration
}

func startGateway(t *testing.T, reg *testregistry.Registry, opts gatewayOptions, specs ...gateway.ModelSpec) *gatewayUnderTest {
	t.Helper()
	if opts.cacheDir == "" {
		opts.cacheDir = t.TempDir()
	}
	if opts.maxRequestBytes == 0 {
		opts.maxRequestBytes = 1 << 20
	}
	c, err := cache.Open(opts.cacheDir, cache.Options{MaxBytes: opts.maxCacheBytes})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(failOnBug{slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}), t})
	plain := map[string]bool{}
	if reg != nil {
		plain[reg.Host()] = true
	}
	for _, h := range opts.plainHosts {
		plain[h] = true
	}
	f := fetcher.New(c, fetcher.Options{Client: oci.NewClient(oci.ClientOptions{PlainHTTP: plain, Logger: log}), Logger: log})
	fo := opts.fleet
	fo.Logger = log
	fleet := gateway.NewFleet(f, specs, fo)
	srv := gateway.New(gateway.Options{Fleet: fleet, MaxRequestBytes: opts.maxRequestBytes, Logger: log, AdminToken: opts.adminToken, UnloadGrace: opts.unloadGrace})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gatewayUnderTest{url: "http://" + l.Addr().String(), srv: srv, fleet: fleet, done: make(chan error, 1), cache: opts.cacheDir}
	go func() { g.done <- srv.Serve(l) }()
	fleet.Preload()
	t.Cleanup(func() { g.stop(t) })
	return g
}

// failOnBug fails the test when the gateway logs a state transition its
// table refuses (gateway/state.go logs it at level Error with this
// message): every transition the code makes must be in the table.
type failOnBug struct {
	slog.Handler
	t *testing.T
}

func (h failOnBug) Handle(ctx context.Context, r slog.Record) error {
	if strings.HasPrefix(r.Message, "BUG: model state transition refused") {
		h.t.Errorf("gateway refused a state transition: %s", r.Message)
	}
	return h.Handler.Handle(ctx, r)
}

func (h failOnBug) WithAttrs(attrs []slog.Attr) slog.Handler {
	return failOnBug{h.Handler.WithAttrs(attrs), h.t}
}

func (h failOnBug) WithGroup(name string) slog.Handler {
	return failOnBug{h.Handler.WithGroup(name), h.t}
}

// stop shuts the gateway down (idempotent).
func (g *gatewayUnderTest) stop(t *testing.T) {
	if g.done == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := g.srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if err := <-g.done; err != nil {
		t.Errorf("serve: %v", err)
	}
	g.done = nil
}

// testWriter sends the gateway's log to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// echoReply is what the test runtime answers to a plain request.
type echoReply struct {
	Method          string            `json:"method"`
	Path            string            `json:"path"`
	Query           string            `json:"query"`
	Body            string            `json:"body"`
	ModelFileSHA256 string            `json:"model_file_sha256"`
	ModelFiles      []string          `json:"model_files"`
	PID             int               `json:"pid"`
	Headers         map[string]string `json:"headers"`
}

// apiErr is the OpenAI error shape.
type apiErr struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	} `json:"error"`
}

func do(t *testing.T, method, url, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	return resp, data
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}
