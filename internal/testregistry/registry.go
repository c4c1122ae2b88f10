// Package testregistry starts a real CNCF Distribution registry process for
// integration tests, fronted by a reverse proxy that records every request.
//
// It needs one of these binaries:
//
//	apt-get install -y docker-registry   # Distribution 2.8, /usr/bin/docker-registry
//	go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2
package testregistry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"oras.land/oras-go/v2/registry/remote/auth"
)

const (
	// startAttempts bounds the retries when a freshly chosen port is taken
	// between probing it and the registry binding it.
	startAttempts = 3
	// readyTimeout bounds one attempt's wait for GET /v2/ to answer 200.
	readyTimeout = 30 * time.Second
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace = 5 * time.Second
	// maxLogBytes caps the captured registry output; the rest is dropped.
	maxLogBytes = 1 << 20
)

// Registry is a running registry process plus its counting front.
// All methods are safe for concurrent use.
type Registry struct {
	root   string       // filesystem storage root
	direct string       // 127.0.0.1:PORT of the process
	client *http.Client // harness-owned client for Push, Tag and readiness checks
	proc   *process
	front  *front
	// auth is nil for Start's anonymous registry; authCache keeps the
	// harness's tokens across its direct pushes.
	auth      *authSetup
	authCache auth.Cache

	stopOnce sync.Once
}

// Start starts a registry for the test and stops it in t.Cleanup, logging the
// registry's output if the test failed. It fails the test if no registry
// binary is installed or the registry does not come up.
func Start(t testing.TB) *Registry {
	t.Helper()
	return StartWithOptions(t, Options{})
}

// StartWithOptions is Start with authentication as opts says.
func StartWithOptions(t testing.TB, opts Options) *Registry {
	t.Helper()
	bin, err := findBinary()
	if err != nil {
		t.Fatalf("%v; install one with `apt-get install -y docker-registry` or "+
			"`go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2`", err)
	}
	dir := t.TempDir() // removed after the cleanup below has stopped the process
	r := &Registry{
		root:      filepath.Join(dir, "storage"),
		client:    &http.Client{Transport: &http.Transport{}},
		authCache: auth.NewCache(),
	}
	if r.auth, err = setupAuth(dir, opts); err != nil {
		t.Fatalf("start registry: %v", err)
	}
	if r.auth.tokens != nil {
		t.Cleanup(r.auth.tokens.close) // runs after Stop below
	}
	for attempt := 1; ; attempt++ {
		r.proc, err = launch(t.Context(), bin, dir, r.root, r.auth.yaml, r.client)
		if err == nil || !errors.Is(err, errExited) || attempt == startAttempts {
			break
		}
	}
	if err != nil {
		if r.proc != nil {
			t.Logf("registry output:\n%s", r.proc.log.String())
		}
		t.Fatalf("start registry %s: %v", bin, err)
	}
	r.direct = r.proc.addr
	r.front = newFront(r.direct)
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("registry output:\n%s", r.proc.log.String())
		}
	})
	return r
}

// Host returns "127.0.0.1:PORT" of the counting front; tests put it in references.
func (r *Registry) Host() string { return r.front.host() }

// DirectHost returns "127.0.0.1:PORT" of the registry process itself.
func (r *Registry) DirectHost() string { return r.direct }

// StorageDir returns the registry's filesystem storage root.
func (r *Registry) StorageDir() string { return r.root }

// BlobDataPath returns the file holding blob d in the filesystem driver's
// layout, for corruption tests. The file exists only once d has been pushed.
func (r *Registry) BlobDataPath(d digest.Digest) string {
	enc := d.Encoded()
	return filepath.Join(r.root, "docker", "registry", "v2", "blobs",
		d.Algorithm().String(), enc[:2], enc, "data")
}

// Stop stops the registry process now (SIGTERM to its process group, SIGKILL
// after 5s) and closes the front. It is idempotent; Start's cleanup calls it.
func (r *Registry) Stop() {
	r.stopOnce.Do(func() {
		r.proc.stop()
		r.front.close()
		r.client.CloseIdleConnections()
	})
}

// findBinary returns the first of docker-registry or registry on PATH, or
// registry in $(go env GOPATH)/bin.
func findBinary() (string, error) {
	for _, name := range []string{"docker-registry", "registry"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	gopath := build.Default.GOPATH // $GOPATH or ~/go, if `go env` is unavailable
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		gopath = strings.TrimSpace(string(out))
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "registry")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errNoBinary
}

// process is one registry process.
type process struct {
	addr string
	cmd  *exec.Cmd
	log  *capBuffer
	done chan struct{} // closed once cmd.Wait has returned
}

// launch writes a config for a free port and starts bin on it, returning once
// GET /v2/ answers 200. A non-nil process is returned with any error after the
// process started, so that its output can be logged; it is already stopped.
func launch(ctx context.Context, bin, dir, root, authYAML string, client *http.Client) (*process, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(config(root, addr)+authYAML), 0o600); err != nil {
		return nil, fmt.Errorf("write registry config: %w", err)
	}
	// Not exec.CommandContext: t.Context() is cancelled before cleanups run,
	// and other cleanups may still need the registry. Stop ends the process.
	cmd := exec.Command(bin, "serve", cfg)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &process{addr: addr, cmd: cmd, log: &capBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	cmd.WaitDelay = stopGrace // don't hang on output pipes held open elsewhere
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start registry process: %w", err)
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	if err := p.waitReady(ctx, client); err != nil {
		p.stop()
		return p, err
	}
	return p, nil
}

// config renders a Distribution config: filesystem storage, deletes enabled,
// no auth, warnings only.
func config(root, addr string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
http:
  addr: %q
  secret: modelgate-testregistry
`, root, addr)
}

// waitReady polls GET /v2/ with backoff until it answers 200, or 401 from a
// registry that requires authentication.
func (p *process) waitReady(ctx context.Context, client *http.Client) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	url := "http://" + p.addr + "/v2/"
	for backoff := 10 * time.Millisecond; ; backoff = min(2*backoff, 200*time.Millisecond) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("probe registry %s: %w", p.addr, err)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("probe registry %s: %w (%s)", p.addr, errExited, p.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("probe registry %s: %w", p.addr, ctx.Err())
		case <-time.After(backoff):
		}
	}
}

// stop sends SIGTERM to the process group, SIGKILL after stopGrace, and waits.
func (p *process) stop() {
	pgid := -p.cmd.Process.Pid
	_ = syscall.Kill(pgid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopGrace):
		_ = syscall.Kill(pgid, syscall.SIGKILL)
		<-p.done
	}
}

// freePort returns a port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// capBuffer is a goroutine-safe buffer that keeps the first maxLogBytes.
type capBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *capBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if room := maxLogBytes - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *capBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
