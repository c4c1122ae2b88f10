package fetcher_test

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/internal/testregistry"
)

// TestPullHonoursTheRateCap pulls 3 MiB in two layers under a 1 MiB/s cap.
// Only a lower bound on the time is checked: a slow machine can make the
// pull slower, never faster.
func TestPullHonoursTheRateCap(t *testing.T) {
	reg := testregistry.Start(t)
	a, b := make([]byte, 1536<<10), make([]byte, 1536<<10)
	rand.Read(a)
	rand.Read(b)
	reg.Push(t, "models/capped", "v1", []testregistry.Layer{{Title: "a.bin", Data: a}, {Title: "b.bin", Data: b}})
	const rate = 1 << 20
	f, _ := newFetcher(t, reg, fetcher.Options{MaxBytesPerSecond: rate})
	start := time.Now()
	res, err := f.Pull(context.Background(), reg.Host()+"/models/capped:v1")
	if err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	// The first burst (256 KiB) is free; the rest flows at the cap, both
	// layers together.
	floor := time.Duration(float64(len(a)+len(b)-256<<10) / rate * float64(time.Second))
	if elapsed < floor {
		t.Errorf("3 MiB pulled in %s under a 1 MiB/s cap, want at least %s", elapsed, floor)
	}
	if res.Downloaded != int64(len(a)+len(b)) {
		t.Errorf("downloaded %d bytes", res.Downloaded)
	}
}
