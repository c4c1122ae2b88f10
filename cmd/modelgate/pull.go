package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/modelgate/modelgate/config"
)

// pullCommand pulls configured models (by name) or references into the
// cache without serving them, and prints what it laid out.
func pullCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pull", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var common commonFlags
	common.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errors.New("name a model of the configuration (or a reference) to pull")
	}
	log, err := common.logger(stderr)
	if err != nil {
		return err
	}
	cfg, err := config.Load(common.config)
	if err != nil {
		return err
	}
	f, err := newFetcher(cfg, log)
	if err != nil {
		return err
	}
	refs := map[string]string{}
	for _, m := range cfg.Models {
		refs[m.Name] = m.Ref
	}
	for _, arg := range fs.Args() {
		ref, ok := refs[arg]
		if !ok {
			ref = arg // not a configured name: take it as a reference
		}
		start := time.Now()
		res, err := f.Pull(ctx, ref)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s\n  ref:        %s\n  digest:     %s\n  path:       %s\n  bytes:      %d\n  downloaded: %d\n  seconds:    %.2f\n",
			arg, ref, res.Model.Digest, res.Model.Dir, res.Model.Size, res.Downloaded, time.Since(start).Seconds())
	}
	return nil
}
