package server

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/modelgate/modelgate/tinyllm/engine"
)

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

func usageOf(r *engine.Result) usage {
	return usage{r.PromptTokens, r.CompletionTokens, r.PromptTokens + r.CompletionTokens}
}

func newID(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// chatCompletions serves POST /v1/chat/completions.
func (s *Server) chatCompletions(w http.ResponseWriter, r *http.Request, e *engine.Engine, body []byte) {
	p, req, _, ok := prepare(w, e, body, true)
	if !ok {
		return
	}
	id, created := newID("chatcmpl-"), time.Now().Unix()
	chunk := func(delta map[string]any, finish any) map[string]any {
		return map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": s.alias,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}}}
	}
	if !p.Stream {
		res, err := e.Generate(r.Context(), req, func(string) error { return nil })
		if err != nil {
			s.failGeneration(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{
			"id": id, "object": "chat.completion", "created": created, "model": s.alias,
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": res.Text}, "finish_reason": res.FinishReason}},
			"usage":   usageOf(res), "timings": timings(res),
		})
		return
	}
	var out *sse
	begin := func() error {
		if out == nil {
			out = startSSE(w)
			return out.send(chunk(map[string]any{"role": "assistant", "content": ""}, nil))
		}
		return nil
	}
	res, err := e.Generate(r.Context(), req, func(text string) error {
		if err := begin(); err != nil {
			return err
		}
		return out.send(chunk(map[string]any{"content": text}, nil))
	})
	if err != nil {
		if out == nil {
			s.failGeneration(w, r, err)
		}
		return
	}
	if begin() != nil {
		return
	}
	final := chunk(map[string]any{}, res.FinishReason)
	final["timings"] = timings(res)
	if out.send(final) != nil {
		return
	}
	if p.StreamOptions != nil && p.StreamOptions.IncludeUsage {
		u := map[string]any{"id": id, "object": "chat.completion.chunk", "created": created, "model": s.alias, "choices": []any{}, "usage": usageOf(res)}
		if out.send(u) != nil {
			return
		}
	}
	_ = out.raw([]byte("[DONE]"))
}

// completions serves POST /v1/completions.
func (s *Server) completions(w http.ResponseWriter, r *http.Request, e *engine.Engine, body []byte) {
	p, req, _, ok := prepare(w, e, body, false)
	if !ok {
		return
	}
	id, created := newID("cmpl-"), time.Now().Unix()
	chunk := func(text string, finish any) map[string]any {
		return map[string]any{"id": id, "object": "text_completion", "created": created, "model": s.alias,
			"choices": []any{map[string]any{"index": 0, "text": text, "logprobs": nil, "finish_reason": finish}}}
	}
	if !p.Stream {
		res, err := e.Generate(r.Context(), req, func(string) error { return nil })
		if err != nil {
			s.failGeneration(w, r, err)
			return
		}
		body := chunk(res.Text, res.FinishReason)
		body["usage"], body["timings"] = usageOf(res), timings(res)
		writeJSON(w, http.StatusOK, body)
		return
	}
	var out *sse
	res, err := e.Generate(r.Context(), req, func(text string) error {
		if out == nil {
			out = startSSE(w)
		}
		return out.send(chunk(text, nil))
	})
	if err != nil {
		if out == nil {
			s.failGeneration(w, r, err)
		}
		return
	}
	if out == nil {
		out = startSSE(w)
	}
	final := chunk("", res.FinishReason)
	final["timings"] = timings(res)
	if p.StreamOptions != nil && p.StreamOptions.IncludeUsage {
		final["usage"] = usageOf(res)
	}
	if out.send(final) != nil {
		return
	}
	_ = out.raw([]byte("[DONE]"))
}

// timings is llama-server's timing report.
func timings(r *engine.Result) map[string]any {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	perSecond := func(n int, d time.Duration) float64 {
		if d <= 0 {
			return 0
		}
		return float64(n) / d.Seconds()
	}
	evaluated := r.PromptTokens - r.CachedTokens
	return map[string]any{
		"prompt_n": evaluated, "prompt_ms": ms(r.PromptDuration), "prompt_per_second": perSecond(evaluated, r.PromptDuration),
		"predicted_n": r.CompletionTokens, "predicted_ms": ms(r.GenDuration), "predicted_per_second": perSecond(r.CompletionTokens, r.GenDuration),
		"cache_n": r.CachedTokens,
	}
}
