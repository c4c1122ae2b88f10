package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// pretokenizer splits text into the words that byte-level BPE merges
// within. The reference patterns use a negative lookahead, which Go's
// regexp lacks, so each is written out by hand as the left-most, greedy
// match of its alternatives in order, the way a backtracking regex engine
// runs it.
type pretokenizer struct {
	// llama3 selects the Llama 3 pattern (case-insensitive contractions, a
	// letter run may take one leading non-letter, digits in groups of at
	// most maxDigits, punctuation takes trailing newlines); otherwise the
	// GPT-2 pattern.
	llama3    bool
	maxDigits int
	// ignoreMerges emits a word that is itself a token whole, whatever the
	// merges would make of it, and addBOS is the add_bos_token default:
	// llama.cpp sets both for the llama3 pre-tokenizer.
	ignoreMerges bool
	addBOS       bool
}

// pretokenizers by tokenizer.ggml.pre. llama.cpp's "default" chains several
// legacy expressions; here it means the GPT-2 pattern, as does a missing
// key.
//
// GPT-2:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//
// Llama 3: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//
// Qwen 2 is the Llama 3 pattern with single digits.
var pretokenizers = map[string]pretokenizer{
	"":          {},
	"default":   {},
	"gpt2":      {},
	"gpt-2":     {},
	"llama3":    {llama3: true, maxDigits: 3, ignoreMerges: true, addBOS: true},
	"llama-v3":  {llama3: true, maxDigits: 3, ignoreMerges: true, addBOS: true},
	"llama-bpe": {llama3: true, maxDigits: 3, ignoreMerges: true, addBOS: true},
	"qwen2":     {llama3: true, maxDigits: 1},
	"qwen2.5":   {llama3: true, maxDigits: 1},
}

// Character classes of the patterns: \p{L}, \p{N}, \s and the rest. A byte
// that is not valid UTF-8 counts as "other", so it is kept, not replaced.
const (
	classOther = iota
	classLetter
	classNumber
	classSpace
)

type char struct {
	r     rune
	off   int // byte offset in the text
	class int
}

func classify(text string) []char {
	cs := make([]char, 0, len(text))
	for off := 0; off < len(text); {
		r, n := utf8.DecodeRuneInString(text[off:])
		c := char{r: r, off: off}
		switch {
		case n == 1 && r == utf8.RuneError:
			c.class = classOther
		case unicode.IsLetter(r):
			c.class = classLetter
		case unicode.IsNumber(r):
			c.class = classNumber
		case unicode.IsSpace(r):
			c.class = classSpace
		}
		cs = append(cs, c)
		off += n
	}
	return cs
}

// split returns the words of text, which concatenate back to text.
func (p pretokenizer) split(text string) []string {
	cs := classify(text)
	var words []string
	for i := 0; i < len(cs); {
		var j int
		if p.llama3 {
			j = p.matchLlama3(cs, i)
		} else {
			j = matchGPT2(cs, i)
		}
		end := len(text)
		if j < len(cs) {
			end = cs[j].off
		}
		words = append(words, text[cs[i].off:end])
		i = j
	}
	return words
}

// run returns the end of the run of class cl starting at i.
func run(cs []char, i, cl int) int {
	for i < len(cs) && cs[i].class == cl {
		i++
	}
	return i
}

// contraction returns the end of "'s", "'t", "'re", "'ve", "'m", "'ll" or
// "'d" at i, or -1.
func contraction(cs []char, i int, fold bool) int {
	if cs[i].r != '\'' || i+1 >= len(cs) {
		return -1
	}
	lower := func(r rune) rune {
		if fold {
			return unicode.ToLower(r)
		}
		return r
	}
	switch lower(cs[i+1].r) {
	case 's', 't', 'm', 'd':
		return i + 2
	}
	if i+2 >= len(cs) {
		return -1
	}
	switch a, b := lower(cs[i+1].r), lower(cs[i+2].r); {
	case a == 'r' && b == 'e', a == 'v' && b == 'e', a == 'l' && b == 'l':
		return i + 3
	}
	return -1
}

// spaces matches \s+(?!\S)|\s+ at i, where cs[i] is whitespace: the whole
// run when it ends the text or is one character long, otherwise all but its
// last character, which is left to lead the next word.
func spaces(cs []char, i int) int {
	k := run(cs, i, classSpace)
	if k == len(cs) || k-i == 1 {
		return k
	}
	return k - 1
}

func matchGPT2(cs []char, i int) int {
	if j := contraction(cs, i, false); j > 0 {
		return j
	}
	// " ?\p{L}+", " ?\p{N}+" and " ?[^\s\p{L}\p{N}]+": an optional space
	// followed by a run of one class.
	start := i
	if cs[i].r == ' ' && i+1 < len(cs) && cs[i+1].class != classSpace {
		start = i + 1
	}
	if cl := cs[start].class; cl != classSpace {
		return run(cs, start, cl)
	}
	return spaces(cs, i)
}

func (p pretokenizer) matchLlama3(cs []char, i int) int {
	if j := contraction(cs, i, true); j > 0 {
		return j
	}
	c := cs[i]
	// [^\r\n\p{L}\p{N}]?\p{L}+
	if c.class == classLetter {
		return run(cs, i, classLetter)
	}
	if c.r != '\r' && c.r != '\n' && c.class != classNumber && i+1 < len(cs) && cs[i+1].class == classLetter {
		return run(cs, i+1, classLetter)
	}
	// \p{N}{1,3}
	if c.class == classNumber {
		return min(run(cs, i, classNumber), i+p.maxDigits)
	}
	// " ?[^\s\p{L}\p{N}]+[\r\n]*"
	start := i
	if c.r == ' ' && i+1 < len(cs) && cs[i+1].class == classOther {
		start = i + 1
	}
	if cs[start].class == classOther {
		j := run(cs, start, classOther)
		for j < len(cs) && (cs[j].r == '\r' || cs[j].r == '\n') {
			j++
		}
		return j
	}
	// \s*[\r\n]+: up to the last newline in the run of whitespace.
	k := run(cs, i, classSpace)
	for p := k - 1; p >= i; p-- {
		if cs[p].r == '\r' || cs[p].r == '\n' {
			return p + 1
		}
	}
	return spaces(cs, i)
}
