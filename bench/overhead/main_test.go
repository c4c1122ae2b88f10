package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestParseFlagsQuick(t *testing.T) {
	dir := t.TempDir()
	bin := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	base := []string{"-modelgate", bin("modelgate"), "-testruntime", bin("testruntime"), "-nginx", bin("nginx"), "-model", bin("model.gguf")}

	cfg, err := parseFlags(append(base, "-quick", "-cold-runs", "7"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.requests != quickCounts.requests || cfg.startRuns != quickCounts.startRuns || cfg.coldRuns != 7 {
		t.Errorf("-quick -cold-runs 7: requests %d, start runs %d, cold runs %d; want %d, %d, 7",
			cfg.requests, cfg.startRuns, cfg.coldRuns, quickCounts.requests, quickCounts.startRuns)
	}
	if cfg, err = parseFlags(base); err != nil || cfg.requests != fullCounts.requests {
		t.Errorf("defaults: requests %d, err %v; want %d", cfg.requests, err, fullCounts.requests)
	}
	for _, bad := range [][]string{{"-clients", "0"}, {"-requests", "0"}, {"-rounds", "100"}, {"-models", "1"}, {"extra"}} {
		if _, err := parseFlags(append(append([]string{}, base...), bad...)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
