package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// maxResponseBytes caps an answer's body; the runtime's echo is about
	// half a kilobyte, a stream of a few events not much more.
	maxResponseBytes = 1 << 20
	// requestTimeout bounds one request.
	requestTimeout = 30 * time.Second
	// warmupPerClient is how many unmeasured requests each client sends
	// before a cell is measured, so that every connection is open and every
	// server has served a few; warmupMin is the least in total.
	warmupPerClient = 4
	warmupMin       = 40
	// streamWarmup is how many unmeasured streaming requests precede each
	// way's streaming share of a round.
	streamWarmup = 10
)

// The requests: an OpenAI chat completion for the benchmark's model, whole
// or streamed. The runtime echoes the first and streams the second.
var (
	chatBody   = []byte(`{"model":"` + modelName + `","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":16}`)
	streamBody = []byte(`{"model":"` + modelName + `","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":16,"stream":true}`)
)

// chatPath is where every way takes the requests.
const chatPath = "/v1/chat/completions"

// way is one way to reach the runtime: directly, through the gateway or
// through nginx.
type way struct {
	name string
	base string // http://127.0.0.1:PORT
	// cpu reports the CPU time the proxy's processes have used so far, false
	// if it cannot tell; nil for the direct way.
	cpu func() (time.Duration, bool)
}

// newLoadClient is a client with one keep-alive connection per concurrent
// client, at most.
func newLoadClient(clients int) *http.Client {
	return &http.Client{Timeout: requestTimeout, Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: clients,
		MaxConnsPerHost:     clients,
		DisableCompression:  true,
	}}
}

// post sends body to url and reads the answer to its end; it fails unless
// the status is 200 and the body is complete and at most maxResponseBytes.
func post(ctx context.Context, c *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("post %s: %w", url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", url, err)
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponseBytes+1))
	switch {
	case err != nil:
		return fmt.Errorf("post %s: read answer: %w", url, err)
	case n > maxResponseBytes:
		return fmt.Errorf("post %s: %w: body over %d bytes", url, errBadResponse, maxResponseBytes)
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("post %s: %w: status %d", url, errBadResponse, resp.StatusCode)
	}
	return nil
}

// loadRun is what one way's share of a round measured.
type loadRun struct {
	latencies []time.Duration // of the requests that succeeded
	elapsed   time.Duration   // from the first measured request to the last answer
	errors    int
	firstErr  error
	cpu       time.Duration // the proxy's CPU time over the measured requests
	cpuOK     bool
}

// runLoad sends requests requests to w from clients concurrent clients,
// closed loop, after warm-up requests, and stops early once timeout has
// passed since the first measured request. Failed requests are counted;
// it fails if a warm-up request fails or no measured request succeeds.
func runLoad(ctx context.Context, w way, clients, requests int, timeout time.Duration) (loadRun, error) {
	client := newLoadClient(clients)
	defer client.CloseIdleConnections()
	url := w.base + chatPath
	warmup := max(warmupPerClient, (warmupMin+clients-1)/clients)

	var (
		warmed, done sync.WaitGroup
		start        = make(chan struct{})
		deadline     time.Time // set before start is closed
		next         atomic.Int64
		mu           sync.Mutex
		run          loadRun
		warmErr      error
	)
	for range clients {
		warmed.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			for range warmup {
				if err := post(ctx, client, url, chatBody); err != nil {
					mu.Lock()
					warmErr = cmpOr(warmErr, err)
					mu.Unlock()
					break
				}
			}
			warmed.Done()
			<-start
			var lat []time.Duration
			var errs int
			var first error
			for next.Add(1) <= int64(requests) && time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				err := post(ctx, client, url, chatBody)
				if err != nil {
					errs++
					first = cmpOr(first, err)
					continue
				}
				lat = append(lat, time.Since(t0))
			}
			mu.Lock()
			run.latencies = append(run.latencies, lat...)
			run.errors += errs
			run.firstErr = cmpOr(run.firstErr, first)
			mu.Unlock()
		}()
	}
	warmed.Wait()
	if warmErr != nil {
		close(start)
		done.Wait()
		return loadRun{}, fmt.Errorf("%s, %d clients: warm up: %w", w.name, clients, warmErr)
	}
	var cpu0 time.Duration
	if w.cpu != nil {
		cpu0, run.cpuOK = w.cpu()
	}
	begin := time.Now()
	deadline = begin.Add(timeout)
	close(start)
	done.Wait()
	run.elapsed = time.Since(begin)
	if w.cpu != nil && run.cpuOK {
		var cpu1 time.Duration
		cpu1, run.cpuOK = w.cpu()
		run.cpu = cpu1 - cpu0
	}
	if err := ctx.Err(); err != nil {
		return loadRun{}, err
	}
	if len(run.latencies) == 0 {
		return loadRun{}, fmt.Errorf("%s, %d clients: every request failed: %w", w.name, clients, run.firstErr)
	}
	return run, nil
}

// streamSample is one streamed answer: the time to its first "data:" line
// and to its end.
type streamSample struct {
	ttfb, total time.Duration
}

// runStreams sends n streaming requests to w, one at a time on one
// keep-alive connection, after streamWarmup unmeasured ones. Any failure
// fails the run: streams are few and must all complete.
func runStreams(ctx context.Context, w way, n int) ([]streamSample, error) {
	client := newLoadClient(1)
	defer client.CloseIdleConnections()
	url := w.base + chatPath
	for range streamWarmup {
		if _, err := stream(ctx, client, url); err != nil {
			return nil, fmt.Errorf("%s: warm up: %w", w.name, err)
		}
	}
	out := make([]streamSample, 0, n)
	for range n {
		s, err := stream(ctx, client, url)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", w.name, err)
		}
		out = append(out, s)
	}
	return out, nil
}

// stream sends one streaming request and reads its SSE answer to the
// "data: [DONE]" line, timing the first "data:" line (comment lines, which
// start with ":", are skipped).
func stream(ctx context.Context, c *http.Client, url string) (streamSample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(streamBody))
	if err != nil {
		return streamSample{}, fmt.Errorf("stream %s: %w", url, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	t0 := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return streamSample{}, fmt.Errorf("stream %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return streamSample{}, fmt.Errorf("stream %s: %w: status %d", url, errBadResponse, resp.StatusCode)
	}
	var s streamSample
	r := bufio.NewReader(io.LimitReader(resp.Body, maxResponseBytes))
	for {
		line, err := r.ReadSlice('\n')
		if bytes.HasPrefix(line, []byte("data:")) {
			if s.ttfb == 0 {
				s.ttfb = time.Since(t0)
			}
			if bytes.Equal(bytes.TrimSpace(line), []byte("data: [DONE]")) {
				s.total = time.Since(t0)
				// Read to EOF so that the connection is reused.
				_, _ = io.Copy(io.Discard, r)
				return s, nil
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: stream ended before data: [DONE]", errBadResponse)
			}
			return streamSample{}, fmt.Errorf("stream %s: %w", url, err)
		}
	}
}

// cmpOr returns the first non-nil error.
func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}
