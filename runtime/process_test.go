package runtime_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/testruntime"
	"github.com/modelgate/modelgate/runtime"
)

func TestMain(m *testing.M) {
	code := m.Run()
	_ = testruntime.Cleanup()
	os.Exit(code)
}

func spec(t *testing.T, extra ...string) runtime.Spec {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "model.bin"), []byte("weights"), 0o444); err != nil {
		t.Fatal(err)
	}
	return runtime.Spec{
		Profile: runtime.Profile{
			Name:           "testrt",
			Command:        append([]string{testruntime.Build(t), "--port", "{{.Port}}", "--model-file", "{{.ModelFile}}"}, extra...),
			HealthPath:     "/health",
			ReadyStatus:    200,
			StartupTimeout: 30 * time.Second,
			StopSignal:     syscall.SIGTERM,
			StopTimeout:    500 * time.Millisecond,
		},
		Model:     "tiny",
		ModelDir:  dir,
		ModelFile: filepath.Join(dir, "model.bin"),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func TestStartWaitsForHealthThenStopEndsTheProcess(t *testing.T) {
	p, err := runtime.Start(context.Background(), spec(t, "--start-delay", "200ms"))
	if err != nil {
		t.Fatal(err)
	}
	// Start returned: the runtime must already answer ready.
	resp, err := http.Get(p.URL() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("health after Start = %d", resp.StatusCode)
	}
	p.Stop()
	select {
	case <-p.Exited():
	default:
		t.Fatal("Stop returned before the process exited")
	}
	if !errors.Is(p.ExitError(), runtime.ErrExited) {
		t.Errorf("ExitError = %v", p.ExitError())
	}
}

func TestStopEscalatesToSIGKILL(t *testing.T) {
	p, err := runtime.Start(context.Background(), spec(t, "--ignore-sigterm"))
	if err != nil {
		t.Fatal(err)
	}
	p.Stop() // SIGTERM is ignored: only SIGKILL after StopTimeout ends it
	if err := p.ExitError(); !strings.Contains(err.Error(), "killed") {
		t.Errorf("exit = %v, want killed by SIGKILL", err)
	}
}

func TestStartFailures(t *testing.T) {
	tests := []struct {
		name    string
		mutate  func(*runtime.Spec)
		want    error
		wantMsg []string
	}{
		{"exits before ready", func(s *runtime.Spec) { s.Profile.Command = append(s.Profile.Command, "--exit-at-start", "7") },
			runtime.ErrExited, []string{"exit status 7", "fatal: model load failed (test)", "testrt", "tiny"}},
		{"binary missing", func(s *runtime.Spec) { s.Profile.Command = []string{"/nonexistent/llama-server"} },
			runtime.ErrExited, []string{"/nonexistent/llama-server"}},
		{"never ready", func(s *runtime.Spec) {
			s.Profile.Command = append(s.Profile.Command, "--never-ready")
			s.Profile.StartupTimeout = 300 * time.Millisecond
		}, runtime.ErrNotReady, []string{"/health", "300ms", "status 503"}},
		{"wrong ready status", func(s *runtime.Spec) {
			s.Profile.ReadyStatus = 204
			s.Profile.StartupTimeout = 300 * time.Millisecond
		}, runtime.ErrNotReady, []string{"did not answer 204", "status 200"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := spec(t)
			tc.mutate(&s)
			p, err := runtime.Start(context.Background(), s)
			if p != nil {
				p.Stop()
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Start = %v, want %v", err, tc.want)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error %q lacks %q", err, m)
				}
			}
		})
	}
}

func TestStartGivesUpWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := runtime.Start(ctx, spec(t, "--never-ready"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Start = %v, want context.DeadlineExceeded", err)
	}
}

func TestEnvIsTemplated(t *testing.T) {
	s := spec(t)
	// The runtime refuses to start unless the shell sees the variable.
	s.Profile.Command = []string{"/bin/sh", "-c", `test "$MODEL_PATH" = "` + s.ModelFile + `" || { echo "MODEL_PATH=$MODEL_PATH" >&2; exit 9; }; exec "$0" "$@"`,
		testruntime.Build(t), "--port", "{{.Port}}"}
	s.Profile.Env = map[string]string{"MODEL_PATH": "{{.ModelFile}}"}
	p, err := runtime.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	p.Stop()
}

// TestWatchReportsAHungRuntime: Watch polls the health path while the
// process runs; once it stops answering, HealthFailures polls in a row
// fail and Watch returns ErrHung, leaving the process running.
func TestWatchReportsAHungRuntime(t *testing.T) {
	s := spec(t)
	s.Profile.HealthInterval = 50 * time.Millisecond
	s.Profile.HealthTimeout = 100 * time.Millisecond
	s.Profile.HealthFailures = 2
	p, err := runtime.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	watched := make(chan error, 1)
	go func() { watched <- p.Watch(t.Context()) }()
	// Healthy: Watch keeps polling.
	select {
	case err := <-watched:
		t.Fatalf("Watch returned %v while the runtime answers", err)
	case <-time.After(300 * time.Millisecond):
	}
	resp, err := http.Post(p.URL()+"/hang", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	select {
	case err := <-watched:
		if !errors.Is(err, runtime.ErrHung) || !strings.Contains(err.Error(), "/health did not answer 200 2 times in a row") {
			t.Fatalf("Watch = %v, want ErrHung naming the path and the count", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Watch did not report the hung runtime within 30s")
	}
	select {
	case <-p.Exited():
		t.Fatal("Watch stopped the process; the caller decides")
	default:
	}
}

// TestWatchEndsWithTheProcess: a process that exits ends Watch with nil
// (the exit is the caller's to report), and so does ctx.
func TestWatchEndsWithTheProcess(t *testing.T) {
	s := spec(t)
	s.Profile.HealthInterval = time.Hour
	p, err := runtime.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	watched := make(chan error, 1)
	go func() { watched <- p.Watch(t.Context()) }()
	p.Stop()
	select {
	case err := <-watched:
		if err != nil {
			t.Fatalf("Watch = %v after the process exited, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Watch still running 30s after the process exited")
	}
	if p.Port() == 0 || !strings.HasSuffix(p.URL(), ":"+strconv.Itoa(p.Port())) {
		t.Errorf("Port() = %d, URL() = %s", p.Port(), p.URL())
	}
}
