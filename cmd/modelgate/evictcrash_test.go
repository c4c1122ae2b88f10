package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"maps"
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

// The eviction crash tests kill real `modelgate pull`, `cache prune` and
// `cache rm` processes, built with -tags crashpoints, at the crash points of
// an eviction (cache/evict.go): "evict-after-record" (the model's record
// removed, its directory not yet) and "evict-after-dir" (its directory
// removed, its blobs not yet). Then the same command runs again in a new
// process (cache.Open repairs first), and the cache must be consistent: no
// directory without its record nor record without its directory, every
// model's files byte-identical to what was pushed, every blob hashing to its
// name, `cache verify` clean, the models that were not evicted served without
// a blob download, and the evicted one pulled again intact.

// evictModelSize is the size of each model's weights; the three models of
// the eviction tests fit a 640 KiB budget two at a time, not three.
const (
	evictModelSize = 256 << 10
	evictTokenizer = 16 << 10
	evictBudget    = 640 << 10
)

// evictModels are three models pushed to a real registry: a and b share a
// tokenizer (one blob for two models), c has a config of its own.
//
//	a: model.bin (256 KiB) + tokenizer.json (16 KiB, shared with b)
//	b: model.bin (256 KiB) + tokenizer.json
//	c: model.bin (256 KiB) + config.json (1 KiB)
//
// a and b take 528 KiB; c needs 257 KiB more: over a 640 KiB budget, and
// under it once a's own 256 KiB are freed (the tokenizer stays for b).
type evictModels struct {
	reg     *testregistry.Registry
	a, b, c pushedModel
}

func pushEvictModels(t *testing.T) *evictModels {
	t.Helper()
	reg := testregistry.Start(t)
	random := func(n int) []byte {
		data := make([]byte, n)
		rand.Read(data)
		return data
	}
	push := func(repo string, files map[string][]byte) pushedModel {
		m := pushedModel{repo: repo, files: files}
		var layers []testregistry.Layer
		for _, title := range slices.Sorted(maps.Keys(files)) {
			layers = append(layers, testregistry.Layer{Title: title, Data: files[title]})
		}
		m.digest = reg.Push(t, repo, "v1", layers).Digest
		return m
	}
	tokenizer := random(evictTokenizer)
	return &evictModels{
		reg: reg,
		a:   push("models/a", map[string][]byte{"model.bin": random(evictModelSize), "tokenizer.json": tokenizer}),
		b:   push("models/b", map[string][]byte{"model.bin": random(evictModelSize), "tokenizer.json": tokenizer}),
		c:   push("models/c", map[string][]byte{"model.bin": random(evictModelSize), "config.json": random(1 << 10)}),
	}
}

func (e *evictModels) all() []pushedModel { return []pushedModel{e.a, e.b, e.c} }

// writeBudgetConfig writes a configuration pulling from host into cacheDir
// with cache.max_bytes maxBytes, and returns its path.
func writeBudgetConfig(t *testing.T, host, cacheDir string, maxBytes int64) string {
	t.Helper()
	cfg := fmt.Sprintf(`models:
  - name: unused
    ref: %s/models/unused:v1
    runtime: unused
runtimes:
  unused:
    command: ["false"]
    health: /health
cache: {dir: %q, max_bytes: %d}
registries:
  %q: {plain_http: true}
`, host, cacheDir, maxBytes, host)
	path := filepath.Join(t.TempDir(), "modelgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// mgRun is one finished modelgate process.
type mgRun struct {
	err            error // from Wait: nil, an exit status or a signal
	stdout, stderr string
}

// runMG runs bin with args and env (see runModelgate) to completion.
func runMG(t *testing.T, bin string, env []string, args ...string) mgRun {
	t.Helper()
	stdout, stderr, err := runModelgate(t, bin, env, args...)
	return mgRun{err: err, stdout: stdout, stderr: stderr}
}

// pullOK pulls m with bin and checks its files against the pushed bytes.
func pullOK(t *testing.T, bin, cfg, host string, m pushedModel) pulled {
	t.Helper()
	r := runMG(t, bin, nil, "pull", "--config", cfg, "--progress", "none", m.ref(host))
	if r.err != nil {
		t.Fatalf("pull %s: %v\nstderr:\n%s", m.repo, r.err, r.stderr)
	}
	p := parsePull(t, r.stdout)
	if p.digest != m.digest.String() {
		t.Fatalf("pull %s: digest %s, want %s", m.repo, p.digest, m.digest)
	}
	checkModelDir(t, p.path, m)
	return p
}

// setLastUse writes model m's last use as the cache records it on disk
// (its directory's mtime), so that the LRU order does not hang on the
// clock's resolution.
func setLastUse(t *testing.T, dir string, m pushedModel, at time.Time) {
	t.Helper()
	if err := os.Chtimes(filepath.Join(dir, "models", "sha256", m.digest.Encoded()), at, at); err != nil {
		t.Fatal(err)
	}
}

// modelState is what the cache directory holds of model m.
type modelState struct{ record, dir bool }

func stateOf(dir string, m pushedModel) modelState {
	base := filepath.Join(dir, "models", "sha256", m.digest.Encoded())
	_, recErr := os.Stat(base + ".json")
	_, dirErr := os.Stat(base)
	return modelState{record: recErr == nil, dir: dirErr == nil}
}

func hasBlob(dir string, data []byte) bool {
	_, err := os.Stat(filepath.Join(dir, "blobs", "sha256", digest.FromBytes(data).Encoded()))
	return err == nil
}

// checkCacheConsistent checks every invariant a crash must not break: those
// of checkCacheClean (ingest/ empty but for locks, every blob hashes to its
// name and is read-only, no directory without its record), no record
// without its directory, every record one of the pushed models whose
// directory holds exactly the pushed bytes and whose blobs are all in
// blobs/, and `cache verify` exiting 0. It returns the models present.
func checkCacheConsistent(t *testing.T, bin, cfg, dir string, pushed []pushedModel) []pushedModel {
	t.Helper()
	checkCacheClean(t, dir)
	byDigest := map[digest.Digest]pushedModel{}
	for _, m := range pushed {
		byDigest[m.digest] = m
	}
	ents, err := os.ReadDir(filepath.Join(dir, "models", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var present []pushedModel
	for _, e := range ents {
		hex, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || e.IsDir() {
			continue
		}
		d := digest.NewDigestFromEncoded(digest.SHA256, hex)
		m, known := byDigest[d]
		if !known {
			t.Errorf("record of a model never pushed: %s", e.Name())
			continue
		}
		present = append(present, m)
		var rec cache.Model
		data, err := os.ReadFile(filepath.Join(dir, "models", "sha256", e.Name()))
		if err != nil || json.Unmarshal(data, &rec) != nil {
			t.Errorf("record %s: %v %q", e.Name(), err, data)
			continue
		}
		if st := stateOf(dir, m); !st.dir {
			t.Errorf("model %s has a record and no directory", m.repo)
			continue
		}
		checkModelDir(t, filepath.Join(dir, "models", "sha256", hex), m)
		for _, f := range rec.Files {
			if _, err := os.Stat(filepath.Join(dir, "blobs", "sha256", f.Digest.Encoded())); err != nil {
				t.Errorf("model %s lists blob %s (%s): %v", m.repo, f.Digest, f.Path, err)
			}
		}
	}
	if r := runMG(t, bin, nil, "cache", "verify", "--config", cfg); r.err != nil {
		t.Errorf("cache verify: %v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
	}
	return present
}

func TestEvictionSurvivesSIGKILL(t *testing.T) {
	bin := buildCrashModelgate(t)

	type crash struct {
		name  string
		point string
		// budget is the configuration's cache.max_bytes.
		budget int64
		// fill pulls all three models (a the least recently used), else a
		// and b only.
		fill bool
		// args is the command that evicts a; env MODELGATE_CRASHPOINT kills
		// it at point, and it runs again without.
		args func(ms *evictModels, cfg string) []string
		// again checks the second run of args.
		again func(t *testing.T, ms *evictModels, r mgRun)
	}
	pullC := func(ms *evictModels, cfg string) []string {
		return []string{"pull", "--config", cfg, "--progress", "none", ms.c.ref(ms.reg.Host())}
	}
	pruneA := func(_ *evictModels, cfg string) []string {
		return []string{"cache", "prune", "--config", cfg, "--max-bytes", fmt.Sprint(evictBudget)}
	}
	rmA := func(ms *evictModels, cfg string) []string {
		return []string{"cache", "rm", "--config", cfg, ms.a.ref(ms.reg.Host())}
	}
	succeeds := func(t *testing.T, _ *evictModels, r mgRun) {
		t.Helper()
		if r.err != nil {
			t.Fatalf("second run: %v\nstderr:\n%s", r.err, r.stderr)
		}
	}
	var crashes []crash
	for _, point := range []string{"evict-after-record", "evict-after-dir"} {
		crashes = append(crashes,
			// A pull over cache.max_bytes evicts in Reserve, before it
			// downloads a byte.
			crash{name: "pull " + point, point: point, budget: evictBudget, args: pullC, again: func(t *testing.T, ms *evictModels, r mgRun) {
				t.Helper()
				succeeds(t, ms, r)
				checkModelDir(t, parsePull(t, r.stdout).path, ms.c)
			}},
			crash{name: "prune " + point, point: point, budget: 1 << 30, fill: true, args: pruneA, again: succeeds},
			// rm run again finds no model: the crash removed its record,
			// so it was already gone.
			crash{name: "rm " + point, point: point, budget: 1 << 30, fill: true, args: rmA, again: func(t *testing.T, _ *evictModels, r mgRun) {
				t.Helper()
				if r.err == nil || !strings.Contains(r.stderr, "no model in the cache matches") {
					t.Fatalf("second rm: %v, want exit 1 naming no model\nstderr:\n%s", r.err, r.stderr)
				}
			}},
		)
	}

	for _, tc := range crashes {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A registry each: its request counts are this test's own.
			ms := pushEvictModels(t)
			host := ms.reg.Host()
			dir := filepath.Join(t.TempDir(), "cache")
			cfg := writeBudgetConfig(t, host, dir, tc.budget)
			filled := []pushedModel{ms.a, ms.b}
			if tc.fill {
				filled = append(filled, ms.c)
			}
			now := time.Now()
			for i, m := range filled {
				pullOK(t, bin, cfg, host, m)
				setLastUse(t, dir, m, now.Add(time.Duration(i-len(filled))*time.Hour))
			}
			kept := filled[1:] // a is the least recently used

			// The run that dies in the middle of evicting a.
			r := runMG(t, bin, []string{"MODELGATE_CRASHPOINT=" + tc.point}, tc.args(ms, cfg)...)
			if !killedBySIGKILL(r.err) {
				t.Fatalf("first run: %v, want killed by SIGKILL at %s\nstdout:\n%s\nstderr:\n%s", r.err, tc.point, r.stdout, r.stderr)
			}
			// Where it died, from what it left.
			want := modelState{dir: tc.point == "evict-after-record"}
			if got := stateOf(dir, ms.a); got != want {
				t.Errorf("a after the crash: %+v, want %+v", got, want)
			}
			if !hasBlob(dir, ms.a.files["model.bin"]) {
				t.Errorf("a's weights blob went before the crash point %s", tc.point)
			}
			for _, m := range kept {
				if got := stateOf(dir, m); got != (modelState{record: true, dir: true}) {
					t.Errorf("%s after the crash: %+v, want untouched", m.repo, got)
				}
			}
			if !tc.fill && (hasBlob(dir, ms.c.files["model.bin"]) || hasBlob(dir, ms.c.files["config.json"]) || stateOf(dir, ms.c).record) {
				t.Errorf("the pull of c wrote before its eviction was done")
			}

			// The same command again, in a new process.
			tc.again(t, ms, runMG(t, bin, nil, tc.args(ms, cfg)...))
			present := checkCacheConsistent(t, bin, cfg, dir, ms.all())
			if slices.ContainsFunc(present, func(m pushedModel) bool { return m.digest == ms.a.digest }) {
				t.Errorf("a is still in the cache after its eviction ran again")
			}

			// The models that were not evicted are still there, and served
			// without a blob download.
			if !tc.fill {
				kept = append(kept, ms.c)
			}
			var lost []string
			for _, m := range kept {
				if stateOf(dir, m) != (modelState{record: true, dir: true}) {
					lost = append(lost, m.repo)
					continue
				}
				ms.reg.ResetRequests()
				if p := pullOK(t, bin, cfg, host, m); p.downloaded != 0 {
					t.Errorf("%s downloaded %d bytes again", m.repo, p.downloaded)
				}
				if n := ms.reg.Count("GET", "/blobs/"); n != 0 {
					t.Errorf("%s: %d blob GETs after the crash, want 0", m.repo, n)
				}
			}
			// The blobs a killed eviction left (listed by no model) go
			// before any other model does.
			if len(lost) > 0 {
				t.Errorf("evicted besides a: %v", lost)
			}

			// The evicted model comes back intact.
			pullOK(t, bin, cfg, host, ms.a)
			checkCacheConsistent(t, bin, cfg, dir, ms.all())
		})
	}
}
