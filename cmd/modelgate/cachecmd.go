package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/term"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/config"
)

const cacheUsage = `Usage: modelgate cache COMMAND [flags]

Commands:
  ls                   list the cached models: refs, sizes, last use, pinned
  rm NAME|REF|DIGEST   remove models (a configured name, a reference, a digest or a prefix of 12+ hex digits)
  prune                evict unpinned models, least recently used first, down to --max-bytes; remove orphan blobs
  verify               re-hash every blob; quarantine corrupt ones and remove the models that list them

Flags (every command):
  --config FILE     configuration giving cache.dir, cache.max_bytes and model names (default modelgate.yaml)
  --cache-dir DIR   the cache directory; without --config, no configuration is read
  --json            print JSON for scripts (sizes in bytes)

Sizes are human (KiB, MiB, GiB) on a terminal, bytes otherwise.
`

// minDigestPrefix is the fewest hex digits cache rm takes as a digest
// prefix, as in the 12-digit short digests cache ls prints.
const minDigestPrefix = 12

// errCorrupt is what cache verify returns when it found corruption, so
// that it exits 1 after printing its report.
var errCorrupt = errors.New("corruption found")

// cacheCommand runs `modelgate cache ls|rm|prune|verify`.
func cacheCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, cacheUsage)
		return errors.New("name a command: ls, rm, prune or verify")
	}
	switch args[0] {
	case "ls", "list":
		return cacheList(args[1:], stdout, stderr)
	case "rm", "remove":
		return cacheRemove(ctx, args[1:], stdout, stderr)
	case "prune":
		return cachePrune(ctx, args[1:], stdout, stderr)
	case "verify":
		return cacheVerify(ctx, args[1:], stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, cacheUsage)
		return nil
	default:
		fmt.Fprint(stderr, cacheUsage)
		return fmt.Errorf("unknown command %q: want ls, rm, prune or verify", args[0])
	}
}

// cacheFlags are the flags of every cache command.
type cacheFlags struct {
	config   string
	cacheDir string
	json     bool
}

func newCacheFlagSet(name, args string, stderr io.Writer) (*flag.FlagSet, *cacheFlags) {
	set := flag.NewFlagSet("cache "+name, flag.ContinueOnError)
	set.SetOutput(stderr)
	set.Usage = func() {
		fmt.Fprintf(set.Output(), "Usage: modelgate cache %s [flags]%s\n\nFlags:\n", name, args)
		set.PrintDefaults()
	}
	f := &cacheFlags{}
	set.StringVar(&f.config, "config", "modelgate.yaml", "configuration file (cache.dir, cache.max_bytes, model names)")
	set.StringVar(&f.cacheDir, "cache-dir", "", "cache directory; without --config, no configuration is read")
	set.BoolVar(&f.json, "json", false, "print JSON")
	return set, f
}

// parseInterspersed parses flags before and after the positional
// arguments (`cache rm tiny --json`), and returns the positional ones.
// Everything after "--" is positional.
func parseInterspersed(set *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := set.Parse(args); err != nil {
			return nil, err
		}
		rest := set.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if i := len(args) - len(rest) - 1; i >= 0 && args[i] == "--" {
			return append(pos, rest...), nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// openWithoutArgs parses args for a command that takes only flags,
// refuses any argument, and opens the cache as open does.
func (f *cacheFlags) openWithoutArgs(set *flag.FlagSet, args []string) (*cache.Cache, *config.Config, error) {
	pos, err := parseInterspersed(set, args)
	if err != nil {
		return nil, nil, err
	}
	if len(pos) != 0 {
		set.Usage()
		return nil, nil, fmt.Errorf("%s takes no arguments", strings.TrimPrefix(set.Name(), "cache "))
	}
	return f.open(set)
}

// open finds the cache directory and opens the cache. With --cache-dir and
// no explicit --config, no configuration is read (cfg is nil: no budget
// and no model names); otherwise the configuration is loaded as by every
// other command, and --cache-dir overrides its cache.dir. The directory
// must exist: a mistyped path is an error, not a new empty cache.
func (f *cacheFlags) open(set *flag.FlagSet) (*cache.Cache, *config.Config, error) {
	configSet := false
	set.Visit(func(fl *flag.Flag) { configSet = configSet || fl.Name == "config" })
	var cfg *config.Config
	dir := f.cacheDir
	if dir == "" || configSet {
		var err error
		if cfg, err = config.Load(f.config); err != nil {
			if errors.Is(err, fs.ErrNotExist) && !configSet {
				return nil, nil, fmt.Errorf("%w (name the configuration with --config, or the cache directory with --cache-dir)", err)
			}
			return nil, nil, err
		}
		if dir == "" {
			dir = cfg.Cache.Dir
		}
	}
	fi, err := os.Stat(dir)
	if err == nil && !fi.IsDir() {
		err = errors.New("not a directory")
	}
	if err != nil {
		return nil, nil, fmt.Errorf("cache directory %s: %w", dir, err)
	}
	opts := cache.Options{}
	if cfg != nil {
		opts = cache.Options{MaxBytes: int64(cfg.Cache.MaxBytes), MinFreeBytes: int64(cfg.Cache.MinFreeBytes), NoSync: !cfg.Cache.SyncBlobs()}
	}
	c, err := cache.Open(dir, opts)
	if err != nil {
		return nil, nil, err
	}
	return c, cfg, nil
}

// sizeFormat renders byte counts: human units on a terminal, plain bytes
// otherwise (for sort -n, awk).
type sizeFormat bool

func sizesFor(w io.Writer) sizeFormat {
	f, ok := w.(*os.File)
	return sizeFormat(ok && term.IsTerminal(int(f.Fd())))
}

func (h sizeFormat) String(n int64) string {
	if h {
		return humanBytes(n)
	}
	return strconv.FormatInt(n, 10)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// cacheListing is what cache ls --json prints.
type cacheListing struct {
	Dir    string            `json:"dir"`
	Used   int64             `json:"used"`   // bytes on disk: blobs, unpacked files, downloads in progress
	Budget int64             `json:"budget"` // cache.max_bytes; 0: none (or no configuration read)
	Models []cache.ModelInfo `json:"models"` // least recently used first
}

// cacheList prints the cached models, least recently used first. It takes
// no lock: it reads the directory as it is.
func cacheList(args []string, stdout, stderr io.Writer) error {
	set, f := newCacheFlagSet("ls", "", stderr)
	c, _, err := f.openWithoutArgs(set, args)
	if err != nil {
		return err
	}
	infos, err := c.List()
	if err != nil {
		return err
	}
	for i := range infos {
		if infos[i].Refs == nil {
			infos[i].Refs = []string{}
		}
	}
	st := c.Stats()
	if f.json {
		if infos == nil {
			infos = []cache.ModelInfo{}
		}
		return printJSON(stdout, cacheListing{Dir: c.Root(), Used: st.BytesUsed, Budget: st.BytesBudget, Models: infos})
	}
	size := sizesFor(stdout)
	now := time.Now()
	if len(infos) > 0 {
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "DIGEST\tREFS\tSIZE\tOWN\tLAST USED\tPINNED")
		for _, m := range infos {
			refs := strings.Join(m.Refs, ",")
			if refs == "" {
				refs = "-"
			}
			pinned := "no"
			if m.Pinned {
				pinned = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", shortDigest(m.Digest), refs, size.String(m.Size), size.String(m.Own), ago(now, m.LastUsed), pinned)
		}
		tw.Flush()
		fmt.Fprintln(stdout)
	}
	budget := "no budget"
	if st.BytesBudget > 0 {
		budget = fmt.Sprintf("budget %s (%d%%)", size.String(st.BytesBudget), st.BytesUsed*100/st.BytesBudget)
	}
	fmt.Fprintf(stdout, "%d %s, %s used, %s, in %s\n", len(infos), plural(len(infos), "model", "models"), size.String(st.BytesUsed), budget, c.Root())
	return nil
}

// removed is one model cache rm removed or refused.
type removed struct {
	Digest digest.Digest `json:"digest"`
	Refs   []string      `json:"refs"`
	Freed  int64         `json:"freed"`           // bytes
	Error  string        `json:"error,omitempty"` // why it was not removed
}

// cacheRemove removes the models each argument names, under the gc lock
// (cache.Remove). A model in use is refused (exit 1) and the others are
// still removed.
func cacheRemove(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	set, f := newCacheFlagSet("rm", " NAME|REF|DIGEST...", stderr)
	pos, err := parseInterspersed(set, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		set.Usage()
		return errors.New("name the models to remove: a configured name, a reference, or a digest (12+ hex digits)")
	}
	c, cfg, err := f.open(set)
	if err != nil {
		return err
	}
	infos, err := c.List()
	if err != nil {
		return err
	}
	names := map[string]string{}
	if cfg != nil {
		for _, m := range cfg.Models {
			names[m.Name] = m.Ref
		}
	}
	var targets []cache.ModelInfo
	for _, arg := range pos {
		matched, err := matchModels(infos, arg, names)
		if err != nil {
			return err
		}
		for _, m := range matched {
			if !slices.ContainsFunc(targets, func(t cache.ModelInfo) bool { return t.Digest == m.Digest }) {
				targets = append(targets, m)
			}
		}
	}
	size := sizesFor(stdout)
	var out []removed
	var errs []error
	for _, m := range targets {
		freed, err := c.Remove(ctx, m.Digest)
		r := removed{Digest: m.Digest, Refs: m.Refs, Freed: freed}
		if r.Refs == nil {
			r.Refs = []string{}
		}
		switch {
		case errors.Is(err, cache.ErrPinned):
			err = fmt.Errorf("remove %s: %w: a runtime or a pull holds it; stop it (or wait for the pull), then retry", m.Digest, cache.ErrPinned)
		case errors.Is(err, cache.ErrModelNotFound):
			err = nil // removed by someone else since the listing
		}
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			r.Error = err.Error()
			errs = append(errs, err)
		}
		out = append(out, r)
		if !f.json {
			if r.Error == "" {
				fmt.Fprintf(stdout, "removed %s (%s), freed %s\n", m.Digest, strings.Join(m.Refs, ", "), size.String(freed))
			}
		}
	}
	if f.json {
		if err := printJSON(stdout, out); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// matchModels returns the cached models arg names: a digest
// ("sha256:<hex>", or at least minDigestPrefix hex digits of one, with or
// without "sha256:"), a model name of the configuration (its ref), or a
// reference as pulled (a model's refs; for "repo@sha256:...", also the
// model of that digest). A digest prefix matching several models is an
// error; so is an argument matching none.
func matchModels(infos []cache.ModelInfo, arg string, names map[string]string) ([]cache.ModelInfo, error) {
	hexPart, prefixed := strings.CutPrefix(arg, string(digest.SHA256)+":")
	if isHex(hexPart) && len(hexPart) >= minDigestPrefix {
		var found []cache.ModelInfo
		for _, m := range infos {
			if strings.HasPrefix(m.Digest.Encoded(), strings.ToLower(hexPart)) {
				found = append(found, m)
			}
		}
		if len(found) > 1 {
			return nil, fmt.Errorf("digest prefix %q matches %d models: give more digits", arg, len(found))
		}
		if len(found) == 1 || prefixed {
			if len(found) == 0 {
				return nil, fmt.Errorf("no model in the cache has digest %s: %w", arg, cache.ErrModelNotFound)
			}
			return found, nil
		}
		// Hex-looking, but maybe a model name: go on.
	}
	ref := arg
	if r, ok := names[arg]; ok {
		ref = r
	}
	var pinned digest.Digest
	if _, d, ok := strings.Cut(ref, "@"); ok {
		pinned = digest.Digest(d)
	}
	var found []cache.ModelInfo
	for _, m := range infos {
		if slices.Contains(m.Refs, ref) || m.Digest == pinned {
			found = append(found, m)
		}
	}
	if len(found) == 0 {
		hint := ""
		if isHex(hexPart) && len(hexPart) < minDigestPrefix {
			hint = fmt.Sprintf(" (a digest prefix needs at least %d hex digits)", minDigestPrefix)
		}
		return nil, fmt.Errorf("no model in the cache matches %q%s: %w", arg, hint, cache.ErrModelNotFound)
	}
	return found, nil
}

func isHex(s string) bool {
	if s == "" {
		return false
	}
	_, err := hex.DecodeString(s + strings.Repeat("0", len(s)%2))
	return err == nil
}

// byteSizeFlag is a --max-bytes value: "10GiB", "1048576".
type byteSizeFlag struct {
	v   config.ByteSize
	set bool
}

func (b *byteSizeFlag) String() string {
	if b == nil || !b.set {
		return ""
	}
	return b.v.String()
}

func (b *byteSizeFlag) Set(s string) error {
	v, err := config.ParseByteSize(s)
	if err != nil {
		return err
	}
	b.v, b.set = v, true
	return nil
}

// pruneResult is what cache prune --json prints.
type pruneResult struct {
	cache.PruneReport
	Limit int64 `json:"limit"` // the bytes pruned down to; -1: none (orphan blobs only)
}

// cachePrune evicts least recently used models that no one holds until
// the cache fits --max-bytes (default: the configuration's
// cache.max_bytes; 0, or no budget: no model is evicted), then removes
// orphan blobs, under the gc lock (cache.Prune).
func cachePrune(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	set, f := newCacheFlagSet("prune", "", stderr)
	var maxBytes byteSizeFlag
	set.Var(&maxBytes, "max-bytes", "evict down to this size, e.g. 10GiB (default: the configuration's cache.max_bytes; 0: only orphan blobs)")
	c, cfg, err := f.openWithoutArgs(set, args)
	if err != nil {
		return err
	}
	limit := int64(-1)
	switch {
	case maxBytes.set && maxBytes.v > 0:
		limit = int64(maxBytes.v)
	case !maxBytes.set && cfg != nil && cfg.Cache.MaxBytes > 0:
		limit = int64(cfg.Cache.MaxBytes)
	}
	infos, err := c.List()
	if err != nil {
		return err
	}
	rep, err := c.Prune(ctx, limit)
	if err != nil {
		return err
	}
	if rep.Models == nil {
		rep.Models = []digest.Digest{}
	}
	if f.json {
		return printJSON(stdout, pruneResult{PruneReport: rep, Limit: limit})
	}
	size := sizesFor(stdout)
	for _, d := range rep.Models {
		refs := ""
		for _, m := range infos {
			if m.Digest == d {
				refs = " (" + strings.Join(m.Refs, ", ") + ")"
			}
		}
		fmt.Fprintf(stdout, "evicted %s%s\n", d, refs)
	}
	fmt.Fprintf(stdout, "%d %s evicted, %d orphan %s removed, %s freed, %s used\n",
		len(rep.Models), plural(len(rep.Models), "model", "models"), rep.OrphanBlobs, plural(rep.OrphanBlobs, "blob", "blobs"),
		size.String(rep.Freed), size.String(rep.Used))
	if limit >= 0 && rep.Used > limit {
		fmt.Fprintf(stdout, "still over %s: the models left are in use\n", size.String(limit))
	}
	return nil
}

// cacheVerify re-hashes every blob under the gc lock (cache.Verify) and
// prints the report; it exits 1 when it found corruption.
func cacheVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	set, f := newCacheFlagSet("verify", "", stderr)
	c, _, err := f.openWithoutArgs(set, args)
	if err != nil {
		return err
	}
	infos, err := c.List()
	if err != nil {
		return err
	}
	rep, verr := c.Verify(ctx)
	for _, s := range []*[]digest.Digest{&rep.Missing, &rep.ModelsRemoved, &rep.ModelsInUse} {
		if *s == nil {
			*s = []digest.Digest{}
		}
	}
	if rep.Corrupt == nil {
		rep.Corrupt = []cache.CorruptBlob{}
	}
	if f.json {
		if err := printJSON(stdout, rep); err != nil {
			return err
		}
	} else {
		printVerify(stdout, rep, infos, sizesFor(stdout))
	}
	if verr != nil {
		return verr
	}
	if !rep.Clean() {
		return fmt.Errorf("verify: %w: %d corrupt %s moved to quarantine/, %d missing; %d %s removed, %d in use",
			errCorrupt, len(rep.Corrupt), plural(len(rep.Corrupt), "blob", "blobs"), len(rep.Missing),
			len(rep.ModelsRemoved), plural(len(rep.ModelsRemoved), "model", "models"), len(rep.ModelsInUse))
	}
	return nil
}

func printVerify(w io.Writer, rep cache.VerifyReport, infos []cache.ModelInfo, size sizeFormat) {
	refsOf := func(d digest.Digest) string {
		for _, m := range infos {
			if m.Digest == d && len(m.Refs) > 0 {
				return " (" + strings.Join(m.Refs, ", ") + ")"
			}
		}
		return ""
	}
	for _, b := range rep.Corrupt {
		if b.Error != "" {
			fmt.Fprintf(w, "corrupt blob %s: unreadable: %s; moved to %s\n", b.Digest, b.Error, b.Quarantine)
		} else {
			fmt.Fprintf(w, "corrupt blob %s: hashed to %s (%s); moved to %s\n", b.Digest, b.Actual, size.String(b.Size), b.Quarantine)
		}
	}
	for _, d := range rep.Missing {
		fmt.Fprintf(w, "missing blob %s: listed by a model, not in blobs/\n", d)
	}
	for _, d := range rep.ModelsRemoved {
		fmt.Fprintf(w, "removed model %s%s: the next pull downloads what it lacks\n", d, refsOf(d))
	}
	for _, d := range rep.ModelsInUse {
		fmt.Fprintf(w, "corrupt model in use %s%s: record removed, directory kept while its runtime runs; restart it to pull it again\n", d, refsOf(d))
	}
	verdict := "all good"
	if !rep.Clean() {
		verdict = fmt.Sprintf("%d corrupt, %d missing", len(rep.Corrupt), len(rep.Missing))
	}
	fmt.Fprintf(w, "checked %d %s, %s hashed: %s\n", rep.Blobs, plural(rep.Blobs, "blob", "blobs"), size.String(rep.Bytes), verdict)
}

// shortDigest is the first 12 hex digits of d, as docker and ollama print.
func shortDigest(d digest.Digest) string {
	e := d.Encoded()
	if len(e) > minDigestPrefix {
		e = e[:minDigestPrefix]
	}
	return e
}

// ago renders how long before now t was: "just now", "3m ago", "5h ago",
// "2d ago"; "never" for the zero time.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d/time.Hour))
	default:
		return fmt.Sprintf("%dd ago", int(d/(24*time.Hour)))
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
