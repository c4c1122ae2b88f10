//go:build linux

package fetcher_test

import (
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/internal/testregistry"
	"github.com/modelgate/modelgate/internal/tmpfs"
	"github.com/modelgate/modelgate/oci"
)

// cache.min_free_bytes is tested on a real file system of known size: a
// tmpfs of 8 MiB holding only the cache, with models of one 1 MiB file
// (budgetModelSize). Pulled one by one, the free space goes about
// 8 → 7 → 6 MiB; a third model needs 1 MiB more.
//
// tmpfs counts space in pages (4 KiB, 64 KiB on some arm64 kernels): each
// blob takes its size rounded up to a page, each model record a page, lock
// files and directories none. So the free space is each step's nominal value
// less a few pages, and minFreeTest sits half a MiB from both bounds it must
// fall between: a pull that leaves 6 MiB free after its download passes
// (6 - 1 = 5 MiB left must not fit: 5 < 5.5), one that would leave 5 MiB
// does not (after evicting a model: 7 - 1 = 6 >= 5.5). checkWindow checks
// those bounds on the real counts before relying on them, so a file system
// that counts otherwise fails with its numbers rather than flaking.
const (
	minFreeFS   = "8m"
	minFreeTest = 11 << 19 // 5.5 MiB
)

// newMinFreeRig is a budgetRig whose cache is the root of a fresh tmpfs of
// minFreeFS, with cache.min_free_bytes minFreeTest and no byte budget. It
// skips the test where no tmpfs can be mounted (see tmpfs.Mount).
func newMinFreeRig(t *testing.T, names ...string) (*budgetRig, string) {
	t.Helper()
	dir := tmpfs.Mount(t, minFreeFS)
	r := &budgetRig{reg: testregistry.Start(t), data: map[string][]byte{}}
	for i, name := range names {
		data := make([]byte, budgetModelSize)
		_, _ = rand.NewChaCha8([32]byte{byte(i), 'f'}).Read(data)
		r.data[name] = data
		r.reg.Push(t, "models/"+name, "v1", []testregistry.Layer{{Title: "model.gguf", Data: data}})
	}
	c, err := cache.Open(dir, cache.Options{MinFreeBytes: minFreeTest})
	if err != nil {
		t.Fatal(err)
	}
	opts := fetcher.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	opts.Client = oci.NewClient(oci.ClientOptions{PlainHTTP: map[string]bool{r.reg.Host(): true}, Logger: opts.Logger})
	r.f, r.c = fetcher.New(c, opts), c
	return r, dir
}

// freeBytes is the free space on dir's file system as the cache measures
// it (statfs: available blocks times block size).
func freeBytes(t *testing.T, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// checkWindow fails unless, with free bytes free now, one more model does
// not fit above minFreeTest but does once one model's bytes are freed.
func checkWindow(t *testing.T, free int64) {
	t.Helper()
	const need = budgetModelSize
	afterEviction := free + budgetModelSize
	if free-need >= minFreeTest || afterEviction-need < minFreeTest {
		t.Fatalf("%d bytes free on the %s tmpfs with two models: want a third one (%d bytes) to need an eviction to keep %d free, and one to be enough; the file system counts space otherwise than this test assumes",
			free, minFreeFS, budgetModelSize, minFreeTest)
	}
}

func TestMinFreeEvictsLeastRecentlyUsed(t *testing.T) {
	r, dir := newMinFreeRig(t, "a", "b", "c")
	a := r.pull(t, "a")
	b := r.pull(t, "b")
	r.pull(t, "a") // a is now more recent than b
	if st := r.c.Stats(); st.Evictions != 0 {
		t.Fatalf("%d evictions pulling two models with %d bytes free, want 0", st.Evictions, freeBytes(t, dir))
	}
	free := freeBytes(t, dir)
	checkWindow(t, free)
	t.Logf("free with a and b: %d bytes", free)

	r.reg.ResetRequests()
	c := r.pull(t, "c")
	if !r.present(t, a, "a") || r.present(t, b, "b") || !r.present(t, c, "c") {
		t.Errorf("after pulling a, b, a, c with room above min_free_bytes for two: want a and c kept, b evicted")
	}
	if st := r.c.Stats(); st.Evictions != 1 {
		t.Errorf("%d evictions, want 1", st.Evictions)
	}
	if n := r.reg.Count("GET", "/blobs/"); n != 1 {
		t.Errorf("%d blob GETs pulling c, want 1", n)
	}
	if free := freeBytes(t, dir); free < minFreeTest {
		t.Errorf("%d bytes free after the pull, want at least min_free_bytes %d", free, minFreeTest)
	}
}

func TestMinFreeNeverEvictsPinned(t *testing.T) {
	r, dir := newMinFreeRig(t, "a", "b", "c")
	a := r.pull(t, "a")
	b := r.pull(t, "b")
	checkWindow(t, freeBytes(t, dir))

	// Every model is in use: no room, refused before a byte is downloaded.
	releaseA, err := r.c.PinModel(a.Model.Digest)
	if err != nil {
		t.Fatal(err)
	}
	releaseB, err := r.c.PinModel(b.Model.Digest)
	if err != nil {
		t.Fatal(err)
	}
	free := freeBytes(t, dir)
	r.reg.ResetRequests()
	_, err = r.f.Pull(t.Context(), r.ref("c"))
	if !errors.Is(err, cache.ErrTooLarge) {
		t.Fatalf("pull with every model pinned: %v, want ErrTooLarge", err)
	}
	t.Logf("refused: %v", err)
	if n := r.reg.Count("GET", "/blobs/"); n != 0 {
		t.Errorf("%d blob GETs for a pull that cannot fit, want 0", n)
	}
	if !r.present(t, a, "a") || !r.present(t, b, "b") {
		t.Errorf("a pinned model went")
	}
	if partials, _ := filepath.Glob(filepath.Join(dir, "ingest", "*.partial")); len(partials) != 0 || freeBytes(t, dir) != free {
		t.Errorf("the refused pull wrote: partial files %v, %d bytes free, %d before", partials, freeBytes(t, dir), free)
	}

	// With a, the least recently used, still in use, b goes instead.
	releaseB()
	c := r.pull(t, "c")
	if !r.present(t, a, "a") || r.present(t, b, "b") || !r.present(t, c, "c") {
		t.Errorf("with a pinned: want b evicted, a and c kept")
	}
	releaseA()
}
