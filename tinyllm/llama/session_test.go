package llama

import (
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/modelgate/modelgate/tinyllm/tensor"
)

func TestEvalRefusals(t *testing.T) {
	m := loadDemo(t, Options{Threads: 1})
	s := m.NewSession(8)
	if s.ContextSize() != 8 {
		t.Fatalf("ContextSize = %d", s.ContextSize())
	}
	cases := []struct {
		name   string
		tokens []int32
		want   error
	}{
		{"empty", nil, ErrToken},
		{"negative", []int32{1, -1}, ErrToken},
		{"beyond vocabulary", []int32{512}, ErrToken},
		{"too long", make([]int32, 9), ErrContextFull},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := s.Eval(c.tokens); !errors.Is(err, c.want) {
				t.Errorf("Eval = %v, want %v", err, c.want)
			}
			if s.Pos() != 0 {
				t.Errorf("Pos = %d after a refused Eval", s.Pos())
			}
		})
	}
	if _, err := s.Eval([]int32{1, 2, 3, 4, 5, 6, 7}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Eval([]int32{8}); err != nil {
		t.Fatalf("filling the context: %v", err)
	}
	if _, err := s.Eval([]int32{9}); !errors.Is(err, ErrContextFull) {
		t.Errorf("Eval on a full context = %v, want ErrContextFull", err)
	}
	if s.Pos() != 8 {
		t.Errorf("Pos = %d, want 8", s.Pos())
	}
}

func TestNewSessionContext(t *testing.T) {
	m := loadDemo(t, Options{Threads: 1, ContextSize: 64})
	for _, c := range []struct{ ask, want int }{{0, 64}, {-3, 64}, {10, 10}, {64, 64}, {1000, 64}} {
		if got := m.NewSession(c.ask).ContextSize(); got != c.want {
			t.Errorf("NewSession(%d).ContextSize() = %d, want %d", c.ask, got, c.want)
		}
	}
}

// TestTruncateReusesPrefix: a prompt that shares a prefix with what a
// session holds continues from the prefix and gives the logits of a fresh
// evaluation.
func TestTruncateReusesPrefix(t *testing.T) {
	m := loadDemo(t, Options{Threads: 2})
	prefix := []int32{1, 403, 407, 261}
	a := []int32{378, 432, 383, 286}
	b := []int32{294, 280, 269}

	fresh := m.NewSession(0)
	want, err := fresh.Eval(slices.Concat(prefix, b))
	if err != nil {
		t.Fatal(err)
	}
	want = slices.Clone(want)

	s := m.NewSession(0)
	if _, err := s.Eval(slices.Concat(prefix, a)); err != nil {
		t.Fatal(err)
	}
	s.Truncate(len(prefix))
	if s.Pos() != len(prefix) {
		t.Fatalf("Pos after Truncate = %d", s.Pos())
	}
	got, err := s.Eval(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := maxDiff(got, toFloat64(want)); d > 1e-5 {
		t.Errorf("logits after Truncate differ by %g", d)
	}
	s.Truncate(100) // beyond Pos: no change
	if s.Pos() != len(prefix)+len(b) {
		t.Errorf("Truncate beyond Pos moved it to %d", s.Pos())
	}
	s.Truncate(-1)
	if s.Pos() != 0 {
		t.Errorf("Truncate(-1) left Pos %d", s.Pos())
	}
	if _, err := s.Eval(prefix); err != nil {
		t.Fatal(err)
	}
	s.Reset()
	if got, _ = s.Eval(slices.Concat(prefix, b)); maxDiff(got, toFloat64(want)) > 1e-5 {
		t.Error("logits after Reset differ")
	}
}

func toFloat64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

// TestSessionsRunConcurrently: sessions of one model share its threads
// and give the same tokens as alone.
func TestSessionsRunConcurrently(t *testing.T) {
	cases := readGreedyCases(t)
	m := loadDemo(t, Options{Threads: 2})
	var wg sync.WaitGroup
	for _, c := range cases {
		wg.Go(func() {
			s := m.NewSession(0)
			logits, err := s.Eval(c.PromptTokens)
			for i := 0; err == nil && i < 16; i++ {
				tok := int32(tensor.Argmax(logits))
				if tok != c.CompletionTokens[i] {
					t.Errorf("%q: token %d = %d, want %d", c.Prompt, i, tok, c.CompletionTokens[i])
					return
				}
				logits, err = s.Eval([]int32{tok})
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// TestEvalDoesNotAllocate: a forward pass allocates nothing, one token or
// a batch, on one thread or several.
func TestEvalDoesNotAllocate(t *testing.T) {
	for _, threads := range []int{1, 2} {
		m := loadDemo(t, Options{Threads: threads})
		s := m.NewSession(0)
		prompt := make([]int32, 40)
		for i := range prompt {
			prompt[i] = int32(i + 1)
		}
		n := testing.AllocsPerRun(10, func() {
			s.Reset()
			if _, err := s.Eval(prompt); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Eval([]int32{7}); err != nil {
				t.Fatal(err)
			}
		})
		if n != 0 {
			t.Errorf("threads=%d: %g allocations per Eval pair", threads, n)
		}
	}
}
