package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"time"
)

// coldSamples are one model's warm-disk cold starts through the gateway.
type coldSamples struct {
	total []time.Duration // request sent → end of the answer
	// The phases, from the gateway's log against the time the request was
	// sent: to the model found in the cache (locate), to just before exec
	// (prepare), to the runtime's health check passing as the gateway sees
	// it (runtime), and from there to the end of the answer (forward).
	locate, prepare, runtime, forward []time.Duration
}

// coldResults are the cold start runs.
type coldResults struct {
	aloneReady []time.Duration // runtime alone: exec → first /health 200
	alone      []time.Duration // runtime alone: exec → end of the first answer
	models     map[string]*coldSamples
}

// coldClient sends each cold request on a new connection, through the
// gateway and to the runtime alone alike.
var coldClient = &http.Client{Timeout: requestTimeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}

// coldModels are the models of a cold start run: the tag reference and the
// digest reference of the same artifact.
var coldModels = []string{modelName, pinnedName}

// measureColdStarts runs cfg.coldRuns warm-disk cold starts of each model
// through fresh gateways, and as many starts of the runtime alone,
// alternating which goes first, after one unmeasured run of each.
func measureColdStarts(ctx context.Context, cfg config, fx *fixture) (coldResults, error) {
	res := coldResults{models: map[string]*coldSamples{}}
	for _, m := range coldModels {
		res.models[m] = &coldSamples{}
	}
	for run := range cfg.coldRuns + 1 {
		measured := run > 0
		gatewayFirst := run%2 == 1
		for i := range 2 {
			if (i == 0) == gatewayFirst {
				if err := coldGatewayRun(ctx, fx, run, measured, &res); err != nil {
					return coldResults{}, err
				}
				continue
			}
			ready, total, err := coldRuntimeRun(ctx, fx)
			if err != nil {
				return coldResults{}, err
			}
			if measured {
				res.aloneReady = append(res.aloneReady, ready)
				res.alone = append(res.alone, total)
			}
		}
		if measured {
			fmt.Fprintf(os.Stderr, "cold run %d/%d  runtime alone %s  through the gateway: %s %s, %s %s\n", run, cfg.coldRuns,
				fmtDur(res.alone[len(res.alone)-1]), modelName, fmtDur(last(res.models[modelName].total)),
				pinnedName, fmtDur(last(res.models[pinnedName].total)))
		}
	}
	return res, nil
}

// coldGatewayRun starts a gateway on the warm cache, sends the first
// request for each cold model (their order alternating with run), stops
// the gateway and reads the phases from its log.
func coldGatewayRun(ctx context.Context, fx *fixture, run int, measured bool, res *coldResults) error {
	gw, _, err := startGateway(ctx, fx, 2)
	if err != nil {
		return err
	}
	defer gw.stop()
	sent := map[string]time.Time{}
	ended := map[string]time.Time{}
	for _, m := range rotate(coldModels, run) {
		sent[m] = time.Now()
		if err := post(ctx, coldClient, gw.base+chatPath, chatBodyFor(m)); err != nil {
			return fmt.Errorf("cold start of %s: %w", m, err)
		}
		ended[m] = time.Now()
	}
	gw.stop() // flushes the log: the records are read after
	if !measured {
		return nil
	}
	for _, m := range coldModels {
		recs, err := findRecords(gw.logFile, m, msgInCache, msgStarting, msgReady)
		if err != nil {
			return fmt.Errorf("cold start of %s: %w", m, err)
		}
		s := res.models[m]
		inCache, starting, ready := recs[msgInCache].Time, recs[msgStarting].Time, recs[msgReady].Time
		s.total = append(s.total, ended[m].Sub(sent[m]))
		s.locate = append(s.locate, inCache.Sub(sent[m]))
		s.prepare = append(s.prepare, starting.Sub(inCache))
		s.runtime = append(s.runtime, ready.Sub(starting))
		s.forward = append(s.forward, ended[m].Sub(ready))
	}
	return nil
}

// coldRuntimeRun starts the runtime alone, sends it the same first request
// on a new connection and stops it; it returns the times from exec to ready
// and to the end of the answer.
func coldRuntimeRun(ctx context.Context, fx *fixture) (ready, total time.Duration, err error) {
	rt, base, ready, err := startRuntime(ctx, fx)
	if err != nil {
		return 0, 0, err
	}
	defer rt.stop()
	if err := post(ctx, coldClient, base+chatPath, chatBody); err != nil {
		return 0, 0, fmt.Errorf("runtime alone: %w", err)
	}
	return ready, time.Since(rt.begin), nil
}

// chatBodyFor is chatBody for another model.
func chatBodyFor(model string) []byte {
	if model == modelName {
		return chatBody
	}
	return []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":16}`)
}

func last(xs []time.Duration) time.Duration {
	if len(xs) == 0 {
		return -1
	}
	return xs[len(xs)-1]
}
