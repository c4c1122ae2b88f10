package fetcher_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/internal/faultproxy"
	"github.com/modelgate/modelgate/internal/testregistry"
)

// Cancellation of a shared pull (issue: "a context cancelled by every waiter
// of a singleflight pull (the pull stops) versus by one of many (it goes
// on)"). The blob's response is held by the proxy after heldBytes, so the
// pull is in flight for as long as the test wants.

const heldBytes = 1 << 20

// promptly bounds how long a cancelled Pull may take to return.
const promptly = 5 * time.Second

type pullOutcome struct {
	res *fetcher.Result
	err error
}

func pullAsync(ctx context.Context, f *fetcher.Fetcher, ref string) <-chan pullOutcome {
	ch := make(chan pullOutcome, 1)
	go func() {
		res, err := f.Pull(ctx, ref)
		ch <- pullOutcome{res, err}
	}()
	return ch
}

func awaitPull(t *testing.T, ch <-chan pullOutcome, within time.Duration) pullOutcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(within):
		t.Fatalf("Pull did not return within %s", within)
		return pullOutcome{}
	}
}

// eventually polls cond every millisecond for up to 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func awaitHolding(t *testing.T, p *faultproxy.Proxy, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := p.AwaitHolding(ctx, n); err != nil {
		t.Fatalf("proxy holds %d responses, want %d: %v", p.Holding(), n, err)
	}
}

func awaitWaiters(t *testing.T, f *fetcher.Fetcher, d digest.Digest, n int) {
	t.Helper()
	eventually(t, "the pull has waiters", func() bool {
		got, _ := f.FlightWaiters(d)
		return got == n
	})
}

func TestPullCancelOneWaiterOfTwoGoesOn(t *testing.T) {
	r := newFaultRig(t)
	r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Times: 1, Action: faultproxy.Hold, After: heldBytes})
	f, _ := r.fetcher(t, fetcher.Options{})
	desc, err := f.Resolve(t.Context(), r.ref)
	if err != nil {
		t.Fatal(err)
	}

	ctx1, cancel1 := context.WithCancel(t.Context())
	defer cancel1()
	first := pullAsync(ctx1, f, r.ref)
	awaitHolding(t, r.proxy, 1)
	second := pullAsync(t.Context(), f, r.ref)
	awaitWaiters(t, f, desc.Digest, 2)

	cancel1()
	if o := awaitPull(t, first, promptly); !errors.Is(o.err, context.Canceled) {
		t.Fatalf("cancelled waiter got %v, want context.Canceled", o.err)
	}
	if n, _ := f.FlightWaiters(desc.Digest); n != 1 {
		t.Fatalf("%d waiters left, want 1", n)
	}
	r.proxy.Release()
	o := awaitPull(t, second, time.Minute)
	r.checkPulled(t, o.res, o.err)
	// One GET, never interrupted: the first waiter's cancellation did not
	// touch the download.
	reqs := r.blobGets()
	wantRanges(t, reqs, "")
	if len(reqs) == 1 && (reqs[0].Status != 200 || reqs[0].Bytes != faultBlobSize) {
		t.Errorf("blob GET %+v, want the whole blob with 200", reqs[0])
	}
}

func TestPullCancelAllWaitersStopsThenResumes(t *testing.T) {
	r := newFaultRig(t)
	r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Times: 1, Action: faultproxy.Hold, After: heldBytes})
	f, _ := r.fetcher(t, fetcher.Options{})
	desc, err := f.Resolve(t.Context(), r.ref)
	if err != nil {
		t.Fatal(err)
	}

	ctx1, cancel1 := context.WithCancel(t.Context())
	defer cancel1()
	ctx2, cancel2 := context.WithCancel(t.Context())
	defer cancel2()
	first := pullAsync(ctx1, f, r.ref)
	second := pullAsync(ctx2, f, r.ref)
	awaitHolding(t, r.proxy, 1)
	awaitWaiters(t, f, desc.Digest, 2)
	// Every byte sent before the hold is on disk: the resume point is known.
	eventually(t, "the held bytes are on disk", func() bool {
		fi, err := os.Stat(r.partialPath())
		return err == nil && fi.Size() == heldBytes
	})

	start := time.Now()
	cancel1()
	cancel2()
	for _, ch := range []<-chan pullOutcome{first, second} {
		if o := awaitPull(t, ch, promptly); !errors.Is(o.err, context.Canceled) {
			t.Fatalf("cancelled waiter got %v, want context.Canceled", o.err)
		}
	}
	t.Logf("both waiters returned %s after cancelling", time.Since(start))
	// The download stops: the client closes the held connection (nothing
	// released it) and the flight ends without another request.
	awaitHolding(t, r.proxy, 0)
	eventually(t, "the cancelled pull has ended", func() bool {
		_, flying := f.FlightWaiters(desc.Digest)
		return !flying
	})
	if n := len(r.blobGets()); n != 1 {
		t.Fatalf("%d blob GETs after every waiter left, want 1", n)
	}
	if got := r.partialSize(t); got != heldBytes {
		t.Fatalf("partial file has %d bytes, want the %d received", got, heldBytes)
	}

	// The cancellation is not remembered: the next Pull, on the same
	// Fetcher, starts afresh and resumes from the partial file.
	r.proxy.ResetRequests()
	res, err := f.Pull(t.Context(), r.ref)
	r.checkPulled(t, res, err)
	wantRanges(t, r.blobGets(), "bytes=1048576-")
	if res.Downloaded != faultBlobSize-heldBytes {
		t.Errorf("resumed pull downloaded %d bytes, want %d", res.Downloaded, faultBlobSize-heldBytes)
	}
}

// TestPullCancelOtherManifestSharingABlob: the blob download is shared by
// digest between the pulls of two manifests (f.blobs). When every waiter of
// the first pull leaves, the download stops; the second pull, whose waiter
// stays, must still complete.
func TestPullCancelOtherManifestSharingABlob(t *testing.T) {
	r := newFaultRig(t)
	// Same bytes, another file name: another manifest with the same blob.
	r.reg.Push(t, "models/faulty", "v2", []testregistry.Layer{{Title: "other.gguf", Data: r.data}})
	refB := r.proxy.Host() + "/models/faulty:v2"
	r.proxy.Add(faultproxy.Fault{Method: "GET", Path: r.blobPath(), Times: 1, Action: faultproxy.Hold, After: heldBytes})
	f, _ := r.fetcher(t, fetcher.Options{})

	ctxA, cancelA := context.WithCancel(t.Context())
	defer cancelA()
	a := pullAsync(ctxA, f, r.ref)
	awaitHolding(t, r.proxy, 1)
	manifestGets := r.proxy.Count("GET", "/manifests/")
	b := pullAsync(t.Context(), f, refB)
	// Let B's pull read its manifest and, most likely, join the held blob
	// download; if it has not joined yet, it downloads after A's ends.
	eventually(t, "the second pull read its manifest", func() bool {
		return r.proxy.Count("GET", "/manifests/") > manifestGets
	})
	time.Sleep(100 * time.Millisecond)

	cancelA()
	if o := awaitPull(t, a, promptly); !errors.Is(o.err, context.Canceled) {
		t.Fatalf("cancelled pull got %v, want context.Canceled", o.err)
	}
	o := awaitPull(t, b, time.Minute)
	if o.err != nil {
		t.Fatalf("pull of the other manifest: %v", o.err)
	}
	got, err := os.ReadFile(filepath.Join(o.res.Model.Dir, "other.gguf"))
	if err != nil || !bytes.Equal(got, r.data) {
		t.Fatalf("other.gguf: %v, equal %v", err, bytes.Equal(got, r.data))
	}
	t.Logf("blob GETs: %+v", r.blobGets())
}
