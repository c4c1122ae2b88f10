package main

import (
	"context"
	"fmt"
	"os"
	"time"
)

// measureStartup starts the gateway cfg.startRuns times with 1 configured
// model and as many times with cfg.models, alternating, after one
// unmeasured start of each, and returns the times from exec to the first
// /healthz 200 by model count.
func measureStartup(ctx context.Context, cfg config, fx *fixture) (map[int][]time.Duration, error) {
	counts := []int{1, cfg.models}
	out := map[int][]time.Duration{}
	for run := range cfg.startRuns + 1 {
		for _, n := range rotate(counts, run) {
			gw, listening, err := startGateway(ctx, fx, n)
			if err != nil {
				return nil, fmt.Errorf("start-up with %d models: %w", n, err)
			}
			gw.stop()
			if run > 0 {
				out[n] = append(out[n], listening)
			}
		}
		if run > 0 {
			fmt.Fprintf(os.Stderr, "start run %d/%d  1 model %s  %d models %s\n", run, cfg.startRuns,
				fmtDur(last(out[1])), cfg.models, fmtDur(last(out[cfg.models])))
		}
	}
	return out, nil
}
