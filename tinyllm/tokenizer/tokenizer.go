// Package tokenizer turns text into the token ids of a GGUF model and back,
// the way llama.cpp does it (src/llama-vocab.cpp), so that a prompt gives the
// same ids here as in llama-server's POST /tokenize.
//
// Two tokenizer models are implemented, chosen by tokenizer.ggml.model:
//
//   - "llama": SentencePiece BPE (llama.cpp's llm_tokenizer_spm). Spaces
//     become "▁", a "▁" is put in front when add_space_prefix is set, the text
//     is split into UTF-8 characters and the adjacent pair whose
//     concatenation is a token with the highest score is merged until no pair
//     is left (ties go to the leftmost pair). Characters that are not tokens
//     fall back to the byte tokens "<0xNN>".
//   - "gpt2": byte-level BPE. The text is split by the pre-tokenizer named in
//     tokenizer.ggml.pre, each piece's bytes are mapped to printable code
//     points (GPT-2's bytes_to_unicode) and the pair with the lowest rank in
//     tokenizer.ggml.merges is merged until none is left.
//
// Control, unknown and user-defined tokens are found in the text before
// either model runs: user-defined tokens always, control and unknown tokens
// only when Encode is asked to parse special tokens, as in llama.cpp's
// tokenizer_st_partition.
//
// Decode concatenates the pieces of the tokens, which is the text
// llama-server streams for generated tokens: a SentencePiece token "▁and"
// gives " and", including at the start. Byte-level BPE keeps bytes that are
// not valid UTF-8 as they are, so Decode(Encode(s)) == s for any s; llama.cpp
// replaces them with U+FFFD before tokenizing (a JSON request body cannot
// carry them anyway).
//
// A Tokenizer is immutable after FromGGUF and safe for concurrent use; a
// Detokenizer is not.
package tokenizer

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/modelgate/modelgate/tinyllm/gguf"
)

// Token types, the values of tokenizer.ggml.token_type (llama.cpp's
// llama_token_type).
const (
	typeUndefined   = 0
	typeNormal      = 1
	typeUnknown     = 2
	typeControl     = 3
	typeUserDefined = 4
	typeUnused      = 5
	typeByte        = 6
)

type model int

const (
	modelSPM model = iota // tokenizer.ggml.model "llama"
	modelBPE              // tokenizer.ggml.model "gpt2"
)

// eogTexts are the token texts llama.cpp treats as end of generation
// whatever the metadata says, because converters rarely record them.
// See https://github.com/ggerganov/llama.cpp/issues/9606.
var eogTexts = []string{
	"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
	"<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>", "<｜end▁of▁sentence｜>",
}

// Tokenizer encodes and decodes text for one model's vocabulary.
type Tokenizer struct {
	model  model
	tokens []string
	scores []float32
	types  []int32
	ids    map[string]int32

	bos, eos       int32 // -1 when the model has none
	eog            map[int32]bool
	addBOS, addEOS bool
	addSpacePrefix bool // SentencePiece only

	// specials are the control, unknown and user-defined tokens, longest
	// text first, for the partition step of Encode.
	specials []int32

	// SentencePiece: the token for each byte, -1 where there is none.
	byteTokens [256]int32

	// byte-level BPE
	ranks map[string]int // "left right" → rank
	pre   pretokenizer
}

// FromGGUF builds the tokenizer that the metadata of g describes. It reads
// tokenizer.ggml.model ("llama" or "gpt2"), tokens, scores, token_type,
// merges (gpt2), the bos, eos, unknown, eot and eom token ids,
// add_bos_token and add_eos_token, add_space_prefix and pre (gpt2).
//
// Defaults follow llama.cpp: for "llama", BOS 1, EOS 2, add_bos_token true
// and add_space_prefix true; for "gpt2", no BOS or EOS unless the file names
// them and add_bos_token false except for the llama3 pre-tokenizer. An id
// outside the vocabulary is ignored, as llama.cpp does. The errors wrap
// ErrVocab or ErrUnsupported.
func FromGGUF(g *gguf.File) (*Tokenizer, error) {
	name, _ := g.String("tokenizer.ggml.model")
	t := &Tokenizer{bos: -1, eos: -1}
	switch name {
	case "llama":
		t.model = modelSPM
		t.bos, t.eos = 1, 2
		t.addBOS, t.addSpacePrefix = true, true
	case "gpt2":
		t.model = modelBPE
	default:
		return nil, fmt.Errorf("tokenizer from gguf: model %q: %w", name, ErrUnsupported)
	}
	if err := t.loadVocab(g); err != nil {
		return nil, fmt.Errorf("tokenizer from gguf: %w", err)
	}
	if t.model == modelBPE {
		if err := t.loadBPE(g); err != nil {
			return nil, fmt.Errorf("tokenizer from gguf: %w", err)
		}
	}
	t.loadSpecial(g)
	return t, nil
}

func (t *Tokenizer) loadVocab(g *gguf.File) error {
	tokens, ok := g.Metadata["tokenizer.ggml.tokens"].([]string)
	if !ok || len(tokens) == 0 {
		return fmt.Errorf("tokenizer.ggml.tokens missing or empty: %w", ErrVocab)
	}
	if len(tokens) > math.MaxInt32 {
		return fmt.Errorf("%d tokens: %w", len(tokens), ErrVocab)
	}
	n := len(tokens)
	t.tokens = make([]string, n)
	t.ids = make(map[string]int32, n)
	for i, s := range tokens {
		if s == "" {
			// llama.cpp names empty tokens so that none matches the empty string.
			s = "[EMPTY_" + strconv.Itoa(i) + "]"
		}
		t.tokens[i] = s
		t.ids[s] = int32(i)
	}

	t.scores = make([]float32, n)
	if v, present := g.Metadata["tokenizer.ggml.scores"]; present {
		scores, ok := v.([]float32)
		if !ok {
			return fmt.Errorf("tokenizer.ggml.scores is %T, want []float32: %w", v, ErrVocab)
		}
		if len(scores) != n {
			return fmt.Errorf("tokenizer.ggml.scores has %d entries for %d tokens: %w", len(scores), n, ErrVocab)
		}
		copy(t.scores, scores)
	}

	t.types = make([]int32, n)
	for i := range t.types {
		t.types[i] = typeNormal
	}
	if v, present := g.Metadata["tokenizer.ggml.token_type"]; present {
		switch types := v.(type) {
		case []int32:
			if len(types) != n {
				return fmt.Errorf("tokenizer.ggml.token_type has %d entries for %d tokens: %w", len(types), n, ErrVocab)
			}
			copy(t.types, types)
		case []uint32:
			if len(types) != n {
				return fmt.Errorf("tokenizer.ggml.token_type has %d entries for %d tokens: %w", len(types), n, ErrVocab)
			}
			for i, ty := range types {
				t.types[i] = int32(min(ty, math.MaxInt32))
			}
		default:
			return fmt.Errorf("tokenizer.ggml.token_type is %T, want []int32: %w", v, ErrVocab)
		}
	}
	return nil
}

func (t *Tokenizer) loadBPE(g *gguf.File) error {
	merges, ok := g.Metadata["tokenizer.ggml.merges"].([]string)
	if !ok {
		return fmt.Errorf("tokenizer.ggml.merges missing: %w", ErrVocab)
	}
	t.ranks = make(map[string]int, len(merges))
	for i, m := range merges {
		// Each merge is "left right"; llama.cpp splits at the first space
		// after the first byte and keeps the first rank of a repeated pair.
		if strings.IndexByte(m[min(1, len(m)):], ' ') < 0 {
			continue
		}
		if _, dup := t.ranks[m]; !dup {
			t.ranks[m] = i
		}
	}
	pre, _ := g.String("tokenizer.ggml.pre")
	p, ok := pretokenizers[pre]
	if !ok {
		return fmt.Errorf("pre-tokenizer %q: %w", pre, ErrUnsupported)
	}
	t.pre = p
	t.addBOS = p.addBOS // true for llama3, as in llama.cpp
	return nil
}

func (t *Tokenizer) loadSpecial(g *gguf.File) {
	id := func(key string, def int32) int32 {
		if v, ok := g.Uint(key); ok && v < uint64(len(t.tokens)) {
			return int32(v)
		}
		return def
	}
	t.bos = id("tokenizer.ggml.bos_token_id", t.bos)
	t.eos = id("tokenizer.ggml.eos_token_id", t.eos)
	unk := id("tokenizer.ggml.unknown_token_id", -1)
	if t.model == modelSPM && unk < 0 && len(t.tokens) > 0 {
		unk = 0 // llama.cpp's default for SentencePiece vocabularies
	}
	if v, ok := g.Bool("tokenizer.ggml.add_bos_token"); ok {
		t.addBOS = v
	}
	if v, ok := g.Bool("tokenizer.ggml.add_eos_token"); ok {
		t.addEOS = v
	}
	if v, ok := g.Bool("tokenizer.ggml.add_space_prefix"); ok && t.model == modelSPM {
		t.addSpacePrefix = v
	}

	t.eog = map[int32]bool{}
	for _, s := range eogTexts {
		if i, ok := t.ids[s]; ok {
			t.eog[i] = true
			// llama.cpp overrides such tokens to control so that they are
			// neither printed nor split when they were stored as normal.
			t.types[i] = typeControl
		}
	}
	for _, i := range []int32{t.eos, id("tokenizer.ggml.eot_token_id", -1), id("tokenizer.ggml.eom_token_id", -1)} {
		if i >= 0 {
			t.eog[i] = true
		}
	}

	for i := range t.byteTokens {
		t.byteTokens[i] = -1
	}
	if t.model == modelSPM {
		for b := range 256 {
			if i, ok := t.ids[fmt.Sprintf("<0x%02X>", b)]; ok {
				t.byteTokens[b] = i
			} else if i, ok := t.ids[string([]byte{byte(b)})]; ok {
				t.byteTokens[b] = i
			} else {
				t.byteTokens[b] = unk
			}
		}
	}

	for i, ty := range t.types {
		if ty == typeControl || ty == typeUnknown || ty == typeUserDefined {
			t.specials = append(t.specials, int32(i))
		}
	}
	slices.SortStableFunc(t.specials, func(a, b int32) int {
		return cmp.Compare(len(t.tokens[b]), len(t.tokens[a]))
	})
}

// BOS is the beginning-of-sequence token id, or -1 when the model has none.
func (t *Tokenizer) BOS() int32 { return t.bos }

// EOS is the end-of-sequence token id, or -1 when the model has none.
func (t *Tokenizer) EOS() int32 { return t.eos }

// IsEOG reports whether generating id ends generation: the EOS token, the
// end-of-turn (tokenizer.ggml.eot_token_id) and end-of-message
// (tokenizer.ggml.eom_token_id) tokens, and the tokens llama.cpp recognises
// by their text ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", ...).
func (t *Tokenizer) IsEOG(id int32) bool { return t.eog[id] }

// VocabSize is the number of tokens in the vocabulary.
func (t *Tokenizer) VocabSize() int { return len(t.tokens) }

// TokenText is the raw vocabulary string of id ("▁the", "<0x0A>", "<s>",
// "Ġthe"), or "" when id is out of range. It is also how a caller renders
// control tokens, which Piece leaves out.
func (t *Tokenizer) TokenText(id int32) string {
	if id < 0 || int(id) >= len(t.tokens) {
		return ""
	}
	return t.tokens[id]
}

// Encode turns text into token ids. With addSpecial, BOS is put first
// (and EOS last) when the model asks for it (add_bos_token,
// add_eos_token). With parseSpecial, the texts of control tokens such as
// "<|im_start|>" become those tokens; without it they are tokenized as
// plain text. User-defined tokens are always matched, as in llama.cpp.
//
// For a SentencePiece model with add_space_prefix, a space is put in front
// of the text and of any text that follows a special token, so Decode of
// the result starts with a space that the input did not have.
func (t *Tokenizer) Encode(text string, addSpecial, parseSpecial bool) []int32 {
	var out []int32
	if addSpecial && t.addBOS && t.bos >= 0 {
		out = append(out, t.bos)
	}
	prevSpecial := true // the text start counts as following a special token
	for _, f := range t.partition(text, parseSpecial) {
		if f.id >= 0 {
			out = append(out, f.id)
			prevSpecial = true
			continue
		}
		switch t.model {
		case modelSPM:
			s := f.text
			if t.addSpacePrefix && prevSpecial {
				s = " " + s
			}
			out = t.encodeSPM(s, out)
		case modelBPE:
			out = t.encodeBPE(f.text, out)
		}
		prevSpecial = false
	}
	if addSpecial && t.addEOS && t.eos >= 0 {
		out = append(out, t.eos)
	}
	return out
}

// fragment is a run of plain text (id -1) or one special token.
type fragment struct {
	text string
	id   int32
}

// partition splits text at the special tokens it contains, longest token
// text first, as llama.cpp's tokenizer_st_partition does.
func (t *Tokenizer) partition(text string, parseSpecial bool) []fragment {
	if text == "" {
		return nil
	}
	frags := []fragment{{text: text, id: -1}}
	for _, id := range t.specials {
		if !parseSpecial && t.types[id] != typeUserDefined {
			continue
		}
		tok := t.tokens[id]
		if !strings.Contains(text, tok) {
			continue
		}
		next := frags[:0:0]
		for _, f := range frags {
			if f.id >= 0 {
				next = append(next, f)
				continue
			}
			s := f.text
			for {
				i := strings.Index(s, tok)
				if i < 0 {
					break
				}
				if i > 0 {
					next = append(next, fragment{text: s[:i], id: -1})
				}
				next = append(next, fragment{id: id})
				s = s[i+len(tok):]
			}
			if s != "" {
				next = append(next, fragment{text: s, id: -1})
			}
		}
		frags = next
	}
	return frags
}

// Piece is the bytes token id stands for in generated text: "▁" becomes a
// space, a byte token "<0xNN>" its byte, a byte-level BPE token its
// original bytes, a user-defined token its text. Control, unknown, unused
// and out-of-range tokens give nil (TokenText has their text). The result
// may be part of a UTF-8 sequence; the caller must not modify it.
func (t *Tokenizer) Piece(id int32) []byte {
	if id < 0 || int(id) >= len(t.tokens) {
		return nil
	}
	text := t.tokens[id]
	switch t.types[id] {
	case typeUserDefined:
		return []byte(text)
	case typeNormal:
		if t.model == modelBPE {
			return decodeByteLevel(text)
		}
		return []byte(strings.ReplaceAll(text, spmSpace, " "))
	case typeByte:
		if t.model == modelBPE {
			return decodeByteLevel(text)
		}
		if b, ok := parseByteToken(text); ok {
			return []byte{b}
		}
		return []byte(text)
	}
	return nil
}

// parseByteToken reads a SentencePiece byte token such as "<0x0A>".
func parseByteToken(s string) (byte, bool) {
	if len(s) != 6 || !strings.HasPrefix(s, "<0x") || s[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(s[3:5], 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}

// Decode is the concatenation of the pieces of ids, the text llama-server
// streams for them: a leading space is kept (" and" for "▁and"), control
// tokens are left out and invalid UTF-8 is passed through as it is.
func (t *Tokenizer) Decode(ids []int32) string {
	var b strings.Builder
	for _, id := range ids {
		b.Write(t.Piece(id))
	}
	return b.String()
}
