// Command pull benchmarks `modelgate pull` against `oras pull` in one run:
// both pull the same models from the same local registry, in rotating order
// and several times each, and the medians are printed side by side with
// their ratio, the machine's own limit and the throttled path's capacity.
//
//	go run ./bench/pull -modelgate BIN -oras BIN [-runs 3] [-write docs/benchmarks.md]
//
// bench/pull.sh builds modelgate, installs oras v1.3.6 if it is missing and
// runs this program; it is the one command that regenerates the
// "Pulls: modelgate vs oras pull" section of docs/benchmarks.md.
//
// The program starts a Distribution registry (docker-registry serve) on a
// free 127.0.0.1 port with its storage in a temporary directory, writes two
// models of random bytes to disk (streamed, never held in memory) and pushes
// them once with `modelgate push --plain-http`:
//
//   - single: one blob of -single bytes (default 2 GiB);
//   - layers: -layers blobs of -layer-size bytes each (default 16 x 64 MiB).
//
// It then measures the machine's limit for a pull (the lower of writing to
// the disk the pulls write to, with fsync, and SHA-256 on one core) and pulls
// each model in two scenarios:
//
//   - loopback: straight from the registry over 127.0.0.1;
//   - throttled: through a TCP proxy in this program that limits every
//     connection to -rate (default 50 MiB/s) server to client and delays
//     every byte by -latency (default 20 ms) in each direction (see proxy).
//
// Before the throttled pulls it measures the path's capacity two ways (see
// capacity): the aggregate throughput of 16 concurrent ranged GETs of the
// single blob through the proxy, with the bodies read and discarded, and the
// same GETs as an ideal verifying client, each writing its range at its
// offset into one pre-sized file in the work directory and hashing it as it
// streams, then one fsync. The proxy, the registry and the client share the
// machine's cores, so the second, not 16 x -rate and not the first, bounds
// what a client that writes and hashes can pull through the throttled path:
// the report judges throttled pulls against it and shows the first as
// information.
//
// Three clients pull: oras, modelgate with its defaults, and modelgate with
// cache.sync: false (it commits blobs without fsyncing them; informative).
// Each run starts the client as a child process with a fresh output (oras) or
// cache (modelgate) directory, deleted after the run, and records its wall
// time from exec to exit and its peak RSS (getrusage's ru_maxrss). The page
// cache is never dropped: the registry's blobs are read from memory when they
// fit, as they would be on a warm registry; the writes go through the page
// cache (modelgate fsyncs each blob before committing it unless sync is off;
// oras does not).
//
// Ratios read as oras's median time over modelgate's, so above 1 means
// modelgate is faster. The targets, judged on modelgate's defaults: on
// loopback, a ratio of at least 1 and modelgate at 80% or more of the
// machine's limit; throttled, a ratio of at least 4 (the report says when
// that would take more than the path's capacity writing and hashing); and
// modelgate's peak RSS under 32 MiB everywhere.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/modelgate/modelgate/bench/internal/benchdoc"
	"github.com/modelgate/modelgate/config"
)

// Bounds on what a command line may ask for, so that a typo cannot fill the
// disk or run for a day.
const (
	maxRuns      = 50
	maxLayers    = 256
	maxModelSize = 64 << 30
)

// benchConfig is the validated command line.
type benchConfig struct {
	modelgate string // modelgate binary
	oras      string // oras binary
	registry  string // Distribution registry binary (docker-registry or registry)

	single    int64 // bytes of the single-blob model
	layers    int   // blobs of the layered model
	layerSize int64 // bytes of each of them
	limitSize int64 // bytes written and hashed to measure the machine's limit

	runs        int           // pulls per client, scenario and model
	rate        float64       // throttled link, bytes per second per connection
	latency     time.Duration // throttled link, one-way delay in each direction
	pullTimeout time.Duration // bounds one pull
	scenarios   []string      // which of loopback, throttled

	dir     string // parent of the temporary work directory
	write   string // markdown file to update; "" prints only
	command string // the command recorded in the markdown
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == rusageFlag {
		os.Exit(rusageChild(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "pull:", err)
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
	work, err := os.MkdirTemp(cfg.dir, "modelgate-bench-pull-")
	if err != nil {
		return fmt.Errorf("create work directory: %w", err)
	}
	defer func() {
		if err := os.RemoveAll(work); err != nil {
			fmt.Fprintln(os.Stderr, "pull: remove work directory:", err)
		}
	}()
	mach := describeMachine(ctx, cfg, work)
	res, err := benchmark(ctx, cfg, work)
	if err != nil {
		return err
	}
	mach.finish()
	rep := report{cfg: cfg, mach: mach, res: res}
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
func parseFlags(args []string) (benchConfig, error) {
	fs := flag.NewFlagSet("pull", flag.ContinueOnError)
	var cfg benchConfig
	single, layerSize, limitSize, rate := "2GiB", "64MiB", "1GiB", "50MiB"
	scenarios := "loopback,throttled"
	fs.StringVar(&cfg.modelgate, "modelgate", "bin/modelgate", "modelgate binary")
	fs.StringVar(&cfg.oras, "oras", "oras", "oras binary (v1.3.6: go install oras.land/oras/cmd/oras@v1.3.6)")
	fs.StringVar(&cfg.registry, "registry", "", "Distribution registry binary (default: docker-registry or registry on PATH)")
	fs.StringVar(&single, "single", single, "size of the single-blob model")
	fs.IntVar(&cfg.layers, "layers", 16, "blobs of the layered model")
	fs.StringVar(&layerSize, "layer-size", layerSize, "size of each blob of the layered model")
	fs.StringVar(&limitSize, "limit-size", limitSize, "bytes written (with fsync) and hashed to measure the machine's limit")
	fs.IntVar(&cfg.runs, "runs", 3, "pulls per client, scenario and model, interleaved (also the samples of the limit and the path capacity)")
	fs.StringVar(&rate, "rate", rate, "throttled scenario: server-to-client bytes per second, per connection")
	fs.DurationVar(&cfg.latency, "latency", 20*time.Millisecond, "throttled scenario: delay added to every byte in each direction")
	fs.DurationVar(&cfg.pullTimeout, "pull-timeout", 10*time.Minute, "how long one pull may take")
	fs.StringVar(&scenarios, "scenarios", scenarios, "scenarios to run, comma-separated: loopback, throttled")
	fs.StringVar(&cfg.dir, "dir", "", "where the temporary work directory (registry storage, models, pulls) goes (default: $TMPDIR)")
	fs.StringVar(&cfg.write, "write", "", "markdown file whose \""+sectionHeading+"\" section is written or replaced")
	fs.StringVar(&cfg.command, "record-command", "", "command recorded in -write's section (default: this program's command line)")
	if err := fs.Parse(args); err != nil {
		return benchConfig{}, err
	}
	if fs.NArg() > 0 {
		return benchConfig{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	sizes := []struct {
		flag string
		s    string
		dst  *int64
	}{{"-single", single, &cfg.single}, {"-layer-size", layerSize, &cfg.layerSize}, {"-limit-size", limitSize, &cfg.limitSize}}
	for _, sz := range sizes {
		n, err := config.ParseByteSize(sz.s)
		if err != nil {
			return benchConfig{}, fmt.Errorf("%s: %w", sz.flag, err)
		}
		*sz.dst = int64(n)
	}
	r, err := config.ParseByteSize(rate)
	if err != nil {
		return benchConfig{}, fmt.Errorf("-rate: %w", err)
	}
	cfg.rate = float64(r)
	for _, s := range strings.Split(scenarios, ",") {
		s = strings.TrimSpace(s)
		if s != scenarioLoopback && s != scenarioThrottled {
			return benchConfig{}, fmt.Errorf("-scenarios: %q is neither %s nor %s", s, scenarioLoopback, scenarioThrottled)
		}
		cfg.scenarios = append(cfg.scenarios, s)
	}
	if cfg.registry == "" {
		if cfg.registry, err = findRegistry(); err != nil {
			return benchConfig{}, err
		}
	}
	if cfg.command == "" {
		cfg.command = strings.Join(append([]string{"go run ./bench/pull"}, args...), " ")
	}
	if err := cfg.validate(); err != nil {
		return benchConfig{}, err
	}
	return cfg, cfg.resolveBinaries()
}

func (c benchConfig) validate() error {
	switch {
	case c.runs < 1 || c.runs > maxRuns:
		return fmt.Errorf("-runs %d: want 1..%d", c.runs, maxRuns)
	case c.layers < 1 || c.layers > maxLayers:
		return fmt.Errorf("-layers %d: want 1..%d", c.layers, maxLayers)
	case c.single < 1 || c.single > maxModelSize:
		return fmt.Errorf("-single %d: want 1 byte to 64 GiB", c.single)
	case c.layerSize < 1 || int64(c.layers)*c.layerSize > maxModelSize:
		return fmt.Errorf("-layers x -layer-size: want 1 byte to 64 GiB in all")
	case c.limitSize < 1<<20 || c.limitSize > maxModelSize:
		return fmt.Errorf("-limit-size %d: want 1 MiB to 64 GiB", c.limitSize)
	case c.rate < proxyBurst:
		return fmt.Errorf("-rate %.0f: want at least %d bytes/s", c.rate, proxyBurst)
	case c.latency < 0:
		return fmt.Errorf("-latency %s: want 0 or more", c.latency)
	case c.pullTimeout <= 0:
		return fmt.Errorf("-pull-timeout %s: want a positive duration", c.pullTimeout)
	}
	return nil
}

// resolveBinaries replaces each binary by its absolute path, looked up on
// PATH when it names no directory.
func (c *benchConfig) resolveBinaries() error {
	for _, p := range []*string{&c.modelgate, &c.oras, &c.registry} {
		path, err := exec.LookPath(*p)
		if err == nil {
			path, err = filepath.Abs(path)
		}
		if err != nil {
			return fmt.Errorf("check inputs: %w", err)
		}
		*p = path
	}
	return nil
}
