package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// The workloads. longPrompt is TinyStories-like text, what the demo model
// was trained on, of about 190 tokens with a llama SentencePiece vocabulary;
// the report shows the count both servers evaluated.
const (
	longPrompt = `Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends. ` +
		`One day, Lily saw a big red ball under a tree. She wanted to play with it, but it was too high for her to reach. ` +
		`Lily asked her mom for help. Her mom smiled and said, "Let us get a long stick." They found a stick near the pond ` +
		`and pushed the ball down. Lily was very happy. She threw the ball to her dog, Max, and Max ran fast to catch it. ` +
		`They played all day until the sun went down.`
	shortPrompt = "Once upon a time"
	// flushText's first token is the one-token prompt of flushCache.
	flushText = "Hello"
)

// Metric keys of results.samples. Times are in milliseconds, throughputs in
// tokens per second.
const (
	keyLoad       = "load"
	keyPromptRate = "prompt_rate"
	keyPromptWall = "prompt_wall"
	keyLatency    = "latency"
)

func genRateKey(n int) string { return fmt.Sprintf("gen%d_rate", n) }
func genWallKey(n int) string { return fmt.Sprintf("gen%d_wall", n) }

// results are one runtime's samples, over one run or all of them.
type results struct {
	samples    map[string][]float64 // by metric key
	outputs    map[int][]string     // greedy completions, by n_predict
	predictedN map[int][]int        // timings.predicted_n, by n_predict
	promptN    []int                // timings.prompt_n of the prompt samples
}

func newResults() *results {
	return &results{samples: map[string][]float64{}, outputs: map[int][]string{}, predictedN: map[int][]int{}}
}

func (r *results) add(key string, v float64) { r.samples[key] = append(r.samples[key], v) }

func (r *results) merge(o *results) {
	for k, v := range o.samples {
		r.samples[k] = append(r.samples[k], v...)
	}
	for n, v := range o.outputs {
		r.outputs[n] = append(r.outputs[n], v...)
	}
	for n, v := range o.predictedN {
		r.predictedN[n] = append(r.predictedN[n], v...)
	}
	r.promptN = append(r.promptN, o.promptN...)
}

// measureAll runs every program cfg.runs times, alternating between them run
// by run so that a slow spell of a shared machine hits both alike, and
// returns their results by program name.
func measureAll(ctx context.Context, cfg config, programs []program) (map[string]*results, error) {
	all := map[string]*results{}
	for _, p := range programs {
		all[p.name] = newResults()
	}
	for run := 1; run <= cfg.runs; run++ {
		for _, p := range programs {
			one := newResults()
			if err := measureRun(ctx, cfg, p, one); err != nil {
				return nil, fmt.Errorf("run %d of %s: %w", run, p.name, err)
			}
			all[p.name].merge(one)
			logRun(run, cfg, p, one)
		}
	}
	return all, nil
}

// measureRun starts p, measures it and stops it.
func measureRun(ctx context.Context, cfg config, p program, r *results) error {
	s, load, err := start(ctx, p, cfg.loadTimeout)
	if err != nil {
		return err
	}
	defer s.stop()
	r.add(keyLoad, ms(load))
	c := s.client

	flush, err := c.tokenize(ctx, flushText)
	if err != nil {
		return err
	}
	if len(flush) == 0 {
		return fmt.Errorf("tokenize %q: %w: no tokens", flushText, errBadResponse)
	}
	// Warm up every request kind once, unmeasured: the first request of a
	// process pays for allocating its buffers.
	if _, err := measurePrompt(ctx, c, flush[0]); err != nil {
		return fmt.Errorf("warm up: %w", err)
	}
	if _, err := generate(ctx, c, cfg.predict[0], nil); err != nil {
		return fmt.Errorf("warm up: %w", err)
	}

	for range cfg.reps {
		res, err := measurePrompt(ctx, c, flush[0])
		if err != nil {
			return err
		}
		r.add(keyPromptRate, res.Timings.PromptPerSecond)
		r.add(keyPromptWall, ms(res.Wall))
		r.promptN = append(r.promptN, res.Timings.PromptN)
	}
	noCache := false
	for _, n := range cfg.predict {
		for range cfg.reps {
			res, err := generate(ctx, c, n, &noCache)
			if err != nil {
				return err
			}
			r.add(genRateKey(n), res.Timings.PredictedPerSecond)
			r.add(genWallKey(n), ms(res.Wall))
			r.outputs[n] = append(r.outputs[n], res.Content)
			r.predictedN[n] = append(r.predictedN[n], res.Timings.PredictedN)
		}
	}
	for range cfg.requests {
		// The servers' default prompt caching: what a client gets.
		res, err := generate(ctx, c, cfg.latencyPredict, nil)
		if err != nil {
			return err
		}
		r.add(keyLatency, ms(res.Wall))
	}
	return nil
}

// measurePrompt evaluates longPrompt in full and generates one token. It
// fails if the server reused part of the prompt from its cache.
func measurePrompt(ctx context.Context, c *client, flushToken int) (completion, error) {
	if err := flushCache(ctx, c, flushToken); err != nil {
		return completion{}, err
	}
	noCache := false
	res, err := c.complete(ctx, completionRequest{Prompt: longPrompt, NPredict: 1, Temperature: 0, CachePrompt: &noCache})
	if err != nil {
		return completion{}, fmt.Errorf("prompt processing: %w", err)
	}
	if res.Timings.PromptN != res.TokensEvaluated {
		return completion{}, fmt.Errorf("prompt processing: %w: evaluated %d of the prompt's %d tokens",
			errBadResponse, res.Timings.PromptN, res.TokensEvaluated)
	}
	return res, nil
}

// flushCache leaves the server's cache holding nothing in common with a
// prompt that starts with BOS. tinyllm ignores cache_prompt: false and always
// reuses the longest cached prefix, so a repeated prompt would be evaluated
// as one token; after this one-token prompt (not BOS) the next prompt is
// evaluated in full. llama-server gets the same request, so both do the same
// work.
func flushCache(ctx context.Context, c *client, token int) error {
	noCache := false
	_, err := c.complete(ctx, completionRequest{Prompt: []int{token}, NPredict: 1, Temperature: 0, CachePrompt: &noCache})
	if err != nil {
		return fmt.Errorf("flush cache: %w", err)
	}
	return nil
}

// generate completes shortPrompt greedily with up to n tokens.
func generate(ctx context.Context, c *client, n int, cachePrompt *bool) (completion, error) {
	res, err := c.complete(ctx, completionRequest{Prompt: shortPrompt, NPredict: n, Temperature: 0, CachePrompt: cachePrompt})
	if err != nil {
		return completion{}, fmt.Errorf("generate %d tokens: %w", n, err)
	}
	return res, nil
}

// logRun prints one run's medians on stderr, to follow progress.
func logRun(run int, cfg config, p program, r *results) {
	n := cfg.predict[0]
	fmt.Fprintf(os.Stderr, "run %d/%d %-9s  load %7.1f ms  prompt %6.0f tok/s  gen%d %6.0f tok/s  latency %6.2f ms\n",
		run, cfg.runs, p.name, median(r.samples[keyLoad]), median(r.samples[keyPromptRate]),
		n, median(r.samples[genRateKey(n)]), median(r.samples[keyLatency]))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
