package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
)

const (
	demoModel  = "../../examples/stories260K/model.gguf"
	demoGreedy = "../../testdata/stories260K-greedy.json"
)

// binary is the tinyllm command, built once by TestMain.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tinyllm-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "tinyllm")
	code := 1
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build tinyllm: %v\n%s", err, out)
	} else {
		code = m.Run()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// process is a running tinyllm.
type process struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan struct{}
	err    error // Wait's, once done is closed
}

// start runs tinyllm with args; the test stops it (by its pid) if it is
// still running at the end.
func start(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(binary, args...), stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = p.stderr, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("tinyllm %s output:\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

// wait waits for the process to end and returns its exit status.
func (p *process) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(time.Minute): // a guard against a hang, not a timing
		t.Fatal("tinyllm still runs a minute later")
	}
	var exit *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &exit):
		return exit.ExitCode()
	default:
		t.Fatalf("wait: %v", p.err)
		return -1
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
}

// waitHealthy polls /health until it answers 200, for 30 seconds at most.
func waitHealthy(t *testing.T, p *process, base string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/health", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("/health answered %d", resp.StatusCode)
			}
		}
		select {
		case <-ctx.Done():
			t.Fatal("/health did not answer 200 within 30s")
		case <-p.done:
			t.Fatalf("tinyllm exited before it was healthy: %v", p.err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestServesTheDemoModel(t *testing.T) {
	b, err := os.ReadFile(demoGreedy)
	if err != nil {
		t.Fatal(err)
	}
	var fixture struct {
		Cases []struct {
			Prompt, Completion string
			NPredict           int `json:"n_predict"`
		}
	}
	if err := json.Unmarshal(b, &fixture); err != nil {
		t.Fatal(err)
	}
	c := fixture.Cases[0]

	port := freePort(t)
	p := start(t, "-m", demoModel, "--host", "127.0.0.1", "--port", port, "--alias", "demo")
	base := "http://127.0.0.1:" + port
	waitHealthy(t, p, base)

	body := fmt.Sprintf(`{"prompt":%q,"n_predict":%d,"temperature":0}`, c.Prompt, c.NPredict)
	resp, err := http.Post(base+"/completion", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	answer, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Content         string `json:"content"`
		Model           string `json:"model"`
		TokensPredicted int    `json:"tokens_predicted"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(answer, &got) != nil {
		t.Fatalf("/completion: %d %s", resp.StatusCode, answer)
	}
	if got.Content != c.Completion || got.TokensPredicted != c.NPredict || got.Model != "demo" {
		t.Errorf("/completion = %q (%d tokens, model %q)\nwant %q (%d tokens, model demo)", got.Content, got.TokensPredicted, got.Model, c.Completion, c.NPredict)
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
}

func TestRefusesToStart(t *testing.T) {
	notGGUF := filepath.Join(t.TempDir(), "notes.gguf")
	if err := os.WriteFile(notGGUF, []byte("these are notes, not a model\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(t.TempDir(), "missing.gguf")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	cases := []struct {
		name string
		args []string
		want []string // in stderr
	}{
		{"no model flag", []string{"--port", "0"}, []string{"-m MODEL.gguf is required", "Usage of tinyllm", "-ctx-size"}},
		{"missing model file", []string{"-m", missing, "--port", "0"}, []string{"load model", missing, "no such file"}},
		{"not a GGUF file", []string{"-m", notGGUF, "--port", "0"}, []string{"load model", notGGUF, "not a valid GGUF file"}},
		{"unknown flag", []string{"-m", demoModel, "--bogus"}, []string{"flag provided but not defined: -bogus"}},
		{"port in use", []string{"-m", demoModel, "--host", "127.0.0.1", "--port", busy}, []string{"listen", "address already in use"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := start(t, tc.args...)
			if code := p.wait(t); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			out := p.stderr.String()
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("stderr lacks %q:\n%s", w, out)
				}
			}
		})
	}
}
