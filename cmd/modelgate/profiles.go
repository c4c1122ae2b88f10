package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/modelgate/modelgate/config"
)

// profilesCommand prints the built-in runtime profiles (or those named) as
// the runtimes: section of modelgate.yaml, to copy and edit. Reading the
// printed entries back gives the built-ins exactly.
func profilesCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("profiles", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: modelgate profiles [NAME...]\n\nPrints the built-in runtime profiles (%s) as modelgate.yaml entries.\n", strings.Join(config.BuiltinProfileNames(), ", "))
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	names := fs.Args()
	if len(names) == 0 {
		names = config.BuiltinProfileNames()
	}
	profiles := map[string]config.Runtime{}
	for _, name := range names {
		rt, ok := config.BuiltinProfile(name)
		if !ok {
			return fmt.Errorf("unknown profile %q (built-in: %s)", name, strings.Join(config.BuiltinProfileNames(), ", "))
		}
		profiles[name] = rt
	}
	var b bytes.Buffer
	b.WriteString("# Built-in runtime profiles of " + versionString() + ".\n" +
		"# A model names one directly (runtime: vllm), an entry extends one\n" +
		"# (profile: vllm and only the keys to change), or copy one and edit it.\n" +
		"# See docs/runtimes.md.\n")
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(map[string]any{"runtimes": profiles}); err != nil {
		return fmt.Errorf("print profiles: %w", err)
	}
	if err := enc.Close(); err != nil {
		return fmt.Errorf("print profiles: %w", err)
	}
	_, err := stdout.Write(b.Bytes())
	return err
}
