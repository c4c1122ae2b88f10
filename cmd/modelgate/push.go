package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/modelgate/modelgate/config"
	"github.com/modelgate/modelgate/oci"
	"github.com/modelgate/modelgate/progress"
	"github.com/modelgate/modelgate/push"
)

// pushCommand pushes a model directory as one artifact and prints
// "pushed REF@DIGEST" on stdout; progress goes to stderr: a bar when stderr
// is a terminal, plain lines otherwise (--progress).
func pushCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("push", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: modelgate push [flags] DIR REGISTRY/REPOSITORY:TAG\n\nFlags:\n")
		fs.PrintDefaults()
	}
	format := fs.String("format", push.FormatModelPack, "artifact format: modelpack (CNCF ModelPack) or docker (Docker model artifact)")
	plainHTTP := fs.Bool("plain-http", false, "speak plain HTTP to the registry of REF")
	cfgPath := fs.String("config", "", "optional modelgate.yaml whose registries' plain_http settings apply")
	concurrency := fs.Int("concurrency", push.DefaultConcurrency, "files hashed and layers uploaded at once")
	progressMode := progress.Auto
	fs.Var(&progressMode, "progress", "how upload progress shows on stderr, `mode`: auto (bar on a terminal, plain otherwise), bar, plain (a line per file every 5s) or none")
	var common commonFlags
	fs.StringVar(&common.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&common.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return errors.New("want two arguments: DIR and REF")
	}
	dir, ref := fs.Arg(0), fs.Arg(1)
	if *concurrency < 1 {
		return fmt.Errorf("--concurrency %d: must be at least 1", *concurrency)
	}
	log, err := common.logger(stderr)
	if err != nil {
		return err
	}
	var cfg *config.Config
	if *cfgPath != "" {
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	var plainHosts []string
	if *plainHTTP {
		parsed, err := oci.ParseReference(ref)
		if err != nil {
			return err
		}
		plainHosts = append(plainHosts, parsed.Registry)
	}
	client := newOCIClient(cfg, log, plainHosts...)
	res, err := push.Directory(ctx, client, dir, ref, push.Options{
		Format:          *format,
		Concurrency:     *concurrency,
		Progress:        stderr,
		ProgressOptions: progress.Options{Mode: progressMode},
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pushed %s\n", res.Ref)
	return nil
}
