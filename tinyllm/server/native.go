package server

import (
	"encoding/json"
	"net/http"

	"github.com/modelgate/modelgate/tinyllm/engine"
)

// nativeCompletion serves llama-server's POST /completion.
func (s *Server) nativeCompletion(w http.ResponseWriter, r *http.Request, e *engine.Engine, body []byte) {
	p, req, promptText, ok := prepare(w, e, body, false)
	if !ok {
		return
	}
	nPredict := req.MaxTokens
	if nPredict == 0 {
		nPredict = -1 // llama-server's "until the context is full"
	}
	final := func(res *engine.Result, content string) map[string]any {
		return map[string]any{
			"content": content, "stop": true, "model": s.alias, "prompt": promptText,
			"tokens_predicted": res.CompletionTokens, "tokens_evaluated": res.PromptTokens, "tokens_cached": res.CachedTokens,
			"stop_type": res.StopType, "stopping_word": res.StoppingWord, "truncated": false,
			"generation_settings": map[string]any{"n_predict": nPredict, "temperature": req.Sampling.Temperature,
				"top_k": req.Sampling.TopK, "top_p": req.Sampling.TopP, "seed": req.Sampling.Seed, "stop": req.Stop, "n_ctx": e.ContextSize()},
			"timings": timings(res),
		}
	}
	if !p.Stream {
		res, err := e.Generate(r.Context(), req, func(string) error { return nil })
		if err != nil {
			s.failGeneration(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, final(res, res.Text))
		return
	}
	var out *sse
	res, err := e.Generate(r.Context(), req, func(text string) error {
		if out == nil {
			out = startSSE(w)
		}
		return out.send(map[string]any{"content": text, "stop": false})
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
	_ = out.send(final(res, ""))
}

// tokenize serves POST /tokenize {"content": "...", "add_special": bool,
// "parse_special": bool}; add_special defaults to false and parse_special
// to true, as in llama-server.
func (s *Server) tokenize(w http.ResponseWriter, _ *http.Request, e *engine.Engine, body []byte) {
	req := struct {
		Content      string `json:"content"`
		AddSpecial   bool   `json:"add_special"`
		ParseSpecial bool   `json:"parse_special"`
	}{ParseSpecial: true}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid JSON body: "+err.Error())
		return
	}
	tokens := e.Tokenizer().Encode(req.Content, req.AddSpecial, req.ParseSpecial)
	if tokens == nil {
		tokens = []int32{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": tokens})
}

// detokenize serves POST /detokenize {"tokens": [...]}. Unlike generated
// text, control tokens are written as their text ("<s>"): llama-server's
// tokens_to_str calls common_token_to_piece with special = true.
func (s *Server) detokenize(w http.ResponseWriter, _ *http.Request, e *engine.Engine, body []byte) {
	var req struct {
		Tokens []int32 `json:"tokens"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid JSON body: "+err.Error())
		return
	}
	for _, id := range req.Tokens {
		if id < 0 || int(id) >= e.Tokenizer().VocabSize() {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "token outside the vocabulary")
			return
		}
	}
	tok := e.Tokenizer()
	var text []byte
	for _, id := range req.Tokens {
		if piece := tok.Piece(id); piece != nil {
			text = append(text, piece...)
		} else {
			text = append(text, tok.TokenText(id)...)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"content": string(text)})
}
