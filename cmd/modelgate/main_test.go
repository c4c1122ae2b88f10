package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/testregistry"
	"github.com/modelgate/modelgate/internal/testruntime"
)

func TestMain(m *testing.M) {
	code := m.Run()
	_ = testruntime.Cleanup()
	os.Exit(code)
}

// writeConfig writes a modelgate.yaml serving tiny from the registry with
// the test runtime, and returns its path.
func writeConfig(t *testing.T, reg *testregistry.Registry, listen, ref string, runtimeFlags ...string) string {
	t.Helper()
	bin := testruntime.Build(t)
	extra := ""
	for _, f := range runtimeFlags {
		extra += fmt.Sprintf(", %q", f)
	}
	cfg := fmt.Sprintf(`listen: %s
shutdown_grace: 30s
models:
  - name: tiny
    ref: %s
    runtime: testrt
runtimes:
  testrt:
    command: [%q, "--port", "{{.Port}}", "--model-file", "{{.ModelFile}}", "--model-dir", "{{.ModelDir}}"%s]
    health: /health
    startup_timeout: 30s
cache: {dir: %s, max_bytes: 1GiB}
registries:
  %q: {plain_http: true}
`, listen, ref, bin, extra, filepath.Join(t.TempDir(), "cache"), reg.Host())
	path := filepath.Join(t.TempDir(), "modelgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func pushTiny(t *testing.T, reg *testregistry.Registry) string {
	t.Helper()
	weights := make([]byte, 64<<10)
	rand.Read(weights)
	reg.Push(t, "models/tiny", "v1", []testregistry.Layer{{Title: "model.bin", Data: weights}})
	return reg.Host() + "/models/tiny:v1"
}

func TestPullPrintsDigestPathBytesAndUsesTheCache(t *testing.T) {
	reg := testregistry.Start(t)
	ref := pushTiny(t, reg)
	cfg := writeConfig(t, reg, "127.0.0.1:0", ref)

	var out, errOut bytes.Buffer
	if code := run([]string{"pull", "--config", cfg, "tiny"}, &out, &errOut); code != 0 {
		t.Fatalf("pull exited %d: %s", code, errOut.String())
	}
	for _, want := range []string{"digest:     sha256:", "path:       ", "bytes:      65536", "downloaded: 65536", "seconds:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("pull output lacks %q:\n%s", want, out.String())
		}
	}
	dir := regexp.MustCompile(`path:\s+(\S+)`).FindStringSubmatch(out.String())
	if dir == nil {
		t.Fatalf("no path in %s", out.String())
	}
	if fi, err := os.Stat(filepath.Join(dir[1], "model.bin")); err != nil || fi.Size() != 64<<10 {
		t.Errorf("model.bin not laid out in %s: %v", dir[1], err)
	}

	out.Reset()
	reg.ResetRequests()
	if code := run([]string{"pull", "--config", cfg, "tiny"}, &out, &errOut); code != 0 {
		t.Fatalf("second pull exited %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "downloaded: 0\n") || reg.Count("GET", "/blobs/") != 0 {
		t.Errorf("second pull downloaded again:\n%s", out.String())
	}
}

func TestPullShowsDownloadProgress(t *testing.T) {
	reg := testregistry.Start(t)
	ref := pushTiny(t, reg)
	cfg := writeConfig(t, reg, "127.0.0.1:0", ref)
	var out, errOut bytes.Buffer
	if code := run([]string{"pull", "--config", cfg, "--progress", "bar", "tiny"}, &out, &errOut); code != 0 {
		t.Fatalf("pull exited %d: %s", code, errOut.String())
	}
	if s := errOut.String(); !strings.Contains(s, "model.bin") || !strings.Contains(s, "100%") {
		t.Errorf("no progress bar for model.bin reaching 100%% on stderr:\n%s", s)
	}
	if code := run([]string{"pull", "--config", cfg, "--progress", "sideways", "tiny"}, &out, &errOut); code != 2 && code != 1 {
		t.Errorf("bad --progress accepted (exit %d)", code)
	}
}

func TestPullOfMissingTagFails(t *testing.T) {
	reg := testregistry.Start(t)
	cfg := writeConfig(t, reg, "127.0.0.1:0", reg.Host()+"/models/tiny:v1")
	var out, errOut bytes.Buffer
	if code := run([]string{"pull", "--config", cfg, "tiny"}, &out, &errOut); code != 1 {
		t.Fatalf("pull of a missing tag exited %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), "/models/tiny:v1: not found") {
		t.Errorf("stderr does not name the reference: %s", errOut.String())
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"version"}, &out, &out); code != 0 || !strings.HasPrefix(out.String(), "modelgate ") {
		t.Errorf("version: %d %q", code, out.String())
	}
}

func TestServeRefusesBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "modelgate.yaml")
	os.WriteFile(path, []byte("models:\n  - name: a\n    ref: r/x:1\n    runtime: missing\n"), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"serve", "--config", path}, &out, &errOut); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if want := path + `:4: models[0].runtime: runtime "missing" is not defined`; !strings.Contains(errOut.String(), want) {
		t.Errorf("stderr %q lacks %q", errOut.String(), want)
	}
}

// TestSIGTERMFinishesInFlightThenStopsRuntimes runs the real binary: with a
// stream in flight, SIGTERM closes the listener, lets the stream finish,
// stops the runtime and exits 0, leaving no runtime process behind.
func TestSIGTERMFinishesInFlightThenStopsRuntimes(t *testing.T) {
	reg := testregistry.Start(t)
	ref := pushTiny(t, reg)
	addr := freeAddr(t)
	// The runtime holds the stream for 2s, then finishes it on its own.
	cfg := writeConfig(t, reg, addr, ref, "--release-timeout", "2s")

	gw := startBinary(t, "serve", "--config", cfg)
	base := "http://" + addr
	waitHealthy(t, base+"/healthz")

	resp, err := http.Post(base+"/v1/completions", "application/json", strings.NewReader(`{"model":"tiny"}`))
	if err != nil {
		t.Fatal(err)
	}
	var reply struct{ PID int }
	decodeJSON(t, resp, &reply)
	if reply.PID == 0 {
		t.Fatal("no runtime pid")
	}

	stream, err := http.Post(base+"/v1/completions", "application/json", strings.NewReader(`{"model":"tiny","stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	sc := bufio.NewScanner(stream.Body)
	if !sc.Scan() || !strings.Contains(sc.Text(), `"index":0`) {
		t.Fatalf("first event: %q", sc.Text())
	}

	if err := gw.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// The listener closes: new connections are refused while the stream runs.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("gateway still accepts connections after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var rest []string
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			rest = append(rest, d)
		}
	}
	if len(rest) == 0 || rest[len(rest)-1] != "[DONE]" {
		t.Errorf("in-flight stream cut: got %q", rest)
	}
	select {
	case <-gw.done:
		if gw.err != nil {
			t.Errorf("gateway exited with %v", gw.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not exit after SIGTERM")
	}
	if processAlive(reply.PID) {
		t.Errorf("runtime pid %d survived the gateway", reply.PID)
		syscall.Kill(reply.PID, syscall.SIGKILL)
	}
}

// TestKilledGatewayLeavesNoRuntime: even a gateway killed with SIGKILL,
// which cannot stop anything, leaves no runtime behind (the kernel's
// parent-death signal).
func TestKilledGatewayLeavesNoRuntime(t *testing.T) {
	reg := testregistry.Start(t)
	ref := pushTiny(t, reg)
	addr := freeAddr(t)
	cfg := writeConfig(t, reg, addr, ref, "--ignore-sigterm")
	gw := startBinary(t, "serve", "--config", cfg)
	waitHealthy(t, "http://"+addr+"/healthz")
	resp, err := http.Post("http://"+addr+"/v1/completions", "application/json", strings.NewReader(`{"model":"tiny"}`))
	if err != nil {
		t.Fatal(err)
	}
	var reply struct{ PID int }
	decodeJSON(t, resp, &reply)
	t.Cleanup(func() { syscall.Kill(reply.PID, syscall.SIGKILL) })

	if err := gw.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for processAlive(reply.PID) {
		if time.Now().After(deadline) {
			t.Fatalf("runtime pid %d outlived the killed gateway\n%s", reply.PID, gw.logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// processAlive reports whether pid runs (a zombie waiting to be reaped by
// whoever adopted it counts as dead).
func processAlive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) && syscall.Kill(pid, 0) == nil
	}
	// The state follows the command name in parentheses: "pid (comm) S ...".
	i := bytes.LastIndexByte(data, ')')
	return i < 0 || i+2 >= len(data) || data[i+2] != 'Z'
}

// binary is a modelgate process started by a test.
type binary struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan struct{} // closed when it exited
	err  error         // its exit status, once done is closed
}

// startBinary builds modelgate and runs it with args; the test kills it at
// the end if it still runs.
func startBinary(t *testing.T, args ...string) *binary {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "modelgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	b := &binary{cmd: exec.Command(bin, args...), logs: &syncBuffer{}, done: make(chan struct{})}
	b.cmd.Stdout, b.cmd.Stderr = b.logs, b.logs
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { b.err = b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		_ = b.cmd.Process.Kill()
		<-b.done
		if t.Failed() {
			t.Logf("gateway log:\n%s", b.logs.String())
		}
	})
	return b
}
