// Command overhead benchmarks what modelgate adds in front of a runtime, in
// one run: the same runtime process called directly, through `modelgate
// serve` and through nginx as a plain reverse proxy, side by side; the cold
// start of a model already in the cache; and the gateway's start with 1,000
// configured models.
//
//	go run ./bench/overhead -modelgate BIN -testruntime BIN [-quick] [-write docs/benchmarks.md]
//
// bench/overhead.sh builds modelgate, the test runtime and this program,
// installs nginx if it is missing and runs it; it is the one command that
// regenerates the "Gateway overhead, cold start and start-up" section of
// docs/benchmarks.md.
//
// The runtime is internal/testruntime: a real HTTP server process that
// answers POST /v1/chat/completions at once with a small JSON echo of the
// request (about 0.5 KB), or, for "stream": true, with -chunks SSE events
// and [DONE] (run with --release-timeout 0s, so the events follow each other
// at once). Its own time is a few tens of microseconds, so what a proxy adds
// is not hidden behind it. The model is -model (the demo GGUF by default),
// written by this program into an OCI image layout on disk and referenced
// as oci-layout:// (docs/pull.md), so no registry is involved; `modelgate
// pull` puts it in a fresh cache before anything is measured.
//
// Everything listens on 127.0.0.1 only. Every process this program starts
// is stopped by it, by its pid (SIGTERM, then SIGKILL after a grace), and
// the kernel kills it if this program dies first (Linux).
//
// # Overhead
//
// One `modelgate serve` starts the runtime on the first (unmeasured)
// request; the benchmark reads the runtime's port from the gateway's log
// ("runtime ready") and points nginx at that same process, so the three
// ways reach one runtime process:
//
//   - direct: http://127.0.0.1:RUNTIME/v1/chat/completions;
//   - modelgate: the gateway, routing by the body's "model" field;
//   - nginx: `nginx -c CONF -p DIR -g 'daemon off;'` with a generated
//     configuration (worker_processes auto, an upstream with keepalive
//     connections, proxy_http_version 1.1, proxy_buffering off, its access
//     log on, as the gateway logs one line per request at its default info
//     level).
//
// A load generator in this program (net/http, keep-alive, one connection
// per client) runs -requests requests per way and client count (1, 16 and 64
// by default), closed loop: each client sends its next request when the
// last answer is read to the end. Before each cell every client sends a few
// unmeasured requests, so that connections are open. The requests of a cell
// are split into -rounds rounds, and within a round the three ways run in
// rotating order, so that a slow spell of the shared machine hits all alike.
// Latency is from sending a request to reading the last byte of its answer;
// p50 and p99 are exact (nearest rank over every sample). Throughput is
// requests over the wall time of the measured requests. Added latency is
// the way's percentile minus the direct call's; the throughput ratio is the
// way's over the direct call's. Proxy CPU per request is the user+system
// time of the proxy's processes (the gateway; nginx's master and workers)
// over the measured requests, from /proc (Linux; clock-tick resolution).
//
// Streaming time to first byte: -stream-requests streaming requests per way,
// one at a time, in rotating order; TTFB is from sending the request to
// reading the first "data:" line of the answer (SSE comment lines are
// skipped), and the stream is read to its [DONE].
//
// # Warm-disk cold start
//
// Each of -cold-runs runs starts a fresh `modelgate serve` on the warm
// cache (runtime not running), waits for /healthz, then sends the first
// request for two models of the same artifact: "bench", a tag reference
// (the gateway resolves the tag in the layout's index.json, a local read),
// and "bench-pinned", a digest reference (the cache alone), alternating
// which goes first. The total is from sending the request to the end of the
// answer. The same run also starts the runtime alone, as the gateway would
// (same binary, flags and model file), polls its /health every millisecond
// and sends the same request: that is the runtime's own share. The gateway's
// share is the gateway's median total minus the runtime alone's median
// total: everything the gateway adds to a cold start (routing, cache lookup,
// tag resolution, rendering and exec'ing the command, its health polling,
// the forward). Phases come from the gateway's JSON log ("model in cache",
// "runtime starting", "runtime ready") against the time the request was
// sent; they share the machine's wall clock.
//
// # Start-up
//
// Each of -start-runs runs execs `modelgate serve` with a configuration of
// 1 model and with one of -models models (1,000 by default; the others
// reference a registry that is never contacted, and are not in the cache),
// alternately, and records the time from exec to the first 200 from
// /healthz, polled every half millisecond.
//
// Targets (issue 7): at 64 clients the gateway's added p99 under 1 ms and
// below nginx's; streaming TTFB within 1 ms of direct (judged on the
// median); the gateway's share of a warm-disk cold start under 100 ms (the
// medians); start to listening with 1,000 configured models under 50 ms
// (the median).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelgate/modelgate/bench/internal/benchdoc"
)

// Bounds on what a command line may ask for, so that a typo cannot run a
// load test for an hour on a shared machine.
const (
	maxRequests = 200_000
	maxClients  = 256
	maxRounds   = 20
	maxRuns     = 100
	maxModels   = 10_000
	maxChunks   = 1_000
)

// config is the validated command line.
type config struct {
	modelgate   string // modelgate binary
	testruntime string // testruntime binary
	nginx       string // nginx binary
	model       string // weights file put in the layout

	clients        []int         // concurrent clients of the load cells
	requests       int           // measured requests per way and client count
	rounds         int           // the requests of a cell are split into rounds
	cellTimeout    time.Duration // longest one way's share of a round may run
	streamRequests int           // measured streaming requests per way
	chunks         int           // SSE events of a streamed answer, [DONE] aside
	coldRuns       int           // gateway starts for the cold start
	startRuns      int           // starts per configuration for start-up
	models         int           // models of the large start-up configuration
	quick          bool

	write   string // markdown file to update; "" prints only
	command string // the command recorded in the markdown
}

// full and quick defaults: the counts a run uses unless a flag sets them.
type counts struct {
	requests, rounds, streamRequests, coldRuns, startRuns int
}

var (
	fullCounts  = counts{requests: 15_000, rounds: 3, streamRequests: 600, coldRuns: 12, startRuns: 15}
	quickCounts = counts{requests: 900, rounds: 1, streamRequests: 60, coldRuns: 3, startRuns: 4}
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "overhead:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	cfg, err := parseFlags(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	mach := describeMachine(ctx, cfg)
	fx, err := newFixture(ctx, cfg)
	if err != nil {
		return err
	}
	defer fx.remove()

	var res results
	if res.start, err = measureStartup(ctx, cfg, fx); err != nil {
		return err
	}
	if res.cold, err = measureColdStarts(ctx, cfg, fx); err != nil {
		return err
	}
	if res.load, res.stream, err = measureOverhead(ctx, cfg, fx); err != nil {
		return err
	}
	mach.finish()

	rep := newReport(cfg, mach, fx, res)
	fmt.Print(rep.text())
	if cfg.write == "" {
		return nil
	}
	if err := benchdoc.WriteSection(cfg.write, sectionHeading, rep.markdown()); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %q in %s\n", sectionHeading, cfg.write)
	return nil
}

// parseFlags reads and validates the command line.
func parseFlags(args []string) (config, error) {
	fs := flag.NewFlagSet("overhead", flag.ContinueOnError)
	var cfg config
	var clients string
	fs.StringVar(&cfg.modelgate, "modelgate", "bin/modelgate", "modelgate binary")
	fs.StringVar(&cfg.testruntime, "testruntime", "", "testruntime binary (go build ./internal/testruntime/cmd/testruntime; required)")
	fs.StringVar(&cfg.nginx, "nginx", "", "nginx binary (default: nginx on PATH, else /usr/sbin/nginx)")
	fs.StringVar(&cfg.model, "model", "examples/stories260K/model.gguf", "weights file of the benchmark's model")
	fs.StringVar(&clients, "clients", "1,16,64", "concurrent clients of the load cells, comma-separated")
	fs.IntVar(&cfg.requests, "requests", fullCounts.requests, "measured requests per way (direct, modelgate, nginx) and client count")
	fs.IntVar(&cfg.rounds, "rounds", fullCounts.rounds, "rounds each cell's requests are split into, the ways rotating in each")
	fs.DurationVar(&cfg.cellTimeout, "cell-timeout", 30*time.Second, "longest one way's share of a round may run; it stops early past it")
	fs.IntVar(&cfg.streamRequests, "stream-requests", fullCounts.streamRequests, "measured streaming requests per way, one at a time")
	fs.IntVar(&cfg.chunks, "chunks", 8, "SSE events of a streamed answer")
	fs.IntVar(&cfg.coldRuns, "cold-runs", fullCounts.coldRuns, "gateway starts measured for the warm-disk cold start")
	fs.IntVar(&cfg.startRuns, "start-runs", fullCounts.startRuns, "gateway starts measured per configuration for start-up")
	fs.IntVar(&cfg.models, "models", 1000, "models configured in the large start-up configuration")
	fs.BoolVar(&cfg.quick, "quick", false, "fewer requests and runs (counts not set by a flag): a check that everything works, not a result to publish")
	fs.StringVar(&cfg.write, "write", "", "markdown file whose \""+sectionHeading+"\" section is written or replaced; \"\" prints only")
	fs.StringVar(&cfg.command, "record-command", "", "command recorded in -write's section (default: this program's command line)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.quick {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		q := quickCounts
		for _, c := range []struct {
			flag  string
			value *int
			quick int
		}{
			{"requests", &cfg.requests, q.requests},
			{"rounds", &cfg.rounds, q.rounds},
			{"stream-requests", &cfg.streamRequests, q.streamRequests},
			{"cold-runs", &cfg.coldRuns, q.coldRuns},
			{"start-runs", &cfg.startRuns, q.startRuns},
		} {
			if !set[c.flag] {
				*c.value = c.quick
			}
		}
	}
	var err error
	if cfg.clients, err = parseClients(clients); err != nil {
		return config{}, err
	}
	if cfg.nginx == "" {
		cfg.nginx = findNginx()
	}
	if cfg.command == "" {
		cfg.command = strings.Join(append([]string{"go run ./bench/overhead"}, args...), " ")
	}
	return cfg, cfg.validate()
}

// findNginx is nginx on PATH, else Debian's /usr/sbin/nginx (not on a
// normal user's PATH).
func findNginx() string {
	if p, err := exec.LookPath("nginx"); err == nil {
		return p
	}
	return "/usr/sbin/nginx"
}

func parseClients(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxClients {
			return nil, fmt.Errorf("-clients: %q is not a count in 1..%d", f, maxClients)
		}
		out = append(out, n)
	}
	return out, nil
}

func (c config) validate() error {
	switch {
	case c.testruntime == "":
		return errors.New("-testruntime is required (go build ./internal/testruntime/cmd/testruntime)")
	case c.requests < 1 || c.requests > maxRequests:
		return fmt.Errorf("-requests %d: want 1..%d", c.requests, maxRequests)
	case c.rounds < 1 || c.rounds > maxRounds || c.rounds > c.requests:
		return fmt.Errorf("-rounds %d: want 1..%d and at most -requests", c.rounds, maxRounds)
	case c.streamRequests < c.rounds || c.streamRequests > maxRequests:
		return fmt.Errorf("-stream-requests %d: want -rounds..%d", c.streamRequests, maxRequests)
	case c.cellTimeout <= 0:
		return fmt.Errorf("-cell-timeout %s: want a positive duration", c.cellTimeout)
	case c.chunks < 1 || c.chunks > maxChunks:
		return fmt.Errorf("-chunks %d: want 1..%d", c.chunks, maxChunks)
	case c.coldRuns < 1 || c.coldRuns > maxRuns:
		return fmt.Errorf("-cold-runs %d: want 1..%d", c.coldRuns, maxRuns)
	case c.startRuns < 1 || c.startRuns > maxRuns:
		return fmt.Errorf("-start-runs %d: want 1..%d", c.startRuns, maxRuns)
	case c.models < 2 || c.models > maxModels:
		return fmt.Errorf("-models %d: want 2..%d", c.models, maxModels)
	}
	for _, p := range []string{c.modelgate, c.testruntime, c.nginx, c.model} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("check inputs: %w", err)
		}
	}
	return nil
}
