package tokenizer

import (
	"slices"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/tinyllm/gguf"
)

// byteLevelVocab is a synthetic byte-level BPE vocabulary: the 256 byte
// symbols (ids 0-255, in byte order), then the tokens that merges build,
// then extra tokens and specials.
type byteLevelVocab struct {
	merges []string // "left right", in rank order
	extra  []string // normal tokens no merge builds
	pre    string
	meta   []gguf.KV
}

var specialTokens = []struct {
	text string
	typ  int32
}{
	{"<|endoftext|>", typeControl},
	{"<|im_start|>", typeControl},
	{"<|im_end|>", typeControl},
	{"<tool>", typeUserDefined},
}

// open writes the vocabulary as a GGUF file and loads its tokenizer.
func (v byteLevelVocab) open(t testing.TB) *Tokenizer {
	t.Helper()
	var tokens []string
	var types []int32
	seen := map[string]bool{}
	add := func(s string, typ int32) {
		if !seen[s] {
			seen[s] = true
			tokens = append(tokens, s)
			types = append(types, typ)
		}
	}
	for b := range 256 {
		add(string(byteRune[b]), typeNormal)
	}
	for _, m := range v.merges {
		add(strings.Replace(m, " ", "", 1), typeNormal)
	}
	for _, s := range v.extra {
		add(s, typeNormal)
	}
	for _, s := range specialTokens {
		add(s.text, s.typ)
	}
	meta := []gguf.KV{
		{Key: "tokenizer.ggml.model", Value: "gpt2"},
		{Key: "tokenizer.ggml.pre", Value: v.pre},
		{Key: "tokenizer.ggml.tokens", Value: tokens},
		{Key: "tokenizer.ggml.token_type", Value: types},
		{Key: "tokenizer.ggml.merges", Value: v.merges},
	}
	tok, err := FromGGUF(writeGGUF(t, append(meta, v.meta...)))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// texts maps ids back to their vocabulary strings, to state expectations
// readably.
func texts(tok *Tokenizer, ids []int32) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = tok.TokenText(id)
	}
	return out
}

// englishMerges build "hello", " hello", " world", "é" and " the".
var englishMerges = []string{
	"l l", "h e", "he ll", "hell o", "Ġ hello", "Ġ w", "o r", "Ġw or", "Ġwor l", "Ġworl d",
	"Ã ©", "Ġ t", "Ġt he", "Ġ Ġ",
}

func TestByteLevelEncode(t *testing.T) {
	tok := byteLevelVocab{merges: englishMerges, pre: "gpt2"}.open(t)
	tests := []struct {
		name         string
		text         string
		parseSpecial bool
		want         []string
	}{
		{"words", "hello world", false, []string{"hello", "Ġworld"}},
		{"merges across a space", "hello hello", false, []string{"hello", "Ġhello"}},
		{"no merge applies", "xyz", false, []string{"x", "y", "z"}},
		{"two-byte character merged", "é", false, []string{"Ã©"}},
		{"emoji as bytes", "😀", false, []string{"ð", "Ł", "ĺ", "Ģ"}},
		{"numbers", " 2024!", false, []string{"Ġ", "2", "0", "2", "4", "!"}},
		{"contraction", "he'll", false, []string{"he", "'", "ll"}},
		{"whitespace run", "a   the", false, []string{"a", "ĠĠ", "Ġthe"}},
		{"trailing whitespace", "a\n\n", false, []string{"a", "Ċ", "Ċ"}},
		{"control text without parsing", "<|im_end|>", false, []string{"<", "|", "im", "_", "end", "|", ">"}},
		{"control text parsed", "<|im_start|>hello<|im_end|>", true, []string{"<|im_start|>", "hello", "<|im_end|>"}},
		{"user-defined always parsed", "a<tool>b", false, []string{"a", "<tool>", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := texts(tok, tok.Encode(tt.text, true, tt.parseSpecial))
			// "im" and "end" are no tokens here: spell the expectation per
			// byte where the test wrote a longer run.
			var want []string
			for _, w := range tt.want {
				if _, ok := tok.ids[w]; ok {
					want = append(want, w)
					continue
				}
				for _, r := range w {
					want = append(want, string(r))
				}
			}
			if !slices.Equal(got, want) {
				t.Errorf("Encode(%q) = %q, want %q", tt.text, got, want)
			}
		})
	}
}

func TestByteLevelMergesApplyInRankOrder(t *testing.T) {
	tests := []struct {
		name   string
		merges []string
		text   string
		want   []string
	}{
		{"lower rank first", []string{"b c", "a b"}, "abc", []string{"a", "bc"}},
		{"order reversed", []string{"a b", "b c"}, "abc", []string{"ab", "c"}},
		{"leftmost on ties", []string{"a a"}, "aaa", []string{"aa", "a"}},
		{"merge of merges", []string{"a a", "aa aa"}, "aaaaa", []string{"aaaa", "a"}},
		{"late rank waits", []string{"c d", "b c", "a b", "ab cd"}, "abcd", []string{"abcd"}},
		{"blocked by a better pair", []string{"b c", "a b", "ab cd", "c d"}, "abcd", []string{"a", "bc", "d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := byteLevelVocab{merges: tt.merges}.open(t)
			if got := texts(tok, tok.Encode(tt.text, false, false)); !slices.Equal(got, tt.want) {
				t.Errorf("Encode(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestByteLevelRoundTrip(t *testing.T) {
	tok := byteLevelVocab{merges: englishMerges, pre: "gpt2"}.open(t)
	llama3 := byteLevelVocab{merges: englishMerges, pre: "llama3"}.open(t)
	for _, s := range []string{
		"plain ASCII text.", "naïve café, Grüße", "日本語", "emoji 😀👍🏽 and ZWJ 👨‍👩‍👧", "numbers 1234567 3.14",
		"contractions I'm you're they'll we've he'd it's DON'T", "whitespace  runs\t\t\n\n  \r\n end  ",
		"<tool> user-defined", "\u00a0\u3000\u2028",
	} {
		for _, tk := range []*Tokenizer{tok, llama3} {
			if got := tk.Decode(tk.Encode(s, false, false)); got != s {
				t.Errorf("round trip %q = %q", s, got)
			}
		}
	}
}

func TestByteLevelSpecialTokens(t *testing.T) {
	tests := []struct {
		name     string
		v        byteLevelVocab
		wantBOS  []string // Encode("hi", true, false)
		eogTexts []string
	}{
		{"gpt2 adds nothing by default", byteLevelVocab{}, []string{"h", "i"}, []string{"<|endoftext|>", "<|im_end|>"}},
		{"add_bos_token", byteLevelVocab{meta: []gguf.KV{
			{Key: "tokenizer.ggml.bos_token_id", Value: uint32(256)},
			{Key: "tokenizer.ggml.eos_token_id", Value: uint32(258)},
			{Key: "tokenizer.ggml.add_bos_token", Value: true},
		}}, []string{"<|endoftext|>", "h", "i"}, []string{"<|endoftext|>", "<|im_end|>"}},
		{"llama3 adds BOS", byteLevelVocab{pre: "llama3", meta: []gguf.KV{
			{Key: "tokenizer.ggml.bos_token_id", Value: uint32(257)},
			{Key: "tokenizer.ggml.eot_token_id", Value: uint32(97)},
		}}, []string{"<|im_start|>", "h", "i"}, []string{"<|endoftext|>", "<|im_end|>", "a"}},
		{"add_eos_token", byteLevelVocab{meta: []gguf.KV{
			{Key: "tokenizer.ggml.eos_token_id", Value: uint32(259)},
			{Key: "tokenizer.ggml.add_eos_token", Value: true},
		}}, []string{"h", "i", "<tool>"}, []string{"<|endoftext|>", "<|im_end|>", "<tool>"}},
		{"ids out of range are ignored", byteLevelVocab{meta: []gguf.KV{
			{Key: "tokenizer.ggml.bos_token_id", Value: uint32(1 << 30)},
			{Key: "tokenizer.ggml.add_bos_token", Value: true},
		}}, []string{"h", "i"}, []string{"<|endoftext|>", "<|im_end|>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := tt.v.open(t)
			if got := texts(tok, tok.Encode("hi", true, false)); !slices.Equal(got, tt.wantBOS) {
				t.Errorf("Encode = %q, want %q", got, tt.wantBOS)
			}
			var eog []string
			for id := range int32(tok.VocabSize()) {
				if tok.IsEOG(id) {
					eog = append(eog, tok.TokenText(id))
				}
			}
			slices.Sort(eog)
			want := slices.Sorted(slices.Values(tt.eogTexts))
			if !slices.Equal(eog, want) {
				t.Errorf("EOG tokens %q, want %q", eog, want)
			}
		})
	}
}

func TestByteLevelPieces(t *testing.T) {
	tok := byteLevelVocab{merges: englishMerges}.open(t)
	for _, tt := range []struct{ text, piece string }{
		{"Ġhello", " hello"}, {"Ã©", "é"}, {"Ċ", "\n"}, {"ð", "\xf0"}, {"<|im_end|>", ""}, {"<tool>", "<tool>"},
	} {
		if got := string(tok.Piece(tok.ids[tt.text])); got != tt.piece {
			t.Errorf("Piece(%q) = %q, want %q", tt.text, got, tt.piece)
		}
	}
	d := tok.NewDetokenizer()
	var got []string
	for _, id := range tok.Encode("a😀", false, false) {
		got = append(got, d.Add(id))
	}
	if want := []string{"a", "", "", "", "😀"}; !slices.Equal(got, want) {
		t.Errorf("streamed %q, want %q", got, want)
	}
}

func TestLlama3IgnoresMergesForWholeTokens(t *testing.T) {
	v := byteLevelVocab{merges: []string{"1 2"}, extra: []string{"xyz", "123"}}
	for _, tt := range []struct {
		pre  string
		text string
		want []string
	}{
		{"gpt2", "xyz", []string{"x", "y", "z"}},
		{"llama3", "xyz", []string{"xyz"}},
		{"llama3", "1234", []string{"123", "4"}},
		{"qwen2", "1234", []string{"1", "2", "3", "4"}},
		{"gpt2", "1234", []string{"12", "3", "4"}},
	} {
		v.pre = tt.pre
		tok := v.open(t)
		if got := texts(tok, tok.Encode(tt.text, false, false)); !slices.Equal(got, tt.want) {
			t.Errorf("%s: Encode(%q) = %q, want %q", tt.pre, tt.text, got, tt.want)
		}
	}
}

// FuzzEncodeDecodeByteLevel checks that byte-level BPE gives back exactly
// the input, valid UTF-8 or not (invalid bytes are kept, not replaced), and
// that parsing special tokens never panics.
func FuzzEncodeDecodeByteLevel(f *testing.F) {
	for _, s := range []string{"", "hello world", "I'm 12345", "é😀\n\t  ", "<|im_end|><tool>", "\xff\xe2 \x80"} {
		f.Add(s, false)
	}
	toks := []*Tokenizer{
		byteLevelVocab{merges: englishMerges, pre: "gpt2"}.open(f),
		byteLevelVocab{merges: englishMerges, pre: "llama3"}.open(f),
	}
	f.Fuzz(func(t *testing.T, s string, parseSpecial bool) {
		for _, tok := range toks {
			got := tok.Decode(tok.Encode(s, true, parseSpecial))
			if !parseSpecial && got != s {
				t.Errorf("Decode(Encode(%q)) = %q", s, got)
			}
		}
	})
}
