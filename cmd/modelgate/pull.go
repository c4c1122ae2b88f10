package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/modelgate/modelgate/progress"
)

// pullCommand pulls configured models (by name) or references into the
// cache without serving them, and prints what it laid out.
func pullCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pull", flag.ContinueOnError)
	mode := progress.Auto
	fs.Var(&mode, "progress", "download progress: auto (a bar on a terminal, lines otherwise), bar, plain or none")
	names, cfg, log, err := setup(fs, args, stderr)
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return errors.New("name a model of the configuration (or a reference) to pull")
	}
	f, err := newFetcher(cfg, log, stderr, mode)
	if err != nil {
		return err
	}
	refs := map[string]string{}
	for _, m := range cfg.Models {
		refs[m.Name] = m.Ref
	}
	for _, arg := range names {
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
