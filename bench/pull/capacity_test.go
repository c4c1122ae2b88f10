package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
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
			srv := blobServer(t, m.repo, blob, tt.ranges)
			host := srv.Listener.Addr().String()
			px, err := startProxy(host, link{rate: 64 << 20, latency: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer px.close()
			got, err := measureCapacity(t.Context(), host, px.addr(), m, 2)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("measureCapacity: got %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0] <= 0 || got[1] <= 0 {
				t.Fatalf("measureCapacity = %v, want two positive samples", got)
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
	if _, err := measureCapacity(ctx, host, host, m, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("measureCapacity with a cancelled context: got %v, want %v", err, context.Canceled)
	}
}
