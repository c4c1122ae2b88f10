package engine

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modelgate/modelgate/tinyllm/sample"
)

const (
	demoModel  = "../../examples/stories260K/model.gguf"
	demoGreedy = "../../testdata/stories260K-greedy.json"
	demoLimit  = 48 // n_predict of every fixture case
)

// greedyCase is one case of the fixture: what llama.cpp's llama-server
// generated greedily from the demo model.
type greedyCase struct {
	Prompt           string  `json:"prompt"`
	PromptTokens     []int32 `json:"prompt_tokens"`
	Completion       string  `json:"completion"`
	CompletionTokens []int32 `json:"completion_tokens"`
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
		t.Fatal("fixture has no cases")
	}
	return f.Cases
}

func loadDemo(t *testing.T, opts Options) *Engine {
	t.Helper()
	e, err := Load(demoModel, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return e
}

var greedy = sample.Params{Temperature: 0}

// generate runs req and returns the result and the pieces emit received.
func generate(t *testing.T, e *Engine, req Request) (*Result, []string) {
	t.Helper()
	var pieces []string
	res, err := e.Generate(context.Background(), req, func(s string) error {
		pieces = append(pieces, s)
		return nil
	})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	if got := strings.Join(pieces, ""); got != res.Text {
		t.Errorf("emitted text %q differs from Result.Text %q", got, res.Text)
	}
	return res, pieces
}

// TestGenerateGreedyMatchesLlamaCpp runs every fixture case on one engine,
// so that each after the first also goes through the prefix cache (they
// share BOS).
func TestGenerateGreedyMatchesLlamaCpp(t *testing.T) {
	e := loadDemo(t, Options{})
	for _, c := range readGreedyCases(t) {
		t.Run(c.Prompt, func(t *testing.T) {
			res, pieces := generate(t, e, Request{Prompt: c.PromptTokens, MaxTokens: demoLimit, Sampling: greedy})
			if res.Text != c.Completion {
				t.Errorf("Text = %q\nwant %q", res.Text, c.Completion)
			}
			if res.FinishReason != FinishLength || res.StopType != "limit" || res.StoppingWord != "" {
				t.Errorf("finish %q, stop type %q, word %q; want length, limit, none", res.FinishReason, res.StopType, res.StoppingWord)
			}
			if res.CompletionTokens != demoLimit || res.PromptTokens != len(c.PromptTokens) {
				t.Errorf("tokens: %d prompt, %d completion; want %d, %d", res.PromptTokens, res.CompletionTokens, len(c.PromptTokens), demoLimit)
			}
			if len(pieces) < 10 {
				t.Errorf("%d pieces emitted; want the text streamed as it is generated", len(pieces))
			}
		})
	}
}

// TestGenerateReusesPromptPrefix sends a second request after a first and
// checks that the cached prefix is reused and that the answer is the one a
// fresh engine gives.
func TestGenerateReusesPromptPrefix(t *testing.T) {
	c := readGreedyCases(t)[0] // "Once upon a time"
	probe := loadDemo(t, Options{})
	encode := func(s string) []int32 { return probe.Tokenizer().Encode(s, true, true) }
	continued := slices.Concat(c.PromptTokens, c.CompletionTokens[:20])
	cases := []struct {
		name       string
		second     []int32
		wantCached int
	}{
		// The first request leaves its prompt and 47 generated tokens in
		// the cache (the 48th is sampled, never evaluated).
		{"same opening, other ending", encode("Once upon a time there was a dog"), len(c.PromptTokens)},
		{"continuation of the first answer", continued, len(continued) - 1},
		{"identical prompt", c.PromptTokens, len(c.PromptTokens) - 1},
		{"shorter prompt", c.PromptTokens[:3], 2},
		{"only BOS in common", readGreedyCases(t)[3].PromptTokens, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			second := Request{Prompt: tc.second, MaxTokens: 24, Sampling: greedy}
			want, _ := generate(t, loadDemo(t, Options{}), second)

			e := loadDemo(t, Options{})
			first, _ := generate(t, e, Request{Prompt: c.PromptTokens, MaxTokens: demoLimit, Sampling: greedy})
			if first.CachedTokens != 0 {
				t.Errorf("first request on a new engine: CachedTokens = %d, want 0", first.CachedTokens)
			}
			got, _ := generate(t, e, second)
			if got.CachedTokens != tc.wantCached {
				t.Errorf("CachedTokens = %d, want %d", got.CachedTokens, tc.wantCached)
			}
			if got.Text != want.Text || got.CompletionTokens != want.CompletionTokens || got.FinishReason != want.FinishReason {
				t.Errorf("after the cache: %q (%d tokens, %s)\nfresh engine:  %q (%d tokens, %s)",
					got.Text, got.CompletionTokens, got.FinishReason, want.Text, want.CompletionTokens, want.FinishReason)
			}
		})
	}
	t.Run("continuation equals llama.cpp's", func(t *testing.T) {
		res, _ := generate(t, loadDemo(t, Options{}), Request{Prompt: continued, MaxTokens: 28, Sampling: greedy})
		if want := probe.Tokenizer().Decode(c.CompletionTokens[20:]); res.Text != want {
			t.Errorf("Text = %q\nwant %q", res.Text, want)
		}
	})
}

func TestGenerateStopStrings(t *testing.T) {
	c := readGreedyCases(t)[0]
	// ", there was a little girl named Lily. She loved to play outside in the park. ..."
	before := func(s string) string { return c.Completion[:strings.Index(c.Completion, s)] }
	cases := []struct {
		name   string
		stop   []string
		want   string
		reason string
		word   string
	}{
		{"inside one token", []string{"Lily"}, before("Lily"), FinishStop, "Lily"},
		{"spanning two tokens", []string{" little girl"}, before(" little girl"), FinishStop, " little girl"},
		{"the earliest of several", []string{"park", "Lily", "ball"}, before("Lily"), FinishStop, "Lily"},
		{"a word with a held-back start", []string{"girl named"}, before("girl named"), FinishStop, "girl named"},
		{"never appears", []string{"dragon"}, c.Completion, FinishLength, ""},
		{"starts like the text, then differs", []string{" little boy"}, c.Completion, FinishLength, ""},
		{"empty string ignored", []string{""}, c.Completion, FinishLength, ""},
	}
	e := loadDemo(t, Options{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := generate(t, e, Request{Prompt: c.PromptTokens, MaxTokens: demoLimit, Sampling: greedy, Stop: tc.stop})
			if res.Text != tc.want {
				t.Errorf("Text = %q\nwant %q", res.Text, tc.want)
			}
			if res.FinishReason != tc.reason || res.StoppingWord != tc.word {
				t.Errorf("finish %q, word %q; want %q, %q", res.FinishReason, res.StoppingWord, tc.reason, tc.word)
			}
			if tc.word != "" {
				if res.StopType != "word" {
					t.Errorf("StopType = %q, want word", res.StopType)
				}
				// Generation ends with the token that completes the stop string.
				k := 1
				for !strings.Contains(e.Tokenizer().Decode(c.CompletionTokens[:k]), tc.word) {
					k++
				}
				if res.CompletionTokens != k {
					t.Errorf("%d tokens generated; the stop string ends with token %d", res.CompletionTokens, k)
				}
			}
		})
	}
}

func TestGenerateContextLimits(t *testing.T) {
	const ctxSize = 16
	c := readGreedyCases(t)[0]
	e := loadDemo(t, Options{ContextSize: ctxSize})
	if e.ContextSize() != ctxSize {
		t.Fatalf("ContextSize = %d, want %d", e.ContextSize(), ctxSize)
	}
	long := slices.Concat(c.PromptTokens, c.CompletionTokens)
	for _, n := range []int{len(long), ctxSize + 1, ctxSize} {
		t.Run(fmt.Sprintf("prompt of %d tokens refused", n), func(t *testing.T) {
			res, err := e.Generate(context.Background(), Request{Prompt: long[:n], MaxTokens: 4, Sampling: greedy}, nil)
			if !errors.Is(err, ErrContextExceeded) || res != nil {
				t.Fatalf("Generate = %v, %v; want ErrContextExceeded", res, err)
			}
			var ce *ContextExceededError
			if !errors.As(err, &ce) || ce.PromptTokens != n || ce.ContextSize != ctxSize {
				t.Errorf("error %#v, want a *ContextExceededError for %d of %d tokens", err, n, ctxSize)
			}
		})
	}
	for _, limit := range []int{0, demoLimit} {
		t.Run(fmt.Sprintf("generation fills the context, max_tokens %d", limit), func(t *testing.T) {
			res, _ := generate(t, e, Request{Prompt: c.PromptTokens, MaxTokens: limit, Sampling: greedy})
			if res.FinishReason != FinishLength || res.StopType != "limit" {
				t.Errorf("finish %q, stop type %q; want length, limit", res.FinishReason, res.StopType)
			}
			n := ctxSize - len(c.PromptTokens)
			if res.CompletionTokens != n {
				t.Errorf("%d prompt + %d completion tokens; want them to fill the %d-token context", res.PromptTokens, res.CompletionTokens, ctxSize)
			}
			if want := e.Tokenizer().Decode(c.CompletionTokens[:n]); res.Text != want {
				t.Errorf("Text = %q, want %q", res.Text, want)
			}
		})
	}
	t.Run("prompt one short of the context", func(t *testing.T) {
		res, _ := generate(t, e, Request{Prompt: long[:ctxSize-1], Sampling: greedy})
		if res.CompletionTokens != 1 || res.FinishReason != FinishLength {
			t.Errorf("%d tokens, finish %q; want 1, length", res.CompletionTokens, res.FinishReason)
		}
		if want := e.Tokenizer().Decode(long[ctxSize-1 : ctxSize]); res.Text != want {
			t.Errorf("Text = %q, want %q", res.Text, want)
		}
	})
}

func TestGenerateRejectsBadRequests(t *testing.T) {
	e := loadDemo(t, Options{})
	cases := []struct {
		name   string
		prompt []int32
	}{
		{"empty prompt", nil},
		{"token outside the vocabulary", []int32{1, 403, int32(e.Tokenizer().VocabSize())}},
		{"negative token", []int32{1, -1}},
	}
	c := readGreedyCases(t)[0]
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if res, err := e.Generate(context.Background(), Request{Prompt: tc.prompt, Sampling: greedy}, nil); err == nil {
				t.Fatalf("Generate = %+v, want an error", res)
			}
			// The engine stays usable.
			res, _ := generate(t, e, Request{Prompt: c.PromptTokens, MaxTokens: demoLimit, Sampling: greedy})
			if res.Text != c.Completion {
				t.Errorf("next request: %q\nwant %q", res.Text, c.Completion)
			}
		})
	}
}

// TestGenerateStopsEarly ends generations from outside (the context) and
// from emit, and checks that the engine answers the next request correctly.
func TestGenerateStopsEarly(t *testing.T) {
	c := readGreedyCases(t)[0]
	errClient := errors.New("client gone")
	cases := []struct {
		name    string
		stopAt  int // piece after which to stop
		stop    func(cancel context.CancelFunc) error
		wantErr error
	}{
		{"context cancelled mid-generation", 3, func(cancel context.CancelFunc) error { cancel(); return nil }, context.Canceled},
		{"context cancelled at the first piece", 1, func(cancel context.CancelFunc) error { cancel(); return nil }, context.Canceled},
		{"emit fails", 3, func(context.CancelFunc) error { return errClient }, errClient},
	}
	e := loadDemo(t, Options{})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var pieces []string
			// MaxTokens 0: left alone, it would run until the context is full.
			res, err := e.Generate(ctx, Request{Prompt: c.PromptTokens, Sampling: greedy}, func(s string) error {
				pieces = append(pieces, s)
				if len(pieces) == tc.stopAt {
					return tc.stop(cancel)
				}
				return nil
			})
			if !errors.Is(err, tc.wantErr) || res != nil {
				t.Fatalf("Generate = %+v, %v; want %v", res, err, tc.wantErr)
			}
			if len(pieces) != tc.stopAt {
				t.Errorf("%d pieces emitted, want generation to stop after %d", len(pieces), tc.stopAt)
			}
			if got := strings.Join(pieces, ""); !strings.HasPrefix(c.Completion, got) {
				t.Errorf("emitted %q, not a start of %q", got, c.Completion)
			}
			for _, p := range [][]int32{c.PromptTokens, readGreedyCases(t)[2].PromptTokens} {
				next, _ := generate(t, e, Request{Prompt: p, MaxTokens: demoLimit, Sampling: greedy})
				if want := e.Tokenizer().Decode(greedyTokens(t, p)); next.Text != want {
					t.Errorf("next request: %q\nwant %q", next.Text, want)
				}
			}
		})
	}
	t.Run("context already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		emitted := false
		if _, err := e.Generate(ctx, Request{Prompt: c.PromptTokens, Sampling: greedy}, func(string) error { emitted = true; return nil }); !errors.Is(err, context.Canceled) || emitted {
			t.Errorf("Generate = %v, emitted %v; want context.Canceled before any text", err, emitted)
		}
	})
}

// greedyTokens is the fixture's completion for prompt.
func greedyTokens(t *testing.T, prompt []int32) []int32 {
	t.Helper()
	for _, c := range readGreedyCases(t) {
		if slices.Equal(c.PromptTokens, prompt) {
			return c.CompletionTokens
		}
	}
	t.Fatalf("no fixture case for %v", prompt)
	return nil
}

func TestGenerateSeededSampling(t *testing.T) {
	c := readGreedyCases(t)[0]
	req := func(seed int64) Request {
		return Request{Prompt: c.PromptTokens, MaxTokens: demoLimit, Sampling: sample.Params{Temperature: 0.8, TopK: 40, TopP: 0.95, Seed: seed}}
	}
	e := loadDemo(t, Options{})
	texts := map[string]bool{}
	for _, seed := range []int64{1, 2, 3, 42} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			first, _ := generate(t, e, req(seed))
			again, _ := generate(t, e, req(seed))                      // from the cache
			fresh, _ := generate(t, loadDemo(t, Options{}), req(seed)) // from nothing
			if again.Text != first.Text || fresh.Text != first.Text {
				t.Errorf("seed %d gave\n%q\nthen %q\nand on a new engine %q", seed, first.Text, again.Text, fresh.Text)
			}
			texts[first.Text] = true
		})
	}
	if len(texts) < 2 {
		t.Errorf("four seeds at temperature 0.8 all gave %v; want sampling, not greedy decoding", texts)
	}
}

// TestGenerateConcurrent sends the fixture cases from several goroutines at
// once: generations are serialised, and each gets its own answer.
func TestGenerateConcurrent(t *testing.T) {
	cases := readGreedyCases(t)
	e := loadDemo(t, Options{})
	const goroutines = 8
	var wg sync.WaitGroup
	for i := range goroutines {
		c := cases[i%len(cases)]
		wg.Go(func() {
			var pieces []string
			res, err := e.Generate(context.Background(), Request{Prompt: c.PromptTokens, MaxTokens: demoLimit, Sampling: greedy}, func(s string) error {
				pieces = append(pieces, s)
				return nil
			})
			if err != nil {
				t.Errorf("goroutine %d: %v", i, err)
				return
			}
			if res.Text != c.Completion || strings.Join(pieces, "") != c.Completion {
				t.Errorf("goroutine %d (%q): text %q, emitted %q\nwant %q", i, c.Prompt, res.Text, strings.Join(pieces, ""), c.Completion)
			}
		})
	}
	wg.Wait()
}

func TestStopFilter(t *testing.T) {
	type step struct {
		in, text, word string
	}
	cases := []struct {
		name  string
		stops []string
		steps []step
		flush string // what flush returns after the steps, if no word ended them
	}{
		{"no stops", nil, []step{{"hello", "hello", ""}, {" world", " world", ""}}, ""},
		{"empty stop ignored", []string{""}, []step{{"abc", "abc", ""}}, ""},
		{"held-back prefix released", []string{"abc"}, []step{{"xa", "x", ""}, {"b", "", ""}, {"d", "abd", ""}}, ""},
		{"held-back prefix flushed at the end", []string{"end"}, []step{{"the en", "the ", ""}}, "en"},
		{"stop inside one piece", []string{"lo"}, []step{{"hello", "hel", "lo"}}, ""},
		{"stop spanning pieces", []string{"ab"}, []step{{"xa", "x", ""}, {"by", "", "ab"}}, ""},
		{"stop at the very start", []string{"he"}, []step{{"hello", "", "he"}}, ""},
		{"earliest stop wins", []string{"cd", "bc"}, []step{{"abcd", "a", "bc"}}, ""},
		{"earliest stop wins over one listed first", []string{"c", "bcd"}, []step{{"abcde", "a", "bcd"}}, ""},
		{"overlapping repeats", []string{"aab"}, []step{{"a", "", ""}, {"a", "", ""}, {"a", "a", ""}, {"b", "", "aab"}}, ""},
		{"longest held prefix of several stops", []string{"xyz", "yzw"}, []step{{"ay", "a", ""}, {"z", "", ""}, {"q", "yzq", ""}}, ""},
		{"multibyte characters", []string{"é!"}, []step{{"café", "caf", ""}, {"?", "é?", ""}}, ""},
		{"text after the stop dropped", []string{"."}, []step{{"Hi. There", "Hi", "."}}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := stopFilter{stops: tc.stops}
			var all strings.Builder
			word := ""
			for i, s := range tc.steps {
				text, w := f.add(s.in)
				if text != s.text || w != s.word {
					t.Fatalf("step %d: add(%q) = %q, %q; want %q, %q", i, s.in, text, w, s.text, s.word)
				}
				all.WriteString(text)
				word = w
			}
			if word == "" {
				tail := f.flush("")
				if tail != tc.flush {
					t.Errorf("flush = %q, want %q", tail, tc.flush)
				}
				all.WriteString(tail)
			}
			if f.emitted.String() != all.String() {
				t.Errorf("emitted %q, but returned %q", f.emitted.String(), all.String())
			}
		})
	}
}
