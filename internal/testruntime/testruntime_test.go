package testruntime_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/testruntime"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := testruntime.Cleanup(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
	os.Exit(code)
}

// proc is a started testruntime process.
type proc struct {
	cmd    *exec.Cmd
	base   string        // http://host:port
	done   chan struct{} // closed once Wait returned
	err    error         // Wait's result; read after done
	stderr bytes.Buffer  // read after done
}

// start runs the testruntime with args on a port the kernel picks, reads the
// address from its "listening on" line and kills it (by its own pid) when
// the test ends.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(testruntime.Build(t), append([]string{"--port", "0"}, args...)...)
	p.cmd.Stdout = pw
	p.cmd.Stderr = &p.stderr
	err = p.cmd.Start()
	pw.Close()
	if err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill() // os.ErrProcessDone when it already exited.
		<-p.done
	})

	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(pr).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		addr, ok := strings.CutPrefix(strings.TrimSpace(s), "testruntime: listening on ")
		if !ok {
			t.Fatalf("stdout line %q, want listening on", s)
		}
		p.base = "http://" + addr
	case <-time.After(10 * time.Second):
		t.Fatal("no listening line within 10s")
	}
	return p
}

// wait waits up to 10s for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		t.Fatal("process did not exit within 10s")
	}
	var ee *exec.ExitError
	if p.err != nil && !errors.As(p.err, &ee) {
		t.Fatal(p.err)
	}
	return p.cmd.ProcessState.ExitCode()
}

func do(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Request-Id", "req-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: decode: %v", method, url, err)
		}
	}
	return resp.StatusCode
}

type stats struct {
	Requests, Cancelled int
	StreamsCompleted    int `json:"streams_completed"`
	PID                 int
}

// pollStats polls /stats until ok holds, for at most 10s.
func pollStats(t *testing.T, p *proc, ok func(stats) bool) stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var s stats
		do(t, "GET", p.base+"/stats", "", &s)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v did not reach the expected state within 10s", s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// openStream posts a streamed request and returns its body reader after
// checking event 0.
func openStream(t *testing.T, ctx context.Context, p *proc, sum string) (*bufio.Reader, io.Closer) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "POST", p.base+"/v1/chat/completions", strings.NewReader(`{"stream":true}`))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	r := bufio.NewReader(resp.Body)
	if got, want := readEvent(t, r), fmt.Sprintf(`{"index":0,"model_file_sha256":"%s"}`, sum); got != want {
		t.Fatalf("event 0 = %s, want %s", got, want)
	}
	return r, resp.Body
}

// readEvent reads one "data: X\n\n" event and returns X.
func readEvent(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read event: %v", err)
	}
	if blank, err := r.ReadString('\n'); err != nil || blank != "\n" {
		t.Fatalf("event %q not followed by a blank line: %q, %v", line, blank, err)
	}
	data, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "data: ")
	if !ok {
		t.Fatalf("event line %q", line)
	}
	return data
}

func TestRuntime(t *testing.T) {
	modelDir := t.TempDir()
	modelFile := filepath.Join(modelDir, "model.gguf")
	weights := []byte("not really weights")
	if err := os.WriteFile(modelFile, weights, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(modelDir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(modelDir, "sub", "tokenizer.json"), []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(weights)
	sum := hex.EncodeToString(h[:])

	p := start(t, "--start-delay", "300ms", "--model-dir", modelDir, "--model-file", modelFile)

	// Loading, then ready.
	var loading struct{ Error struct{ Message string } }
	if code := do(t, "GET", p.base+"/health", "", &loading); code != 503 || loading.Error.Message != "Loading model" {
		t.Fatalf("first /health: %d %+v, want 503 Loading model", code, loading)
	}
	deadline := time.Now().Add(10 * time.Second)
	for do(t, "GET", p.base+"/health", "", nil) != 200 {
		if time.Now().After(deadline) {
			t.Fatal("/health not 200 within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}

	t.Run("echo", func(t *testing.T) {
		var got struct {
			Method, Path, Query, Body string
			SHA256                    string   `json:"model_file_sha256"`
			Files                     []string `json:"model_files"`
			PID                       int
			Headers                   map[string]string
		}
		if code := do(t, "POST", p.base+"/v2/models/x/infer?a=1&b=2", `{"prompt":"hi"}`, &got); code != 200 {
			t.Fatalf("status %d", code)
		}
		if got.Method != "POST" || got.Path != "/v2/models/x/infer" || got.Query != "a=1&b=2" || got.Body != `{"prompt":"hi"}` {
			t.Errorf("echo %+v", got)
		}
		if got.SHA256 != sum || got.PID != p.cmd.Process.Pid || got.Headers["X-Request-Id"] != "req-1" {
			t.Errorf("echo %+v, want sha256 %s pid %d", got, sum, p.cmd.Process.Pid)
		}
		if want := []string{"model.gguf", "sub/tokenizer.json"}; !slices.Equal(got.Files, want) {
			t.Errorf("model_files %q, want %q", got.Files, want)
		}
	})

	t.Run("stream released", func(t *testing.T) {
		r, body := openStream(t, t.Context(), p, sum)
		defer body.Close()
		rest := make(chan string, 1)
		go func() {
			b, _ := io.ReadAll(r)
			rest <- string(b)
		}()
		select {
		case s := <-rest:
			t.Fatalf("stream went on before /release: %q", s)
		case <-time.After(200 * time.Millisecond):
		}
		var rel struct{ Released int }
		if do(t, "POST", p.base+"/release", "", &rel); rel.Released != 1 {
			t.Fatalf("released %d, want 1", rel.Released)
		}
		want := fmt.Sprintf("data: {\"index\":1,\"model_file_sha256\":%q}\n\ndata: {\"index\":2,\"model_file_sha256\":%q}\n\ndata: [DONE]\n\n", sum, sum)
		if got := <-rest; got != want {
			t.Fatalf("after release got %q, want %q", got, want)
		}
		pollStats(t, p, func(s stats) bool { return s.StreamsCompleted == 1 })
	})

	t.Run("client goes away", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		_, body := openStream(t, ctx, p, sum)
		cancel()
		body.Close()
		s := pollStats(t, p, func(s stats) bool { return s.Cancelled == 1 })
		if s.StreamsCompleted != 1 || s.Requests != 3 || s.PID != p.cmd.Process.Pid {
			t.Errorf("stats %+v", s)
		}
		var rel struct{ Released int }
		if do(t, "POST", p.base+"/release", "", &rel); rel.Released != 0 {
			t.Errorf("released %d after the client left, want 0", rel.Released)
		}
	})

	t.Run("SIGTERM", func(t *testing.T) {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := p.wait(t); code != 0 {
			t.Fatalf("exit code %d after SIGTERM, want 0", code)
		}
	})
}

func TestReleaseTimeout(t *testing.T) {
	p := start(t, "--chunks", "5", "--release-timeout", "100ms")
	r, body := openStream(t, t.Context(), p, "")
	defer body.Close()
	for i := 1; i < 5; i++ {
		if got := readEvent(t, r); !strings.HasPrefix(got, fmt.Sprintf(`{"index":%d,`, i)) {
			t.Fatalf("event %d = %s", i, got)
		}
	}
	if got := readEvent(t, r); got != "[DONE]" {
		t.Fatalf("last event %s", got)
	}
}

func TestExitAtStart(t *testing.T) {
	p := start(t, "--exit-at-start", "3", "--start-delay", "100ms")
	if code := p.wait(t); code != 3 {
		t.Fatalf("exit code %d, want 3", code)
	}
	lines := strings.Split(strings.TrimSpace(p.stderr.String()), "\n")
	if len(lines) < 3 || lines[len(lines)-1] != "fatal: model load failed (test)" {
		t.Fatalf("stderr %q", p.stderr.String())
	}
}

func TestCrash(t *testing.T) {
	p := start(t)
	req, err := http.NewRequestWithContext(t.Context(), "POST", p.base+"/crash", nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("/crash answered %s", resp.Status)
	}
	if code := p.wait(t); code != 2 {
		t.Fatalf("exit code %d, want 2", code)
	}
}

func TestIgnoreSIGTERM(t *testing.T) {
	p := start(t, "--ignore-sigterm", "--never-ready")
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
		t.Fatal("exited on SIGTERM despite --ignore-sigterm")
	case <-time.After(300 * time.Millisecond):
	}
	if code := do(t, "GET", p.base+"/health", "", nil); code != 503 {
		t.Fatalf("/health %d with --never-ready, want 503", code)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != -1 {
		t.Fatalf("exit code %d after SIGKILL, want -1", code)
	}
}

func TestHang(t *testing.T) {
	p := start(t)
	deadline := time.Now().Add(10 * time.Second)
	for do(t, "GET", p.base+"/health", "", nil) != 200 {
		if time.Now().After(deadline) {
			t.Fatal("not ready within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	var hung map[string]bool
	if code := do(t, "POST", p.base+"/hang", "", &hung); code != 200 || !hung["hung"] {
		t.Fatalf("/hang answered %d %v", code, hung)
	}
	client := &http.Client{Timeout: 200 * time.Millisecond}
	resp, err := client.Get(p.base + "/health")
	if err == nil {
		resp.Body.Close()
		t.Fatalf("/health answered %s after /hang", resp.Status)
	}
	// Everything else still answers.
	if code := do(t, "GET", p.base+"/stats", "", nil); code != 200 {
		t.Fatalf("/stats %d after /hang", code)
	}
}

func TestReadyFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ready")
	p := start(t, "--ready-file", file)
	if code := do(t, "GET", p.base+"/health", "", nil); code != 503 {
		t.Fatalf("/health %d before the ready file exists, want 503", code)
	}
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for do(t, "GET", p.base+"/health", "", nil) != 200 {
		if time.Now().After(deadline) {
			t.Fatal("not ready 10s after the ready file appeared")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
