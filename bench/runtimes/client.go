package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

const (
	// maxResponseBytes caps a response body; a completion of a few hundred
	// tokens with llama-server's generation_settings is a few KiB.
	maxResponseBytes = 4 << 20
	// requestTimeout bounds one request, generation included.
	requestTimeout = 2 * time.Minute
	// healthTimeout bounds one /health probe.
	healthTimeout = time.Second
)

// client speaks llama-server's native API (which tinyllm also serves) to one
// server. Connections are kept alive between requests, as a gateway keeps
// them. It is safe for concurrent use.
type client struct {
	base string // http://127.0.0.1:PORT
	http *http.Client
}

func newClient(base string) *client {
	return &client{base: base, http: &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 2,
		DisableCompression:  true,
	}}}
}

// close drops the idle connections.
func (c *client) close() { c.http.CloseIdleConnections() }

// completionRequest is the body of POST /completion.
type completionRequest struct {
	Prompt      any     `json:"prompt"` // text, or token ids
	NPredict    int     `json:"n_predict"`
	Temperature float64 `json:"temperature"`
	// CachePrompt false makes llama-server evaluate the whole prompt; nil
	// leaves its default (reuse the cached prefix). tinyllm ignores it and
	// always reuses the cached prefix.
	CachePrompt *bool `json:"cache_prompt,omitempty"`
}

// completion is the part of a /completion answer the benchmark reads, and
// the client's wall time of the request.
type completion struct {
	Content         string  `json:"content"`
	TokensEvaluated int     `json:"tokens_evaluated"` // prompt tokens, cached or not
	Timings         timings `json:"timings"`
	Wall            time.Duration
}

// timings is the server's own account of a completion (llama-server's
// "timings" object).
type timings struct {
	PromptN            int     `json:"prompt_n"` // prompt tokens evaluated, cache hits excluded
	PromptMS           float64 `json:"prompt_ms"`
	PromptPerSecond    float64 `json:"prompt_per_second"`
	PredictedN         int     `json:"predicted_n"`
	PredictedMS        float64 `json:"predicted_ms"`
	PredictedPerSecond float64 `json:"predicted_per_second"`
}

// complete posts req to /completion. Wall covers sending the request to
// decoding the answer.
func (c *client) complete(ctx context.Context, req completionRequest) (completion, error) {
	var out completion
	begin := time.Now()
	if err := c.post(ctx, "/completion", req, &out); err != nil {
		return completion{}, err
	}
	out.Wall = time.Since(begin)
	return out, nil
}

// tokenize returns the ids of text without BOS.
func (c *client) tokenize(ctx context.Context, text string) ([]int, error) {
	req := map[string]any{"content": text, "add_special": false}
	var out struct {
		Tokens []int `json:"tokens"`
	}
	if err := c.post(ctx, "/tokenize", req, &out); err != nil {
		return nil, err
	}
	return out.Tokens, nil
}

// healthy reports whether GET /health answers 200.
func (c *client) healthy(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, healthTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/health", nil)
	if err != nil {
		return false
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes))
	return resp.StatusCode == http.StatusOK
}

// post sends body as JSON and decodes a 200 answer into out.
func (c *client) post(ctx context.Context, path string, body, out any) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("post %s: %w", path, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+path, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("post %s: %w", path, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return fmt.Errorf("post %s: read answer: %w", path, err)
	}
	if len(raw) > maxResponseBytes {
		return fmt.Errorf("post %s: %w: body over %d bytes", path, errBadResponse, maxResponseBytes)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("post %s: %w: status %d: %.300s", path, errBadResponse, resp.StatusCode, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("post %s: %w: %w", path, errBadResponse, err)
	}
	return nil
}
