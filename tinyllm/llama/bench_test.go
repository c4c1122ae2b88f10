package llama

import (
	"runtime"
	"testing"

	"github.com/modelgate/modelgate/tinyllm/gguf"
	"github.com/modelgate/modelgate/tinyllm/tensor"
)

// Run with: go test -run '^$' -bench . ./tinyllm/llama/
// Threads default to GOMAXPROCS; set -cpu to compare.

const benchTokens = 128

func benchModel(b *testing.B) *Model {
	return loadDemo(b, Options{Threads: runtime.GOMAXPROCS(0)})
}

// BenchmarkPrompt measures prompt processing: one Eval of 128 tokens.
func BenchmarkPrompt(b *testing.B) {
	m := benchModel(b)
	prompt := make([]int32, benchTokens)
	for i := range prompt {
		prompt[i] = int32(3 + i*37%509)
	}
	prompt[0] = 1
	s := m.NewSession(0)
	for b.Loop() {
		s.Reset()
		if _, err := s.Eval(prompt); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchTokens*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkGenerate measures generation: 128 greedy tokens after BOS, one
// Eval each.
func BenchmarkGenerate(b *testing.B) {
	m := benchModel(b)
	s := m.NewSession(0)
	for b.Loop() {
		s.Reset()
		logits, err := s.Eval([]int32{1})
		for i := 0; i < benchTokens && err == nil; i++ {
			logits, err = s.Eval([]int32{int32(tensor.Argmax(logits))})
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchTokens*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkLoad measures opening the demo file and loading the model.
func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		g, err := gguf.Open(demoModel)
		if err != nil {
			b.Fatal(err)
		}
		m, err := Load(g, Options{})
		if err != nil {
			b.Fatal(err)
		}
		m.Close()
		g.Close()
	}
}
