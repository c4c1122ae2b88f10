package main

import (
	"io"
	"log/slog"
	"testing"

	"github.com/modelgate/modelgate/config"
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
