package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// The ways, in the order the report shows them.
const (
	wayDirect    = "direct"
	wayModelgate = "modelgate"
	wayNginx     = "nginx"
)

// cellKey names one cell of the load table.
type cellKey struct {
	way     string
	clients int
}

// cell is one way at one client count, over every round.
type cell struct {
	latencies []time.Duration
	elapsed   time.Duration
	errors    int
	firstErr  error
	cpu       time.Duration
	cpuOK     bool // every run could tell the proxy's CPU time
}

func (c *cell) add(r loadRun) {
	first := len(c.latencies) == 0 && c.elapsed == 0
	c.latencies = append(c.latencies, r.latencies...)
	c.elapsed += r.elapsed
	c.errors += r.errors
	c.firstErr = cmpOr(c.firstErr, r.firstErr)
	c.cpu += r.cpu
	c.cpuOK = r.cpuOK && (first || c.cpuOK)
}

// requests is how many measured requests succeeded.
func (c *cell) requests() int { return len(c.latencies) }

// throughput is successful requests per second of measured wall time.
func (c *cell) throughput() float64 { return float64(c.requests()) / c.elapsed.Seconds() }

// cpuPerRequest is the proxy's CPU time per request, false if unknown.
func (c *cell) cpuPerRequest() (time.Duration, bool) {
	if !c.cpuOK || c.requests() == 0 {
		return 0, false
	}
	return c.cpu / time.Duration(c.requests()+c.errors), true
}

// measureOverhead starts a gateway, lets its first request start the
// runtime, puts nginx in front of that runtime and measures the three ways:
// load at each client count, then streaming time to first byte. It returns
// the cells by way and client count, and the stream samples by way.
func measureOverhead(ctx context.Context, cfg config, fx *fixture) (map[cellKey]*cell, map[string][]streamSample, error) {
	gw, _, err := startGateway(ctx, fx, 2)
	if err != nil {
		return nil, nil, err
	}
	defer gw.stop()
	warm := newLoadClient(1)
	defer warm.CloseIdleConnections()
	if err := post(ctx, warm, gw.base+chatPath, chatBody); err != nil {
		return nil, nil, fmt.Errorf("first request through the gateway: %w", err)
	}
	port, err := gw.runtimePort(modelName)
	if err != nil {
		return nil, nil, err
	}
	ngx, nbase, err := startNginx(ctx, fx, port)
	if err != nil {
		return nil, nil, err
	}
	defer ngx.stop()

	ways := []way{
		{name: wayDirect, base: fmt.Sprintf("http://127.0.0.1:%d", port)},
		// The gateway alone: its runtime is its child, measured as direct's.
		{name: wayModelgate, base: gw.base, cpu: func() (time.Duration, bool) { return processCPU(gw.pid(), false) }},
		{name: wayNginx, base: nbase, cpu: func() (time.Duration, bool) { return processCPU(ngx.pid(), true) }},
	}

	cells := map[cellKey]*cell{}
	for _, w := range ways {
		for _, c := range cfg.clients {
			cells[cellKey{w.name, c}] = &cell{}
		}
	}
	for round := range cfg.rounds {
		n := share(cfg.requests, cfg.rounds, round)
		for ci, clients := range cfg.clients {
			for _, w := range rotate(ways, round+ci) {
				r, err := runLoad(ctx, w, clients, n, cfg.cellTimeout)
				if err != nil {
					return nil, nil, fmt.Errorf("load: %w", err)
				}
				cells[cellKey{w.name, clients}].add(r)
				logLoad(round, cfg.rounds, clients, w.name, r)
			}
		}
	}

	streams := map[string][]streamSample{}
	for round := range cfg.rounds {
		n := share(cfg.streamRequests, cfg.rounds, round)
		for _, w := range rotate(ways, round) {
			s, err := runStreams(ctx, w, n)
			if err != nil {
				return nil, nil, fmt.Errorf("streaming: %w", err)
			}
			streams[w.name] = append(streams[w.name], s...)
			fmt.Fprintf(os.Stderr, "stream round %d/%d %-9s  %d streams  TTFB median %s\n", round+1, cfg.rounds, w.name, len(s), fmtDur(median(ttfbs(s))))
		}
	}
	return cells, streams, nil
}

// share is round's part of total split into rounds parts, the remainder
// going to the first rounds.
func share(total, rounds, round int) int {
	n := total / rounds
	if round < total%rounds {
		n++
	}
	return n
}

// rotate returns xs starting at index k modulo its length.
func rotate[T any](xs []T, k int) []T {
	k %= len(xs)
	return append(append([]T{}, xs[k:]...), xs[:k]...)
}

func ttfbs(s []streamSample) []time.Duration {
	out := make([]time.Duration, len(s))
	for i, x := range s {
		out[i] = x.ttfb
	}
	return out
}

func totals(s []streamSample) []time.Duration {
	out := make([]time.Duration, len(s))
	for i, x := range s {
		out[i] = x.total
	}
	return out
}

// logLoad prints one run on stderr, to follow progress.
func logLoad(round, rounds, clients int, name string, r loadRun) {
	fmt.Fprintf(os.Stderr, "load round %d/%d  %2d clients  %-9s  %6d requests  %8.0f req/s  p50 %s  p99 %s  errors %d\n",
		round+1, rounds, clients, name, len(r.latencies), float64(len(r.latencies))/r.elapsed.Seconds(),
		fmtDur(median(r.latencies)), fmtDur(percentile(r.latencies, 99)), r.errors)
}
