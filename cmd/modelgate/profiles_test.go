package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/config"
	"github.com/modelgate/modelgate/runtime"
)

// TestProfilesPrintsCopyableYAML: the printed entries, pasted under
// runtimes:, are the built-in profiles exactly.
func TestProfilesPrintsCopyableYAML(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run([]string{"profiles"}, &out, &errOut); code != 0 {
		t.Fatalf("profiles exited %d: %s", code, errOut.String())
	}
	var models strings.Builder
	models.WriteString("models:\n")
	for _, name := range config.BuiltinProfileNames() {
		models.WriteString("  - {name: m-" + name + ", ref: r.example.com/m/x:v1, runtime: " + name + "}\n")
	}
	cfg, err := config.Parse("copied.yaml", []byte(models.String()+out.String()))
	if err != nil {
		t.Fatalf("%v\nprinted:\n%s", err, out.String())
	}
	for _, name := range config.BuiltinProfileNames() {
		want, _ := config.BuiltinProfile(name)
		if got := cfg.Runtimes[name]; !reflect.DeepEqual(got, want) {
			t.Errorf("copied %s =\n%+v\nwant\n%+v", name, got, want)
		}
	}

	out.Reset()
	if code := run([]string{"profiles", "tgi"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "  tgi:\n") || strings.Contains(out.String(), "vllm:") {
		t.Errorf("profiles tgi exited %d and printed:\n%s", code, out.String())
	}
	errOut.Reset()
	if code := run([]string{"profiles", "ollama"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), `unknown profile "ollama" (built-in: llama-server, tgi, tinyllm, triton, vllm)`) {
		t.Errorf("profiles ollama exited %d: %s", code, errOut.String())
	}
}

// TestTinyllmProfileServesTheDemoModel runs the built-in tinyllm profile
// unchanged, as a model naming it gets it (tinyllm found on PATH), on the
// demo model: the real runtime loads it, becomes ready and answers under
// the model's name.
func TestTinyllmProfileServesTheDemoModel(t *testing.T) {
	bin := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, "tinyllm"), "../tinyllm").CombinedOutput(); err != nil {
		t.Fatalf("build tinyllm: %v\n%s", err, out)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	cfg, err := config.Parse("modelgate.yaml", []byte("models:\n  - {name: stories, ref: r.example.com/demo/stories:v1, runtime: tinyllm}\n"))
	if err != nil {
		t.Fatal(err)
	}
	specs, err := modelSpecs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	prof := specs[0].Profile
	if prof.Command[0] != "tinyllm" || prof.HealthPath != "/health" || prof.MaxConcurrent != 1 {
		t.Fatalf("profile = %+v", prof)
	}
	dir, err := filepath.Abs("../../examples/stories260K")
	if err != nil {
		t.Fatal(err)
	}
	p, err := runtime.Start(context.Background(), runtime.Spec{
		Profile:   prof,
		Model:     "stories",
		ModelDir:  dir,
		ModelFile: filepath.Join(dir, "model.gguf"),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()

	var models struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	resp, err := http.Get(p.URL() + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	decodeJSON(t, resp, &models)
	if len(models.Data) != 1 || models.Data[0].ID != "stories" {
		t.Errorf("/v1/models = %+v, want the model's name (--alias {{.ModelName}})", models)
	}
	resp, err = http.Post(p.URL()+"/v1/completions", "application/json",
		strings.NewReader(`{"model":"stories","prompt":"Once upon a time","max_tokens":8,"temperature":0}`))
	if err != nil {
		t.Fatal(err)
	}
	var completion struct {
		Model   string `json:"model"`
		Choices []struct {
			Text string `json:"text"`
		} `json:"choices"`
	}
	decodeJSON(t, resp, &completion)
	if completion.Model != "stories" || len(completion.Choices) != 1 || completion.Choices[0].Text == "" {
		t.Errorf("/v1/completions = %+v", completion)
	}
}
