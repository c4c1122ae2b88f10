// Package server is tinyllm's HTTP API, shaped like llama.cpp's llama-server
// so that a gateway cannot tell them apart:
//
//	GET  /health               503 {"error":{...,"message":"Loading model"}} while loading, then 200 {"status":"ok"}
//	GET  /v1/models            the loaded model, OpenAI list shape
//	POST /v1/chat/completions  OpenAI chat completions, streamed (SSE) or not
//	POST /v1/completions       OpenAI text completions, streamed or not
//	POST /completion           llama-server's native completion
//	POST /tokenize, /detokenize
//
// Requests are served one generation at a time, in arrival order.
package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/modelgate/modelgate/tinyllm/engine"
)

// maxBodyBytes caps request bodies.
const maxBodyBytes = 32 << 20

// Server answers HTTP requests for one model. Until SetEngine is called it
// answers 503 "Loading model".
type Server struct {
	alias  string // the model id it reports
	log    *slog.Logger
	engine atomic.Pointer[engine.Engine]
	mux    *http.ServeMux
	// loadErr is set when loading failed; health then reports it.
	loadErr atomic.Pointer[error]
}

// New returns a server reporting the model as alias.
func New(alias string, log *slog.Logger) *Server {
	s := &Server{alias: alias, log: log, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /health", s.health)
	s.mux.HandleFunc("GET /v1/health", s.health)
	s.mux.HandleFunc("GET /v1/models", s.models)
	s.mux.HandleFunc("GET /models", s.models)
	s.mux.HandleFunc("POST /v1/chat/completions", s.ready(s.chatCompletions))
	s.mux.HandleFunc("POST /chat/completions", s.ready(s.chatCompletions))
	s.mux.HandleFunc("POST /v1/completions", s.ready(s.completions))
	s.mux.HandleFunc("POST /completions", s.ready(s.completions))
	s.mux.HandleFunc("POST /completion", s.ready(s.nativeCompletion))
	s.mux.HandleFunc("POST /tokenize", s.ready(s.tokenize))
	s.mux.HandleFunc("POST /detokenize", s.ready(s.detokenize))
	return s
}

// SetEngine makes the server ready with a loaded model.
func (s *Server) SetEngine(e *engine.Engine) { s.engine.Store(e) }

// SetLoadError records that the model could not be loaded.
func (s *Server) SetLoadError(err error) { s.loadErr.Store(&err) }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) health(w http.ResponseWriter, _ *http.Request) {
	if p := s.loadErr.Load(); p != nil {
		writeError(w, http.StatusInternalServerError, "server_error", "Failed to load model: "+(*p).Error())
		return
	}
	if s.engine.Load() == nil {
		writeError(w, http.StatusServiceUnavailable, "unavailable_error", "Loading model")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	entry := map[string]any{"id": s.alias, "object": "model", "created": time.Now().Unix(), "owned_by": "tinyllm"}
	if e := s.engine.Load(); e != nil {
		entry["meta"] = map[string]any{"n_ctx": e.ContextSize(), "n_vocab": e.Tokenizer().VocabSize()}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": []any{entry}})
}

// ready wraps a handler that needs the model: 503 while it loads, and the
// request body decoded with a cap.
func (s *Server) ready(h func(w http.ResponseWriter, r *http.Request, e *engine.Engine, body []byte)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		e := s.engine.Load()
		if e == nil {
			writeError(w, http.StatusServiceUnavailable, "unavailable_error", "Loading model")
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request_error", "read body: "+err.Error())
			return
		}
		if len(body) > maxBodyBytes {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request_error", fmt.Sprintf("body exceeds %d bytes", maxBodyBytes))
			return
		}
		h(w, r, e, body)
	}
}

// failGeneration answers an error from the engine, unless the client left.
func (s *Server) failGeneration(w http.ResponseWriter, r *http.Request, err error) {
	var ce *engine.ContextExceededError
	switch {
	case r.Context().Err() != nil:
		s.log.Info("client went away; generation stopped", "path", r.URL.Path)
	case errors.As(err, &ce):
		// llama-server adds the two numbers to the error object.
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
			"code": http.StatusBadRequest, "message": ce.Error(), "type": "exceed_context_size_error",
			"n_prompt_tokens": ce.PromptTokens, "n_ctx": ce.ContextSize,
		}})
	default:
		s.log.Error("generation failed", "error", err)
		writeError(w, http.StatusInternalServerError, "server_error", err.Error())
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers in llama-server's error shape (which is OpenAI's with a
// numeric code).
func writeError(w http.ResponseWriter, status int, typ, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": status, "message": msg, "type": typ}})
}

// sse writes Server-Sent Events, flushing each one.
type sse struct {
	w  http.ResponseWriter
	rc *http.ResponseController
}

func startSSE(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Connection", "keep-alive")
	w.WriteHeader(http.StatusOK)
	return &sse{w: w, rc: http.NewResponseController(w)}
}

func (s *sse) send(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.raw(data)
}

func (s *sse) raw(data []byte) error {
	if _, err := fmt.Fprintf(s.w, "data: %s\n\n", data); err != nil {
		return err
	}
	return s.rc.Flush()
}
