// Package chat renders a conversation into the prompt text a model was
// trained on, with the Jinja chat template stored in its GGUF file
// (tokenizer.chat_template), as llama-server does for
// /v1/chat/completions.
//
// Templates are rendered the way Hugging Face's apply_chat_template renders
// them (trim_blocks and lstrip_blocks on), with the variables messages (a
// list of {"role", "content"}), add_generation_prompt, bos_token and
// eos_token, and the function raise_exception. The engine is
// github.com/ardanlabs/jinja, a Jinja implementation written for chat
// templates.
//
// # Fallback for models without a template
//
// A model without tokenizer.chat_template, such as a base model trained
// only to continue text (the demo model stories260K is one), gets a plain
// text rendering: the contents of the messages in order, each system, user
// or other message on a new line after the previous one, each assistant
// message appended exactly as it is, so that an earlier completion
// continues the text it completed. There is no role markup, and
// add_generation_prompt adds nothing: the model simply continues the text.
// One user message "Once upon a time" renders exactly "Once upon a time".
//
// llama-server falls back to ChatML ("<|im_start|>user\n...") instead, but
// a base model never saw ChatML markers: it would continue them as if they
// were story text. Plain text is what such a model can make sense of.
package chat

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/ardanlabs/jinja"

	"github.com/modelgate/modelgate/tinyllm/gguf"
	"github.com/modelgate/modelgate/tinyllm/tokenizer"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string // "system", "user", "assistant", or what the template knows
	Content string
}

// Template renders conversations for one model. It is immutable and safe
// for concurrent use.
type Template struct {
	src      string // "" for the fallback
	name     string
	compiled *jinja.Template
	bos, eos string
}

// maxRange caps the length of range() in a template. Python's range has
// no limit, but no chat template needs a million numbers, and the
// library's range would allocate whatever it is asked for.
const maxRange = 1 << 20

// FromGGUF returns the template of the model in g: tokenizer.chat_template
// when the file has one, else the plain-text fallback described in the
// package documentation. bos_token and eos_token are the texts of tok's
// BOS and EOS tokens ("" when tok is nil or has none). The error is an
// *Error.
func FromGGUF(g *gguf.File, tok *tokenizer.Tokenizer) (*Template, error) {
	src, ok := g.String("tokenizer.chat_template")
	if !ok || strings.TrimSpace(src) == "" {
		return &Template{name: "fallback"}, nil
	}
	var bos, eos string
	if tok != nil {
		bos, eos = tok.TokenText(tok.BOS()), tok.TokenText(tok.EOS())
	}
	name := "tokenizer.chat_template"
	if model, ok := g.String("general.name"); ok && model != "" {
		name += fmt.Sprintf(" of %q", model)
	}
	return parse(src, name, bos, eos)
}

// Parse compiles the Jinja template src. bosToken and eosToken are the
// values of the template's bos_token and eos_token. The error is an *Error.
func Parse(src string, bosToken, eosToken string) (*Template, error) {
	return parse(src, describe(src), bosToken, eosToken)
}

// describe names a template by the start of its first line.
func describe(src string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(src), "\n")
	const max = 48
	if len(line) > max {
		cut := max
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		line = line[:cut] + "…"
	}
	return fmt.Sprintf("%q", line)
}

func parse(src, name, bos, eos string) (t *Template, err error) {
	// The library is not written to panic on bad input, but a recover here
	// keeps a malformed template in a model file from taking the process
	// down: it is the only place we hand it text we did not write.
	defer func() {
		if r := recover(); r != nil {
			t, err = nil, &Error{Template: name, Op: "parse", Err: fmt.Errorf("jinja panicked: %v", r)}
		}
	}()
	compiled, err := jinja.Compile(src)
	if err != nil {
		return nil, &Error{Template: name, Op: "parse", Err: err}
	}
	return &Template{src: src, name: name, compiled: compiled, bos: bos, eos: eos}, nil
}

// Source is the Jinja source of the template, "" for the fallback.
func (t *Template) Source() string { return t.src }

// Apply renders msgs. With addGenerationPrompt the template ends with the
// opening of an assistant turn, so the model's continuation is the reply.
//
// The result is the template's output exactly. Many templates start with
// bos_token: a caller that tokenizes the result with special tokens added
// should drop that leading text first (llama.cpp's common_chat_templates_apply
// does) or the prompt gets two BOS tokens. Errors are *Error; one whose
// template called raise_exception wraps ErrRaised.
func (t *Template) Apply(msgs []Message, addGenerationPrompt bool) (string, error) {
	if t.compiled == nil {
		return fallback(msgs), nil
	}
	out, err := t.render(msgs, addGenerationPrompt)
	if err != nil {
		return "", &Error{Template: t.name, Op: "apply", Err: err}
	}
	return out, nil
}

func (t *Template) render(msgs []Message, addGenerationPrompt bool) (out string, err error) {
	// github.com/ardanlabs/jinja v1.8.0 panics on some expressions a
	// template may contain, e.g. {{ 'a' * -1 }} and indent(-1) reach
	// strings.Repeat with a negative count. Such a template is a bad
	// model file, not a reason to crash the server.
	defer func() {
		if r := recover(); r != nil {
			out, err = "", fmt.Errorf("jinja panicked: %v", r)
		}
	}()
	list := make([]jinja.Value, len(msgs))
	for i, m := range msgs {
		// Keys in the order of an OpenAI request, which is what a template
		// iterating over message.items() or printing tojson sees in Python.
		d := jinja.NewDict()
		d.AsDict().Set("role", jinja.NewString(m.Role))
		d.AsDict().Set("content", jinja.NewString(m.Content))
		list[i] = d
	}
	return t.compiled.RenderValues(map[string]jinja.Value{
		"messages":              jinja.NewList(list),
		"add_generation_prompt": jinja.NewBool(addGenerationPrompt),
		"bos_token":             jinja.NewString(t.bos),
		"eos_token":             jinja.NewString(t.eos),
		"raise_exception":       jinja.NewCallable("raise_exception", raiseException),
		"range":                 jinja.NewCallable("range", boundedRange),
	})
}

// raiseException is the template's raise_exception(message).
func raiseException(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
	msg := "(no message)"
	if len(args) > 0 {
		msg = args[0].String()
		if args[0].IsString() {
			msg = args[0].AsString()
		}
	}
	return jinja.Undefined(), fmt.Errorf("%w: %s", ErrRaised, msg)
}

var errRange = errors.New("range too long")

// boundedRange is Python's range(stop), range(start, stop[, step]) limited
// to maxRange items.
func boundedRange(args []jinja.Value, _ map[string]jinja.Value) (jinja.Value, error) {
	var start, stop, step int64 = 0, 0, 1
	ints := make([]int64, len(args))
	for i, a := range args {
		if !a.IsInt() {
			return jinja.Undefined(), fmt.Errorf("range: argument %d is not an integer", i+1)
		}
		ints[i] = a.AsInt()
	}
	switch len(ints) {
	case 1:
		stop = ints[0]
	case 2:
		start, stop = ints[0], ints[1]
	case 3:
		start, stop, step = ints[0], ints[1], ints[2]
	default:
		return jinja.Undefined(), fmt.Errorf("range: want 1 to 3 arguments, got %d", len(args))
	}
	if step == 0 {
		return jinja.Undefined(), errors.New("range: step must not be zero")
	}
	var items []jinja.Value
	for i := start; (step > 0 && i < stop) || (step < 0 && i > stop); i += step {
		if len(items) == maxRange {
			return jinja.Undefined(), fmt.Errorf("range(%d, %d, %d): %w (limit %d)", start, stop, step, errRange, maxRange)
		}
		items = append(items, jinja.NewInt(i))
		if next := i + step; (next < i) != (step < 0) {
			break // int64 overflow: i was the last value before passing stop
		}
	}
	return jinja.NewList(items), nil
}

// fallback is the plain-text rendering described in the package
// documentation.
func fallback(msgs []Message) string {
	var b strings.Builder
	for i, m := range msgs {
		if i > 0 && m.Role != "assistant" {
			b.WriteByte('\n')
		}
		b.WriteString(m.Content)
	}
	return b.String()
}
