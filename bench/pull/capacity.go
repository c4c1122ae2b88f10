package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

const (
	// capacityConns is how many ranged GETs run at once to measure the
	// throttled path: four times modelgate's default layer concurrency and
	// 16 x 50 MiB/s of per-connection cap, so that the proxy, the registry
	// and the CPU they share, not the connection count, set the figure.
	capacityConns = 16
	// capacityBuffer is each GET's read buffer: large enough that reads go
	// straight to the socket, as a pulling client's would.
	capacityBuffer = 256 << 10
	// manifestMax caps the manifest read; an image manifest is a few KiB.
	manifestMax = 4 << 20
)

// measureCapacity takes n samples of the throttled path's capacity: the
// aggregate MiB/s of capacityConns concurrent GETs through the proxy at
// proxyHost, each for its own byte range of m's first layer, whose digest
// it resolves from m's manifest at registryHost (plain HTTP, 127.0.0.1).
// The bodies are read and discarded, neither written nor hashed, so the
// figure is the most any client can pull through the path on this machine.
// Every connection it opens is closed before it returns.
func measureCapacity(ctx context.Context, registryHost, proxyHost string, m model, n int) ([]float64, error) {
	tr := &http.Transport{
		DisableCompression:  true, // random bytes; ask for them as stored
		MaxIdleConnsPerHost: capacityConns,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	layer, err := firstLayer(ctx, client, registryHost, m.repo)
	if err != nil {
		return nil, fmt.Errorf("measure path capacity: %w", err)
	}
	url := "http://" + proxyHost + "/v2/" + m.repo + "/blobs/" + layer.Digest.String()
	var out []float64
	for range n {
		d, err := rangedGets(ctx, client, url, layer.Size)
		if err != nil {
			return nil, fmt.Errorf("measure path capacity: %w", err)
		}
		out = append(out, mibPerSec(layer.Size, d))
		// Fresh connections for every sample: no sample inherits another's
		// warmed-up windows, as no pull does.
		tr.CloseIdleConnections()
	}
	return out, nil
}

// firstLayer reads the OCI image manifest of repo:v1 from host and returns
// its first layer.
func firstLayer(ctx context.Context, client *http.Client, host, repo string) (ocispec.Descriptor, error) {
	url := "http://" + host + "/v2/" + repo + "/manifests/v1"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("get manifest %s: %w", url, err)
	}
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
	resp, err := client.Do(req)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("get manifest %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return ocispec.Descriptor{}, fmt.Errorf("get manifest %s: %w: %s", url, errBadResponse, resp.Status)
	}
	var man ocispec.Manifest
	if err := json.NewDecoder(io.LimitReader(resp.Body, manifestMax)).Decode(&man); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("get manifest %s: %w", url, err)
	}
	if len(man.Layers) == 0 {
		return ocispec.Descriptor{}, fmt.Errorf("get manifest %s: %w: no layers", url, errBadResponse)
	}
	layer := man.Layers[0]
	if err := layer.Digest.Validate(); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("get manifest %s: layer digest: %w", url, err)
	}
	if layer.Size < capacityConns {
		return ocispec.Descriptor{}, fmt.Errorf("get manifest %s: %w: layer of %d bytes, want at least %d", url, errBadResponse, layer.Size, capacityConns)
	}
	return layer, nil
}

// rangedGets fetches the size bytes at url in capacityConns ranges at once
// and returns how long the slowest took. The first failure cancels the
// others.
func rangedGets(ctx context.Context, client *http.Client, url string, size int64) (time.Duration, error) {
	g, ctx := errgroup.WithContext(ctx)
	begin := time.Now()
	for i := range int64(capacityConns) {
		first, last := i*size/capacityConns, (i+1)*size/capacityConns-1
		g.Go(func() error { return rangedGet(ctx, client, url, first, last) })
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	return time.Since(begin), nil
}

// rangedGet fetches bytes first..last (inclusive) of url and discards them;
// it fails unless the server answers 206 with exactly those bytes.
func rangedGet(ctx context.Context, client *http.Client, url string, first, last int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("get %s: %w", url, err)
	}
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", first, last))
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("get %s bytes %d-%d: %w", url, first, last, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return fmt.Errorf("get %s bytes %d-%d: %w: %s", url, first, last, errBadResponse, resp.Status)
	}
	want := last - first + 1
	n, err := discard(resp.Body, want)
	if err != nil {
		return fmt.Errorf("get %s bytes %d-%d: %w", url, first, last, err)
	}
	if n != want {
		return fmt.Errorf("get %s bytes %d-%d: %w: %d bytes, want %d", url, first, last, errBadResponse, n, want)
	}
	return nil
}

// discard reads r to its end, but never more than limit+1 bytes, and
// returns how many it read. It reads through its own capacityBuffer rather
// than io.Discard's 8 KiB pieces.
func discard(r io.Reader, limit int64) (int64, error) {
	r = io.LimitReader(r, limit+1)
	buf := make([]byte, capacityBuffer)
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
