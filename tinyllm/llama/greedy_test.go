package llama

import (
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/modelgate/modelgate/tinyllm/gguf"
	"github.com/modelgate/modelgate/tinyllm/tensor"
)

const (
	demoModel   = "../../examples/stories260K/model.gguf"
	demoGreedy  = "../../testdata/stories260K-greedy.json"
	demoPredict = 48
)

type greedyCase struct {
	Prompt           string  `json:"prompt"`
	PromptTokens     []int32 `json:"prompt_tokens"`
	CompletionTokens []int32 `json:"completion_tokens"`
}

func loadDemo(t testing.TB, opts Options) *Model {
	t.Helper()
	g, err := gguf.Open(demoModel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	m, err := Load(g, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func readGreedyCases(t *testing.T) []greedyCase {
	t.Helper()
	b, err := os.ReadFile(demoGreedy)
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Cases []greedyCase }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("no cases")
	}
	return f.Cases
}

// greedy evaluates prompt and then feeds back the argmax n times.
func greedy(t *testing.T, s *Session, prompt []int32, n int) []int32 {
	t.Helper()
	logits, err := s.Eval(prompt)
	if err != nil {
		t.Fatal(err)
	}
	var out []int32
	for range n {
		tok := int32(tensor.Argmax(logits))
		out = append(out, tok)
		if logits, err = s.Eval([]int32{tok}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestGreedyMatchesLlamaCpp decodes the fixture's prompts greedily and
// compares with what llama.cpp produced from the same file, token for
// token, prompts evaluated in one batch and token by token, on one thread
// and on several.
func TestGreedyMatchesLlamaCpp(t *testing.T) {
	cases := readGreedyCases(t)
	for _, threads := range []int{1, 3} {
		m := loadDemo(t, Options{Threads: threads})
		for _, c := range cases {
			t.Run(c.Prompt, func(t *testing.T) {
				s := m.NewSession(0)
				if got := greedy(t, s, c.PromptTokens, demoPredict); !slices.Equal(got, c.CompletionTokens) {
					t.Errorf("threads=%d, batched prompt:\n got %v\nwant %v", threads, got, c.CompletionTokens)
				}
				s.Reset()
				for _, tok := range c.PromptTokens[:len(c.PromptTokens)-1] {
					if _, err := s.Eval([]int32{tok}); err != nil {
						t.Fatal(err)
					}
				}
				if got := greedy(t, s, c.PromptTokens[len(c.PromptTokens)-1:], demoPredict); !slices.Equal(got, c.CompletionTokens) {
					t.Errorf("threads=%d, prompt token by token:\n got %v\nwant %v", threads, got, c.CompletionTokens)
				}
			})
		}
	}
}
