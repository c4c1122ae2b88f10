// Command runtimes benchmarks tinyllm, modelgate's pure-Go reference runtime,
// against llama.cpp's llama-server in one run: both serve the same GGUF model
// with the same threads and context size, they run alternately (tinyllm,
// llama.cpp, tinyllm, llama.cpp, ...), several times each, and the medians are
// printed side by side with their ratio.
//
//	go run ./bench/runtimes -tinyllm BIN -llama-server BIN -model FILE.gguf [-runs 5] [-write docs/benchmarks.md]
//
// bench/runtimes.sh builds tinyllm, gets llama-server (bench/build-llama-server.sh)
// and runs this program; it is the one command that regenerates the
// "tinyllm vs llama.cpp" section of docs/benchmarks.md.
//
// Each run starts the runtime on a free 127.0.0.1 port and measures, after one
// unmeasured warm-up of every request kind:
//
//   - load time: from exec to the first 200 from GET /health;
//   - prompt processing: POST /completion with a long prompt, n_predict 1,
//     the whole prompt evaluated every time (see flushCache);
//   - generation: POST /completion with a short prompt, greedy, for each
//     -predict length;
//   - latency: short greedy completions, one after the other.
//
// Throughputs come from the servers' own "timings" object; wall times are
// measured by this client. Ratios read as tinyllm's time over llama.cpp's (for
// throughputs: llama.cpp's tokens/s over tinyllm's), so below 1 means tinyllm
// is faster and the target "within 3x" means a ratio of at most 3.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelgate/modelgate/bench/internal/benchdoc"
)

// Bounds on the counts a command line may ask for, so that a typo cannot
// start thousands of processes.
const (
	maxRuns     = 50
	maxReps     = 20
	maxRequests = 500
	maxPredict  = 1024
)

// config is the validated command line.
type config struct {
	tinyllm     string // tinyllm binary
	llamaServer string // llama-server binary
	model       string // GGUF file both serve

	threads int // -t for both (llama-server also gets -tb)
	ctxSize int // -c for both

	runs           int   // process starts per runtime
	reps           int   // measured requests per run for prompt and generation
	requests       int   // measured requests per run for latency
	predict        []int // generation lengths
	latencyPredict int   // n_predict of the latency requests

	loadTimeout time.Duration // from exec to healthy

	write   string // markdown file to update; "" prints only
	command string // the command recorded in the markdown
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "runtimes:", err)
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
	programs, err := newPrograms(ctx, cfg)
	if err != nil {
		return err
	}
	mach := describeMachine(ctx, cfg)
	res, err := measureAll(ctx, cfg, programs)
	if err != nil {
		return err
	}
	rep := newReport(cfg, programs, mach, res)
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
	fs := flag.NewFlagSet("runtimes", flag.ContinueOnError)
	var cfg config
	var predict string
	fs.StringVar(&cfg.tinyllm, "tinyllm", "bin/tinyllm", "tinyllm binary")
	fs.StringVar(&cfg.llamaServer, "llama-server", "", "llama-server binary (bench/build-llama-server.sh prints its path; required)")
	fs.StringVar(&cfg.model, "model", "examples/stories260K/model.gguf", "GGUF model both runtimes serve")
	fs.IntVar(&cfg.threads, "threads", 2, "threads for both runtimes (-t; llama-server also -tb)")
	fs.IntVar(&cfg.ctxSize, "ctx", 2048, "context size for both runtimes (-c)")
	fs.IntVar(&cfg.runs, "runs", 5, "process starts per runtime, interleaved")
	fs.IntVar(&cfg.reps, "reps", 3, "measured prompt and generation requests per run")
	fs.IntVar(&cfg.requests, "requests", 20, "measured latency requests per run")
	fs.StringVar(&predict, "predict", "128,256", "generation lengths (n_predict), comma-separated")
	fs.IntVar(&cfg.latencyPredict, "latency-predict", 16, "n_predict of the latency requests")
	fs.DurationVar(&cfg.loadTimeout, "load-timeout", 60*time.Second, "how long a runtime may take to become healthy")
	fs.StringVar(&cfg.write, "write", "", "markdown file whose \""+sectionHeading+"\" section is written or replaced")
	fs.StringVar(&cfg.command, "record-command", "", "command recorded in -write's section (default: this program's command line)")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	var err error
	if cfg.predict, err = parsePredict(predict); err != nil {
		return config{}, err
	}
	if cfg.command == "" {
		cfg.command = strings.Join(append([]string{"go run ./bench/runtimes"}, args...), " ")
	}
	return cfg, cfg.validate()
}

func parsePredict(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxPredict {
			return nil, fmt.Errorf("-predict: %q is not a length in 1..%d", f, maxPredict)
		}
		out = append(out, n)
	}
	return out, nil
}

func (c config) validate() error {
	switch {
	case c.llamaServer == "":
		return errors.New("-llama-server is required (bench/build-llama-server.sh prints its path)")
	case c.runs < 1 || c.runs > maxRuns:
		return fmt.Errorf("-runs %d: want 1..%d", c.runs, maxRuns)
	case c.reps < 1 || c.reps > maxReps:
		return fmt.Errorf("-reps %d: want 1..%d", c.reps, maxReps)
	case c.requests < 1 || c.requests > maxRequests:
		return fmt.Errorf("-requests %d: want 1..%d", c.requests, maxRequests)
	case c.latencyPredict < 1 || c.latencyPredict > maxPredict:
		return fmt.Errorf("-latency-predict %d: want 1..%d", c.latencyPredict, maxPredict)
	case c.threads < 1:
		return fmt.Errorf("-threads %d: want at least 1", c.threads)
	case c.ctxSize < 256:
		return fmt.Errorf("-ctx %d: want at least 256 (the long prompt must fit)", c.ctxSize)
	case c.loadTimeout <= 0:
		return fmt.Errorf("-load-timeout %s: want a positive duration", c.loadTimeout)
	}
	for _, p := range []string{c.tinyllm, c.llamaServer, c.model} {
		if _, err := os.Stat(p); err != nil {
			return fmt.Errorf("check inputs: %w", err)
		}
	}
	return nil
}
