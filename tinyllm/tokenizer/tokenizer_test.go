package tokenizer

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/modelgate/modelgate/tinyllm/gguf"
)

const (
	demoModel    = "../../examples/stories260K/model.gguf"
	demoExpected = "../../testdata/stories260K-greedy.json"
)

// greedyCase is one case of stories260K-greedy.json, produced by
// llama-server (see testdata/README.md).
type greedyCase struct {
	Prompt           string  `json:"prompt"`
	PromptTokens     []int32 `json:"prompt_tokens"`
	Completion       string  `json:"completion"`
	CompletionTokens []int32 `json:"completion_tokens"`
}

func openDemo(t testing.TB) *Tokenizer {
	t.Helper()
	g, err := gguf.Open(demoModel)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	tok, err := FromGGUF(g)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func loadGreedy(t *testing.T) []greedyCase {
	t.Helper()
	b, err := os.ReadFile(demoExpected)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Cases []greedyCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("no cases")
	}
	return f.Cases
}

func TestDemoModelMatchesLlamaServer(t *testing.T) {
	tok := openDemo(t)
	for _, c := range loadGreedy(t) {
		t.Run(c.Prompt, func(t *testing.T) {
			if got := tok.Encode(c.Prompt, true, false); !slices.Equal(got, c.PromptTokens) {
				t.Errorf("Encode = %v, want %v", got, c.PromptTokens)
			}
			if got := tok.Decode(c.CompletionTokens); got != c.Completion {
				t.Errorf("Decode = %q, want %q", got, c.Completion)
			}
			d := tok.NewDetokenizer()
			var b strings.Builder
			for _, id := range c.CompletionTokens {
				b.WriteString(d.Add(id))
			}
			b.WriteString(d.Flush())
			if b.String() != c.Completion {
				t.Errorf("streamed %q, want %q", b.String(), c.Completion)
			}
		})
	}
}

func TestDemoModelVocabulary(t *testing.T) {
	tok := openDemo(t)
	if tok.BOS() != 1 || tok.EOS() != 2 || tok.VocabSize() != 512 {
		t.Errorf("BOS %d, EOS %d, vocab %d", tok.BOS(), tok.EOS(), tok.VocabSize())
	}
	if !tok.IsEOG(2) || tok.IsEOG(1) || tok.IsEOG(13) || tok.IsEOG(-1) {
		t.Error("IsEOG: want only EOS")
	}
	tests := []struct {
		id    int32
		text  string
		piece string
	}{
		{0, "<unk>", ""},
		{1, "<s>", ""},
		{2, "</s>", ""},
		{13, "<0x0A>", "\n"},
		{269, "▁and", " and"},
		{410, "▁", " "},
		{432, ",", ","},
		{485, "é", "é"},
		{512, "", ""},
		{-1, "", ""},
	}
	for _, tt := range tests {
		if got := tok.TokenText(tt.id); got != tt.text {
			t.Errorf("TokenText(%d) = %q, want %q", tt.id, got, tt.text)
		}
		if got := string(tok.Piece(tt.id)); got != tt.piece {
			t.Errorf("Piece(%d) = %q, want %q", tt.id, got, tt.piece)
		}
	}
}

func TestDemoModelEncode(t *testing.T) {
	tok := openDemo(t)
	tests := []struct {
		name                     string
		text                     string
		addSpecial, parseSpecial bool
		want                     []int32
	}{
		{"empty with BOS", "", true, false, []int32{1}},
		{"empty", "", false, false, nil},
		{"space prefix", "the", false, false, []int32{265}},
		{"leading space kept", " the", false, false, []int32{410, 265}},
		{"newline is a byte token", "a\nb", false, false, []int32{261, 13, 430}},
		{"unknown character falls back to bytes", "😀", false, false, []int32{410, 3 + 0xF0, 3 + 0x9F, 3 + 0x98, 3 + 0x80}},
		{"control text is plain text", "<s>", false, false, []int32{410, 504, 419, 505}},
		{"control text parsed", "<s>The", false, true, []int32{1, 291}},
		{"space after a special token", "The<s>cat</s>", true, true, []int32{1, 291, 1, 280, 294, 2}},
		{"unknown token parsed", "<unk>", false, true, []int32{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tok.Encode(tt.text, tt.addSpecial, tt.parseSpecial); !slices.Equal(got, tt.want) {
				t.Errorf("Encode(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
}

func TestDetokenizerHoldsBackSplitCharacters(t *testing.T) {
	tok := openDemo(t)
	b := func(x byte) int32 { return 3 + int32(x) } // <0xNN> tokens start at 3
	tests := []struct {
		name string
		ids  []int32
		want []string // Add's result for each id, then Flush's
	}{
		{"emoji over four byte tokens", []int32{261, b(0xF0), b(0x9F), b(0x98), b(0x80), 265},
			[]string{" a", "", "", "", "😀", " the", ""}},
		{"two-byte character", []int32{b(0xC3), b(0xA9)}, []string{"", "é", ""}},
		{"unfinished at the end", []int32{b(0xE2), b(0x96)}, []string{"", "", "\xe2\x96"}},
		{"invalid lead passes through", []int32{b(0xFF), 261}, []string{"\xff", " a", ""}},
		{"stray continuation passes through", []int32{b(0x80)}, []string{"\x80", ""}},
		{"broken sequence passes through", []int32{b(0xE2), 261}, []string{"", "\xe2 a", ""}},
		{"surrogate is not held", []int32{b(0xED), b(0xA0)}, []string{"", "\xed\xa0", ""}},
		{"control tokens are silent", []int32{1, 2}, []string{"", "", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tok.NewDetokenizer()
			var got []string
			for _, id := range tt.ids {
				got = append(got, d.Add(id))
			}
			got = append(got, d.Flush())
			if !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
			if strings.Join(got, "") != tok.Decode(tt.ids) {
				t.Errorf("stream %q differs from Decode %q", strings.Join(got, ""), tok.Decode(tt.ids))
			}
		})
	}
}

func TestFromGGUFErrors(t *testing.T) {
	tokens := []string{"a", "b"}
	tests := []struct {
		name string
		meta []gguf.KV
		want error
	}{
		{"no model", []gguf.KV{{Key: "tokenizer.ggml.tokens", Value: tokens}}, ErrUnsupported},
		{"unknown model", []gguf.KV{{Key: "tokenizer.ggml.model", Value: "bert"}, {Key: "tokenizer.ggml.tokens", Value: tokens}}, ErrUnsupported},
		{"no tokens", []gguf.KV{{Key: "tokenizer.ggml.model", Value: "llama"}}, ErrVocab},
		{"short scores", []gguf.KV{{Key: "tokenizer.ggml.model", Value: "llama"}, {Key: "tokenizer.ggml.tokens", Value: tokens},
			{Key: "tokenizer.ggml.scores", Value: []float32{1}}}, ErrVocab},
		{"long types", []gguf.KV{{Key: "tokenizer.ggml.model", Value: "llama"}, {Key: "tokenizer.ggml.tokens", Value: tokens},
			{Key: "tokenizer.ggml.token_type", Value: []int32{1, 1, 1}}}, ErrVocab},
		{"gpt2 without merges", []gguf.KV{{Key: "tokenizer.ggml.model", Value: "gpt2"}, {Key: "tokenizer.ggml.tokens", Value: tokens}}, ErrVocab},
		{"unknown pre-tokenizer", []gguf.KV{{Key: "tokenizer.ggml.model", Value: "gpt2"}, {Key: "tokenizer.ggml.tokens", Value: tokens},
			{Key: "tokenizer.ggml.merges", Value: []string{"a b"}}, {Key: "tokenizer.ggml.pre", Value: "klingon"}}, ErrUnsupported},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromGGUF(writeGGUF(t, tt.meta))
			if !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// writeGGUF writes meta to a GGUF file in a temporary directory and opens it.
func writeGGUF(t testing.TB, meta []gguf.KV) *gguf.File {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vocab.gguf")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := gguf.Write(f, meta, nil); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	return g
}

// FuzzEncodeDecodeSPM checks that any valid UTF-8 survives Encode and
// Decode with the demo vocabulary (which has every byte token), give or
// take the prefix space and "▁", which SentencePiece cannot tell from a
// space; and that invalid UTF-8 never panics.
func FuzzEncodeDecodeSPM(f *testing.F) {
	for _, s := range []string{"", "Once upon a time", " two  spaces ", "é😀\n\t", "<s>x</s>", "\xff\xe2 \x80", "▁"} {
		f.Add(s, false)
	}
	tok := openDemo(f)
	f.Fuzz(func(t *testing.T, s string, parseSpecial bool) {
		ids := tok.Encode(s, true, parseSpecial)
		for _, id := range ids {
			if id < 0 || int(id) >= tok.VocabSize() {
				t.Fatalf("Encode(%q) gave id %d", s, id)
			}
		}
		got := tok.Decode(ids)
		if !utf8.ValidString(s) || parseSpecial {
			return
		}
		want := strings.ReplaceAll(s, "▁", " ")
		if s != "" {
			want = " " + want
		}
		if got != want {
			t.Errorf("Decode(Encode(%q)) = %q, want %q", s, got, want)
		}
	})
}

func TestConcurrentUse(t *testing.T) {
	tok := openDemo(t)
	cases := loadGreedy(t)
	done := make(chan struct{})
	for range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for _, c := range cases {
				if got := tok.Encode(c.Prompt, true, true); !slices.Equal(got, c.PromptTokens) {
					t.Errorf("Encode(%q) = %v", c.Prompt, got)
				}
				if got := tok.Decode(c.CompletionTokens); got != c.Completion {
					t.Errorf("Decode = %q", got)
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
}
