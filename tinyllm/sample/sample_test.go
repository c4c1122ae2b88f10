package sample

import (
	"math"
	"testing"
)

func TestGreedyTakesArgmaxLowestOnTies(t *testing.T) {
	s := New(Params{Temperature: 0})
	if got := s.Sample([]float32{1, 5, 3, 5}); got != 1 {
		t.Errorf("greedy = %d, want 1", got)
	}
	if got := New(Params{Temperature: 1, TopK: 1}).Sample([]float32{0, 0, 9}); got != 2 {
		t.Errorf("top_k 1 = %d, want 2", got)
	}
}

func TestSeedMakesSamplingRepeatable(t *testing.T) {
	logits := []float32{1, 1.1, 0.9, 1.05, 0.2}
	draw := func(seed int64) []int32 {
		s := New(Params{Temperature: 1, Seed: seed})
		var out []int32
		for range 50 {
			out = append(out, s.Sample(logits))
		}
		return out
	}
	a, b, c := draw(42), draw(42), draw(43)
	same := func(x, y []int32) bool {
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Error("same seed gave different tokens")
	}
	if same(a, c) {
		t.Error("different seeds gave the same 50 tokens")
	}
}

// TestFrequenciesFollowTheDistribution draws many samples and compares the
// frequencies with the softmax that top-k, temperature and top-p define.
func TestFrequenciesFollowTheDistribution(t *testing.T) {
	logits := []float32{2, 1, 0.5, 0, -1, -3}
	tests := []struct {
		name string
		p    Params
		want []float64
	}{
		{"temperature 1", Params{Temperature: 1}, softmax(logits, 1, 6)},
		{"temperature 0.5", Params{Temperature: 0.5}, softmax(logits, 0.5, 6)},
		{"top-k 2", Params{Temperature: 1, TopK: 2}, softmax(logits, 1, 2)},
		// softmax(2,1,0.5,0,...) ≈ .51 .19 .11 .07: top-p 0.7 keeps the first two.
		{"top-p 0.7", Params{Temperature: 1, TopP: 0.7}, softmax(logits, 1, 2)},
	}
	const n = 40000
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Seed = 7
			s := New(tc.p)
			counts := make([]float64, len(logits))
			for range n {
				counts[s.Sample(logits)]++
			}
			for i := range counts {
				got := counts[i] / n
				if math.Abs(got-tc.want[i]) > 0.015 {
					t.Errorf("token %d: frequency %.3f, want %.3f", i, got, tc.want[i])
				}
			}
		})
	}
}

// softmax of the first k logits at temperature temp, zero for the rest.
func softmax(logits []float32, temp float64, k int) []float64 {
	out := make([]float64, len(logits))
	var sum float64
	for i := 0; i < k; i++ {
		out[i] = math.Exp(float64(logits[i]) / temp)
		sum += out[i]
	}
	for i := 0; i < k; i++ {
		out[i] /= sum
	}
	return out
}
