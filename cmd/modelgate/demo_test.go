package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/internal/testregistry"
)

// greedyFixture is testdata/stories260K-greedy.json: what
// llama.cpp generates greedily from the demo model.
type greedyFixture struct {
	Cases []struct {
		Prompt           string  `json:"prompt"`
		Completion       string  `json:"completion"`
		CompletionTokens []int32 `json:"completion_tokens"`
		NPredict         int     `json:"n_predict"`
	} `json:"cases"`
}

// TestDemoPathServesTheGreedyAnswer runs the quick start's path with real
// parts: a registry, `modelgate push` of examples/stories260K, `modelgate
// serve` with tinyllm as the runtime, and chat and completion requests whose
// greedy answers must equal llama.cpp's.
func TestDemoPathServesTheGreedyAnswer(t *testing.T) {
	var fx greedyFixture
	data, err := os.ReadFile("../../testdata/stories260K-greedy.json")
	if err != nil {
		t.Fatalf("read fixture: %v", err)
	}
	if err := json.Unmarshal(data, &fx); err != nil {
		t.Fatal(err)
	}
	reg := testregistry.Start(t)
	ref := reg.Host() + "/demo/stories260k:v1"
	var out, errOut bytes.Buffer
	if code := run([]string{"push", "--plain-http", "../../examples/stories260K", ref}, &out, &errOut); code != 0 {
		t.Fatalf("push exited %d: %s", code, errOut.String())
	}

	tinyllm := filepath.Join(t.TempDir(), "tinyllm")
	if b, err := exec.Command("go", "build", "-o", tinyllm, "../tinyllm").CombinedOutput(); err != nil {
		t.Fatalf("build tinyllm: %v\n%s", err, b)
	}
	addr := freeAddr(t)
	cfg := filepath.Join(t.TempDir(), "modelgate.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: %s
models:
  - {name: stories260k, ref: %s, runtime: tinyllm}
runtimes:
  tinyllm:
    command: [%q, "-m", "{{.ModelFile}}", "--host", "{{.Host}}", "--port", "{{.Port}}", "--alias", "stories260k"]
    startup_timeout: 1m
cache: {dir: %s}
registries: {%q: {plain_http: true}}
`, addr, ref, tinyllm, filepath.Join(t.TempDir(), "cache"), reg.Host())), 0o644)
	startBinary(t, "serve", "--config", cfg)
	base := "http://" + addr
	waitHealthy(t, base+"/healthz")

	c := fx.Cases[0]
	t.Run("streamed chat", func(t *testing.T) {
		body := fmt.Sprintf(`{"model":"stories260k","stream":true,"temperature":0,"max_tokens":%d,"messages":[{"role":"user","content":%q}]}`, c.NPredict, c.Prompt)
		resp, err := http.Post(base+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") || resp.Header.Get("X-Model-Digest") == "" {
			t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
		}
		var answer strings.Builder
		events, done := 0, false
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			d, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			if d == "[DONE]" {
				done = true
				continue
			}
			var chunk struct {
				Choices []struct {
					Delta        struct{ Content string }
					FinishReason *string `json:"finish_reason"`
				}
			}
			if err := json.Unmarshal([]byte(d), &chunk); err != nil {
				t.Fatalf("event %q: %v", d, err)
			}
			events++
			answer.WriteString(chunk.Choices[0].Delta.Content)
		}
		if answer.String() != c.Completion {
			t.Errorf("greedy chat answer:\n%q\nwant llama.cpp's:\n%q", answer.String(), c.Completion)
		}
		if !done || events < 10 {
			t.Errorf("%d events, [DONE] %v: want one event per piece and [DONE]", events, done)
		}
	})
	t.Run("completion with usage", func(t *testing.T) {
		c := fx.Cases[2]
		body := fmt.Sprintf(`{"model":"stories260k","temperature":0,"max_tokens":%d,"prompt":%q}`, c.NPredict, c.Prompt)
		resp, err := http.Post(base+"/v1/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Object  string
			Choices []struct {
				Text         string
				FinishReason string `json:"finish_reason"`
			}
			Usage struct {
				PromptTokens     int `json:"prompt_tokens"`
				CompletionTokens int `json:"completion_tokens"`
			}
		}
		decodeJSON(t, resp, &got)
		if got.Object != "text_completion" || got.Choices[0].Text != c.Completion || got.Choices[0].FinishReason != "length" {
			t.Errorf("completion = %+v, want text %q", got, c.Completion)
		}
		if got.Usage.CompletionTokens != c.NPredict || got.Usage.PromptTokens != 4 {
			t.Errorf("usage = %+v, want 4 prompt and %d completion tokens", got.Usage, c.NPredict)
		}
	})
	t.Run("llama-server native API by path", func(t *testing.T) {
		c := fx.Cases[1]
		body := fmt.Sprintf(`{"prompt":%q,"n_predict":%d,"temperature":0}`, c.Prompt, c.NPredict)
		resp, err := http.Post(base+"/models/stories260k/completion", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Content         string
			TokensPredicted int `json:"tokens_predicted"`
		}
		decodeJSON(t, resp, &got)
		if got.Content != c.Completion || got.TokensPredicted != c.NPredict {
			t.Errorf("/completion = %+v, want %q", got, c.Completion)
		}
	})
}

// TestReferenceDataMatchesTheFounders checks that the repository's copies of
// the demo model and its greedy reference still equal the originals in
// ../shared/fixtures/ beside the checkout, where that directory exists (it
// always does in CI).
func TestReferenceDataMatchesTheFounders(t *testing.T) {
	pairs := map[string]string{
		"../../examples/stories260K/model.gguf":  "../../../shared/fixtures/stories260K.gguf",
		"../../testdata/stories260K-greedy.json": "../../../shared/fixtures/stories260K-greedy.json",
	}
	for ours, theirs := range pairs {
		want, err := os.ReadFile(theirs)
		if os.IsNotExist(err) && os.Getenv("CI") == "" {
			t.Skipf("%s not present beside the checkout", theirs)
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(ours)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s", ours, theirs)
		}
	}
}
