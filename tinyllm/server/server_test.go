package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/tinyllm/engine"
	"github.com/modelgate/modelgate/tinyllm/server"
)

const (
	demoModel  = "../../examples/stories260K/model.gguf"
	demoGreedy = "../../testdata/stories260K-greedy.json"
	alias      = "stories260k"
)

// greedyCase is one case of the fixture: what llama.cpp's llama-server
// generated greedily (n_predict 48) from the demo model.
type greedyCase struct {
	Prompt           string  `json:"prompt"`
	PromptTokens     []int32 `json:"prompt_tokens"`
	Completion       string  `json:"completion"`
	CompletionTokens []int32 `json:"completion_tokens"`
	NPredict         int     `json:"n_predict"`
}

func readGreedyCases(t *testing.T) []greedyCase {
	t.Helper()
	b, err := os.ReadFile(demoGreedy)
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Cases []greedyCase }
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Cases) == 0 {
		t.Fatal("fixture has no cases")
	}
	return f.Cases
}

func loadEngine(t *testing.T, opts engine.Options) *engine.Engine {
	t.Helper()
	e, err := engine.Load(demoModel, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// startServer serves the demo model on 127.0.0.1 and returns its base URL.
func startServer(t *testing.T, opts engine.Options) (string, *engine.Engine) {
	t.Helper()
	e := loadEngine(t, opts)
	srv := server.New(alias, slog.New(slog.NewTextHandler(t.Output(), nil)))
	srv.SetEngine(e)
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close) // registered after the engine's: closes first
	return ts.URL, e
}

// post sends body and returns the response with its body read.
func post(t *testing.T, url, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// postJSON posts body, expects 200 and decodes the answer into v.
func postJSON(t *testing.T, url, body string, v any) {
	t.Helper()
	resp, b := post(t, url, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s %s: status %d: %s", url, body, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
}

// postSSE posts body, expects an event stream and returns the data of its
// events.
func postSSE(t *testing.T, url, body string) []string {
	t.Helper()
	resp, b := post(t, url, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST %s %s: status %d: %s", url, body, resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("Content-Type %q, want text/event-stream", ct)
	}
	return parseSSE(t, b)
}

// parseSSE splits a stream into the data of its events, checking that each
// event is one "data: " line followed by a blank line.
func parseSSE(t *testing.T, b []byte) []string {
	t.Helper()
	var events []string
	for _, ev := range strings.SplitAfter(string(b), "\n\n") {
		if ev == "" {
			continue
		}
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || !strings.HasSuffix(data, "\n\n") || strings.Contains(strings.TrimSuffix(data, "\n\n"), "\n") {
			t.Fatalf("malformed event %q in stream:\n%s", ev, b)
		}
		events = append(events, strings.TrimSuffix(data, "\n\n"))
	}
	return events
}

func decode[T any](t *testing.T, data string) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(data), &v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}

type apiError struct {
	Error struct {
		Code          int    `json:"code"`
		Message       string `json:"message"`
		Type          string `json:"type"`
		NPromptTokens int    `json:"n_prompt_tokens"`
		NCtx          int    `json:"n_ctx"`
	} `json:"error"`
}

// wantError checks llama-server's error shape.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, typ string) apiError {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d: %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	e := decode[apiError](t, string(body))
	if e.Error.Code != status || e.Error.Type != typ || e.Error.Message == "" {
		t.Errorf("error %s, want code %d, type %s and a message", body, status, typ)
	}
	return e
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type chatCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Delta        map[string]any `json:"delta"`
		FinishReason *string        `json:"finish_reason"`
	} `json:"choices"`
	Usage   *usage         `json:"usage"`
	Timings map[string]any `json:"timings"`
}

type textCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Text         string  `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

type nativeCompletion struct {
	Content         string         `json:"content"`
	Stop            bool           `json:"stop"`
	Model           string         `json:"model"`
	TokensPredicted int            `json:"tokens_predicted"`
	TokensEvaluated int            `json:"tokens_evaluated"`
	TokensCached    int            `json:"tokens_cached"`
	StopType        string         `json:"stop_type"`
	StoppingWord    string         `json:"stopping_word"`
	Timings         map[string]any `json:"timings"`
}

func TestHealthWhileLoading(t *testing.T) {
	const loading = `{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}`
	srv := server.New(alias, slog.New(slog.NewTextHandler(t.Output(), nil)))
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c := readGreedyCases(t)[0]

	for _, path := range []string{"/health", "/v1/health"} {
		resp, b := get(t, ts.URL+path)
		if resp.StatusCode != http.StatusServiceUnavailable || strings.TrimSpace(string(b)) != loading {
			t.Errorf("GET %s while loading: %d %s\nwant 503 %s", path, resp.StatusCode, b, loading)
		}
	}
	requests := []struct{ path, body string }{
		{"/v1/chat/completions", `{"messages":[{"role":"user","content":"Once upon a time"}]}`},
		{"/v1/completions", `{"prompt":"Once upon a time"}`},
		{"/completion", `{"prompt":"Once upon a time"}`},
		{"/tokenize", `{"content":"Once upon a time"}`},
		{"/detokenize", `{"tokens":[403]}`},
	}
	for _, r := range requests {
		resp, b := post(t, ts.URL+r.path, r.body)
		if resp.StatusCode != http.StatusServiceUnavailable || strings.TrimSpace(string(b)) != loading {
			t.Errorf("POST %s while loading: %d %s\nwant 503 %s", r.path, resp.StatusCode, b, loading)
		}
	}

	srv.SetEngine(loadEngine(t, engine.Options{}))
	resp, b := get(t, ts.URL+"/health")
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != `{"status":"ok"}` {
		t.Errorf("GET /health when loaded: %d %s, want 200 {\"status\":\"ok\"}", resp.StatusCode, b)
	}
	var got nativeCompletion
	postJSON(t, ts.URL+"/completion", fmt.Sprintf(`{"prompt":%q,"n_predict":48,"temperature":0}`, c.Prompt), &got)
	if got.Content != c.Completion {
		t.Errorf("content %q\nwant %q", got.Content, c.Completion)
	}
}

func TestHealthAfterLoadError(t *testing.T) {
	srv := server.New(alias, slog.New(slog.NewTextHandler(t.Output(), nil)))
	ts := httptest.NewServer(srv)
	defer ts.Close()
	srv.SetLoadError(errors.New("model.gguf: not a GGUF file"))
	resp, b := get(t, ts.URL+"/health")
	e := wantError(t, resp, b, http.StatusInternalServerError, "server_error")
	if !strings.Contains(e.Error.Message, "model.gguf: not a GGUF file") {
		t.Errorf("message %q does not give the reason", e.Error.Message)
	}
}

func TestModels(t *testing.T) {
	base, e := startServer(t, engine.Options{ContextSize: 256})
	type model struct {
		ID     string `json:"id"`
		Object string `json:"object"`
		Meta   struct {
			NCtx   int `json:"n_ctx"`
			NVocab int `json:"n_vocab"`
		} `json:"meta"`
	}
	for _, path := range []string{"/v1/models", "/models"} {
		resp, b := get(t, base+path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
		got := decode[struct {
			Object string  `json:"object"`
			Data   []model `json:"data"`
		}](t, string(b))
		if got.Object != "list" || len(got.Data) != 1 || got.Data[0].ID != alias || got.Data[0].Object != "model" {
			t.Errorf("GET %s = %s, want a list of the model %q", path, b, alias)
			continue
		}
		if got.Data[0].Meta.NCtx != 256 || got.Data[0].Meta.NVocab != e.Tokenizer().VocabSize() {
			t.Errorf("meta %+v, want n_ctx 256 and n_vocab %d", got.Data[0].Meta, e.Tokenizer().VocabSize())
		}
	}
}

func TestChatCompletion(t *testing.T) {
	base, _ := startServer(t, engine.Options{})
	c := readGreedyCases(t)[0]
	cases := []struct{ name, content string }{
		{"string content", fmt.Sprintf("%q", c.Prompt)},
		{"text parts", `[{"type":"text","text":"Once upon "},{"type":"text","text":"a time"}]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got chatCompletion
			postJSON(t, base+"/v1/chat/completions", `{"model":"stories260k","temperature":0,"max_tokens":48,"messages":[{"role":"user","content":`+tc.content+`}]}`, &got)
			if got.Object != "chat.completion" || got.Model != alias || !strings.HasPrefix(got.ID, "chatcmpl-") || got.Created == 0 {
				t.Errorf("object %q, model %q, id %q, created %d", got.Object, got.Model, got.ID, got.Created)
			}
			if len(got.Choices) != 1 {
				t.Fatalf("%d choices, want 1", len(got.Choices))
			}
			ch := got.Choices[0]
			if ch.Message.Role != "assistant" || ch.Message.Content != c.Completion {
				t.Errorf("message %+v\nwant the assistant saying %q", ch.Message, c.Completion)
			}
			if ch.FinishReason == nil || *ch.FinishReason != "length" {
				t.Errorf("finish_reason %v, want length", ch.FinishReason)
			}
			if got.Usage == nil || *got.Usage != (usage{5, 48, 53}) {
				t.Errorf("usage %+v, want 5 + 48 = 53", got.Usage)
			}
			if got.Timings["predicted_n"] != float64(48) {
				t.Errorf("timings %v, want predicted_n 48", got.Timings)
			}
		})
	}
}

func TestChatCompletionStream(t *testing.T) {
	base, _ := startServer(t, engine.Options{})
	c := readGreedyCases(t)[0]
	for _, includeUsage := range []bool{false, true} {
		t.Run(fmt.Sprint("include_usage ", includeUsage), func(t *testing.T) {
			events := postSSE(t, base+"/v1/chat/completions", fmt.Sprintf(
				`{"stream":true,"stream_options":{"include_usage":%v},"temperature":0,"max_tokens":48,"messages":[{"role":"user","content":%q}]}`, includeUsage, c.Prompt))
			if len(events) < 4 || events[len(events)-1] != "[DONE]" {
				t.Fatalf("events %q, want chunks then [DONE]", events)
			}
			events = events[:len(events)-1]
			if includeUsage {
				u := decode[chatCompletion](t, events[len(events)-1])
				if len(u.Choices) != 0 || u.Usage == nil || *u.Usage != (usage{5, 48, 53}) || u.Object != "chat.completion.chunk" {
					t.Errorf("last chunk %s, want no choices and usage 5 + 48 = 53", events[len(events)-1])
				}
				events = events[:len(events)-1]
			}
			var chunks []chatCompletion
			for _, ev := range events {
				ch := decode[chatCompletion](t, ev)
				if ch.Object != "chat.completion.chunk" || ch.Model != alias || len(ch.Choices) != 1 || ch.Usage != nil {
					t.Fatalf("chunk %s", ev)
				}
				chunks = append(chunks, ch)
			}
			if d := chunks[0].Choices[0].Delta; d["role"] != "assistant" || d["content"] != "" {
				t.Errorf("first delta %v, want the assistant role", d)
			}
			last := chunks[len(chunks)-1].Choices[0]
			if last.FinishReason == nil || *last.FinishReason != "length" || len(last.Delta) != 0 {
				t.Errorf("last chunk: finish_reason %v, delta %v; want length and an empty delta", last.FinishReason, last.Delta)
			}
			var text strings.Builder
			for i, ch := range chunks[1 : len(chunks)-1] {
				if ch.ID != chunks[0].ID || ch.Choices[0].FinishReason != nil {
					t.Errorf("chunk %d: id %q (first %q), finish_reason %v", i+1, ch.ID, chunks[0].ID, ch.Choices[0].FinishReason)
				}
				s, _ := ch.Choices[0].Delta["content"].(string)
				text.WriteString(s)
			}
			if text.String() != c.Completion {
				t.Errorf("streamed %q\nwant %q", text.String(), c.Completion)
			}
			if len(chunks) < 10 {
				t.Errorf("%d chunks; want the text streamed piece by piece", len(chunks))
			}
		})
	}
}

func TestCompletions(t *testing.T) {
	base, _ := startServer(t, engine.Options{})
	cases := readGreedyCases(t)
	ids, _ := json.Marshal(cases[1].PromptTokens)
	prompts := []struct {
		name, prompt string
		c            greedyCase
	}{
		{"prompt string", fmt.Sprintf("%q", cases[2].Prompt), cases[2]},
		{"prompt token ids", string(ids), cases[1]},
		{"list of one prompt", fmt.Sprintf("[%q]", cases[3].Prompt), cases[3]},
	}
	for _, p := range prompts {
		body := fmt.Sprintf(`{"model":"stories260k","temperature":0,"max_tokens":48,"prompt":%s`, p.prompt)
		want := usage{len(p.c.PromptTokens), 48, len(p.c.PromptTokens) + 48}
		t.Run(p.name, func(t *testing.T) {
			var got textCompletion
			postJSON(t, base+"/v1/completions", body+"}", &got)
			if got.Object != "text_completion" || got.Model != alias || !strings.HasPrefix(got.ID, "cmpl-") || len(got.Choices) != 1 {
				t.Fatalf("response %+v", got)
			}
			if got.Choices[0].Text != p.c.Completion || got.Choices[0].FinishReason == nil || *got.Choices[0].FinishReason != "length" {
				t.Errorf("text %q, finish %v\nwant %q, length", got.Choices[0].Text, got.Choices[0].FinishReason, p.c.Completion)
			}
			if got.Usage == nil || *got.Usage != want {
				t.Errorf("usage %+v, want %+v", got.Usage, want)
			}
		})
		t.Run(p.name+", streamed", func(t *testing.T) {
			events := postSSE(t, base+"/v1/completions", body+`,"stream":true,"stream_options":{"include_usage":true}}`)
			if len(events) < 3 || events[len(events)-1] != "[DONE]" {
				t.Fatalf("events %q, want chunks then [DONE]", events)
			}
			var text strings.Builder
			for i, ev := range events[:len(events)-1] {
				ch := decode[textCompletion](t, ev)
				if ch.Object != "text_completion" || len(ch.Choices) != 1 {
					t.Fatalf("chunk %s", ev)
				}
				text.WriteString(ch.Choices[0].Text)
				final := i == len(events)-2
				if (ch.Choices[0].FinishReason != nil) != final {
					t.Errorf("chunk %d of %d: finish_reason %v", i, len(events)-1, ch.Choices[0].FinishReason)
				}
				if final && (*ch.Choices[0].FinishReason != "length" || ch.Usage == nil || *ch.Usage != want) {
					t.Errorf("final chunk %s, want finish length and usage %+v", ev, want)
				}
			}
			if text.String() != p.c.Completion {
				t.Errorf("streamed %q\nwant %q", text.String(), p.c.Completion)
			}
		})
	}
}

func TestNativeCompletion(t *testing.T) {
	base, _ := startServer(t, engine.Options{})
	c := readGreedyCases(t)[0]
	body := fmt.Sprintf(`{"prompt":%q,"n_predict":48,"temperature":0`, c.Prompt)
	t.Run("not streamed", func(t *testing.T) {
		var got nativeCompletion
		postJSON(t, base+"/completion", body+"}", &got)
		if got.Content != c.Completion || !got.Stop || got.Model != alias {
			t.Errorf("content %q, stop %v, model %q\nwant %q", got.Content, got.Stop, got.Model, c.Completion)
		}
		if got.TokensPredicted != 48 || got.TokensEvaluated != 5 || got.StopType != "limit" || got.StoppingWord != "" {
			t.Errorf("tokens_predicted %d, tokens_evaluated %d, stop_type %q, stopping_word %q; want 48, 5, limit, none",
				got.TokensPredicted, got.TokensEvaluated, got.StopType, got.StoppingWord)
		}
		for _, k := range []string{"prompt_n", "prompt_ms", "predicted_n", "predicted_ms", "predicted_per_second", "cache_n"} {
			if _, ok := got.Timings[k]; !ok {
				t.Errorf("timings %v lack %s", got.Timings, k)
			}
		}
		if got.Timings["predicted_n"] != float64(48) {
			t.Errorf("timings.predicted_n = %v, want 48", got.Timings["predicted_n"])
		}
	})
	t.Run("streamed", func(t *testing.T) {
		events := postSSE(t, base+"/completion", body+`,"stream":true}`)
		if len(events) < 10 {
			t.Fatalf("%d events, want the text streamed piece by piece", len(events))
		}
		var text strings.Builder
		for _, ev := range events[:len(events)-1] {
			var part map[string]any
			part = decode[map[string]any](t, ev)
			if len(part) != 2 || part["stop"] != false {
				t.Fatalf("event %s, want {\"content\":...,\"stop\":false}", ev)
			}
			text.WriteString(part["content"].(string))
		}
		final := decode[nativeCompletion](t, events[len(events)-1])
		if !final.Stop || final.Content != "" || final.TokensPredicted != 48 || final.StopType != "limit" {
			t.Errorf("final event %s, want stop, no content, 48 tokens, limit", events[len(events)-1])
		}
		if text.String() != c.Completion {
			t.Errorf("streamed %q\nwant %q", text.String(), c.Completion)
		}
	})
}

// TestCompletionLimit checks which of max_tokens, n_predict and
// max_completion_tokens a request's limit comes from.
func TestCompletionLimit(t *testing.T) {
	const ctxSize = 128
	base, e := startServer(t, engine.Options{ContextSize: ctxSize})
	c := readGreedyCases(t)[0]
	cases := []struct {
		name, fields string
		want         int
	}{
		{"max_tokens", `"max_tokens":5`, 5},
		{"n_predict", `"n_predict":6`, 6},
		{"max_completion_tokens", `"max_completion_tokens":7`, 7},
		{"n_predict before max_tokens, as in llama-server", `"max_tokens":9,"n_predict":6`, 6},
		{"max_completion_tokens before max_tokens", `"max_tokens":9,"max_completion_tokens":7`, 7},
		{"n_predict -1 is no limit", `"n_predict":-1,"max_tokens":5`, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got nativeCompletion
			postJSON(t, base+"/completion", fmt.Sprintf(`{"prompt":%q,"temperature":0,%s}`, c.Prompt, tc.fields), &got)
			if tc.want == 0 {
				// Until the context is full.
				if got.TokensPredicted != ctxSize-len(c.PromptTokens) || !strings.HasPrefix(got.Content, c.Completion) || got.StopType != "limit" {
					t.Errorf("%d tokens: %q, stop_type %q; want %d, starting with the fixture, limit", got.TokensPredicted, got.Content, got.StopType, ctxSize-len(c.PromptTokens))
				}
				return
			}
			want := e.Tokenizer().Decode(c.CompletionTokens[:tc.want])
			if got.TokensPredicted != tc.want || got.Content != want || got.StopType != "limit" {
				t.Errorf("%d tokens %q, stop_type %q; want %d tokens %q, limit", got.TokensPredicted, got.Content, got.StopType, tc.want, want)
			}
		})
	}
}

func TestStop(t *testing.T) {
	base, _ := startServer(t, engine.Options{})
	c := readGreedyCases(t)[0]
	want := c.Completion[:strings.Index(c.Completion, "Lily")]
	for _, stop := range []string{`"Lily"`, `["park","Lily"]`, `["Lily"]`} {
		t.Run("stop "+stop, func(t *testing.T) {
			var native nativeCompletion
			postJSON(t, base+"/completion", fmt.Sprintf(`{"prompt":%q,"temperature":0,"n_predict":48,"stop":%s}`, c.Prompt, stop), &native)
			if native.Content != want || native.StopType != "word" || native.StoppingWord != "Lily" {
				t.Errorf("/completion: %q, stop_type %q, stopping_word %q; want %q, word, Lily", native.Content, native.StopType, native.StoppingWord, want)
			}
			var chat chatCompletion
			postJSON(t, base+"/v1/chat/completions", fmt.Sprintf(`{"messages":[{"role":"user","content":%q}],"temperature":0,"max_tokens":48,"stop":%s}`, c.Prompt, stop), &chat)
			if ch := chat.Choices[0]; ch.Message.Content != want || ch.FinishReason == nil || *ch.FinishReason != "stop" {
				t.Errorf("chat: %q, finish %v; want %q, stop", ch.Message.Content, ch.FinishReason, want)
			}
			events := postSSE(t, base+"/v1/chat/completions", fmt.Sprintf(`{"stream":true,"messages":[{"role":"user","content":%q}],"temperature":0,"max_tokens":48,"stop":%s}`, c.Prompt, stop))
			var text strings.Builder
			for _, ev := range events[:len(events)-1] {
				s, _ := decode[chatCompletion](t, ev).Choices[0].Delta["content"].(string)
				text.WriteString(s)
			}
			last := decode[chatCompletion](t, events[len(events)-2]).Choices[0].FinishReason
			if text.String() != want || last == nil || *last != "stop" {
				t.Errorf("streamed chat: %q, finish %v; want %q, stop", text.String(), last, want)
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	const ctxSize = 64
	base, e := startServer(t, engine.Options{ContextSize: ctxSize})
	long := strings.Repeat("Once upon a time ", 20) // BOS, 4 tokens a time and " "
	cases := []struct {
		name, path, body, typ string
	}{
		{"chat: invalid JSON", "/v1/chat/completions", `{"messages":`, "invalid_request_error"},
		{"chat: no messages", "/v1/chat/completions", `{"model":"x"}`, "invalid_request_error"},
		{"chat: empty messages", "/v1/chat/completions", `{"messages":[]}`, "invalid_request_error"},
		{"chat: image part", "/v1/chat/completions", `{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, "invalid_request_error"},
		{"chat: content a number", "/v1/chat/completions", `{"messages":[{"role":"user","content":5}]}`, "invalid_request_error"},
		{"chat: stop a number", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"stop":5}`, "invalid_request_error"},
		{"chat: stop a list of numbers", "/v1/chat/completions", `{"messages":[{"role":"user","content":"hi"}],"stop":[1,2]}`, "invalid_request_error"},
		{"chat: too long", "/v1/chat/completions", fmt.Sprintf(`{"messages":[{"role":"user","content":%q}]}`, long), "exceed_context_size_error"},
		{"chat: too long, streamed", "/v1/chat/completions", fmt.Sprintf(`{"stream":true,"messages":[{"role":"user","content":%q}]}`, long), "exceed_context_size_error"},
		{"completions: invalid JSON", "/v1/completions", `not json`, "invalid_request_error"},
		{"completions: no prompt", "/v1/completions", `{"max_tokens":4}`, "invalid_request_error"},
		{"completions: empty prompt list", "/v1/completions", `{"prompt":[]}`, "invalid_request_error"},
		{"completions: token outside the vocabulary", "/v1/completions", fmt.Sprintf(`{"prompt":[1,403,%d]}`, e.Tokenizer().VocabSize()), "invalid_request_error"},
		{"completions: negative token", "/v1/completions", `{"prompt":[1,-5]}`, "invalid_request_error"},
		{"completions: stop an object", "/v1/completions", `{"prompt":"hi","stop":{}}`, "invalid_request_error"},
		{"completions: too long", "/v1/completions", fmt.Sprintf(`{"prompt":%q}`, long), "exceed_context_size_error"},
		{"completion: invalid JSON", "/completion", `{"prompt":"hi"`, "invalid_request_error"},
		{"completion: no prompt", "/completion", `{}`, "invalid_request_error"},
		{"completion: token outside the vocabulary", "/completion", `{"prompt":[1,100000]}`, "invalid_request_error"},
		{"completion: too long, streamed", "/completion", fmt.Sprintf(`{"stream":true,"prompt":%q}`, long), "exceed_context_size_error"},
		{"tokenize: invalid JSON", "/tokenize", `{`, "invalid_request_error"},
		{"detokenize: invalid JSON", "/detokenize", `[`, "invalid_request_error"},
		{"detokenize: token outside the vocabulary", "/detokenize", `{"tokens":[403,512]}`, "invalid_request_error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := post(t, base+tc.path, tc.body)
			got := wantError(t, resp, b, http.StatusBadRequest, tc.typ)
			if tc.typ == "exceed_context_size_error" && (got.Error.NCtx != ctxSize || got.Error.NPromptTokens != 82) {
				t.Errorf("n_ctx %d, n_prompt_tokens %d; want %d and 82", got.Error.NCtx, got.Error.NPromptTokens, ctxSize)
			}
		})
	}
	// The server still answers correctly afterwards.
	c := readGreedyCases(t)[0]
	var got nativeCompletion
	postJSON(t, base+"/completion", fmt.Sprintf(`{"prompt":%q,"n_predict":48,"temperature":0}`, c.Prompt), &got)
	if got.Content != c.Completion {
		t.Errorf("after the errors: %q\nwant %q", got.Content, c.Completion)
	}
}

func TestTokenize(t *testing.T) {
	base, _ := startServer(t, engine.Options{})
	cases := []struct {
		name, body string
		want       []int32
		text       string // what /detokenize gives back
	}{
		{"add_special", `{"content":"Once upon a time","add_special":true}`, []int32{1, 403, 407, 261, 378}, "<s> Once upon a time"},
		{"no special tokens by default", `{"content":"Once upon a time"}`, []int32{403, 407, 261, 378}, " Once upon a time"},
		{"special token text parsed", `{"content":"<s>Once"}`, []int32{1, 403}, "<s> Once"},
		{"special token text kept as text", `{"content":"</s>","parse_special":false}`, nil, " </s>"},
		{"empty", `{"content":""}`, []int32{}, ""},
		{"add_special on empty", `{"content":"","add_special":true}`, []int32{1}, "<s>"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got struct{ Tokens []int32 }
			postJSON(t, base+"/tokenize", tc.body, &got)
			if got.Tokens == nil {
				t.Fatalf("tokens null, want a list")
			}
			if tc.want == nil {
				// Plain text: several tokens, none of them EOS.
				if len(got.Tokens) < 2 || slices.Contains(got.Tokens, 2) {
					t.Errorf("tokens %v, want </s> tokenized as text", got.Tokens)
				}
			} else if !slices.Equal(got.Tokens, tc.want) {
				t.Errorf("tokens %v, want %v", got.Tokens, tc.want)
			}
			ids, _ := json.Marshal(got.Tokens)
			var back struct{ Content string }
			postJSON(t, base+"/detokenize", fmt.Sprintf(`{"tokens":%s}`, ids), &back)
			if back.Content != tc.text {
				t.Errorf("detokenize %s = %q, want %q", ids, back.Content, tc.text)
			}
		})
	}
}

// TestClientDisconnect drops a stream whose generation, left alone, would
// run for many minutes (no token limit, a context of 65,536 tokens), and
// checks that the server stops it: the handler returns and the next request
// is answered correctly.
func TestClientDisconnect(t *testing.T) {
	e := loadEngine(t, engine.Options{ContextSize: 1 << 16})
	srv := server.New(alias, slog.New(slog.NewTextHandler(t.Output(), nil)))
	srv.SetEngine(e)
	returned := make(chan string, 8)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.ServeHTTP(w, r)
		returned <- r.URL.Path
	}))
	defer ts.Close()
	c := readGreedyCases(t)[0]

	for _, path := range []string{"/v1/chat/completions", "/completion"} {
		t.Run(path, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			body := fmt.Sprintf(`{"stream":true,"temperature":0,"prompt":%q,"messages":[{"role":"user","content":%[1]q}]}`, c.Prompt)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+path, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(resp.Body)
			for events := 0; events < 3 && sc.Scan(); {
				if strings.HasPrefix(sc.Text(), "data: ") {
					events++
				}
			}
			if sc.Err() != nil {
				t.Fatal(sc.Err())
			}
			cancel()
			resp.Body.Close()

			select {
			case <-returned:
			case <-time.After(2 * time.Minute): // a guard against a hang, not a timing
				t.Fatal("the handler still runs two minutes after its client left")
			}
			nextRequest(t, ts.URL, c)
			<-returned
		})
	}
	t.Run("not streamed", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		body := fmt.Sprintf(`{"temperature":0,"messages":[{"role":"user","content":%q}]}`, c.Prompt)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL+"/v1/chat/completions", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		// Nothing tells the client when generation has started: it leaves
		// after a moment. Had it left before its request arrived, the
		// test would pass without testing much; it cannot fail wrongly.
		time.AfterFunc(100*time.Millisecond, cancel)
		if resp, err := http.DefaultClient.Do(req); !errors.Is(err, context.Canceled) {
			t.Fatalf("Do = %v, %v; want it cancelled", resp, err)
		}
		// The engine serialises generations: the next request is served
		// only once the abandoned one has stopped.
		nextRequest(t, ts.URL, c)
	})
}

// nextRequest checks that the server answers a greedy request, from the
// cache of an abandoned generation of the same prompt.
func nextRequest(t *testing.T, base string, c greedyCase) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute) // a guard against a hang, not a timing
	defer cancel()
	body := fmt.Sprintf(`{"prompt":%q,"n_predict":48,"temperature":0}`, c.Prompt)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/completion", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("next request: %v; the abandoned generation still runs?", err)
	}
	defer resp.Body.Close()
	var got nativeCompletion
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Content != c.Completion || got.TokensCached != len(c.PromptTokens)-1 {
		t.Errorf("next request: %q, %d tokens cached\nwant %q, %d", got.Content, got.TokensCached, c.Completion, len(c.PromptTokens)-1)
	}
}
