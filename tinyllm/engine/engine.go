// Package engine runs text generation on one loaded model: it tokenizes,
// reuses the longest cached prompt prefix, evaluates, samples, detokenizes
// as it goes and stops on end-of-generation, a stop string, the token limit
// or the context size. One generation runs at a time (like llama-server
// with one slot); others wait their turn.
package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/modelgate/modelgate/tinyllm/chat"
	"github.com/modelgate/modelgate/tinyllm/gguf"
	"github.com/modelgate/modelgate/tinyllm/llama"
	"github.com/modelgate/modelgate/tinyllm/sample"
	"github.com/modelgate/modelgate/tinyllm/tokenizer"
)

// Options configure an Engine.
type Options struct {
	ContextSize int // tokens; 0 means the model's trained context length
	Threads     int // 0 means all cores
}

// Engine is a loaded model ready to generate. Its methods are safe for
// concurrent use; generations are serialised.
type Engine struct {
	file     *gguf.File
	model    *llama.Model
	tok      *tokenizer.Tokenizer
	template *chat.Template
	ctxSize  int

	mu      sync.Mutex // one generation at a time
	session *llama.Session
	cached  []int32 // tokens whose KV entries are in session
}

// Load opens the GGUF file at path and prepares the model, tokenizer and
// chat template.
func Load(path string, opts Options) (*Engine, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	e, err := newEngine(f, opts)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	return e, nil
}

func newEngine(f *gguf.File, opts Options) (*Engine, error) {
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		return nil, err
	}
	tmpl, err := chat.FromGGUF(f, tok)
	if err != nil {
		return nil, err
	}
	m, err := llama.Load(f, llama.Options{Threads: opts.Threads, ContextSize: opts.ContextSize})
	if err != nil {
		return nil, err
	}
	ctxSize := m.ContextSize()
	return &Engine{file: f, model: m, tok: tok, template: tmpl, ctxSize: ctxSize, session: m.NewSession(ctxSize)}, nil
}

// Close stops the model's threads and releases the model file.
func (e *Engine) Close() error {
	e.model.Close()
	return e.file.Close()
}

// ContextSize is the number of tokens a prompt and its completion share.
func (e *Engine) ContextSize() int { return e.ctxSize }

// Tokenizer is the model's tokenizer.
func (e *Engine) Tokenizer() *tokenizer.Tokenizer { return e.tok }

// ChatPrompt renders messages with the model's chat template (or the plain
// fallback) and an assistant prompt.
func (e *Engine) ChatPrompt(msgs []chat.Message) (string, error) {
	return e.template.Apply(msgs, true)
}

// Request is one generation.
type Request struct {
	Prompt    []int32 // tokens, including BOS if wanted
	MaxTokens int     // completion tokens at most; 0 or less means until the context is full
	Sampling  sample.Params
	Stop      []string // generation ends before the first of these strings
}

// Finish reasons, as OpenAI names them.
const (
	FinishStop   = "stop"   // end-of-generation token or stop string
	FinishLength = "length" // MaxTokens or the context size reached
)

// Result describes a finished generation.
type Result struct {
	Text             string
	PromptTokens     int
	CachedTokens     int // prompt tokens reused from the previous request
	CompletionTokens int
	FinishReason     string
	StopType         string // llama-server's stop_type: "eos", "word" or "limit"
	StoppingWord     string
	PromptDuration   time.Duration
	GenDuration      time.Duration
}

// Generate runs req, calling emit (which may be nil) with each new piece of
// text as soon as it is certain (never text that a stop string might still
// swallow). A prompt that leaves no room in the context for a generated
// token is refused with a *ContextExceededError. Generation stops early
// with ctx's error if ctx ends (the client went away), or with emit's error
// if emit fails; the engine stays usable either way.
func (e *Engine) Generate(ctx context.Context, req Request, emit func(string) error) (*Result, error) {
	if len(req.Prompt) == 0 {
		return nil, errors.New("generate: empty prompt")
	}
	if len(req.Prompt) >= e.ctxSize {
		return nil, &ContextExceededError{PromptTokens: len(req.Prompt), ContextSize: e.ctxSize}
	}
	if emit == nil {
		emit = func(string) error { return nil }
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	res := &Result{PromptTokens: len(req.Prompt)}
	start := time.Now()
	// Reuse the longest common prefix of the KV cache, but evaluate at
	// least one token to get logits.
	keep := commonPrefix(e.cached, req.Prompt)
	if keep == len(req.Prompt) {
		keep--
	}
	e.session.Truncate(keep)
	e.cached = append(e.cached[:keep], req.Prompt[keep:]...)
	res.CachedTokens = keep
	logits, err := e.session.Eval(req.Prompt[keep:])
	if err != nil {
		e.cached = e.cached[:0]
		e.session.Reset()
		return nil, fmt.Errorf("generate: evaluate prompt: %w", err)
	}
	res.PromptDuration = time.Since(start)

	genStart := time.Now()
	defer func() { res.GenDuration = time.Since(genStart) }()
	sampler := sample.New(req.Sampling)
	detok := e.tok.NewDetokenizer()
	out := stopFilter{stops: req.Stop}
	for {
		id := sampler.Sample(logits)
		if e.tok.IsEOG(id) {
			res.FinishReason, res.StopType = FinishStop, "eos"
			break
		}
		res.CompletionTokens++
		if text, word := out.add(detok.Add(id)); text != "" || word != "" {
			if text != "" {
				if err := emit(text); err != nil {
					return nil, err
				}
			}
			if word != "" {
				res.FinishReason, res.StopType, res.StoppingWord = FinishStop, "word", word
				break
			}
		}
		// The prompt and the completion share the context: stop when id
		// takes its last position (llama-server's n_past + 1 >= n_ctx).
		if req.MaxTokens > 0 && res.CompletionTokens >= req.MaxTokens || e.session.Pos()+1 >= e.ctxSize {
			res.FinishReason, res.StopType = FinishLength, "limit"
			break
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e.cached = append(e.cached, id)
		if logits, err = e.session.Eval([]int32{id}); err != nil {
			e.cached = e.cached[:0]
			e.session.Reset()
			return nil, fmt.Errorf("generate: evaluate token %d: %w", res.CompletionTokens, err)
		}
	}
	if res.StopType != "word" {
		if tail := out.flush(detok.Flush()); tail != "" {
			if err := emit(tail); err != nil {
				return nil, err
			}
		}
	}
	res.Text = out.emitted.String()
	return res, nil
}

func commonPrefix(a, b []int32) int {
	n := 0
	for n < len(a) && n < len(b) && a[n] == b[n] {
		n++
	}
	return n
}

// stopFilter holds back generated text that could be the start of a stop
// string, and cuts the text at the first stop string found.
type stopFilter struct {
	stops   []string
	pending string
	emitted strings.Builder
}

// add takes new text and returns the part that is now safe to emit, and the
// stop string if one was completed (the text is cut before it).
func (f *stopFilter) add(s string) (text, word string) {
	f.pending += s
	cut, word := -1, ""
	for _, stop := range f.stops {
		if stop == "" {
			continue
		}
		if i := strings.Index(f.pending, stop); i >= 0 && (cut < 0 || i < cut) {
			cut, word = i, stop
		}
	}
	if cut >= 0 {
		text = f.pending[:cut]
		f.pending = ""
		f.emitted.WriteString(text)
		return text, word
	}
	// Keep the longest suffix that is a prefix of some stop string.
	hold := 0
	for _, stop := range f.stops {
		for n := min(len(stop)-1, len(f.pending)); n > hold; n-- {
			if strings.HasSuffix(f.pending, stop[:n]) {
				hold = n
				break
			}
		}
	}
	text = f.pending[:len(f.pending)-hold]
	f.pending = f.pending[len(f.pending)-hold:]
	f.emitted.WriteString(text)
	return text, ""
}

// flush returns everything still held, after adding s.
func (f *stopFilter) flush(s string) string {
	text, word := f.add(s)
	if word != "" {
		return text
	}
	text += f.pending
	f.emitted.WriteString(f.pending)
	f.pending = ""
	return text
}
