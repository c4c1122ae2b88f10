package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/modelgate/modelgate/bench/internal/benchproc"
)

const (
	// stopGrace is how long a process has to exit after SIGTERM before it
	// gets SIGKILL.
	stopGrace = 5 * time.Second
	// readyTimeout bounds the wait for the registry's GET /v2/ to answer 200.
	readyTimeout = 30 * time.Second
	// outputKept is how much of a process's output is kept for error messages.
	outputKept = 8 << 10
)

// registry is a running Distribution registry with filesystem storage,
// serving plain HTTP on 127.0.0.1. Its methods are not safe for concurrent
// use.
type registry struct {
	addr   string // 127.0.0.1:PORT
	cmd    *exec.Cmd
	output *benchproc.TailBuffer
	cancel func()        // starts the SIGTERM, SIGKILL sequence
	exited chan struct{} // closed once the process has exited
	err    error         // Wait's error, set before exited is closed
}

// findRegistry returns docker-registry or registry from PATH.
func findRegistry() (string, error) {
	for _, name := range []string{"docker-registry", "registry"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errNoRegistry
}

// startRegistry writes a config into dir, with the storage under dir, and
// starts bin on a free port; it returns once GET /v2/ answers 200. On error
// the process is already stopped.
func startRegistry(ctx context.Context, bin, dir string) (*registry, error) {
	port, err := benchproc.FreePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(registryConfig(filepath.Join(dir, "storage"), addr)), 0o600); err != nil {
		return nil, fmt.Errorf("write registry config: %w", err)
	}
	procCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cmd := exec.CommandContext(procCtx, bin, "serve", cfgPath)
	cmd.SysProcAttr = sysProcAttr()
	// Stop this process only, by its own pid: SIGTERM, SIGKILL after stopGrace.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	out := benchproc.NewTailBuffer(outputKept)
	cmd.Stdout, cmd.Stderr = out, out
	r := &registry{addr: addr, cmd: cmd, output: out, cancel: cancel, exited: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start registry: %w", err)
	}
	go func() {
		r.err = cmd.Wait()
		close(r.exited)
	}()
	if err := r.waitReady(ctx); err != nil {
		r.stop()
		return nil, fmt.Errorf("start registry: %w", err)
	}
	return r, nil
}

// registryConfig is a Distribution config: filesystem storage, no auth,
// warnings only, no access log.
func registryConfig(root, addr string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %q
http:
  addr: %q
  secret: modelgate-bench-pull
`, root, addr)
}

// waitReady polls GET /v2/ until it answers 200, the process exits or
// readyTimeout passes.
func (r *registry) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{}, Timeout: time.Second}
	defer client.CloseIdleConnections()
	for backoff := 10 * time.Millisecond; ; backoff = min(2*backoff, 200*time.Millisecond) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.addr+"/v2/", nil)
		if err != nil {
			return err
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-r.exited:
			return fmt.Errorf("%w (%v); its output ends with:\n%s", errExited, r.err, r.output.String())
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w in %s; its output ends with:\n%s", errNotReady, readyTimeout, r.output.String())
			}
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// stop sends SIGTERM, then SIGKILL after stopGrace, and waits for the
// process to exit. It is safe to call more than once.
func (r *registry) stop() {
	r.cancel()
	<-r.exited
}
