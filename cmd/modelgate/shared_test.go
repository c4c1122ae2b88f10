package main

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/internal/faultproxy"
	"github.com/modelgate/modelgate/internal/testregistry"
)

// TestTwoProcessesPullOneModelOnce runs two `modelgate pull` processes of
// one model into one cache directory at the same time, over a throttled
// link so that their downloads overlap: each blob is downloaded once, by
// one of them (the other waits on the blob's ingest lock and finds it
// verified), the model is committed once, and both print the same digest
// and directory.
func TestTwoProcessesPullOneModelOnce(t *testing.T) {
	reg := testregistry.Start(t)
	m := pushModel(t, reg, "models/shared", map[string]int{"model.bin": 2 << 20, "tokenizer.json": 1 << 20, "config.json": 200 << 10})
	var total int64
	for _, data := range m.files {
		total += int64(len(data))
	}
	// About a second for the largest layer.
	proxy := faultproxy.Start(t, reg.DirectHost())
	proxy.Add(faultproxy.Fault{Method: "GET", Path: "/blobs/", Action: faultproxy.Throttle, Rate: 2 << 20})
	bin := buildModelgate(t)
	dir := filepath.Join(t.TempDir(), "cache")
	cfg := writePullConfig(t, proxy.Host(), dir)
	ref := m.ref(proxy.Host())

	start := time.Now()
	procs := []*pullProcess{startPull(t, bin, cfg, ref), startPull(t, bin, cfg, ref)}
	var outs []pulled
	for i, p := range procs {
		if err := p.wait(t); err != nil {
			t.Fatalf("pull %d: %v\nstderr:\n%s", i, err, p.stderr.String())
		}
		outs = append(outs, parsePull(t, p.stdout.String()))
	}
	t.Logf("both pulls done in %v", time.Since(start))

	if outs[0].digest != m.digest.String() || outs[1].digest != outs[0].digest || outs[1].path != outs[0].path {
		t.Errorf("the pulls printed %+v and %+v, want digest %s and the same path", outs[0], outs[1], m.digest)
	}
	if got := outs[0].downloaded + outs[1].downloaded; got != total {
		t.Errorf("the pulls downloaded %d and %d bytes, want %d in all", outs[0].downloaded, outs[1].downloaded, total)
	}
	for name, data := range m.files {
		d := digest.FromBytes(data)
		if n := proxy.Count("GET", "/blobs/"+d.String()); n != 1 {
			t.Errorf("%s was requested %d times, want once: %v", name, n, proxy.Matching("GET", "/blobs/"+d.String()))
		}
	}
	// The pulls overlapped: every manifest request (both processes
	// resolve the tag and read the manifest) came before the largest layer
	// was complete, so the second process found it downloading.
	var largestDone time.Time
	for _, r := range proxy.Matching("GET", "/blobs/"+digest.FromBytes(m.files["model.bin"]).String()) {
		largestDone = r.End
	}
	manifests := proxy.Matching("", "/manifests/")
	for _, r := range manifests {
		if !r.Start.Before(largestDone) {
			t.Errorf("the pulls did not overlap: %s %s at %v, model.bin complete at %v", r.Method, r.Path, r.Start, largestDone)
		}
	}
	if len(manifests) < 2 {
		t.Errorf("manifest requests %v, want some from each process", manifests)
	}
	checkModelDir(t, outs[0].path, m)
	// Nothing crashed: nothing to repair.
	checkCacheClean(t, dir)
}
