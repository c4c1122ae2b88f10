package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// blobServer serves repo:v1 as an OCI image manifest with blob as its one
// layer. With ranges false it answers every blob GET with all of it, as a
// server that ignores Range would.
func blobServer(t *testing.T, repo string, blob []byte, ranges bool) *httptest.Server {
	t.Helper()
	layer := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	man, err := json.Marshal(ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Layers: []ocispec.Descriptor{layer}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/"+repo+"/manifests/v1", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		_, _ = w.Write(man)
	})
	mux.HandleFunc("GET /v2/"+repo+"/blobs/"+layer.Digest.String(), func(w http.ResponseWriter, r *http.Request) {
		if !ranges {
			_, _ = w.Write(blob)
			return
		}
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(blob))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// throttledServer starts blobServer behind a real throttling proxy and
// returns the server's and the proxy's host:port.
func throttledServer(t *testing.T, repo string, blob []byte, ranges bool) (host, proxyHost string) {
	t.Helper()
	srv := blobServer(t, repo, blob, ranges)
	host = srv.Listener.Addr().String()
	px, err := startProxy(host, link{rate: 64 << 20, latency: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(px.close)
	return host, px.addr()
}

// testClient is an HTTP client with a transport of its own, whose idle
// connections are closed when t ends.
func testClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// assertEmpty fails t unless dir holds nothing: every capacity file was
// removed.
func assertEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s left in %s", e.Name(), dir)
	}
}

func TestMeasureCapacity(t *testing.T) {
	blob := bytes.Repeat([]byte("modelgate"), 1<<17) // about 1.1 MiB, not a multiple of capacityConns
	m := model{name: "single", repo: "bench/single", files: 1, bytes: int64(len(blob))}
	tests := []struct {
		name    string
		ranges  bool
		wantErr error
	}{
		{"ranged GETs through the proxy", true, nil},
		{"a server that ignores Range", false, errBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host, proxyHost := throttledServer(t, m.repo, blob, tt.ranges)
			dir := t.TempDir()
			got, err := measureCapacity(t.Context(), dir, host, proxyHost, m, 2)
			assertEmpty(t, dir)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("measureCapacity: got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for name, samples := range map[string][]float64{"discard": got.discard, "working": got.working} {
				if len(samples) != 2 || samples[0] <= 0 || samples[1] <= 0 {
					t.Errorf("measureCapacity: %s samples %v, want two positive ones", name, samples)
				}
			}
		})
	}
}

func TestMeasureCapacityHonoursContext(t *testing.T) {
	blob := bytes.Repeat([]byte{1}, 1<<20)
	m := model{name: "single", repo: "bench/single", files: 1, bytes: int64(len(blob))}
	srv := blobServer(t, m.repo, blob, true)
	host := srv.Listener.Addr().String()
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := measureCapacity(ctx, t.TempDir(), host, host, m, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("measureCapacity with a cancelled context: got %v, want %v", err, context.Canceled)
	}
}

func TestWriteRanges(t *testing.T) {
	blob := make([]byte, 1<<20+7) // not a multiple of capacityConns
	_, _ = rand.NewChaCha8([32]byte{'r', 'a', 'n', 'g', 'e', 's'}).Read(blob)
	repo := "bench/single"
	_, proxyHost := throttledServer(t, repo, blob, true)
	url := "http://" + proxyHost + "/v2/" + repo + "/blobs/" + digest.FromBytes(blob).String()
	f, err := os.Create(filepath.Join(t.TempDir(), "blob"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(len(blob))); err != nil {
		t.Fatal(err)
	}

	d, sums, err := writeRanges(t.Context(), testClient(t), url, int64(len(blob)), f)
	if err != nil {
		t.Fatal(err)
	}
	if d <= 0 {
		t.Errorf("writeRanges took %s, want a positive duration", d)
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, blob) {
		t.Errorf("file of %d bytes does not hold the blob of %d bytes at its offsets", len(got), len(blob))
	}
	if len(sums) != capacityConns {
		t.Fatalf("writeRanges: %d digests, want %d", len(sums), capacityConns)
	}
	for i, sum := range sums {
		first, last := rangeBounds(int64(i), int64(len(blob)))
		if want := digest.FromBytes(blob[first : last+1]); sum != want {
			t.Errorf("range %d (bytes %d-%d): digest %s, want %s", i, first, last, sum, want)
		}
	}
}

func TestWorkingSampleRemovesItsFile(t *testing.T) {
	blob := bytes.Repeat([]byte("modelgate"), 1<<16)
	repo := "bench/single"
	tests := []struct {
		name    string
		ranges  bool
		wantErr error
	}{
		{"after a sample", true, nil},
		{"after a failed GET", false, errBadResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, proxyHost := throttledServer(t, repo, blob, tt.ranges)
			url := "http://" + proxyHost + "/v2/" + repo + "/blobs/" + digest.FromBytes(blob).String()
			dir := t.TempDir()
			_, err := workingSample(t.Context(), testClient(t), url, int64(len(blob)), dir)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("workingSample: got %v, want %v", err, tt.wantErr)
			}
			assertEmpty(t, dir)
		})
	}
}
