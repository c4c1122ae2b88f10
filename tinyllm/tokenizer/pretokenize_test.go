package tokenizer

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// testdata/pretokenize.json holds texts and their splits by the reference
// patterns (see pretokenizers), computed with Python's third-party regex
// module, which supports \p{..} and lookahead: regex.findall(pattern, text).
// The texts are hand-picked edge cases followed by random strings over an
// alphabet of letters, digits, quotes, punctuation and kinds of whitespace.
// PRETOKENIZE_GOLDEN names another file of the same shape, for a larger
// differential run.
func TestPretokenizersMatchReferencePatterns(t *testing.T) {
	path := "testdata/pretokenize.json"
	if p := os.Getenv("PRETOKENIZE_GOLDEN"); p != "" {
		path = p
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Text   string   `json:"text"`
		GPT2   []string `json:"gpt2"`
		Llama3 []string `json:"llama3"`
		Qwen2  []string `json:"qwen2"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		for _, p := range []struct {
			name string
			want []string
		}{{"gpt2", c.GPT2}, {"llama3", c.Llama3}, {"qwen2", c.Qwen2}} {
			if got := pretokenizers[p.name].split(c.Text); !slices.Equal(got, p.want) {
				t.Errorf("%s split %q = %q, want %q", p.name, c.Text, got, p.want)
			}
		}
	}
}

func FuzzPretokenizersKeepEveryByte(f *testing.F) {
	for _, s := range []string{"", "Hello, world!", "a \n b", "I'M 123456", "\xff\xfe 'll", "😀\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for name, p := range pretokenizers {
			words := p.split(s)
			if slices.Contains(words, "") {
				t.Fatalf("%s split %q: empty word", name, s)
			}
			if joined := strings.Join(words, ""); joined != s {
				t.Fatalf("%s split %q = %q, which joins to %q", name, s, words, joined)
			}
		}
	})
}
