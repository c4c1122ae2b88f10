package gateway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/faultproxy"
	"github.com/modelgate/modelgate/internal/testregistry"
)

// listedModel is one entry of GET /v1/models, with modelgate's fields.
type listedModel struct {
	ID            string     `json:"id"`
	Object        string     `json:"object"`
	Created       int64      `json:"created"`
	OwnedBy       string     `json:"owned_by"`
	Ref           string     `json:"ref"`
	State         string     `json:"state"`
	Digest        string     `json:"digest"`
	ResolvedAt    *time.Time `json:"resolved_at"`
	Offline       *bool      `json:"offline"`
	OfflineReason string     `json:"offline_reason"`
}

func listModel(t *testing.T, g *gatewayUnderTest, name string) listedModel {
	t.Helper()
	resp, data := do(t, "GET", g.url+"/v1/models", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v1/models: %d %s", resp.StatusCode, data)
	}
	list := decode[struct {
		Data []listedModel `json:"data"`
	}](t, data)
	for _, m := range list.Data {
		if m.ID == name {
			if m.Offline == nil {
				t.Errorf("GET /v1/models entry has no \"offline\" field: %s", data)
			}
			return m
		}
	}
	t.Fatalf("GET /v1/models has no %q: %s", name, data)
	return listedModel{}
}

// TestOfflineRestartServesLastResolvedDigest: a gateway pulls and serves a
// tag; the gateway stops, then the registry process stops (a real
// "registry down": connections refused); a new gateway on the same cache
// serves the digest the tag last resolved to, says so in /v1/models, and
// holds its pin. On a fresh cache the same request is 503
// registry_unavailable.
func TestOfflineRestartServesLastResolvedDigest(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	cacheDir := t.TempDir()
	spec := gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t)}

	before := time.Now()
	first := startGateway(t, reg, gatewayOptions{cacheDir: cacheDir}, spec)
	if resp, data := do(t, "POST", first.url+"/v1/chat/completions", chatBody); resp.StatusCode != 200 {
		t.Fatalf("first gateway: %d %s", resp.StatusCode, data)
	}
	m := listModel(t, first, "tiny")
	if *m.Offline || m.OfflineReason != "" || m.Digest != a.manifest.Digest.String() {
		t.Errorf("online entry = %+v, want offline false and digest %s", m, a.manifest.Digest)
	}
	if m.ResolvedAt == nil || m.ResolvedAt.Before(before.Add(-time.Second)) {
		t.Errorf("online entry resolved_at = %v, want about %s", m.ResolvedAt, before)
	}
	if m.Object != "model" || m.OwnedBy != "modelgate" || m.Created == 0 {
		t.Errorf("online entry lacks the OpenAI fields: %+v", m)
	}
	resolvedAt := *m.ResolvedAt
	first.stop(t)
	reg.Stop()

	second := startGateway(t, reg, gatewayOptions{cacheDir: cacheDir}, spec)
	resp, data := do(t, "POST", second.url+"/v1/chat/completions", chatBody)
	if resp.StatusCode != 200 {
		t.Fatalf("offline restart: %d %s", resp.StatusCode, data)
	}
	if got := resp.Header.Get(gateway.DigestHeader); got != a.manifest.Digest.String() {
		t.Errorf("offline %s = %q, want %q", gateway.DigestHeader, got, a.manifest.Digest)
	}
	if reply := decode[echoReply](t, data); reply.ModelFileSHA256 != a.weightsSHA256() {
		t.Errorf("offline runtime's model file hashes to %s, want %s", reply.ModelFileSHA256, a.weightsSHA256())
	}
	m = listModel(t, second, "tiny")
	if !*m.Offline || m.State != "ready" || m.Digest != a.manifest.Digest.String() {
		t.Errorf("offline entry = %+v, want offline true, ready, digest %s", m, a.manifest.Digest)
	}
	if !strings.Contains(m.OfflineReason, "unreachable") {
		t.Errorf("offline_reason %q does not say the registry is unreachable", m.OfflineReason)
	}
	// The time the digest was resolved, remembered by the cache: the first
	// gateway's, not the offline start's.
	if m.ResolvedAt == nil || m.ResolvedAt.Sub(resolvedAt).Abs() > 5*time.Second {
		t.Errorf("offline resolved_at = %v, want the first resolve's time, about %s", m.ResolvedAt, resolvedAt)
	}
	if !modelPinned(t, cacheDir, a.manifest.Digest) {
		t.Errorf("model served offline is not pinned in the cache")
	}

	fresh := startGateway(t, reg, gatewayOptions{}, spec)
	resp, data = do(t, "POST", fresh.url+"/v1/chat/completions", chatBody)
	checkError(t, resp, data, 503, "registry_unavailable", a.ref, "unreachable")
}

// TestOfflineNeedsTheRememberedModelInCache: a remembered digest whose
// model is not complete in the cache (evicted, or never committed) is no
// fallback: the registry's error is answered.
func TestOfflineNeedsTheRememberedModelInCache(t *testing.T) {
	ref := closedAddr(t) + "/models/tiny:v1"
	cacheDir := t.TempDir()
	c, err := cache.Open(cacheDir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.RememberRef(ref, digest.FromString("a model that is not here")); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, nil, gatewayOptions{cacheDir: cacheDir}, gateway.ModelSpec{Name: "tiny", Ref: ref, Profile: profile(t)})
	resp, data := do(t, "POST", g.url+"/v1/chat/completions", chatBody)
	checkError(t, resp, data, 503, "registry_unavailable", ref)
	if m := listModel(t, g, "tiny"); m.State != "failed" || *m.Offline {
		t.Errorf("entry = %+v, want failed and not offline", m)
	}
}

// TestDigestReferenceServedFromCacheWithoutRegistry: a digest reference
// whose model is in the cache starts without a single registry request,
// and is not "offline" (the digest names the content; nothing can be
// stale), even with the registry down.
func TestDigestReferenceServedFromCacheWithoutRegistry(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	ref := reg.Host() + "/models/tiny@" + a.manifest.Digest.String()
	cacheDir := t.TempDir()
	spec := gateway.ModelSpec{Name: "tiny", Ref: ref, Profile: profile(t)}

	first := startGateway(t, reg, gatewayOptions{cacheDir: cacheDir}, spec)
	if resp, data := do(t, "POST", first.url+"/v1/chat/completions", chatBody); resp.StatusCode != 200 {
		t.Fatalf("first gateway: %d %s", resp.StatusCode, data)
	}
	first.stop(t)

	reg.ResetRequests()
	second := startGateway(t, reg, gatewayOptions{cacheDir: cacheDir}, spec)
	if resp, data := do(t, "POST", second.url+"/v1/chat/completions", chatBody); resp.StatusCode != 200 {
		t.Fatalf("second gateway: %d %s", resp.StatusCode, data)
	}
	if reqs := reg.Requests(); len(reqs) != 0 {
		t.Errorf("a cached digest reference asked the registry: %v", reqs)
	}
	second.stop(t)

	reg.Stop()
	third := startGateway(t, reg, gatewayOptions{cacheDir: cacheDir}, spec)
	resp, data := do(t, "POST", third.url+"/v1/chat/completions", chatBody)
	if resp.StatusCode != 200 {
		t.Fatalf("registry down: %d %s", resp.StatusCode, data)
	}
	if got := resp.Header.Get(gateway.DigestHeader); got != a.manifest.Digest.String() {
		t.Errorf("%s = %q, want %q", gateway.DigestHeader, got, a.manifest.Digest)
	}
	if m := listModel(t, third, "tiny"); *m.Offline || m.Digest != a.manifest.Digest.String() || m.ResolvedAt != nil {
		t.Errorf("entry = %+v, want not offline, digest %s, no resolved_at", m, a.manifest.Digest)
	}
}

// TestRegistryLostMidPullServesLastResolvedDigest: the tag has moved to a
// new digest, the resolve reaches the registry, but the connection is cut
// while the new manifest downloads: the model the tag last resolved to is
// served from the cache, offline, rather than a 503.
func TestRegistryLostMidPullServesLastResolvedDigest(t *testing.T) {
	reg := testregistry.Start(t)
	proxy := faultproxy.Start(t, reg.DirectHost())
	old := pushModel(t, reg, "models/tiny", "v1")
	ref := proxy.Host() + "/models/tiny:v1"
	cacheDir := t.TempDir()
	opts := gatewayOptions{cacheDir: cacheDir, plainHosts: []string{proxy.Host()}}
	spec := gateway.ModelSpec{Name: "tiny", Ref: ref, Profile: profile(t)}

	first := startGateway(t, reg, opts, spec)
	if resp, data := do(t, "POST", first.url+"/v1/chat/completions", chatBody); resp.StatusCode != 200 {
		t.Fatalf("first gateway: %d %s", resp.StatusCode, data)
	}
	first.stop(t)

	moved := pushModel(t, reg, "models/tiny", "v1")
	proxy.Add(faultproxy.Fault{Method: "GET", Path: "/manifests/", Action: faultproxy.Cut})
	second := startGateway(t, reg, opts, spec)
	resp, data := do(t, "POST", second.url+"/v1/chat/completions", chatBody)
	if resp.StatusCode != 200 {
		t.Fatalf("registry lost mid-pull: %d %s", resp.StatusCode, data)
	}
	if got := resp.Header.Get(gateway.DigestHeader); got != old.manifest.Digest.String() {
		t.Errorf("%s = %q, want the last resolved %s (the tag now names %s)", gateway.DigestHeader, got, old.manifest.Digest, moved.manifest.Digest)
	}
	if proxy.Count("HEAD", "/manifests/v1") == 0 {
		t.Errorf("the tag was not resolved against the registry: %v", proxy.Requests())
	}
	if m := listModel(t, second, "tiny"); !*m.Offline || m.Digest != old.manifest.Digest.String() {
		t.Errorf("entry = %+v, want offline with digest %s", m, old.manifest.Digest)
	}
}
