package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLifecycleDefaults(t *testing.T) {
	cfg, err := Parse("modelgate.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if ttl := cfg.Models[0].IdleTTL; ttl == nil || *ttl != 0 {
		t.Errorf("models[0].idle_ttl = %v, want 0 (never)", ttl)
	}
	if cfg.MaxRunning != 0 || cfg.AdminToken != "" || cfg.UnloadGrace.Std() != DefaultUnloadGrace {
		t.Errorf("max_running %d, admin token set %v, unload_grace %s", cfg.MaxRunning, cfg.AdminToken != "", cfg.UnloadGrace)
	}
	want := Restart{Backoff: Duration(DefaultRestartBackoff), MaxBackoff: Duration(DefaultRestartMaxBackoff), MaxFailures: DefaultRestartMaxFailures, Window: Duration(DefaultRestartWindow)}
	if cfg.Restart != want {
		t.Errorf("restart = %+v, want %+v", cfg.Restart, want)
	}
	if cfg.Fetch.PullStallTimeout.Std() != DefaultPullStallTimeout {
		t.Errorf("fetch.pull_stall_timeout = %s", cfg.Fetch.PullStallTimeout)
	}
	rt := cfg.Runtimes["py"]
	if rt.HealthInterval.Std() != DefaultHealthInterval || rt.HealthTimeout.Std() != DefaultHealthTimeout || rt.HealthFailures != DefaultHealthFailures {
		t.Errorf("runtime health watch = %s, %s, %d", rt.HealthInterval, rt.HealthTimeout, rt.HealthFailures)
	}
}

func TestLifecycleKeys(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "admin-token"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(filepath.Join(dir, "modelgate.yaml"), []byte(`idle_ttl: 10m
max_running: 3
unload_grace: 5s
admin_token_file: admin-token
groups:
  gpu: {max_running: 1}
restart: {backoff: 2s, max_backoff: 1m, max_failures: 2, window: 5m}
fetch: {pull_stall_timeout: 2m}
models:
  - {name: a, ref: r.example.com/m/a:v1, runtime: rt, group: gpu, preload: true}
  - {name: b, ref: r.example.com/m/b:v1, runtime: rt, group: gpu, idle_ttl: 0s}
  - {name: c, ref: r.example.com/m/c:v1, runtime: vllm, idle_ttl: 90s}
runtimes:
  rt:
    command: [rt, "{{.Port}}"]
    health_interval: 2s
    health_timeout: 1s
    health_failures: 5
  vllm:
    profile: vllm
    health_failures: 10
`))
	if err != nil {
		t.Fatal(err)
	}
	if *cfg.Models[0].IdleTTL != Duration(10*time.Minute) || *cfg.Models[1].IdleTTL != 0 || *cfg.Models[2].IdleTTL != Duration(90*time.Second) {
		t.Errorf("idle_ttl: a inherits 10m, b sets 0 (never), c sets 90s; got %s, %s, %s", cfg.Models[0].IdleTTL, cfg.Models[1].IdleTTL, cfg.Models[2].IdleTTL)
	}
	if !cfg.Models[0].Preload || cfg.Models[1].Preload || cfg.Models[0].Group != "gpu" || cfg.Groups["gpu"].MaxRunning != 1 || cfg.MaxRunning != 3 {
		t.Errorf("models %+v, groups %+v, max_running %d", cfg.Models, cfg.Groups, cfg.MaxRunning)
	}
	if string(cfg.AdminToken) != "s3cret" || cfg.UnloadGrace.Std() != 5*time.Second {
		t.Errorf("admin token %q (want the file's content without its newline), unload_grace %s", string(cfg.AdminToken), cfg.UnloadGrace)
	}
	if want := (Restart{Backoff: Duration(2 * time.Second), MaxBackoff: Duration(time.Minute), MaxFailures: 2, Window: Duration(5 * time.Minute)}); cfg.Restart != want {
		t.Errorf("restart = %+v", cfg.Restart)
	}
	if cfg.Fetch.PullStallTimeout.Std() != 2*time.Minute {
		t.Errorf("pull_stall_timeout = %s", cfg.Fetch.PullStallTimeout)
	}
	if rt := cfg.Runtimes["rt"]; rt.HealthInterval.Std() != 2*time.Second || rt.HealthTimeout.Std() != time.Second || rt.HealthFailures != 5 {
		t.Errorf("rt = %+v", rt)
	}
	vllm, _ := BuiltinProfile("vllm")
	if rt := cfg.Runtimes["vllm"]; rt.HealthFailures != 10 || rt.HealthInterval != vllm.HealthInterval {
		t.Errorf("vllm entry: health_failures overrides, health_interval is the profile's: %+v", rt)
	}
}

func TestLifecycleRefusals(t *testing.T) {
	base := "models:\n  - {name: a, ref: r.example.com/m/a:v1, runtime: vllm}\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"undefined group", base + "  - {name: b, ref: r.example.com/m/b:v1, runtime: vllm, group: gpu}\n",
			`modelgate.yaml:3: models[1].group: group "gpu" is not defined under groups (defined: none)`},
		{"negative max_running", "max_running: -1\n" + base, `modelgate.yaml:1: max_running: -1: must be 0 (no limit) or more`},
		{"negative group max_running", "groups: {gpu: {max_running: -2}}\n" + base, `groups.gpu.max_running: -2: must be 0 (no limit) or more`},
		{"more preloads than max_running", "max_running: 1\nmodels:\n  - {name: a, ref: r.example.com/m/a:v1, runtime: vllm, preload: true}\n  - {name: b, ref: r.example.com/m/b:v1, runtime: vllm, preload: true}\n",
			`modelgate.yaml:4: models[1].preload: 2 models preload but max_running is 1: they would stop each other`},
		{"more preloads than the group's max_running", "groups: {gpu: {max_running: 1}}\nmodels:\n  - {name: a, ref: r.example.com/m/a:v1, runtime: vllm, preload: true, group: gpu}\n  - {name: b, ref: r.example.com/m/b:v1, runtime: vllm, preload: true, group: gpu}\n",
			`models[1].preload: 2 models of group "gpu" preload but its max_running is 1`},
		{"negative idle_ttl", "models:\n  - {name: a, ref: r.example.com/m/a:v1, runtime: vllm, idle_ttl: -1s}\n", `parse duration "-1s": must not be negative`},
		{"max_backoff below backoff", "restart: {backoff: 1m, max_backoff: 10s}\n" + base, `restart.max_backoff: 10s is shorter than restart.backoff (1m)`},
		{"missing admin token file", "admin_token_file: /nonexistent/token\n" + base, `modelgate.yaml:1: admin_token_file: read admin token: open /nonexistent/token`},
		{"admin token in the file itself", "admin_token: hunter2\n" + base, `field admin_token not found`},
		{"negative health_failures", base + "runtimes:\n  vllm: {profile: vllm, health_failures: -1}\n", `runtimes.vllm.health_failures: -1: must be 1 or more`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("modelgate.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
		})
	}
}

func TestAdminTokenIsNeverPrinted(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tok"), []byte("topsecret"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(filepath.Join(dir, "m.yaml"), []byte("admin_token_file: tok\nmodels:\n  - {name: a, ref: r.example.com/m/a:v1, runtime: vllm}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if s := strings.Join([]string{cfg.AdminToken.String(), cfg.AdminToken.GoString()}, " "); strings.Contains(s, "topsecret") {
		t.Errorf("token printed: %s", s)
	}
}
