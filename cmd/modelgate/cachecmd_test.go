package main

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/internal/testregistry"
)

// cachedModels is a configuration whose two models, tiny (64 KiB) and
// small (32 KiB), were pulled from a real registry into its cache.
type cachedModels struct {
	cfg, dir             string // configuration file, cache directory
	tinyRef, smallRef    string
	tinySize, smallSize  int64
	tinyDigest, smallDig digest.Digest
}

func pullTwoModels(t *testing.T) *cachedModels {
	t.Helper()
	reg := testregistry.Start(t)
	cm := &cachedModels{dir: filepath.Join(t.TempDir(), "cache"), tinySize: 64 << 10, smallSize: 32 << 10}
	push := func(repo string, n int64) string {
		weights := make([]byte, n)
		rand.Read(weights)
		reg.Push(t, repo, "v1", []testregistry.Layer{{Title: "model.bin", Data: weights}})
		return reg.Host() + "/" + repo + ":v1"
	}
	cm.tinyRef, cm.smallRef = push("models/tiny", cm.tinySize), push("models/small", cm.smallSize)
	// The runtime is never started: cache commands and pull do not run it.
	cfg := fmt.Sprintf(`models:
  - {name: tiny, ref: %s, runtime: none}
  - {name: small, ref: %s, runtime: none}
runtimes:
  none: {command: ["true"]}
cache: {dir: %s, max_bytes: 1GiB}
registries:
  %q: {plain_http: true}
`, cm.tinyRef, cm.smallRef, cm.dir, reg.Host())
	cm.cfg = filepath.Join(t.TempDir(), "modelgate.yaml")
	if err := os.WriteFile(cm.cfg, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"pull", "--config", cm.cfg, "--progress", "none", "tiny", "small"}, &out, &errOut); code != 0 {
		t.Fatalf("pull exited %d: %s", code, errOut.String())
	}
	for _, m := range cm.list(t).Models {
		switch {
		case slices.Contains(m.Refs, cm.tinyRef):
			cm.tinyDigest = m.Digest
		case slices.Contains(m.Refs, cm.smallRef):
			cm.smallDig = m.Digest
		}
	}
	if cm.tinyDigest == "" || cm.smallDig == "" {
		t.Fatalf("cache ls lacks a pulled model: %+v", cm.list(t))
	}
	return cm
}

// cache runs modelgate cache with the configuration, and returns the exit
// code, stdout and stderr.
func (cm *cachedModels) cache(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(append([]string{"cache", args[0], "--config", cm.cfg}, args[1:]...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func (cm *cachedModels) list(t *testing.T) cacheListing {
	t.Helper()
	code, out, errOut := cm.cache(t, "ls", "--json")
	if code != 0 {
		t.Fatalf("cache ls --json exited %d: %s", code, errOut)
	}
	var l cacheListing
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("cache ls --json: %v\n%s", err, out)
	}
	return l
}

// pinFromAnotherProcess holds model d as a gateway sharing the directory
// would while its runtime runs (a flock on its own descriptor), until the
// test ends or release is called.
func pinFromAnotherProcess(t *testing.T, dir string, d digest.Digest) (release func()) {
	t.Helper()
	c, err := cache.Open(dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	release, err = c.PinModel(d)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	return release
}

func TestCacheLsListsModelsWithRefsSizesAndPins(t *testing.T) {
	cm := pullTwoModels(t)
	pinFromAnotherProcess(t, cm.dir, cm.smallDig)

	l := cm.list(t)
	if len(l.Models) != 2 || l.Budget != 1<<30 || l.Used < cm.tinySize+cm.smallSize {
		t.Fatalf("listing %+v: want 2 models, a 1 GiB budget, at least %d bytes used", l, cm.tinySize+cm.smallSize)
	}
	if abs, _ := filepath.Abs(cm.dir); l.Dir != abs {
		t.Errorf("dir %q, want %q", l.Dir, abs)
	}
	for _, m := range l.Models {
		want := map[digest.Digest]struct {
			ref    string
			size   int64
			pinned bool
		}{cm.tinyDigest: {cm.tinyRef, cm.tinySize, false}, cm.smallDig: {cm.smallRef, cm.smallSize, true}}[m.Digest]
		if !slices.Equal(m.Refs, []string{want.ref}) || m.Size != want.size || m.Own != want.size || m.Pinned != want.pinned {
			t.Errorf("model %s: %+v, want refs [%s], size and own %d, pinned %v", m.Digest, m, want.ref, want.size, want.pinned)
		}
		if time.Since(m.LastUsed) > time.Minute {
			t.Errorf("model %s last used %v, want just now", m.Digest, m.LastUsed)
		}
	}

	// The table, not on a terminal: exact bytes.
	code, out, errOut := cm.cache(t, "ls")
	if code != 0 {
		t.Fatalf("cache ls exited %d: %s", code, errOut)
	}
	for _, want := range []string{
		"DIGEST", "REFS", "SIZE", "OWN", "LAST USED", "PINNED",
		shortDigest(cm.tinyDigest), cm.tinyRef, "65536", "32768", "just now", " yes", " no",
		"2 models, ", " used, budget 1073741824 (0%), in ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("cache ls lacks %q:\n%s", want, out)
		}
	}

	// Without a configuration: the directory alone, no budget.
	var buf, errBuf bytes.Buffer
	t.Chdir(t.TempDir()) // no modelgate.yaml here
	if code := run([]string{"cache", "ls", "--cache-dir", cm.dir}, &buf, &errBuf); code != 0 {
		t.Fatalf("cache ls --cache-dir exited %d: %s", code, errBuf.String())
	}
	if !strings.Contains(buf.String(), "2 models, ") || !strings.Contains(buf.String(), "no budget") {
		t.Errorf("cache ls --cache-dir:\n%s", buf.String())
	}
}

func TestCacheRmByNameDigestAndRefusesPinned(t *testing.T) {
	cm := pullTwoModels(t)

	// By configured name; the flags may follow it.
	code, out, errOut := cm.cache(t, "rm", "tiny")
	if code != 0 {
		t.Fatalf("cache rm tiny exited %d: %s", code, errOut)
	}
	if !strings.Contains(out, "removed "+cm.tinyDigest.String()) || !strings.Contains(out, "freed 65536") {
		t.Errorf("cache rm tiny printed:\n%s", out)
	}
	if l := cm.list(t); len(l.Models) != 1 || l.Models[0].Digest != cm.smallDig {
		t.Errorf("after rm tiny: %+v", l.Models)
	}
	if code, _, errOut := cm.cache(t, "rm", "tiny"); code != 1 || !strings.Contains(errOut, `no model in the cache matches "tiny"`) {
		t.Errorf("second rm tiny: exit %d, %s", code, errOut)
	}

	// A model in use is refused, with a clear message.
	release := pinFromAnotherProcess(t, cm.dir, cm.smallDig)
	prefix := cm.smallDig.Encoded()[:12]
	code, _, errOut = cm.cache(t, "rm", prefix)
	if code != 1 || !strings.Contains(errOut, "model in use") || !strings.Contains(errOut, "stop it") {
		t.Errorf("rm of a pinned model: exit %d, stderr %q", code, errOut)
	}
	if l := cm.list(t); len(l.Models) != 1 {
		t.Errorf("the pinned model went: %+v", l.Models)
	}
	release()

	if code, _, errOut := cm.cache(t, "rm", prefix[:8]); code != 1 || !strings.Contains(errOut, "at least 12 hex digits") {
		t.Errorf("rm by an 8-digit prefix: exit %d, %s", code, errOut)
	}
	code, out, errOut = cm.cache(t, "rm", cm.smallDig.String(), "--json")
	if code != 0 {
		t.Fatalf("rm by digest exited %d: %s", code, errOut)
	}
	var rm []removed
	if err := json.Unmarshal([]byte(out), &rm); err != nil || len(rm) != 1 || rm[0].Digest != cm.smallDig || rm[0].Freed != cm.smallSize {
		t.Errorf("rm --json = %+v (%v):\n%s", rm, err, out)
	}
	if l := cm.list(t); len(l.Models) != 0 || l.Used != 0 {
		t.Errorf("after removing both: %+v", l)
	}
}

func TestCacheVerifyQuarantinesCorruptBlobAndExits1(t *testing.T) {
	cm := pullTwoModels(t)
	if code, out, errOut := cm.cache(t, "verify"); code != 0 || !strings.Contains(out, "checked 2 blobs, 98304 hashed: all good") {
		t.Fatalf("verify of a clean cache: exit %d\n%s%s", code, out, errOut)
	}

	// Flip one byte of tiny's weights: its file is a hard link to the blob.
	var tiny cache.ModelInfo
	for _, m := range cm.list(t).Models {
		if m.Digest == cm.tinyDigest {
			tiny = m
		}
	}
	file := filepath.Join(tiny.Dir, "model.bin")
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data[100] ^= 0xff
	f, err := os.OpenFile(file, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data[100:101], 100); err != nil {
		t.Fatal(err)
	}
	f.Close()

	code, out, errOut := cm.cache(t, "verify")
	if code != 1 {
		t.Fatalf("verify of a corrupt cache exited %d, want 1\n%s%s", code, out, errOut)
	}
	q, _ := filepath.Glob(filepath.Join(cm.dir, "quarantine", "*"))
	if len(q) != 1 {
		t.Fatalf("quarantine holds %v, want one blob", q)
	}
	if got, err := os.ReadFile(q[0]); err != nil || !bytes.Equal(got, data) {
		t.Errorf("quarantined bytes are not the corrupt blob (%v)", err)
	}
	for _, want := range []string{
		"corrupt blob sha256:" + filepath.Base(q[0]) + ": hashed to " + digest.FromBytes(data).String() + " (65536); moved to " + q[0],
		"removed model " + cm.tinyDigest.String() + " (" + cm.tinyRef + ")",
		"checked 2 blobs, 98304 hashed: 1 corrupt, 0 missing",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("verify output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(errOut, "corruption found") {
		t.Errorf("stderr %q", errOut)
	}
	if l := cm.list(t); len(l.Models) != 1 || l.Models[0].Digest != cm.smallDig {
		t.Errorf("after verify: %+v, want small alone", l.Models)
	}

	// Clean again; the next pull downloads tiny's weights again.
	code, out, _ = cm.cache(t, "verify", "--json")
	var rep cache.VerifyReport
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || !rep.Clean() || rep.Blobs != 1 {
		t.Errorf("second verify: exit %d, %+v, %v", code, rep, err)
	}
	var pullOut, pullErr bytes.Buffer
	if code := run([]string{"pull", "--config", cm.cfg, "--progress", "none", "tiny"}, &pullOut, &pullErr); code != 0 || !strings.Contains(pullOut.String(), "downloaded: 65536") {
		t.Errorf("pull after verify: exit %d\n%s%s", code, pullOut.String(), pullErr.String())
	}
}

func TestCachePruneEvictsWhatIsNotPinned(t *testing.T) {
	cm := pullTwoModels(t)
	pinFromAnotherProcess(t, cm.dir, cm.smallDig)

	// With the configuration's 1 GiB budget, nothing goes.
	code, out, errOut := cm.cache(t, "prune")
	if code != 0 || !strings.Contains(out, "0 models evicted, 0 orphan blobs removed, 0 freed") {
		t.Fatalf("prune within budget: exit %d\n%s%s", code, out, errOut)
	}

	code, out, errOut = cm.cache(t, "prune", "--max-bytes", "1")
	if code != 0 {
		t.Fatalf("prune --max-bytes 1 exited %d: %s", code, errOut)
	}
	for _, want := range []string{
		"evicted " + cm.tinyDigest.String() + " (" + cm.tinyRef + ")",
		"1 model evicted, 0 orphan blobs removed, 65536 freed, 32768 used",
		"still over 1: the models left are in use",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("prune output lacks %q:\n%s", want, out)
		}
	}
	if l := cm.list(t); len(l.Models) != 1 || l.Models[0].Digest != cm.smallDig {
		t.Errorf("after prune: %+v, want the pinned model alone", l.Models)
	}

	// An orphan blob (a pull that died before its commit) goes with
	// --max-bytes 0, which evicts no model.
	orphan := []byte("orphan blob")
	c, err := cache.Open(cm.dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteBlob(t.Context(), digest.FromBytes(orphan), int64(len(orphan)), bytes.NewReader(orphan)); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = cm.cache(t, "prune", "--max-bytes", "0", "--json")
	var res pruneResult
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil {
		t.Fatalf("prune --json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if len(res.Models) != 0 || res.OrphanBlobs != 1 || res.Freed != int64(len(orphan)) || res.Limit != -1 || res.Used != cm.smallSize {
		t.Errorf("prune --max-bytes 0: %+v", res)
	}
}

func TestCacheCommandErrors(t *testing.T) {
	t.Chdir(t.TempDir()) // no modelgate.yaml here
	missing := filepath.Join(t.TempDir(), "nope")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"cache"}, "name a command"},
		{[]string{"cache", "mv"}, `unknown command "mv"`},
		{[]string{"cache", "ls"}, "or the cache directory with --cache-dir"},
		{[]string{"cache", "ls", "--cache-dir", missing}, "cache directory " + missing},
		{[]string{"cache", "rm", "--cache-dir", missing}, "name the models to remove"},
		{[]string{"cache", "prune", "--max-bytes", "lots", "--cache-dir", missing}, "parse size"},
		{[]string{"cache", "verify", "extra", "--cache-dir", missing}, "verify takes no arguments"},
	} {
		var out, errOut bytes.Buffer
		if code := run(tc.args, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 1 and %q", tc.args, code, errOut.String(), tc.want)
		}
	}
	if _, err := os.Stat(missing); err == nil {
		t.Error("a missing cache directory was created")
	}
}

func TestCacheOutputFormats(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		t    time.Time
		want string
	}{
		{time.Time{}, "never"},
		{now.Add(5 * time.Second), "just now"}, // another host's clock ahead
		{now.Add(-59 * time.Second), "just now"},
		{now.Add(-3 * time.Minute), "3m ago"},
		{now.Add(-5 * time.Hour), "5h ago"},
		{now.Add(-72 * time.Hour), "3d ago"},
	} {
		if got := ago(now, tc.t); got != tc.want {
			t.Errorf("ago(%v) = %q, want %q", now.Sub(tc.t), got, tc.want)
		}
	}
	if got := sizeFormat(true).String(3 << 29); got != "1.5 GiB" {
		t.Errorf("human size %q", got)
	}
	if got := sizeFormat(false).String(3 << 29); got != "1610612736" {
		t.Errorf("plain size %q", got)
	}
	var buf bytes.Buffer
	if sizesFor(&buf) {
		t.Error("a buffer taken for a terminal")
	}
}

func TestMatchModels(t *testing.T) {
	a := cache.ModelInfo{Digest: digest.FromString("a"), Refs: []string{"r/a:1", "r/x:1"}}
	b := cache.ModelInfo{Digest: digest.FromString("b"), Refs: []string{"r/b:1", "r/x:1"}}
	infos := []cache.ModelInfo{a, b}
	names := map[string]string{"alpha": "r/a:1"}
	for _, tc := range []struct {
		arg  string
		want []digest.Digest
	}{
		{"alpha", []digest.Digest{a.Digest}},
		{"r/b:1", []digest.Digest{b.Digest}},
		{"r/x:1", []digest.Digest{a.Digest, b.Digest}}, // a tag that moved: both
		{a.Digest.String(), []digest.Digest{a.Digest}},
		{b.Digest.Encoded()[:12], []digest.Digest{b.Digest}},
		{"sha256:" + strings.ToUpper(b.Digest.Encoded()[:20]), []digest.Digest{b.Digest}},
		{"r/c@" + a.Digest.String(), []digest.Digest{a.Digest}},
		{"r/c:1", nil},
		{"sha256:" + strings.Repeat("0", 64), nil},
	} {
		got, err := matchModels(infos, tc.arg, names)
		var ds []digest.Digest
		for _, m := range got {
			ds = append(ds, m.Digest)
		}
		if !slices.Equal(ds, tc.want) || (err == nil) != (tc.want != nil) {
			t.Errorf("matchModels(%q) = %v, %v; want %v", tc.arg, ds, err, tc.want)
		}
	}
}
