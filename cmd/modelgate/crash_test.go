package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/internal/faultproxy"
	"github.com/modelgate/modelgate/internal/testregistry"
)

// The crash tests kill real `modelgate pull` processes, built with -tags
// crashpoints, at exact lines of the cache (MODELGATE_CRASHPOINT, see
// cache/crashpoint_on.go) and at moments of a throttled download, then pull
// again in a new process and check that the cache holds exactly the pushed
// model, that nothing verified was downloaded twice, that partial downloads
// resumed where they stopped, and that Repair leaves nothing behind.

// pushedModel is a model pushed to the test registry.
type pushedModel struct {
	repo   string            // e.g. "models/small", tag v1
	digest digest.Digest     // manifest digest
	files  map[string][]byte // by title
}

// pushModel pushes one layer of each size, with random bytes, to repo:v1.
func pushModel(t *testing.T, reg *testregistry.Registry, repo string, sizes map[string]int) pushedModel {
	t.Helper()
	m := pushedModel{repo: repo, files: map[string][]byte{}}
	var layers []testregistry.Layer
	for title, n := range sizes {
		data := make([]byte, n)
		rand.Read(data)
		m.files[title] = data
		layers = append(layers, testregistry.Layer{Title: title, Data: data})
	}
	m.digest = reg.Push(t, repo, "v1", layers).Digest
	return m
}

// ref is the model's reference through host (a proxy in front of the
// registry).
func (m pushedModel) ref(host string) string { return host + "/" + m.repo + ":v1" }

// writePullConfig writes a configuration pulling over plain HTTP from host
// into cacheDir, and returns its path. pull takes references, so the one
// model it names is never used.
func writePullConfig(t *testing.T, host, cacheDir string) string {
	t.Helper()
	cfg := fmt.Sprintf(`models:
  - name: unused
    ref: %s/models/unused:v1
    runtime: unused
runtimes:
  unused:
    command: ["false"]
    health: /health
cache: {dir: %q, max_bytes: 1GiB}
registries:
  %q: {plain_http: true}
`, host, cacheDir, host)
	path := filepath.Join(t.TempDir(), "modelgate.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// buildCrashModelgate builds modelgate with its crash points armed.
func buildCrashModelgate(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "modelgate-crashpoints")
	if out, err := exec.Command("go", "build", "-tags", "crashpoints", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build -tags crashpoints: %v\n%s", err, out)
	}
	return bin
}

// pullProcess is a `modelgate pull` running.
type pullProcess struct {
	cmd            *exec.Cmd
	stdout, stderr *syncBuffer
	done           chan struct{}
	err            error // once done is closed
}

// startPull starts `bin pull` of ref with cfg and env added to the test's
// environment; the test kills it at the end if it still runs.
func startPull(t *testing.T, bin, cfg, ref string, env ...string) *pullProcess {
	t.Helper()
	p := &pullProcess{cmd: exec.Command(bin, "pull", "--config", cfg, "--progress", "none", ref), stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait waits for the process to exit, at most a minute.
func (p *pullProcess) wait(t *testing.T) error {
	t.Helper()
	select {
	case <-p.done:
		return p.err
	case <-time.After(time.Minute):
		t.Fatalf("pull still runs after a minute\nstderr:\n%s", p.stderr.String())
		return nil
	}
}

// killedBySIGKILL reports whether err is the exit of a process killed by
// SIGKILL.
func killedBySIGKILL(err error) bool {
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		return false
	}
	ws, ok := exit.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

// pulled is what `modelgate pull` printed.
type pulled struct {
	digest, path string
	downloaded   int64
}

var pullLine = regexp.MustCompile(`(?m)^\s+(digest|path|downloaded):\s+(\S+)$`)

func parsePull(t *testing.T, stdout string) pulled {
	t.Helper()
	var p pulled
	for _, m := range pullLine.FindAllStringSubmatch(stdout, -1) {
		switch m[1] {
		case "digest":
			p.digest = m[2]
		case "path":
			p.path = m[2]
		case "downloaded":
			p.downloaded, _ = strconv.ParseInt(m[2], 10, 64)
		}
	}
	if p.digest == "" || p.path == "" {
		t.Fatalf("no digest and path in the output of pull:\n%s", stdout)
	}
	return p
}

// ingestState is what a killed pull left in the cache directory.
type ingestState struct {
	blobs    map[string]bool  // hex of the blobs in blobs/sha256
	partials map[string]int64 // hex → size of ingest/<hex>.partial
	ranges   map[string][]int // hex → parts done in ingest/<hex>.ranges
	tempDirs int              // ingest/model-*-* directories
	noRecord int              // models/sha256/<hex>/ without <hex>.json
}

func readIngestState(t *testing.T, dir string) ingestState {
	t.Helper()
	s := ingestState{blobs: map[string]bool{}, partials: map[string]int64{}, ranges: map[string][]int{}}
	blobs, err := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range blobs {
		s.blobs[e.Name()] = true
	}
	ingest, err := os.ReadDir(filepath.Join(dir, "ingest"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ingest {
		name := e.Name()
		switch {
		case e.IsDir() && strings.HasPrefix(name, "model-"):
			s.tempDirs++
		case strings.HasSuffix(name, ".partial"):
			fi, err := e.Info()
			if err != nil {
				t.Fatal(err)
			}
			s.partials[strings.TrimSuffix(name, ".partial")] = fi.Size()
		case strings.HasSuffix(name, ".ranges"):
			var rec struct{ Done []int }
			data, err := os.ReadFile(filepath.Join(dir, "ingest", name))
			if err != nil || json.Unmarshal(data, &rec) != nil {
				t.Fatalf("record of parts %s: %v %q", name, err, data)
			}
			s.ranges[strings.TrimSuffix(name, ".ranges")] = rec.Done
		}
	}
	models, err := os.ReadDir(filepath.Join(dir, "models", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range models {
		if _, err := os.Stat(filepath.Join(dir, "models", "sha256", e.Name()+".json")); e.IsDir() && err != nil {
			s.noRecord++
		}
	}
	return s
}

func (s ingestState) String() string {
	return fmt.Sprintf("%d blobs, partials %v, ranged %v, %d commit dirs, %d model dirs without record", len(s.blobs), s.partials, s.ranges, s.tempDirs, s.noRecord)
}

// crashModels are the models the crash tests pull: small downloads each
// layer in one stream; big has a layer above the fetcher's RangeThreshold
// (64 MiB), downloaded in parts on several connections.
type crashModels struct {
	small, big pushedModel
}

// rangePartSize is the fetcher's default part size below 8 GiB
// (fetcher.Options.RangePartSize, not settable from the command line).
const rangePartSize = 8 << 20

func TestPullSurvivesSIGKILL(t *testing.T) {
	reg := testregistry.Start(t)
	bin := buildCrashModelgate(t)
	models := crashModels{
		small: pushModel(t, reg, "models/small", map[string]int{"model.bin": 3 << 20, "tokenizer.json": 3 << 19, "config.json": 300 << 10}),
		big:   pushModel(t, reg, "models/big", map[string]int{"big.bin": 64<<20 + 4097, "config.json": 1000}),
	}

	type crash struct {
		name  string
		model pushedModel
		rate  int64         // throttle of each blob response, bytes/s
		point string        // MODELGATE_CRASHPOINT, or
		after time.Duration // SIGKILL this long after the start
		// check, when set, tells whether the crash happened where it was
		// meant to, from what it left.
		check func(s ingestState) error
		// repairFirst runs Repair before the second pull (as cache.Open
		// does at start), else after it.
		repairFirst bool
	}
	// whole reports whether the layer title of m lies whole in ingest/,
	// not renamed into blobs/.
	whole := func(s ingestState, m pushedModel, title string) bool {
		d := digest.FromBytes(m.files[title])
		n, ok := s.partials[d.Encoded()]
		return ok && n == int64(len(m.files[title])) && !s.blobs[d.Encoded()]
	}
	// Layers publish in the order of their sizes: the throttle sends each
	// response at the same rate.
	crashes := []crash{
		{name: "publish-before-rename", model: models.small, rate: 8 << 20, point: "publish-before-rename",
			check: func(s ingestState) error {
				if len(s.blobs) != 0 || !whole(s, models.small, "config.json") {
					return errors.New("want no blob, config.json whole in ingest/")
				}
				return nil
			}},
		{name: "publish-before-rename:3", model: models.small, rate: 8 << 20, point: "publish-before-rename:3",
			check: func(s ingestState) error {
				if len(s.blobs) != 2 || !whole(s, models.small, "model.bin") {
					return errors.New("want two blobs, model.bin whole in ingest/")
				}
				return nil
			}},
		{name: "commit-before-rename", model: models.small, rate: 8 << 20, point: "commit-before-rename",
			check: func(s ingestState) error {
				if len(s.blobs) != 3 || s.tempDirs != 1 {
					return errors.New("want every blob and one model directory being assembled")
				}
				return nil
			}},
		{name: "commit-before-record", model: models.small, rate: 8 << 20, point: "commit-before-record", repairFirst: true,
			check: func(s ingestState) error {
				if len(s.blobs) != 3 || s.noRecord != 1 {
					return errors.New("want every blob and one model directory without record")
				}
				return nil
			}},
		{name: "ranged publish-before-rename", model: models.big, rate: 32 << 20, point: "publish-before-rename:2",
			check: func(s ingestState) error {
				if len(s.blobs) != 1 || !whole(s, models.big, "big.bin") || len(s.ranges) != 0 {
					return errors.New("want one blob, big.bin whole in ingest/ without its record of parts")
				}
				return nil
			}},
	}
	// The small model takes about 1.5 s at 2 MiB/s per layer; the big one
	// about 1 s at 16 MiB/s per connection.
	for k := 1; k <= 9; k++ {
		crashes = append(crashes, crash{name: fmt.Sprintf("small after %dms", 150*k), model: models.small, rate: 2 << 20, after: time.Duration(k) * 150 * time.Millisecond, repairFirst: k%2 == 0})
	}
	for _, ms := range []int{350, 700} {
		crashes = append(crashes, crash{name: fmt.Sprintf("big after %dms", ms), model: models.big, rate: 16 << 20, after: time.Duration(ms) * time.Millisecond, repairFirst: ms == 700})
	}

	for _, tc := range crashes {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			proxy := faultproxy.Start(t, reg.DirectHost())
			proxy.Add(faultproxy.Fault{Method: "GET", Path: "/blobs/", Action: faultproxy.Throttle, Rate: tc.rate})
			dir := filepath.Join(t.TempDir(), "cache")
			cfg := writePullConfig(t, proxy.Host(), dir)
			ref := tc.model.ref(proxy.Host())

			// The pull that dies.
			var env []string
			if tc.point != "" {
				env = append(env, "MODELGATE_CRASHPOINT="+tc.point)
			}
			p := startPull(t, bin, cfg, ref, env...)
			if tc.after > 0 {
				select {
				case <-p.done:
				case <-time.After(tc.after):
					_ = p.cmd.Process.Signal(syscall.SIGKILL)
				}
			}
			err := p.wait(t)
			killed := killedBySIGKILL(err)
			if !killed && (tc.point != "" || err != nil) {
				t.Fatalf("first pull: %v, want killed by SIGKILL\nstderr:\n%s", err, p.stderr.String())
			}
			before := readIngestState(t, dir)
			t.Logf("killed=%v, left %s", killed, before)
			if tc.check != nil {
				if err := tc.check(before); err != nil {
					t.Fatalf("crash at %s left %s: %v", tc.point, before, err)
				}
			}

			if tc.repairFirst {
				repair(t, dir)
			}
			// The pull that finishes, at full speed.
			proxy.Reset()
			proxy.ResetRequests()
			again := startPull(t, bin, cfg, ref)
			if err := again.wait(t); err != nil {
				t.Fatalf("pull after the crash: %v\nstderr:\n%s", err, again.stderr.String())
			}
			out := parsePull(t, again.stdout.String())
			if out.digest != tc.model.digest.String() {
				t.Errorf("pulled %s, want %s", out.digest, tc.model.digest)
			}
			checkModelDir(t, out.path, tc.model)

			// Nothing verified before the crash was fetched again, and
			// each partial download went on where it stopped.
			if n := proxy.Count("", "/manifests/"); n == 0 {
				t.Errorf("no manifest request seen: the proxy is not in the path")
			}
			for name, data := range tc.model.files {
				d := digest.FromBytes(data)
				reqs := proxy.Matching("GET", "/blobs/"+d.String())
				kept, partial := before.partials[d.Encoded()]
				done, ranged := before.ranges[d.Encoded()]
				switch {
				case before.blobs[d.Encoded()]:
					if len(reqs) != 0 {
						t.Errorf("%s was verified before the crash and downloaded again: %v", name, reqs)
					}
				case ranged:
					checkRangedResume(t, name, reqs, done, int64(len(data)))
				case partial:
					checkStreamResume(t, name, reqs, kept, int64(len(data)))
				}
			}

			if !tc.repairFirst {
				repair(t, dir)
			}
			checkCacheClean(t, dir)
		})
	}
}

// repair opens the cache in dir and repairs it, as a process starting on
// it does.
func repair(t *testing.T, dir string) {
	t.Helper()
	c, err := cache.Open(dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := c.Repair(t.Context())
	if err != nil {
		t.Fatalf("repair: %v", err)
	}
	t.Logf("repair: %+v", rep)
}

// checkModelDir compares the files of the model directory with the pushed
// layers, byte for byte.
func checkModelDir(t *testing.T, dir string, m pushedModel) {
	t.Helper()
	for name, data := range m.files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("model file %s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, data) {
			t.Errorf("model file %s differs from the pushed layer (%d bytes, want %d)", name, len(got), len(data))
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != len(m.files) {
		t.Errorf("model directory holds %d entries (%v), want %d", len(ents), err, len(m.files))
	}
}

// checkStreamResume: a blob downloaded in one stream that had kept bytes
// on disk was asked for from there on, and only the rest was sent.
func checkStreamResume(t *testing.T, name string, reqs []faultproxy.Request, kept, size int64) {
	t.Helper()
	var sent int64
	for _, r := range reqs {
		sent += r.Bytes
	}
	if kept == size {
		if len(reqs) != 0 {
			t.Errorf("%s was whole on disk and downloaded again: %v", name, reqs)
		}
		return
	}
	if kept > 0 && (len(reqs) == 0 || reqs[0].Range != fmt.Sprintf("bytes=%d-", kept)) {
		t.Errorf("%s: %d bytes kept, want a request for bytes=%d-; got %v", name, kept, kept, reqs)
	}
	if sent != size-kept {
		t.Errorf("%s: %d bytes sent after the crash, want the %d not kept", name, sent, size-kept)
	}
}

// checkRangedResume: a blob downloaded in parts was asked for the parts
// its record did not list as done, none of those it did.
func checkRangedResume(t *testing.T, name string, reqs []faultproxy.Request, done []int, size int64) {
	t.Helper()
	isDone := map[int]bool{}
	for _, i := range done {
		isDone[i] = true
	}
	for _, r := range reqs {
		var start, end int64
		if _, err := fmt.Sscanf(r.Range, "bytes=%d-%d", &start, &end); err != nil {
			t.Errorf("%s: request without a range of parts after the crash: %+v", name, r)
			continue
		}
		for i := start / rangePartSize; i <= end/rangePartSize; i++ {
			if isDone[int(i)] {
				t.Errorf("%s: part %d was done before the crash and asked for again (%s)", name, i, r.Range)
			}
		}
	}
	if len(done) > 0 && len(reqs) > 0 {
		var sent int64
		for _, r := range reqs {
			sent += r.Bytes
		}
		t.Logf("%s: %d of %d parts kept, %d bytes sent after the crash", name, len(done), (size+rangePartSize-1)/rangePartSize, sent)
	}
}

// checkCacheClean: ingest/ holds nothing but lock files, every blob hashes
// to its name and is read-only, every model directory has its record.
func checkCacheClean(t *testing.T, dir string) {
	t.Helper()
	ingest, err := os.ReadDir(filepath.Join(dir, "ingest"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ingest {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".lock") {
			t.Errorf("left in ingest/: %s", e.Name())
		}
	}
	blobs := filepath.Join(dir, "blobs", "sha256")
	ents, err := os.ReadDir(blobs)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(blobs, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, f)
		fi, _ := f.Stat()
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != e.Name() {
			t.Errorf("blob %s hashes to %s", e.Name(), got)
		}
		if fi.Mode().Perm()&0o222 != 0 {
			t.Errorf("blob %s is writable: %v", e.Name(), fi.Mode())
		}
	}
	if s := readIngestState(t, dir); s.noRecord != 0 {
		t.Errorf("model directories without record: %s", s)
	}
}
