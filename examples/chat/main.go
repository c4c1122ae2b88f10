// Command chat sends one streamed chat request to an OpenAI-compatible
// server (modelgate, llama-server, tinyllm) and prints the answer as it
// arrives. It is the client of `make demo` and an example of the API.
//
//	chat [-url http://127.0.0.1:8080] [-model NAME] [-max-tokens N] [-temperature T] PROMPT
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "server base URL")
	model := flag.String("model", "stories260k", "model name")
	maxTokens := flag.Int("max-tokens", 120, "completion tokens at most")
	temperature := flag.Float64("temperature", 0, "sampling temperature (0: greedy)")
	flag.Parse()
	prompt := strings.Join(flag.Args(), " ")
	if prompt == "" {
		prompt = "Once upon a time"
	}
	if err := chat(*url, *model, prompt, *maxTokens, *temperature); err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
}

func chat(url, model, prompt string, maxTokens int, temperature float64) error {
	body, _ := json.Marshal(map[string]any{
		"model": model, "stream": true, "max_tokens": maxTokens, "temperature": temperature,
		"messages": []map[string]string{{"role": "user", "content": prompt}},
	})
	start := time.Now()
	resp, err := http.Post(url+"/v1/chat/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	fmt.Printf("model %s, digest %s\n\n%s", model, resp.Header.Get("X-Model-Digest"), prompt)
	var first time.Duration
	tokens := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var chunk struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			return fmt.Errorf("bad event %q: %w", data, err)
		}
		for _, c := range chunk.Choices {
			if c.Delta.Content == "" {
				continue
			}
			if first == 0 {
				first = time.Since(start)
			}
			tokens++
			fmt.Print(c.Delta.Content)
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	fmt.Printf("\n\n(%d chunks; first after %s, all after %s)\n", tokens, first.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	return nil
}
