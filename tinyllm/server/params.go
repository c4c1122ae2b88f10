package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/modelgate/modelgate/tinyllm/chat"
	"github.com/modelgate/modelgate/tinyllm/engine"
	"github.com/modelgate/modelgate/tinyllm/sample"
)

// params are the request fields shared by the completion endpoints. Both
// OpenAI's names and llama-server's are accepted.
type params struct {
	Model               string          `json:"model"`
	Prompt              json.RawMessage `json:"prompt"`
	Messages            []message       `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	NPredict            *int            `json:"n_predict"`
	Temperature         *float64        `json:"temperature"`
	TopK                *int            `json:"top_k"`
	TopP                *float64        `json:"top_p"`
	Seed                *int64          `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
	Stream              bool            `json:"stream"`
	StreamOptions       *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

// message is a chat message whose content is a string or a list of parts
// ({"type":"text","text":...}).
type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

func (m message) text() (string, error) {
	if len(m.Content) == 0 || string(m.Content) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(m.Content, &s); err == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return "", fmt.Errorf("message content must be a string or a list of text parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return "", fmt.Errorf("message content part of type %q is not supported (text only)", p.Type)
		}
		b.WriteString(p.Text)
	}
	return b.String(), nil
}

func parseParams(body []byte) (*params, error) {
	var p params
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("invalid JSON body: %w", err)
	}
	return &p, nil
}

// sampling returns the sampling settings, llama-server's defaults where the
// request is silent.
func (p *params) sampling() sample.Params {
	sp := sample.Defaults
	if p.Temperature != nil {
		sp.Temperature = *p.Temperature
	}
	if p.TopK != nil {
		sp.TopK = *p.TopK
	}
	if p.TopP != nil {
		sp.TopP = *p.TopP
	}
	if p.Seed != nil {
		sp.Seed = *p.Seed
	}
	return sp
}

// maxTokens is the completion limit: the first of n_predict,
// max_completion_tokens and max_tokens that the request gives, as
// llama-server reads it (n_predict, else max_tokens: server-task.cpp,
// params_from_json_cmpl; max_completion_tokens is OpenAI's newer name for
// max_tokens). 0 (until the context is full) when none is given or the one
// given is 0 or less (llama-server's n_predict -1).
func (p *params) maxTokens() int {
	for _, v := range []*int{p.NPredict, p.MaxCompletionTokens, p.MaxTokens} {
		if v != nil {
			return max(*v, 0)
		}
	}
	return 0
}

func (p *params) stops() ([]string, error) {
	if len(p.Stop) == 0 || string(p.Stop) == "null" {
		return nil, nil
	}
	var one string
	if err := json.Unmarshal(p.Stop, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(p.Stop, &many); err != nil {
		return nil, errors.New(`"stop" must be a string or a list of strings`)
	}
	return many, nil
}

// promptTokens tokenizes "prompt": a string (BOS added, special tokens
// parsed, as llama-server does), a list whose first element is used, or a
// list of token ids.
func (p *params) promptTokens(e *engine.Engine) ([]int32, string, error) {
	if len(p.Prompt) == 0 {
		return nil, "", errors.New(`"prompt" is required`)
	}
	var s string
	if err := json.Unmarshal(p.Prompt, &s); err == nil {
		return e.Tokenizer().Encode(s, true, true), s, nil
	}
	var ids []int32
	if err := json.Unmarshal(p.Prompt, &ids); err == nil && len(ids) > 0 {
		for _, id := range ids {
			if id < 0 || int(id) >= e.Tokenizer().VocabSize() {
				return nil, "", fmt.Errorf("prompt token %d is outside the vocabulary", id)
			}
		}
		return ids, e.Tokenizer().Decode(ids), nil
	}
	var list []string
	if err := json.Unmarshal(p.Prompt, &list); err == nil && len(list) > 0 {
		if len(list) > 1 {
			return nil, "", errors.New("only one prompt per request is supported")
		}
		return e.Tokenizer().Encode(list[0], true, true), list[0], nil
	}
	return nil, "", errors.New(`"prompt" must be a string or a list of token ids`)
}

// chatTokens renders "messages" with the chat template and tokenizes them.
func (p *params) chatTokens(e *engine.Engine) ([]int32, error) {
	if len(p.Messages) == 0 {
		return nil, errors.New(`"messages" is required`)
	}
	msgs := make([]chat.Message, 0, len(p.Messages))
	for i, m := range p.Messages {
		text, err := m.text()
		if err != nil {
			return nil, fmt.Errorf("messages[%d]: %w", i, err)
		}
		msgs = append(msgs, chat.Message{Role: m.Role, Content: text})
	}
	prompt, err := e.ChatPrompt(msgs)
	if err != nil {
		return nil, fmt.Errorf("apply chat template: %w", err)
	}
	// The template writes BOS itself where it wants one.
	return e.Tokenizer().Encode(prompt, !strings.HasPrefix(prompt, e.Tokenizer().TokenText(e.Tokenizer().BOS())), true), nil
}

func (p *params) request(prompt []int32) (engine.Request, error) {
	stops, err := p.stops()
	if err != nil {
		return engine.Request{}, err
	}
	return engine.Request{Prompt: prompt, MaxTokens: p.maxTokens(), Sampling: p.sampling(), Stop: stops}, nil
}

// prepare decodes a completion request and builds what the engine runs:
// from "messages" through the chat template when chat is set, from "prompt"
// otherwise. A bad request is answered 400 here and ok is false.
func prepare(w http.ResponseWriter, e *engine.Engine, body []byte, chat bool) (p *params, req engine.Request, promptText string, ok bool) {
	fail := func(err error) (*params, engine.Request, string, bool) {
		writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return nil, engine.Request{}, "", false
	}
	p, err := parseParams(body)
	if err != nil {
		return fail(err)
	}
	var prompt []int32
	if chat {
		prompt, err = p.chatTokens(e)
	} else {
		prompt, promptText, err = p.promptTokens(e)
	}
	if err != nil {
		return fail(err)
	}
	if req, err = p.request(prompt); err != nil {
		return fail(err)
	}
	return p, req, promptText, true
}
