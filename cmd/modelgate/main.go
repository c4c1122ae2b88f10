// Command modelgate serves models from an OCI registry: it pulls each model
// on first use into a disk cache, starts a runtime process for it and
// forwards requests to it.
//
//	modelgate serve   --config modelgate.yaml
//	modelgate pull    --config modelgate.yaml NAME...
//	modelgate push    [--format modelpack|docker] DIR REGISTRY/REPOSITORY:TAG
//	modelgate inspect [--config FILE] [--plain-http] [--json] REF
//	modelgate cache   ls|rm|prune|verify [--config FILE | --cache-dir DIR] [--json]
//	modelgate version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	rt "runtime"
	"runtime/debug"
	"syscall"

	"github.com/modelgate/modelgate/config"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

const usage = `modelgate serves models from an OCI registry, scaling to zero.

Usage:
  modelgate serve   [--config FILE]          run the gateway
  modelgate pull    [--config FILE] NAME...  pull configured models (or references) into the cache
  modelgate push    [flags] DIR REF          push a model directory as one artifact (ModelPack or Docker)
  modelgate inspect [flags] REF              show the format and files of an artifact without downloading it
  modelgate cache   ls|rm|prune|verify       list, remove, prune or verify the models in the cache
  modelgate profiles [NAME...]               print the built-in runtime profiles as YAML to copy
  modelgate version                          print the version

Run "modelgate COMMAND -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one command and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	var err error
	switch args[0] {
	case "serve":
		err = serveCommand(ctx, args[1:], stderr)
	case "pull":
		err = pullCommand(ctx, args[1:], stdout, stderr)
	case "push":
		err = pushCommand(ctx, args[1:], stdout, stderr)
	case "inspect":
		err = inspectCommand(ctx, args[1:], stdout, stderr)
	case "cache":
		err = cacheCommand(ctx, args[1:], stdout, stderr)
	case "profiles":
		err = profilesCommand(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, versionString())
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "modelgate: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "modelgate %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

// commonFlags are the flags every command that reads the configuration has.
type commonFlags struct {
	config    string
	logFormat string
	logLevel  string
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.config, "config", "modelgate.yaml", "configuration file")
	fs.StringVar(&c.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&c.logLevel, "log-level", "info", "log level: debug, info, warn or error")
}

// setup parses a command's flags, then builds its logger and loads the
// configuration. It returns the positional arguments.
func setup(fs *flag.FlagSet, args []string, stderr io.Writer) ([]string, *config.Config, *slog.Logger, error) {
	fs.SetOutput(stderr)
	var common commonFlags
	common.register(fs)
	if err := fs.Parse(args); err != nil {
		return nil, nil, nil, err
	}
	log, err := common.logger(stderr)
	if err != nil {
		return nil, nil, nil, err
	}
	cfg, err := config.Load(common.config)
	if err != nil {
		return nil, nil, nil, err
	}
	return fs.Args(), cfg, log, nil
}

func (c *commonFlags) logger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	switch c.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", c.logFormat)
	}
}

func versionString() string {
	v := version
	if v == "" {
		v = "dev"
		if bi, ok := debug.ReadBuildInfo(); ok {
			if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
				v = bi.Main.Version
			}
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && len(s.Value) >= 12 {
					v += "+" + s.Value[:12]
				}
			}
		}
	}
	return fmt.Sprintf("modelgate %s (%s, %s/%s)", v, rt.Version(), rt.GOOS, rt.GOARCH)
}
