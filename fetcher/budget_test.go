package fetcher_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/internal/testregistry"
	"github.com/modelgate/modelgate/oci"
)

// budgetRig is a real registry holding models of distinct random bytes,
// and a fetcher whose cache has a byte budget.
type budgetRig struct {
	reg  *testregistry.Registry
	f    *fetcher.Fetcher
	c    *cache.Cache
	data map[string][]byte // model name → its one file's bytes
}

const budgetModelSize = 1 << 20

// newBudgetRig pushes the named models, one file of 1 MiB each (plus, for
// names in shared, a tokenizer all of them list), and opens a cache with
// maxBytes.
func newBudgetRig(t *testing.T, maxBytes int64, names ...string) *budgetRig {
	t.Helper()
	r := &budgetRig{reg: testregistry.Start(t), data: map[string][]byte{}}
	for i, name := range names {
		data := make([]byte, budgetModelSize)
		_, _ = rand.NewChaCha8([32]byte{byte(i), 'b'}).Read(data)
		r.data[name] = data
		r.reg.Push(t, "models/"+name, "v1", []testregistry.Layer{{Title: "model.gguf", Data: data}})
	}
	c, err := cache.Open(t.TempDir(), cache.Options{MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	opts := fetcher.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	opts.Client = oci.NewClient(oci.ClientOptions{PlainHTTP: map[string]bool{r.reg.Host(): true}, Logger: opts.Logger})
	r.f, r.c = fetcher.New(c, opts), c
	return r
}

func (r *budgetRig) ref(name string) string { return r.reg.Host() + "/models/" + name + ":v1" }

func (r *budgetRig) pull(t *testing.T, name string) *fetcher.Result {
	t.Helper()
	res, err := r.f.Pull(t.Context(), r.ref(name))
	if err != nil {
		t.Fatalf("pull %s: %v", name, err)
	}
	return res
}

// present reports whether model name is complete in the cache with its
// bytes, and checks that its blob is present exactly when the model is.
func (r *budgetRig) present(t *testing.T, res *fetcher.Result, name string) bool {
	t.Helper()
	_, err := r.c.Model(res.Model.Digest)
	blob := r.c.HasBlob(digest.FromBytes(r.data[name]), budgetModelSize)
	if (err == nil) != blob {
		t.Errorf("model %s: record present %v, blob present %v", name, err == nil, blob)
	}
	if err != nil {
		return false
	}
	got, err := os.ReadFile(filepath.Join(res.Model.Dir, "model.gguf"))
	if err != nil || !bytes.Equal(got, r.data[name]) {
		t.Errorf("model %s: file %d bytes, %v", name, len(got), err)
	}
	return true
}

func TestBudgetEvictsLeastRecentlyUsed(t *testing.T) {
	// Room for two models and a half.
	r := newBudgetRig(t, 5*budgetModelSize/2, "a", "b", "c")
	a := r.pull(t, "a")
	b := r.pull(t, "b")
	r.pull(t, "a") // a is now more recent than b
	c := r.pull(t, "c")

	if !r.present(t, a, "a") || r.present(t, b, "b") || !r.present(t, c, "c") {
		t.Errorf("after pulling a, b, a, c with room for two: want a and c kept, b evicted")
	}
	if st := r.c.Stats(); st.Evictions != 1 || st.BytesUsed > 5*budgetModelSize/2 {
		t.Errorf("stats %+v, want 1 eviction and at most the budget used", st)
	}
}

func TestBudgetNeverEvictsPinned(t *testing.T) {
	r := newBudgetRig(t, 5*budgetModelSize/2, "a", "b", "c")
	a := r.pull(t, "a")
	b := r.pull(t, "b")
	// a is the least recently used, but its runtime runs.
	release, err := r.c.PinModel(a.Model.Digest)
	if err != nil {
		t.Fatal(err)
	}
	c := r.pull(t, "c")
	if !r.present(t, a, "a") || r.present(t, b, "b") || !r.present(t, c, "c") {
		t.Errorf("with a pinned: want a and c kept, b evicted")
	}

	// Everything pinned: no room, refused before any byte is downloaded.
	releaseC, err := r.c.PinModel(c.Model.Digest)
	if err != nil {
		t.Fatal(err)
	}
	r.reg.ResetRequests()
	_, err = r.f.Pull(t.Context(), r.ref("b"))
	if !errors.Is(err, cache.ErrTooLarge) {
		t.Fatalf("pull with every model pinned: %v, want ErrTooLarge", err)
	}
	if n := r.reg.Count("GET", "/blobs/"); n != 0 {
		t.Errorf("%d blob GETs for a pull that cannot fit, want 0", n)
	}
	// Unpinned, a goes, and b comes back.
	release()
	releaseC()
	b = r.pull(t, "b")
	if r.present(t, a, "a") || !r.present(t, b, "b") || !r.present(t, c, "c") {
		t.Errorf("after unpinning: want a evicted, b and c kept")
	}
}

func TestBudgetRefusesModelLargerThanBudget(t *testing.T) {
	r := newBudgetRig(t, budgetModelSize/2, "a")
	_, err := r.f.Pull(t.Context(), r.ref("a"))
	if !errors.Is(err, cache.ErrTooLarge) {
		t.Fatalf("pull of a model larger than the budget: %v, want ErrTooLarge", err)
	}
	if n := r.reg.Count("GET", "/blobs/"); n != 0 {
		t.Errorf("%d blob GETs, want none", n)
	}
}

func TestBudgetKeepsBlobsOtherModelsList(t *testing.T) {
	reg := testregistry.Start(t)
	shared := bytes.Repeat([]byte("t"), budgetModelSize)
	var models []string
	for i := range 3 {
		own := make([]byte, budgetModelSize)
		_, _ = rand.NewChaCha8([32]byte{byte(i), 's'}).Read(own)
		name := fmt.Sprintf("m%d", i)
		reg.Push(t, "family/"+name, "v1", []testregistry.Layer{{Title: "tokenizer.json", Data: shared}, {Title: "model.gguf", Data: own}})
		models = append(models, name)
	}
	// The shared tokenizer plus two models' own bytes fit; three do not.
	c, err := cache.Open(t.TempDir(), cache.Options{MaxBytes: 3*budgetModelSize + budgetModelSize/2})
	if err != nil {
		t.Fatal(err)
	}
	opts := fetcher.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	opts.Client = oci.NewClient(oci.ClientOptions{PlainHTTP: map[string]bool{reg.Host(): true}, Logger: opts.Logger})
	f := fetcher.New(c, opts)
	var results []*fetcher.Result
	for _, name := range models {
		res, err := f.Pull(t.Context(), reg.Host()+"/family/"+name+":v1")
		if err != nil {
			t.Fatalf("pull %s: %v", name, err)
		}
		results = append(results, res)
	}
	if _, err := c.Model(results[0].Model.Digest); !errors.Is(err, cache.ErrModelNotFound) {
		t.Errorf("oldest model: %v, want evicted", err)
	}
	if !c.HasBlob(digest.FromBytes(shared), budgetModelSize) {
		t.Error("tokenizer blob removed while two models still list it")
	}
	if n := reg.Count("GET", "/blobs/"+digest.FromBytes(shared).String()); n != 1 {
		t.Errorf("shared blob downloaded %d times, want once", n)
	}
}

// diskBytes is the space the regular files under the cache's blobs/ and
// models/ take, each inode counted once (as du counts hard links), model
// records excepted.
func diskBytes(t *testing.T, root string) int64 {
	t.Helper()
	seen := map[uint64]bool{}
	var n int64
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		top, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
		if d.IsDir() && top != "." && top != "blobs" && top != "models" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() || top == "models" && filepath.Dir(rel) == filepath.Join("models", "sha256") {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			t.Skip("no inode numbers on this system")
		}
		if !seen[st.Ino] {
			seen[st.Ino] = true
			n += fi.Size()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The cache's disk use is the distinct blobs plus the files unpacked from
// archives: raw layers are hard links, so two models sharing a tokenizer
// and a third sharing the first one's weights take their bytes once.
func TestCacheDiskUseIsDistinctBlobsPlusUnpacked(t *testing.T) {
	reg := testregistry.Start(t)
	tokenizer := bytes.Repeat([]byte("t"), 64<<10)
	weights := bytes.Repeat([]byte("w"), 256<<10)
	other := bytes.Repeat([]byte("o"), 128<<10)
	unpacked := map[string]string{"cfg/a.json": `{"a":1}`, "cfg/b.json": `{"b":2}`}
	archive := tarGzip(t, unpacked)
	reg.Push(t, "family/a", "v1", []testregistry.Layer{{Title: "tokenizer.json", Data: tokenizer}, {Title: "model.gguf", Data: weights}})
	reg.Push(t, "family/b", "v1", []testregistry.Layer{{Title: "tokenizer.json", Data: tokenizer}, {Title: "model.gguf", Data: other}})
	reg.Push(t, "family/c", "v1", []testregistry.Layer{{Title: "model.gguf", Data: weights},
		{MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Title: "cfg", Data: archive,
			Annotations: map[string]string{"io.deis.oras.content.unpack": "true"}}})
	f, c := newFetcher(t, reg, fetcher.Options{})
	for _, name := range []string{"a", "b", "c"} {
		if _, err := f.Pull(t.Context(), reg.Host()+"/family/"+name+":v1"); err != nil {
			t.Fatalf("pull %s: %v", name, err)
		}
	}
	var unpackedBytes int64
	for _, data := range unpacked {
		unpackedBytes += int64(len(data))
	}
	want := int64(len(tokenizer)+len(weights)+len(other)+len(archive)) + unpackedBytes
	if got := diskBytes(t, c.Root()); got != want {
		t.Errorf("cache holds %d bytes of blobs and model files, want the distinct blobs plus the unpacked files, %d", got, want)
	}
	if st := c.Stats(); st.Hits != 0 || st.Misses != 3 || st.Models != 3 {
		t.Errorf("stats %+v, want 3 misses, no hit, 3 models", st)
	}
	if _, err := f.Pull(t.Context(), reg.Host()+"/family/a:v1"); err != nil {
		t.Fatal(err)
	}
	if st := c.Stats(); st.Hits != 1 {
		t.Errorf("stats %+v after pulling a cached model, want 1 hit", st)
	}
}
