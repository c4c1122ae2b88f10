package main

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/modelgate/modelgate/config"
	"github.com/modelgate/modelgate/gateway"
)

func TestNewOCIClientTriesConfiguredMirrors(t *testing.T) {
	cfg := &config.Config{Registries: map[string]config.Registry{
		"registry.example.com": {Mirrors: []string{"127.0.0.1:5001", "mirror.example.com"}},
		"127.0.0.1:5001":       {PlainHTTP: true},
	}}
	client := newOCIClient(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	repos, _, err := client.Repositories("registry.example.com/models/tiny:v1")
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	for _, r := range repos {
		hosts = append(hosts, r.Reference.Registry)
	}
	if len(repos) != 3 || hosts[0] != "127.0.0.1:5001" || !repos[0].PlainHTTP || hosts[1] != "mirror.example.com" || repos[1].PlainHTTP || hosts[2] != "registry.example.com" {
		t.Errorf("hosts tried = %q", hosts)
	}
}

func TestLifecycleKeysReachTheFleet(t *testing.T) {
	cfg, err := config.Parse("modelgate.yaml", []byte(`idle_ttl: 10m
max_running: 2
groups: {gpu: {max_running: 1}}
restart: {backoff: 3s, max_backoff: 1m, max_failures: 4, window: 2m}
models:
  - {name: a, ref: r.example.com/m/a:v1, runtime: vllm, group: gpu, preload: true}
  - {name: b, ref: r.example.com/m/b:v1, runtime: vllm, idle_ttl: 0s}
runtimes:
  vllm: {profile: vllm, health_interval: 7s, health_timeout: 2s, health_failures: 4}
`))
	if err != nil {
		t.Fatal(err)
	}
	specs, err := modelSpecs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a := specs[0]; a.IdleTTL != 10*time.Minute || a.Group != "gpu" || !a.Preload ||
		a.Profile.HealthInterval != 7*time.Second || a.Profile.HealthTimeout != 2*time.Second || a.Profile.HealthFailures != 4 {
		t.Errorf("a = %+v", a)
	}
	if b := specs[1]; b.IdleTTL != 0 || b.Group != "" || b.Preload {
		t.Errorf("b = %+v", b)
	}
	fo := fleetOptions(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	want := gateway.RestartPolicy{Backoff: 3 * time.Second, MaxBackoff: time.Minute, MaxFailures: 4, Window: 2 * time.Minute}
	if fo.MaxRunning != 2 || fo.GroupMaxRunning["gpu"] != 1 || fo.Restart != want || fo.Logger == nil {
		t.Errorf("fleet options = %+v", fo)
	}
}
