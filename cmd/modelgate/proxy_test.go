package main

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/internal/testregistry"
)

// proxiedRegistry is the registry host the proxy tests put in references. The
// .invalid TLD never resolves (RFC 2606), so a pull of it succeeds only
// through the forward proxy. Go never proxies loopback hosts
// (http.ProxyFromEnvironment), which is why the test registry's own
// 127.0.0.1 address cannot be used here.
const proxiedRegistry = "registry.invalid:5000"

// TestPullHonoursProxyEnvironment runs the real binary, because net/http
// reads HTTP_PROXY, HTTPS_PROXY and NO_PROXY once per process: a pull of a
// registry whose name does not resolve works through the proxy that
// HTTP_PROXY (or http_proxy) names, and goes direct, and so fails, when
// NO_PROXY names the registry or only HTTPS_PROXY is set for a plain-HTTP
// registry.
func TestPullHonoursProxyEnvironment(t *testing.T) {
	reg := testregistry.Start(t)
	weights := make([]byte, 64<<10)
	rand.Read(weights)
	reg.Push(t, "models/tiny", "v1", []testregistry.Layer{{Title: "model.bin", Data: weights}})
	manifestPath := "/v2/models/tiny/manifests/v1"
	blobPath := "/v2/models/tiny/blobs/" + digest.FromBytes(weights).String()
	bin := buildModelgate(t)

	for _, tc := range []struct {
		name    string
		env     func(proxyURL string) []string
		proxied bool // the pull goes through the proxy and succeeds
	}{
		{"HTTP_PROXY", func(p string) []string { return []string{"HTTP_PROXY=" + p} }, true},
		{"LowercaseHTTPProxy", func(p string) []string { return []string{"http_proxy=" + p} }, true},
		{"NO_PROXY", func(p string) []string {
			return []string{"HTTP_PROXY=" + p, "NO_PROXY=localhost,registry.invalid"}
		}, false},
		// A plain-HTTP registry is not reached through the HTTPS proxy.
		{"HTTPS_PROXYOnly", func(p string) []string { return []string{"HTTPS_PROXY=" + p} }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy := startForwardProxy(t, reg.Host())
			cfg := writeProxyConfig(t)
			stdout, stderr, err := runModelgate(t, bin, tc.env(proxy.url()), "pull", "--config", cfg, "--progress", "none", "tiny")
			reqs := proxy.requests()

			if !tc.proxied {
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 1 {
					t.Fatalf("pull bypassing the proxy: %v, want exit status 1\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
				}
				if len(reqs) != 0 {
					t.Errorf("the proxy saw %d requests, want none: %v", len(reqs), reqs)
				}
				if !strings.Contains(stderr, proxiedRegistry) {
					t.Errorf("stderr does not name the unreachable registry %s:\n%s", proxiedRegistry, stderr)
				}
				return
			}

			if err != nil {
				t.Fatalf("pull through the proxy: %v\nstderr:\n%s", err, stderr)
			}
			if !strings.Contains(stdout, "downloaded: 65536\n") {
				t.Errorf("pull output lacks the downloaded bytes:\n%s", stdout)
			}
			for _, r := range reqs {
				if r.host != proxiedRegistry {
					t.Errorf("the proxy was asked for %s %q at %q, want absolute-form requests for %s", r.method, r.path, r.host, proxiedRegistry)
				}
			}
			for _, want := range []string{manifestPath, blobPath} {
				if !slices.ContainsFunc(reqs, func(r proxyRequest) bool { return r.path == want }) {
					t.Errorf("the proxy saw no request for %s; it saw %v", want, reqs)
				}
			}
		})
	}
}

// buildModelgate builds the binary once for a test and returns its path.
func buildModelgate(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "modelgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// proxyEnvKeys are the variables net/http (golang.org/x/net/http/httpproxy)
// reads, in both cases; REQUEST_METHOD makes it ignore HTTP_PROXY (CGI,
// httpoxy).
var proxyEnvKeys = []string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "REQUEST_METHOD"}

// runModelgate runs bin with args to completion, with the proxy variables of
// the test's own environment replaced by env, and returns its output and
// exit error.
func runModelgate(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(proxyEnvKeys, strings.ToUpper(k)) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	cmd.WaitDelay = 5 * time.Second // don't hang on output pipes held open elsewhere
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// writeProxyConfig writes a configuration with one model, tiny, pulled from
// proxiedRegistry over plain HTTP into a fresh cache, and returns its path.
// The runtime is never started by pull.
func writeProxyConfig(t *testing.T) string {
	t.Helper()
	cfg := fmt.Sprintf(`models:
  - name: tiny
    ref: %s/models/tiny:v1
    runtime: unused
runtimes:
  unused:
    command: ["false"]
    health: /health
cache: {dir: %q, max_bytes: 1GiB}
registries:
  %q: {plain_http: true}
`, proxiedRegistry, filepath.Join(t.TempDir(), "cache"), proxiedRegistry)
	path := filepath.Join(t.TempDir(), "modelgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// proxyRequest is one request seen by the forward proxy.
type proxyRequest struct {
	method string
	host   string // the host of an absolute-form request target; "" if origin-form
	path   string
}

func (r proxyRequest) String() string { return r.method + " " + r.host + r.path }

// forwardProxy is an HTTP forward proxy on 127.0.0.1 that records every
// request and forwards absolute-form ones, whatever host they name, to one
// upstream address. Safe for concurrent use.
type forwardProxy struct {
	srv *httptest.Server

	mu   sync.Mutex
	reqs []proxyRequest
}

// startForwardProxy starts a proxy forwarding to upstream (host:port) and
// closes it in t.Cleanup.
func startForwardProxy(t *testing.T, upstream string) *forwardProxy {
	t.Helper()
	transport := &http.Transport{} // no Proxy: straight to upstream
	target := &url.URL{Scheme: "http", Host: upstream}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// Keep the Host the client asked for: Distribution builds
			// Location URLs from it, and those lead back through the proxy.
			pr.Out.Host = pr.In.Host
		},
		Transport:     transport,
		FlushInterval: -1, // stream blobs
	}
	p := &forwardProxy{}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A client using a proxy sends the absolute URL as the request
		// target (RFC 9112 section 3.2.2); r.URL.Host is empty otherwise.
		p.record(proxyRequest{method: r.Method, host: r.URL.Host, path: r.URL.Path})
		if !r.URL.IsAbs() || r.URL.Scheme != "http" {
			http.Error(w, "forward proxy: want an absolute http:// request target", http.StatusBadRequest)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		p.srv.Close()
		transport.CloseIdleConnections()
	})
	return p
}

// url returns the proxy's URL, http://127.0.0.1:PORT, for HTTP_PROXY.
func (p *forwardProxy) url() string { return p.srv.URL }

func (p *forwardProxy) record(r proxyRequest) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = append(p.reqs, r)
}

// requests returns a copy of the requests seen so far, in order.
func (p *forwardProxy) requests() []proxyRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.reqs)
}
