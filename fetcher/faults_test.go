package fetcher_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/internal/faultproxy"
	"github.com/modelgate/modelgate/internal/testregistry"
	"github.com/modelgate/modelgate/oci"
)

// faultBlobSize is large enough to span many reads and TCP segments.
const faultBlobSize = 4 << 20

// faultRig is a real registry behind a fault proxy, a model with one large
// blob pushed to it, and a cache directory.
type faultRig struct {
	reg   *testregistry.Registry
	proxy *faultproxy.Proxy
	data  []byte
	blob  digest.Digest
	ref   string // through the proxy
	dir   string // cache root
}

func newFaultRig(t *testing.T) *faultRig {
	t.Helper()
	reg := testregistry.Start(t)
	data := make([]byte, faultBlobSize)
	rng := rand.NewChaCha8([32]byte{1, 2, 3})
	_, _ = rng.Read(data)
	reg.Push(t, "models/faulty", "v1", []testregistry.Layer{{Title: "model.gguf", Data: data}})
	p := faultproxy.Start(t, reg.DirectHost())
	return &faultRig{
		reg: reg, proxy: p, data: data, blob: digest.FromBytes(data),
		ref: p.Host() + "/models/faulty:v1", dir: t.TempDir(),
	}
}

// fetcher returns a new Fetcher on the rig's cache directory, as a new
// process would open it. ReadTimeout and MaxAttempts come from opts.
func (r *faultRig) fetcher(t *testing.T, opts fetcher.Options) (*fetcher.Fetcher, *cache.Cache) {
	t.Helper()
	c, err := cache.Open(r.dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	opts.Client = oci.NewClient(oci.ClientOptions{PlainHTTP: map[string]bool{r.proxy.Host(): true}, Logger: opts.Logger})
	return fetcher.New(c, opts), c
}

func (r *faultRig) blobPath() string { return "/blobs/" + r.blob.String() }

func (r *faultRig) partialPath() string {
	return filepath.Join(r.dir, "ingest", r.blob.Encoded()+".partial")
}

func (r *faultRig) partialSize(t *testing.T) int64 {
	t.Helper()
	fi, err := os.Stat(r.partialPath())
	if err != nil {
		t.Fatalf("partial file: %v", err)
	}
	return fi.Size()
}

// blobGets returns the GETs of the model's blob seen by the proxy.
func (r *faultRig) blobGets() []faultproxy.Request {
	return r.proxy.Matching("GET", r.blobPath())
}

// checkPulled fails unless the pull succeeded with the blob's bytes in the
// model directory and no partial file left.
func (r *faultRig) checkPulled(t *testing.T, res *fetcher.Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("pull: %v", err)
	}
	got, err := os.ReadFile(filepath.Join(res.Model.Dir, "model.gguf"))
	if err != nil || !bytes.Equal(got, r.data) {
		t.Fatalf("model.gguf: %v, equal %v", err, bytes.Equal(got, r.data))
	}
	if _, err := os.Stat(r.partialPath()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("partial file left after a successful pull: %v", err)
	}
}

func wantRanges(t *testing.T, reqs []faultproxy.Request, ranges ...string) {
	t.Helper()
	var got []string
	for _, q := range reqs {
		got = append(got, q.Range)
	}
	if fmt.Sprint(got) != fmt.Sprint(ranges) {
		t.Errorf("blob GETs carried Range %q, want %q", got, ranges)
	}
}

func TestPullResumesAfterCut(t *testing.T) {
	r := newFaultRig(t)
	const cut = 1<<20 + 12345
	r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Times: 1, Action: faultproxy.Cut, After: cut})
	f, _ := r.fetcher(t, fetcher.Options{})

	res, err := f.Pull(t.Context(), r.ref)
	r.checkPulled(t, res, err)
	reqs := r.blobGets()
	wantRanges(t, reqs, "", fmt.Sprintf("bytes=%d-", cut))
	if reqs[0].Bytes != cut || reqs[1].Status != 206 {
		t.Errorf("requests %+v", reqs)
	}
	// The resume fetched only what was missing.
	if sent := r.proxy.BytesSent("GET", r.blobPath()); sent != faultBlobSize {
		t.Errorf("proxy sent %d blob bytes, want the blob's %d", sent, faultBlobSize)
	}
	if res.Downloaded != faultBlobSize {
		t.Errorf("Downloaded %d, want %d", res.Downloaded, faultBlobSize)
	}
}

func TestPullGivesUpThenResumesLater(t *testing.T) {
	r := newFaultRig(t)
	const chunk = 256 << 10
	r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Action: faultproxy.Cut, After: chunk})
	f, _ := r.fetcher(t, fetcher.Options{MaxAttempts: 3})

	_, err := f.Pull(t.Context(), r.ref)
	if !errors.Is(err, fetcher.ErrUnreachable) || !strings.Contains(err.Error(), "3 attempts") {
		t.Fatalf("pull cut in every attempt: %v, want ErrUnreachable after 3 attempts", err)
	}
	wantRanges(t, r.blobGets(), "", "bytes=262144-", "bytes=524288-")
	if got := r.partialSize(t); got != 3*chunk {
		t.Fatalf("partial file has %d bytes, want the %d received", got, 3*chunk)
	}

	// A later run, without faults, resumes from the partial file.
	r.proxy.Reset()
	r.proxy.ResetRequests()
	f2, _ := r.fetcher(t, fetcher.Options{})
	res, err := f2.Pull(t.Context(), r.ref)
	r.checkPulled(t, res, err)
	wantRanges(t, r.blobGets(), "bytes=786432-")
	if res.Downloaded != faultBlobSize-3*chunk {
		t.Errorf("resumed pull downloaded %d bytes, want %d", res.Downloaded, faultBlobSize-3*chunk)
	}
}

func TestPullStallHitsReadTimeout(t *testing.T) {
	t.Run("then recovers", func(t *testing.T) {
		r := newFaultRig(t)
		r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Times: 1, Action: faultproxy.Stall, After: 100000})
		f, _ := r.fetcher(t, fetcher.Options{ReadTimeout: 300 * time.Millisecond})
		res, err := f.Pull(t.Context(), r.ref)
		r.checkPulled(t, res, err)
		wantRanges(t, r.blobGets(), "", "bytes=100000-")
	})
	t.Run("every attempt", func(t *testing.T) {
		r := newFaultRig(t)
		r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Action: faultproxy.Stall, After: 0})
		f, _ := r.fetcher(t, fetcher.Options{ReadTimeout: 300 * time.Millisecond, MaxAttempts: 2})
		// The context only guards against a hang; the read timeout must
		// end the pull long before it.
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		_, err := f.Pull(ctx, r.ref)
		if !errors.Is(err, fetcher.ErrUnreachable) || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "read timeout") {
			t.Fatalf("stalled pull: %v, want ErrUnreachable from the read timeout", err)
		}
		if n := len(r.blobGets()); n != 2 {
			t.Errorf("%d blob GETs, want MaxAttempts = 2", n)
		}
	})
}

func TestPullStartsOverWhenRangeIgnored(t *testing.T) {
	r := newFaultRig(t)
	const cut = 500000
	r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Times: 1, Action: faultproxy.Cut, After: cut})
	r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Times: 1, Action: faultproxy.IgnoreRange})
	f, _ := r.fetcher(t, fetcher.Options{})

	res, err := f.Pull(t.Context(), r.ref)
	r.checkPulled(t, res, err)
	reqs := r.blobGets()
	wantRanges(t, reqs, "", "bytes=500000-")
	if reqs[1].Status != 200 || reqs[1].Bytes != faultBlobSize {
		t.Errorf("second request %+v, want the whole blob with 200", reqs[1])
	}
	if res.Downloaded != cut+faultBlobSize {
		t.Errorf("Downloaded %d, want %d (the cut bytes were wasted)", res.Downloaded, cut+faultBlobSize)
	}
}

func TestPullStartsOverOnTooLongPartial(t *testing.T) {
	r := newFaultRig(t)
	f, _ := r.fetcher(t, fetcher.Options{})
	if err := os.WriteFile(r.partialPath(), make([]byte, faultBlobSize+100), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := f.Pull(t.Context(), r.ref)
	r.checkPulled(t, res, err)
	wantRanges(t, r.blobGets(), "")
}

func TestPullRedownloadsCorruptPartial(t *testing.T) {
	r := newFaultRig(t)
	f, c := r.fetcher(t, fetcher.Options{})
	const kept = 1 << 20
	corrupt := bytes.Clone(r.data[:kept])
	corrupt[kept/2] ^= 0x01
	if err := os.WriteFile(r.partialPath(), corrupt, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := f.Pull(t.Context(), r.ref)
	r.checkPulled(t, res, err)
	// The resumed blob failed its digest check; the partial was deleted and
	// the blob downloaded once more from the first byte.
	wantRanges(t, r.blobGets(), "bytes=1048576-", "")
	if !c.HasBlob(r.blob, faultBlobSize) {
		t.Error("blob not in the cache")
	}
}

func TestPullMismatchIsNotRetriedTwice(t *testing.T) {
	r := newFaultRig(t)
	// The registry itself serves bad bytes (same length).
	stored, err := os.ReadFile(r.reg.BlobDataPath(r.blob))
	if err != nil {
		t.Fatal(err)
	}
	stored[12345] ^= 0xFF
	if err := os.WriteFile(r.reg.BlobDataPath(r.blob), stored, 0o644); err != nil {
		t.Fatal(err)
	}

	t.Run("from scratch", func(t *testing.T) {
		r.proxy.ResetRequests()
		f, _ := r.fetcher(t, fetcher.Options{})
		_, err := f.Pull(t.Context(), r.ref)
		if !errors.Is(err, cache.ErrDigestMismatch) {
			t.Fatalf("pull of a corrupt blob: %v, want ErrDigestMismatch", err)
		}
		wantRanges(t, r.blobGets(), "")
		if _, err := os.Stat(r.partialPath()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("partial kept after a mismatch: %v", err)
		}
	})
	t.Run("resumed", func(t *testing.T) {
		r.proxy.ResetRequests()
		if err := os.WriteFile(r.partialPath(), r.data[:1000], 0o644); err != nil {
			t.Fatal(err)
		}
		f, _ := r.fetcher(t, fetcher.Options{})
		_, err := f.Pull(t.Context(), r.ref)
		if !errors.Is(err, cache.ErrDigestMismatch) {
			t.Fatalf("pull of a corrupt blob: %v, want ErrDigestMismatch", err)
		}
		// One restart from scratch, no more.
		wantRanges(t, r.blobGets(), "bytes=1000-", "")
	})
}

func TestPullRetriesStatuses(t *testing.T) {
	t.Run("429 with Retry-After", func(t *testing.T) {
		r := newFaultRig(t)
		r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Times: 1, Action: faultproxy.Status, Code: 429, RetryAfter: "1"})
		f, _ := r.fetcher(t, fetcher.Options{})
		start := time.Now()
		res, err := f.Pull(t.Context(), r.ref)
		r.checkPulled(t, res, err)
		reqs := r.blobGets()
		if len(reqs) != 2 || reqs[0].Status != 429 || reqs[1].Status != 200 {
			t.Errorf("blob GETs %+v, want a 429 then a 200", reqs)
		}
		if d := time.Since(start); d < time.Second {
			t.Errorf("pull took %s; Retry-After: 1 was not honoured", d)
		}
	})
	t.Run("503 twice", func(t *testing.T) {
		r := newFaultRig(t)
		r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Times: 2, Action: faultproxy.Status, Code: 503})
		f, _ := r.fetcher(t, fetcher.Options{})
		res, err := f.Pull(t.Context(), r.ref)
		r.checkPulled(t, res, err)
		if n := len(r.blobGets()); n != 3 {
			t.Errorf("%d blob GETs, want 3", n)
		}
	})
	t.Run("500 forever", func(t *testing.T) {
		r := newFaultRig(t)
		r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Action: faultproxy.Status, Code: 500})
		f, _ := r.fetcher(t, fetcher.Options{})
		_, err := f.Pull(t.Context(), r.ref)
		if !errors.Is(err, fetcher.ErrUnreachable) || !strings.Contains(err.Error(), "500") {
			t.Fatalf("pull against a failing registry: %v, want ErrUnreachable naming the 500", err)
		}
		// oras-go's retry transport makes 1 + 5 requests; the download
		// does not multiply them.
		if n := len(r.blobGets()); n < 2 || n > 6 {
			t.Errorf("%d blob GETs, want 2..6", n)
		}
	})
	t.Run("404 is not retried", func(t *testing.T) {
		r := newFaultRig(t)
		r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Action: faultproxy.Status, Code: 404})
		f, _ := r.fetcher(t, fetcher.Options{})
		_, err := f.Pull(t.Context(), r.ref)
		if !errors.Is(err, fetcher.ErrNotFound) {
			t.Fatalf("pull of a missing blob: %v, want ErrNotFound", err)
		}
		if n := len(r.blobGets()); n != 1 {
			t.Errorf("%d blob GETs, want 1", n)
		}
	})
}

func TestPullKeepsRangeAcrossRedirect(t *testing.T) {
	// Registries send blob GETs to object storage with a redirect, often to
	// another host; net/http drops Authorization there but keeps Range.
	r := newFaultRig(t)
	_, port, _ := strings.Cut(r.proxy.Host(), ":")
	storage := "localhost:" + port // another host name for the same proxy
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		target := r.proxy.Host()
		if strings.Contains(req.URL.Path, "/blobs/") {
			target = storage
		}
		http.Redirect(w, req, "http://"+target+req.URL.RequestURI(), http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	c, err := cache.Open(r.dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	host := redirector.Listener.Addr().String()
	f := fetcher.New(c, fetcher.Options{Logger: logger, Client: oci.NewClient(oci.ClientOptions{PlainHTTP: map[string]bool{host: true}, Logger: logger})})
	const kept = 777777
	if err := os.WriteFile(r.partialPath(), r.data[:kept], 0o644); err != nil {
		t.Fatal(err)
	}

	res, err := f.Pull(t.Context(), host+"/models/faulty:v1")
	r.checkPulled(t, res, err)
	reqs := r.blobGets()
	wantRanges(t, reqs, "bytes=777777-")
	if len(reqs) == 1 && reqs[0].Status != 206 {
		t.Errorf("redirected range GET answered %d, want 206", reqs[0].Status)
	}
}
