package fetcher_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/internal/faultproxy"
	"github.com/modelgate/modelgate/internal/testregistry"
)

// A 24 MiB blob, downloaded in parts from 4 MiB on: 12 parts of 2 MiB.
const (
	rangedBlobSize = 24 << 20
	rangedPartSize = 2 << 20
)

// rangedOptions split the rig's blob in parts. The probe never fires: the
// download keeps its one connection, so that the requests are known; the
// tests of added connections set RangeProbe.
func rangedOptions() fetcher.Options {
	return fetcher.Options{RangeThreshold: 4 << 20, RangePartSize: rangedPartSize, RangeConnections: 4, RangeProbe: time.Hour}
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

// rangeFrom is the Range header of a request for the blob from byte from
// to its end.
func rangeFrom(from int64) string {
	return fmt.Sprintf("bytes=%d-%d", from, rangedBlobSize-1)
}

func (r *faultRig) checkRangedPulled(t *testing.T, res *fetcher.Result, err error) {
	t.Helper()
	r.checkPulled(t, res, err)
	if _, err := os.Stat(r.rangesPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("ranges record left after a successful pull: %v", err)
	}
}

// peakInFlight is the most requests of reqs that the proxy served at once.
// A request still served (a throttled response whose client went away is
// noticed at its next write) counts as running to the end.
func peakInFlight(reqs []faultproxy.Request) int {
	never := time.Now().Add(time.Hour)
	type edge struct {
		at    time.Time
		delta int
	}
	var edges []edge
	for _, q := range reqs {
		end := q.End
		if end.IsZero() {
			end = never
		}
		edges = append(edges, edge{q.Start, +1}, edge{end, -1})
	}
	// Ends before starts at the same instant: touching is not overlapping.
	slices.SortFunc(edges, func(a, b edge) int {
		if c := a.at.Compare(b.at); c != 0 {
			return c
		}
		return a.delta - b.delta
	})
	peak, n := 0, 0
	for _, e := range edges {
		n += e.delta
		peak = max(peak, n)
	}
	return peak
}

func TestPullRangedAddsConnectionsOnASlowLink(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxConns int // Fetcher.MaxConnections; Concurrency is 4
		atMost   int // connections the blob may hold at once
	}{
		{"up to RangeConnections", 0, 4},
		{"within the fetcher's budget", 5, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRangedRig(t)
			// 4 MiB/s per connection: one connection would take 6 s, far
			// longer than the first probe.
			r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Action: faultproxy.Throttle, Rate: 4 << 20})
			opts := rangedOptions()
			opts.RangeProbe = 100 * time.Millisecond
			opts.MaxConnections = tc.maxConns
			f, _ := r.fetcher(t, opts)
			res, err := f.Pull(t.Context(), r.ref)
			r.checkRangedPulled(t, res, err)

			reqs := r.blobGets()
			if len(reqs) == 0 || reqs[0].Range != rangeFrom(0) {
				t.Fatalf("blob GETs %+v, want the first for the whole blob, %q", reqs, rangeFrom(0))
			}
			// The first probe always adds a connection; the limit is hard.
			if peak := peakInFlight(reqs); peak < 2 || peak > tc.atMost {
				t.Errorf("%d blob GETs in flight at most, want 2 to %d", peak, tc.atMost)
			}
			for _, q := range reqs {
				if q.Status != http.StatusPartialContent {
					t.Errorf("request %+v, want 206", q)
				}
			}
			// Every byte written once: a connection whose run was halved
			// stops at the new end.
			if res.Downloaded != rangedBlobSize {
				t.Errorf("Downloaded %d, want %d", res.Downloaded, rangedBlobSize)
			}
		})
	}
}

func TestPullRangedResumesAfterABreak(t *testing.T) {
	const after = 5<<20 + 12345
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
			r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Times: 1, Action: tc.action, After: after})
			f, _ := r.fetcher(t, tc.opts)
			res, err := f.Pull(t.Context(), r.ref)
			r.checkRangedPulled(t, res, err)
			// The connection went on from the byte it had, mid-part.
			wantRanges(t, r.blobGets(), rangeFrom(0), rangeFrom(after))
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
	// The 200 answer to the first request is the download: one GET.
	reqs := r.blobGets()
	wantRanges(t, reqs, rangeFrom(0))
	if len(reqs) == 1 && (reqs[0].Status != http.StatusOK || reqs[0].Bytes != rangedBlobSize) {
		t.Errorf("request %+v, want the whole blob with 200", reqs[0])
	}
	if res.Downloaded != rangedBlobSize {
		t.Errorf("Downloaded %d, want %d", res.Downloaded, rangedBlobSize)
	}
}

// cutAt is where interruptRanged breaks the download: in part 6, after
// parts 0 to 5 are done.
const cutAt = 6*rangedPartSize + 12345

// interruptRanged runs a pull whose connection is cut once in part 6 with
// MaxAttempts 1: it fails, and parts 0 to 5 are recorded as done.
func interruptRanged(t *testing.T, r *faultRig) {
	t.Helper()
	r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Times: 1, Action: faultproxy.Cut, After: cutAt})
	opts := rangedOptions()
	opts.MaxAttempts = 1
	f, _ := r.fetcher(t, opts)
	_, err := f.Pull(t.Context(), r.ref)
	if !errors.Is(err, fetcher.ErrUnreachable) || !strings.Contains(err.Error(), "parts 6-11") {
		t.Fatalf("pull cut in part 6 with MaxAttempts 1: %v, want ErrUnreachable naming parts 6-11", err)
	}
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

	// A later process fetches only the parts not done: the bytes of part
	// 6 before the cut were never recorded, so it starts at part 6.
	f, _ := r.fetcher(t, rangedOptions())
	res, err := f.Pull(t.Context(), r.ref)
	r.checkRangedPulled(t, res, err)
	wantRanges(t, r.blobGets(), rangeFrom(6*rangedPartSize))
	if want := int64(rangedBlobSize - 6*rangedPartSize); res.Downloaded != want {
		t.Errorf("resumed pull downloaded %d bytes, want the missing parts' %d", res.Downloaded, want)
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
	if _, err := fh.WriteAt([]byte{^r.data[3<<20]}, 3<<20); err != nil {
		t.Fatal(err)
	}
	if err := fh.Close(); err != nil {
		t.Fatal(err)
	}

	f, _ := r.fetcher(t, rangedOptions())
	res, err := f.Pull(t.Context(), r.ref)
	r.checkRangedPulled(t, res, err)
	// The missing parts, then a failed digest and every part from scratch.
	wantRanges(t, r.blobGets(), rangeFrom(6*rangedPartSize), rangeFrom(0))
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
	// One restart from scratch, no more.
	wantRanges(t, r.blobGets(), rangeFrom(0), rangeFrom(0))
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
