package fetcher_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/internal/faultproxy"
	"github.com/modelgate/modelgate/internal/testregistry"
	"github.com/modelgate/modelgate/oci"
)

// A 24 MiB blob, split from 4 MiB on into 4 parts of 6 MiB.
const (
	rangedBlobSize = 24 << 20
	rangedPartSize = 6 << 20
	rangedParts    = 4
)

func rangedOptions() fetcher.Options {
	return fetcher.Options{RangeThreshold: 4 << 20, RangeParts: rangedParts}
}

// newRangedRig is newFaultRig with a blob large enough to be split.
func newRangedRig(t *testing.T) *faultRig {
	t.Helper()
	reg := testregistry.Start(t)
	data := make([]byte, rangedBlobSize)
	_, _ = rand.NewChaCha8([32]byte{4, 5, 6}).Read(data)
	reg.Push(t, "models/ranged", "v1", []testregistry.Layer{{Title: "model.gguf", Data: data}})
	p := faultproxy.Start(t, reg.DirectHost())
	return &faultRig{
		reg: reg, proxy: p, data: data, blob: digest.FromBytes(data),
		ref: p.Host() + "/models/ranged:v1", dir: t.TempDir(),
	}
}

func (r *faultRig) rangesPath() string {
	return filepath.Join(r.dir, "ingest", r.blob.Encoded()+".ranges")
}

// partRange is the Range header of part i from byte from on.
func partRange(i int, from int64) string {
	end := min(int64(i+1)*rangedPartSize, rangedBlobSize) - 1
	return fmt.Sprintf("bytes=%d-%d", from, end)
}

// wantRangeSet checks the Range headers of reqs, in any order: parallel
// parts arrive as they will.
func wantRangeSet(t *testing.T, reqs []faultproxy.Request, ranges ...string) {
	t.Helper()
	var got []string
	for _, q := range reqs {
		got = append(got, q.Range)
	}
	slices.Sort(got)
	ranges = slices.Clone(ranges)
	slices.Sort(ranges)
	if !slices.Equal(got, ranges) {
		t.Errorf("blob GETs carried Range %q, want %q in any order", got, ranges)
	}
}

// allParts is the Range header of every part, from its first byte.
func allParts() []string {
	var out []string
	for i := range rangedParts {
		out = append(out, partRange(i, int64(i)*rangedPartSize))
	}
	return out
}

func (r *faultRig) checkRangedPulled(t *testing.T, res *fetcher.Result, err error) {
	t.Helper()
	r.checkPulled(t, res, err)
	if _, err := os.Stat(r.rangesPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ranges record left after a successful pull: %v", err)
	}
}

func TestPullRangedInParallel(t *testing.T) {
	r := newRangedRig(t)
	// A front that holds every part request after the first until all of
	// them are in flight: a fetcher that fetched the parts one by one
	// would never fill it.
	var mu sync.Mutex
	held := 0 // part requests waiting now
	all := make(chan struct{})
	filled := false
	target := &url.URL{Scheme: "http", Host: r.proxy.Host()}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(target)
		pr.Out.Host = pr.In.Host
	}}
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if rng := req.Header.Get("Range"); strings.Contains(req.URL.Path, "/blobs/") && rng != "" && !strings.HasPrefix(rng, "bytes=0-") {
			mu.Lock()
			if held++; held == rangedParts-1 {
				filled = true
				close(all)
			}
			mu.Unlock()
			select {
			case <-all:
			case <-time.After(20 * time.Second): // a guard against a hang, not a measure
			case <-req.Context().Done():
			}
			mu.Lock()
			held--
			mu.Unlock()
		}
		rp.ServeHTTP(w, req)
	}))
	t.Cleanup(front.Close)
	c, err := cache.Open(r.dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	opts := rangedOptions()
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	host := front.Listener.Addr().String()
	opts.Client = oci.NewClient(oci.ClientOptions{PlainHTTP: map[string]bool{host: true}, Logger: opts.Logger})
	f := fetcher.New(c, opts)

	res, err := f.Pull(t.Context(), host+"/models/ranged:v1")
	r.checkRangedPulled(t, res, err)
	mu.Lock()
	if !filled {
		t.Errorf("the %d part requests after the first were not in flight at once", rangedParts-1)
	}
	mu.Unlock()
	reqs := r.blobGets()
	wantRangeSet(t, reqs, allParts()...)
	if len(reqs) > 0 && reqs[0].Range != partRange(0, 0) {
		t.Errorf("first blob GET carried Range %q, want the first part %q alone", reqs[0].Range, partRange(0, 0))
	}
	for _, q := range reqs {
		if q.Status != http.StatusPartialContent || q.Bytes != rangedPartSize {
			t.Errorf("part request %+v, want 206 with %d bytes", q, rangedPartSize)
		}
	}
	if res.Downloaded != rangedBlobSize {
		t.Errorf("Downloaded %d, want %d", res.Downloaded, rangedBlobSize)
	}
}

func TestPullRangedPartResumes(t *testing.T) {
	const after = 1<<20 + 12345
	for _, tc := range []struct {
		name   string
		action faultproxy.Action
		opts   fetcher.Options
	}{
		{"cut", faultproxy.Cut, rangedOptions()},
		{"stall", faultproxy.Stall, func() fetcher.Options {
			o := rangedOptions()
			o.ReadTimeout = time.Second
			return o
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRangedRig(t)
			// The first part is asked for alone, so the first blob GET is
			// the one to break.
			r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Times: 1, Action: tc.action, After: after})
			f, _ := r.fetcher(t, tc.opts)
			res, err := f.Pull(t.Context(), r.ref)
			r.checkRangedPulled(t, res, err)
			// Only the rest of the broken part was asked for again.
			wantRangeSet(t, r.blobGets(), append(allParts(), partRange(0, after))...)
			if sent := r.proxy.BytesSent("GET", r.blobPath()); sent != rangedBlobSize {
				t.Errorf("proxy sent %d blob bytes, want the blob's %d", sent, rangedBlobSize)
			}
			if res.Downloaded != rangedBlobSize {
				t.Errorf("Downloaded %d, want %d", res.Downloaded, rangedBlobSize)
			}
		})
	}
}

func TestPullRangedFallsBackWhenRangeIgnored(t *testing.T) {
	r := newRangedRig(t)
	r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Action: faultproxy.IgnoreRange})
	f, _ := r.fetcher(t, rangedOptions())
	res, err := f.Pull(t.Context(), r.ref)
	r.checkRangedPulled(t, res, err)
	// The 200 answer to the first part request is the download: one GET.
	reqs := r.blobGets()
	wantRanges(t, reqs, partRange(0, 0))
	if len(reqs) == 1 && (reqs[0].Status != http.StatusOK || reqs[0].Bytes != rangedBlobSize) {
		t.Errorf("request %+v, want the whole blob with 200", reqs[0])
	}
	if res.Downloaded != rangedBlobSize {
		t.Errorf("Downloaded %d, want %d", res.Downloaded, rangedBlobSize)
	}
}

// interruptRanged runs a pull whose first part is cut once with MaxAttempts
// 1: it fails, and the other parts are recorded as done.
func interruptRanged(t *testing.T, r *faultRig) {
	t.Helper()
	r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Times: 1, Action: faultproxy.Cut, After: 1 << 20})
	opts := rangedOptions()
	opts.MaxAttempts = 1
	f, _ := r.fetcher(t, opts)
	_, err := f.Pull(t.Context(), r.ref)
	if !errors.Is(err, fetcher.ErrUnreachable) || !strings.Contains(err.Error(), "part 0") {
		t.Fatalf("pull with a part cut and MaxAttempts 1: %v, want ErrUnreachable naming part 0", err)
	}
	// The other parts were not stopped by part 0 giving up.
	wantRangeSet(t, r.blobGets(), allParts()...)
	if got := r.partialSize(t); got != rangedBlobSize {
		t.Errorf("partial file has %d bytes, want it pre-sized to %d", got, rangedBlobSize)
	}
	if _, err := os.Stat(r.rangesPath()); err != nil {
		t.Fatalf("ranges record: %v", err)
	}
	r.proxy.Reset()
	r.proxy.ResetRequests()
}

func TestPullRangedResumesLater(t *testing.T) {
	r := newRangedRig(t)
	interruptRanged(t, r)

	// A later process fetches only the part not done.
	f, _ := r.fetcher(t, rangedOptions())
	res, err := f.Pull(t.Context(), r.ref)
	r.checkRangedPulled(t, res, err)
	wantRanges(t, r.blobGets(), partRange(0, 0))
	if res.Downloaded != rangedPartSize {
		t.Errorf("resumed pull downloaded %d bytes, want the one part's %d", res.Downloaded, rangedPartSize)
	}
}

func TestPullRangedRedownloadsCorruptPart(t *testing.T) {
	r := newRangedRig(t)
	interruptRanged(t, r)
	// A part recorded as done holds a bad byte (a disk error, a bug).
	fh, err := os.OpenFile(r.partialPath(), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fh.WriteAt([]byte{^r.data[13<<20]}, 13<<20); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}

	f, _ := r.fetcher(t, rangedOptions())
	res, err := f.Pull(t.Context(), r.ref)
	r.checkRangedPulled(t, res, err)
	// The missing part, then a failed digest and every part from scratch.
	reqs := r.blobGets()
	if len(reqs) != 1+rangedParts {
		t.Fatalf("%d blob GETs, want %d: %+v", len(reqs), 1+rangedParts, reqs)
	}
	wantRanges(t, reqs[:2], partRange(0, 0), partRange(0, 0))
	wantRangeSet(t, reqs[1:], allParts()...)
}

func TestPullRangedMismatchIsNotRetriedTwice(t *testing.T) {
	r := newRangedRig(t)
	stored, err := os.ReadFile(r.reg.BlobDataPath(r.blob))
	if err != nil {
		t.Fatal(err)
	}
	stored[rangedPartSize+12345] ^= 0xFF
	if err := os.WriteFile(r.reg.BlobDataPath(r.blob), stored, 0o644); err != nil {
		t.Fatal(err)
	}
	f, _ := r.fetcher(t, rangedOptions())
	_, err = f.Pull(t.Context(), r.ref)
	if !errors.Is(err, cache.ErrDigestMismatch) {
		t.Fatalf("pull of a corrupt blob: %v, want ErrDigestMismatch", err)
	}
	// Every part twice: one restart from scratch, no more.
	wantRangeSet(t, r.blobGets(), append(allParts(), allParts()...)...)
	for _, p := range []string{r.partialPath(), r.rangesPath()} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s kept after a mismatch: %v", filepath.Base(p), err)
		}
	}
}

func TestPullBelowRangeThresholdUsesOneStream(t *testing.T) {
	r := newFaultRig(t) // 4 MiB
	opts := rangedOptions()
	opts.RangeThreshold = faultBlobSize + 1
	f, _ := r.fetcher(t, opts)
	res, err := f.Pull(t.Context(), r.ref)
	r.checkRangedPulled(t, res, err)
	wantRanges(t, r.blobGets(), "")
}
