package runtime_test

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/config"
	"github.com/modelgate/modelgate/internal/testruntime"
	"github.com/modelgate/modelgate/runtime"
)

// engineMimics are testruntime flags that reproduce each engine's
// readiness behaviour as docs/runtimes.md describes it, with its sources:
// llama-server and tinyllm listen at once and answer 503 on /health while
// loading; vLLM and TGI refuse connections until loaded, then answer 200 on
// /health; Triton refuses connections until its models are loaded and
// answers 400 on /v2/health/ready while not ready.
var engineMimics = map[string][]string{
	"llama-server": {},
	"tinyllm":      {},
	"vllm":         {"--listen-after-load"},
	"tgi":          {"--listen-after-load"},
	"triton":       {"--listen-after-load", "--health-path", "/v2/health/ready", "--loading-status", "400"},
}

// builtin is the built-in profile name as the gateway runs it, with its
// command replaced by testruntime mimicking that engine.
func builtin(t *testing.T, name string, extra ...string) runtime.Profile {
	t.Helper()
	rt, ok := config.BuiltinProfile(name)
	mimic, mimicked := engineMimics[name]
	if !ok || !mimicked {
		t.Fatalf("profile %q: built-in %v, mimicked %v", name, ok, mimicked)
	}
	cmd := []string{testruntime.Build(t), "--host", "{{.Host}}", "--port", "{{.Port}}", "--model-file", "{{.ModelFile}}"}
	return runtime.Profile{
		Name:           name,
		Command:        append(append(cmd, mimic...), extra...),
		Env:            rt.Env,
		WorkingDir:     rt.WorkingDir,
		HealthPath:     rt.Health,
		ReadyStatus:    rt.ReadyStatus,
		StartupTimeout: rt.StartupTimeout.Std(),
		StopSignal:     config.Signals[rt.StopSignal],
		StopTimeout:    rt.StopTimeout.Std(),
		MaxConcurrent:  rt.MaxConcurrent,
		Protocols:      rt.Protocols,
	}
}

func TestBuiltinProfilesWaitUntilTheEngineIsReady(t *testing.T) {
	const delay = 300 * time.Millisecond
	for _, name := range config.BuiltinProfileNames() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := spec(t)
			s.Profile = builtin(t, name, "--start-delay", delay.String())
			start := time.Now()
			p, err := runtime.Start(context.Background(), s)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Stop()
			if elapsed := time.Since(start); elapsed < delay {
				t.Errorf("ready after %v, before the engine finished loading (%v)", elapsed, delay)
			}
			resp, err := http.Get(p.URL() + s.Profile.HealthPath)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != s.Profile.ReadyStatus {
				t.Errorf("GET %s after Start = %d, want %d", s.Profile.HealthPath, resp.StatusCode, s.Profile.ReadyStatus)
			}
		})
	}
}

// TestNotReadyAnswersKeepWaiting: a not-ready status (Triton's 400,
// llama-server's 503) and a refused connection (vLLM still loading) are
// "not yet", not failures: only the startup timeout ends the wait, and its
// error says what the runtime last answered.
func TestNotReadyAnswersKeepWaiting(t *testing.T) {
	tests := []struct {
		profile string
		extra   []string
		want    []string
	}{
		{"triton", []string{"--never-ready"}, []string{"/v2/health/ready did not answer 200", "last: status 400"}},
		{"llama-server", []string{"--never-ready"}, []string{"/health did not answer 200", "last: status 503"}},
		{"vllm", []string{"--start-delay", "1m"}, []string{"/health did not answer 200", "connection refused"}},
	}
	for _, tc := range tests {
		t.Run(tc.profile, func(t *testing.T) {
			t.Parallel()
			s := spec(t)
			s.Profile = builtin(t, tc.profile, tc.extra...)
			// Long enough for the process to listen on a loaded machine.
			s.Profile.StartupTimeout = 2 * time.Second
			start := time.Now()
			p, err := runtime.Start(context.Background(), s)
			if p != nil {
				p.Stop()
			}
			if !errors.Is(err, runtime.ErrNotReady) {
				t.Fatalf("Start = %v, want ErrNotReady", err)
			}
			if elapsed := time.Since(start); elapsed < s.Profile.StartupTimeout {
				t.Errorf("gave up after %v, before the startup timeout", elapsed)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestEngineThatDiesWhileLoadingFailsAtOnce: a process that exits before it
// listens ends the wait at once, without waiting for the startup timeout.
func TestEngineThatDiesWhileLoadingFailsAtOnce(t *testing.T) {
	s := spec(t)
	s.Profile = builtin(t, "vllm", "--start-delay", "100ms", "--exit-at-start", "3")
	start := time.Now()
	_, err := runtime.Start(context.Background(), s)
	if !errors.Is(err, runtime.ErrExited) || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("Start = %v, want ErrExited with exit status 3", err)
	}
	if elapsed := time.Since(start); elapsed > s.Profile.StartupTimeout/2 {
		t.Errorf("took %v", elapsed)
	}
}

func TestWorkingDirAndModelNameAreTemplated(t *testing.T) {
	s := spec(t)
	want, err := filepath.EvalSymlinks(s.ModelDir)
	if err != nil {
		t.Fatal(err)
	}
	// The runtime refuses to start unless it runs in the model directory,
	// sees PWD set to it and gets the model's name.
	s.Profile.WorkingDir = "{{.ModelDir}}"
	s.Profile.Env = map[string]string{"SERVED_NAME": "{{.ModelName}}"}
	s.Profile.Command = []string{"/bin/sh", "-c",
		`test "$(pwd -P)" = "$1" && test "$PWD" = "$2" && test "$SERVED_NAME" = tiny || { echo "pwd=$(pwd -P) PWD=$PWD SERVED_NAME=$SERVED_NAME" >&2; exit 9; }; shift 2; exec "$@"`,
		"sh", want, s.ModelDir, testruntime.Build(t), "--port", "{{.Port}}"}
	p, err := runtime.Start(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	p.Stop()
}

func TestMissingWorkingDirFailsTheStart(t *testing.T) {
	s := spec(t)
	s.Profile.WorkingDir = filepath.Join(s.ModelDir, "missing")
	_, err := runtime.Start(context.Background(), s)
	if !errors.Is(err, runtime.ErrExited) || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("Start = %v, want ErrExited naming the directory", err)
	}
}
