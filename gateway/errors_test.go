package gateway_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/modelgate/modelgate/gateway"
	"github.com/modelgate/modelgate/internal/testregistry"
)

// TestErrorRows checks every row of docs/errors.md: the status, the OpenAI
// error shape, the code, and a message that names what went wrong.
func TestErrorRows(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	ok := profile(t)

	tests := []struct {
		name       string
		ref        string
		profile    []string // extra flags for the test runtime
		maxCache   int64
		maxRequest int64
		method     string
		path       string
		body       string
		wantStatus int
		wantCode   string
		wantInMsg  []string
	}{
		{name: "unknown model", ref: a.ref, path: "/v1/chat/completions", body: `{"model":"nope"}`,
			wantStatus: 404, wantCode: "model_not_found", wantInMsg: []string{`"nope"`, "tiny"}},
		{name: "unknown model by path", ref: a.ref, method: "GET", path: "/models/nope/health",
			wantStatus: 404, wantCode: "model_not_found", wantInMsg: []string{`"nope"`}},
		{name: "body not JSON", ref: a.ref, path: "/v1/completions", body: `{"model":`,
			wantStatus: 400, wantCode: "invalid_request", wantInMsg: []string{"not a JSON object"}},
		{name: "body without model", ref: a.ref, path: "/v1/embeddings", body: `{"input":"x"}`,
			wantStatus: 400, wantCode: "invalid_request", wantInMsg: []string{`"model"`}},
		{name: "body too large", ref: a.ref, maxRequest: 64, path: "/v1/chat/completions", body: `{"model":"tiny","prompt":"` + strings.Repeat("x", 100) + `"}`,
			wantStatus: 413, wantCode: "request_too_large", wantInMsg: []string{"64 bytes"}},
		{name: "unknown route", ref: a.ref, method: "GET", path: "/v1/nothing",
			wantStatus: 404, wantCode: "not_found"},
		{name: "tag missing", ref: reg.Host() + "/models/tiny:v9", path: "/v1/chat/completions", body: chatBody,
			wantStatus: 404, wantCode: "artifact_not_found", wantInMsg: []string{reg.Host() + "/models/tiny:v9", "not found"}},
		{name: "repository missing", ref: reg.Host() + "/models/absent:v1", path: "/v1/chat/completions", body: chatBody,
			wantStatus: 404, wantCode: "artifact_not_found", wantInMsg: []string{reg.Host() + "/models/absent:v1"}},
		{name: "registry unreachable", ref: closedAddr(t) + "/models/tiny:v1", path: "/v1/chat/completions", body: chatBody,
			wantStatus: 503, wantCode: "registry_unavailable", wantInMsg: []string{"/models/tiny:v1", "unreachable"}},
		{name: "model larger than cache budget", ref: a.ref, maxCache: 1000, path: "/v1/chat/completions", body: chatBody,
			wantStatus: 507, wantCode: "insufficient_storage", wantInMsg: []string{a.ref, "budget"}},
		{name: "runtime exits at start", ref: a.ref, profile: []string{"--exit-at-start", "3"}, path: "/v1/chat/completions", body: chatBody,
			wantStatus: 500, wantCode: "runtime_exited", wantInMsg: []string{"testrt", "exit status 3", "fatal: model load failed (test)"}},
		{name: "runtime never healthy", ref: a.ref, profile: []string{"--never-ready"}, path: "/v1/chat/completions", body: chatBody,
			wantStatus: 504, wantCode: "runtime_not_ready", wantInMsg: []string{"testrt", "/health", "status 503"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prof := ok
			if tc.profile != nil {
				prof = profile(t, tc.profile...)
			}
			if tc.name == "runtime never healthy" {
				prof.StartupTimeout = time.Second
			}
			g := startGateway(t, reg, gatewayOptions{maxCacheBytes: tc.maxCache, maxRequestBytes: tc.maxRequest},
				gateway.ModelSpec{Name: "tiny", Ref: tc.ref, Profile: prof})
			reg.ResetRequests()
			method := tc.method
			if method == "" {
				method = "POST"
			}
			resp, data := do(t, method, g.url+tc.path, tc.body)
			checkError(t, resp, data, tc.wantStatus, tc.wantCode, tc.wantInMsg...)
			if tc.name == "model larger than cache budget" {
				if n := reg.Count("GET", "/blobs/"); n != 0 {
					t.Errorf("refused model still downloaded %d blobs", n)
				}
			}
			if tc.wantStatus == 503 && resp.Header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
		})
	}
}

// TestDigestMismatchIsRefusedAndLeavesCacheClean corrupts a blob inside the
// real registry's storage: the registry serves the wrong bytes under the
// right digest, as a broken mirror or disk would.
func TestDigestMismatchIsRefusedAndLeavesCacheClean(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	weights := digest.FromBytes(a.weights)
	corrupt := append([]byte(nil), a.weights...)
	corrupt[len(corrupt)/2] ^= 0xff
	if err := os.WriteFile(reg.BlobDataPath(weights), corrupt, 0o644); err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, reg, gatewayOptions{}, gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t)})

	resp, data := do(t, "POST", g.url+"/v1/chat/completions", chatBody)
	checkError(t, resp, data, 502, "digest_mismatch", a.ref, weights.String())

	if _, err := os.Stat(filepath.Join(g.cache, "blobs", "sha256", weights.Encoded())); !os.IsNotExist(err) {
		t.Errorf("corrupt blob is in the cache (stat: %v)", err)
	}
	if _, err := os.Stat(filepath.Join(g.cache, "models", "sha256", a.manifest.Digest.Encoded())); !os.IsNotExist(err) {
		t.Errorf("model directory laid out from a corrupt blob (stat: %v)", err)
	}
	// The bad bytes are gone; a download of another layer cut short by the
	// failure may stay in ingest/ to be resumed (and verified) next time.
	if _, err := os.Stat(filepath.Join(g.cache, "ingest", weights.Encoded()+".partial")); !os.IsNotExist(err) {
		t.Errorf("corrupt partial download kept (stat: %v)", err)
	}
	if left, _ := filepath.Glob(filepath.Join(g.cache, "ingest", "model-*")); len(left) != 0 {
		t.Errorf("half-built model directory left: %v", left)
	}

	// Once the registry is repaired, the next request pulls and serves.
	if err := os.WriteFile(reg.BlobDataPath(weights), a.weights, 0o644); err != nil {
		t.Fatal(err)
	}
	if resp, data := do(t, "POST", g.url+"/v1/chat/completions", chatBody); resp.StatusCode != 200 {
		t.Fatalf("after repair: %d %s", resp.StatusCode, data)
	}
}

// TestRuntimeCrashMidRequest: a runtime that dies while answering gives
// 502 runtime_error, and the next request starts a new process.
func TestRuntimeCrashMidRequest(t *testing.T) {
	reg := testregistry.Start(t)
	a := pushModel(t, reg, "models/tiny", "v1")
	g := startGateway(t, reg, gatewayOptions{}, gateway.ModelSpec{Name: "tiny", Ref: a.ref, Profile: profile(t)})

	resp, data := do(t, "POST", g.url+"/v1/chat/completions", chatBody)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	firstPID := decode[echoReply](t, data).PID

	resp, data = do(t, "POST", g.url+"/models/tiny/crash", "")
	checkError(t, resp, data, 502, "runtime_error", "forward to runtime")

	// The process is gone; the model goes cold and comes back on demand.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, data = do(t, "POST", g.url+"/v1/chat/completions", chatBody)
		if resp.StatusCode == 200 {
			break
		}
		// A request that raced the exit may still see the dying process.
		if time.Now().After(deadline) {
			t.Fatalf("no recovery after crash: %d %s", resp.StatusCode, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if pid := decode[echoReply](t, data).PID; pid == firstPID {
		t.Errorf("served by the crashed process %d", pid)
	}
}

func checkError(t *testing.T, resp *http.Response, data []byte, status int, code string, inMsg ...string) {
	t.Helper()
	t.Logf("answer %d: %s", resp.StatusCode, data)
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d: %s", resp.StatusCode, status, data)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q, want JSON", ct)
	}
	e := decode[apiErr](t, data)
	if e.Error.Code != code || e.Error.Type == "" || e.Error.Message == "" {
		t.Errorf("error = %+v, want code %q", e.Error, code)
	}
	for _, s := range inMsg {
		if !strings.Contains(e.Error.Message, s) {
			t.Errorf("message %q does not mention %q", e.Error.Message, s)
		}
	}
}

// closedAddr is a 127.0.0.1 address where nothing listens.
func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestUnsafeArchiveIsRefused: an ORAS directory layer whose tar climbs out
// of the model directory is refused with 502 unsafe_artifact and nothing is
// laid out.
func TestUnsafeArchiveIsRefused(t *testing.T) {
	reg := testregistry.Start(t)
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "dir/../../../escape.txt", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	zw.Close()
	desc := reg.Push(t, "models/evil", "v1", []testregistry.Layer{{
		Title: "dir", MediaType: "application/vnd.oci.image.layer.v1.tar+gzip", Data: buf.Bytes(),
		Annotations: map[string]string{"io.deis.oras.content.unpack": "true"},
	}})
	g := startGateway(t, reg, gatewayOptions{}, gateway.ModelSpec{Name: "tiny", Ref: reg.Host() + "/models/evil:v1", Profile: profile(t)})
	resp, data := do(t, "POST", g.url+"/v1/chat/completions", chatBody)
	checkError(t, resp, data, 502, "unsafe_artifact", "escape.txt")
	if _, err := os.Stat(filepath.Join(g.cache, "models", "sha256", desc.Digest.Encoded())); !os.IsNotExist(err) {
		t.Errorf("unsafe artifact laid out (stat: %v)", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(g.cache), "escape.txt")); !os.IsNotExist(err) {
		t.Errorf("archive wrote outside the cache (stat: %v)", err)
	}
}
