package main

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/opencontainers/go-digest"
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

// capacity is the throttled path's capacity, in MiB/s per sample, measured
// two ways with the same capacityConns concurrent ranged GETs of one blob.
// Both are nil without the throttled scenario.
type capacity struct {
	// discard: the bodies are read and thrown away. What the path carries
	// when the client does no work; information only.
	discard []float64
	// working: an ideal verifying client. Each GET writes its range at its
	// offset into one pre-sized file and hashes it with its own SHA-256 as
	// it streams; one fsync of the file ends the sample. A real client
	// hashes a blob in one sequential pass, never in capacityConns
	// parallel ones, so this is an upper bound for any client that writes,
	// hashes and syncs what it pulls on this machine.
	working []float64
}

// measured reports whether the capacity was measured at all.
func (c capacity) measured() bool { return len(c.working) > 0 }

// discardMiBs is the median of the discard samples; NaN for none.
func (c capacity) discardMiBs() float64 { return median(c.discard) }

// workingMiBs is the median of the working samples, the figure the report
// judges throttled pulls against; NaN for none.
func (c capacity) workingMiBs() float64 { return median(c.working) }

// measureCapacity takes n samples of each of the throttled path's two
// capacities (see capacity), alternately, each through the proxy at
// proxyHost, for m's first layer, whose digest it resolves from m's manifest
// at registryHost (plain HTTP, 127.0.0.1). The working samples write into a
// temporary file in dir, removed after each sample. Every connection it
// opens is closed before it returns.
func measureCapacity(ctx context.Context, dir, registryHost, proxyHost string, m model, n int) (capacity, error) {
	tr := &http.Transport{
		DisableCompression:  true, // random bytes; ask for them as stored
		MaxIdleConnsPerHost: capacityConns,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	layer, err := firstLayer(ctx, client, registryHost, m.repo)
	if err != nil {
		return capacity{}, fmt.Errorf("measure path capacity: %w", err)
	}
	url := "http://" + proxyHost + "/v2/" + m.repo + "/blobs/" + layer.Digest.String()
	var c capacity
	for range n {
		d, err := discardSample(ctx, client, url, layer.Size)
		if err != nil {
			return capacity{}, fmt.Errorf("measure path capacity, bodies discarded: %w", err)
		}
		c.discard = append(c.discard, mibPerSec(layer.Size, d))
		// Fresh connections for every sample: no sample inherits another's
		// warmed-up windows, as no pull does.
		tr.CloseIdleConnections()
		if d, err = workingSample(ctx, client, url, layer.Size, dir); err != nil {
			return capacity{}, fmt.Errorf("measure path capacity, writing and hashing: %w", err)
		}
		c.working = append(c.working, mibPerSec(layer.Size, d))
		tr.CloseIdleConnections()
	}
	return c, nil
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

// discardSample times one discard sample: the size bytes at url fetched in
// capacityConns ranges at once, read and thrown away.
func discardSample(ctx context.Context, client *http.Client, url string, size int64) (time.Duration, error) {
	begin := time.Now()
	err := rangedGets(ctx, client, url, size, func(int, int64) io.Writer { return io.Discard })
	if err != nil {
		return 0, err
	}
	return time.Since(begin), nil
}

// workingSample times one working sample: writeRanges into a new file in
// dir, pre-sized to size as a pulling client's would be. Creating and
// sizing the file are not timed. The file is closed and removed whatever
// happens; an error doing so is returned if nothing failed before.
func workingSample(ctx context.Context, client *http.Client, url string, size int64, dir string) (d time.Duration, err error) {
	f, err := os.CreateTemp(dir, "capacity-")
	if err != nil {
		return 0, fmt.Errorf("create capacity file: %w", err)
	}
	defer func() {
		err = errors.Join(err, f.Close(), os.Remove(f.Name()))
	}()
	if err := f.Truncate(size); err != nil {
		return 0, fmt.Errorf("size capacity file: %w", err)
	}
	d, _, err = writeRanges(ctx, client, url, size, f)
	return d, err
}

// writeRanges fetches the size bytes at url in capacityConns ranges at
// once into f, an ideal verifying client: each range is written at its own
// offset (pwrite) and hashed with its own SHA-256 as it streams, and f is
// fsynced once all are in. It returns the time from the first request to
// the end of the fsync, and each range's digest in order. The benchmark
// has nothing to check the digests against (a registry publishes only the
// blob's), so they are the hashing's result for the caller to check if it
// can. f is left open.
func writeRanges(ctx context.Context, client *http.Client, url string, size int64, f *os.File) (time.Duration, []digest.Digest, error) {
	hashes := make([]hash.Hash, capacityConns)
	for i := range hashes {
		hashes[i] = sha256.New()
	}
	begin := time.Now()
	err := rangedGets(ctx, client, url, size, func(i int, first int64) io.Writer {
		return io.MultiWriter(io.NewOffsetWriter(f, first), hashes[i])
	})
	if err != nil {
		return 0, nil, err
	}
	if err := f.Sync(); err != nil {
		return 0, nil, fmt.Errorf("sync capacity file: %w", err)
	}
	d := time.Since(begin)
	sums := make([]digest.Digest, len(hashes))
	for i, h := range hashes {
		sums[i] = digest.NewDigest(digest.SHA256, h)
	}
	return d, sums, nil
}

// rangeBounds is range i's first and last byte (inclusive) when size bytes
// are split into capacityConns ranges.
func rangeBounds(i, size int64) (first, last int64) {
	return i * size / capacityConns, (i+1)*size/capacityConns - 1
}

// rangedGets fetches the size bytes at url in capacityConns ranges at once
// and copies range i, which starts at byte first, into sink(i, first).
// sink is called once per range, concurrently; the writers it returns must
// be safe to use at the same time. The first failure cancels the others.
func rangedGets(ctx context.Context, client *http.Client, url string, size int64, sink func(i int, first int64) io.Writer) error {
	g, ctx := errgroup.WithContext(ctx)
	for i := range capacityConns {
		first, last := rangeBounds(int64(i), size)
		g.Go(func() error { return rangedGet(ctx, client, url, first, last, sink(i, first)) })
	}
	return g.Wait()
}

// rangedGet fetches bytes first..last (inclusive) of url and copies them
// into w; it fails unless the server answers 206 with exactly those bytes.
func rangedGet(ctx context.Context, client *http.Client, url string, first, last int64, w io.Writer) error {
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
	n, err := copyCapped(w, resp.Body, want)
	if err != nil {
		return fmt.Errorf("get %s bytes %d-%d: %w", url, first, last, err)
	}
	if n != want {
		return fmt.Errorf("get %s bytes %d-%d: %w: %d bytes, want %d", url, first, last, errBadResponse, n, want)
	}
	return nil
}

// copyCapped copies r to its end into w, but never more than limit bytes,
// and returns how many it read: limit+1 when r holds more (the extra byte
// is read, never written). It reads through its own capacityBuffer rather
// than io.Copy's 32 KiB pieces.
func copyCapped(w io.Writer, r io.Reader, limit int64) (int64, error) {
	r = io.LimitReader(r, limit+1)
	buf := make([]byte, capacityBuffer)
	var n int64
	for {
		k, err := r.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:min(int64(k), limit-n)]); werr != nil {
				return n, werr
			}
			n += int64(k)
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
