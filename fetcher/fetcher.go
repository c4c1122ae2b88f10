// Package fetcher pulls model artifacts from OCI registries, or OCI image
// layouts on disk (oci-layout://), into the cache.
//
// A pull resolves a reference to a manifest digest, reads the manifest with a
// size cap, downloads the layers that are not yet cached in parallel (each
// byte digest-verified by the cache while it streams) and lays the files out
// as a model directory. Concurrent pulls of one manifest, and concurrent
// downloads of one blob, share a single download (singleflight by digest).
package fetcher

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
	"golang.org/x/sync/singleflight"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/oci"
	"github.com/modelgate/modelgate/progress"
)

// Options configure a Fetcher. Zero values take the documented defaults.
type Options struct {
	// Client talks to registries (default: oci.NewClient with no plain-HTTP
	// hosts).
	Client *oci.Client
	// Concurrency is how many layers download at once (default 4).
	Concurrency int
	// ImageModelDir is the directory of an image that holds the model
	// (default "models", as KServe modelcars do).
	ImageModelDir string
	// MaxManifestBytes refuses larger manifests, indexes and configs
	// (default 4 MiB).
	MaxManifestBytes int64
	// Progress, when set, receives byte progress of downloads: a bar on a
	// terminal, timed lines otherwise (package progress, ProgressMode).
	Progress io.Writer
	// ProgressMode picks the display (default auto).
	ProgressMode progress.Mode
	// Logger receives pull events (default slog.Default()).
	Logger *slog.Logger
	// ReadTimeout fails a blob body read that receives nothing for this
	// long, so that a stalled connection is retried instead of hanging
	// (default 30s).
	ReadTimeout time.Duration
	// MaxAttempts bounds the requests for one blob whose body breaks or
	// stalls; each attempt resumes from the bytes on disk (default 5). A
	// blob downloaded in parts bounds each part's requests by it.
	MaxAttempts int
	// MaxBytesPerSecond caps the download rate of each pull, all its
	// connections together, so that a background pull does not starve
	// serving (0: no cap).
	MaxBytesPerSecond int64
	// RangeThreshold is the size from which a blob downloads in parts,
	// adding connections while they pay (default 64 MiB; negative: never).
	// See downloadRanged.
	RangeThreshold int64
	// RangeConnections is the most connections one blob downloads on
	// (default 8; 1: never split).
	RangeConnections int
	// RangePartSize is the size of the parts a blob is fetched, recorded
	// and resumed in (default: 8 MiB, or size/1024 for blobs above 8 GiB,
	// rounded up to 1 MiB).
	RangePartSize int64
	// RangeProbe is how often a ranged download measures its rate to
	// decide whether to add connections (default 250ms).
	RangeProbe time.Duration
	// MaxConnections bounds the blob connections of this Fetcher, all
	// pulls together (default 16, and never below Concurrency): each
	// blob downloading holds one, and the connections a large blob adds
	// take the rest while they last.
	MaxConnections int
}

// Fetcher pulls artifacts into a cache. It is safe for concurrent use.
type Fetcher struct {
	cache  *cache.Cache
	opts   Options
	client *oci.Client
	models flightGroup[*Result] // by manifest digest
	blobs  singleflight.Group   // by blob digest
	// extraConns is the budget of connections that ranged downloads add
	// beyond the first of each blob: MaxConnections - Concurrency.
	extraConns *semaphore.Weighted
}

// Result describes a completed pull.
type Result struct {
	Model *cache.Model
	// Downloaded is the number of blob bytes fetched from the registry for
	// this pull; 0 when every blob was already in the cache.
	Downloaded int64
	// Format is the artifact format detected ("" when the model was
	// already in the cache).
	Format string
}

// New returns a Fetcher writing into c.
func New(c *cache.Cache, opts Options) *Fetcher {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 4
	}
	if opts.MaxManifestBytes <= 0 {
		opts.MaxManifestBytes = 4 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = defaultReadTimeout
	}
	if opts.MaxAttempts <= 0 {
		opts.MaxAttempts = defaultMaxAttempts
	}
	if opts.RangeThreshold == 0 {
		opts.RangeThreshold = defaultRangeThreshold
	}
	if opts.RangeConnections <= 0 {
		opts.RangeConnections = defaultRangeConnections
	}
	if opts.RangeProbe <= 0 {
		opts.RangeProbe = defaultRangeProbe
	}
	if opts.MaxConnections <= 0 {
		opts.MaxConnections = defaultMaxConnections
	}
	opts.MaxConnections = max(opts.MaxConnections, opts.Concurrency)
	if opts.Client == nil {
		opts.Client = oci.NewClient(oci.ClientOptions{Logger: opts.Logger})
	}
	return &Fetcher{
		cache: c, opts: opts, client: opts.Client,
		extraConns: semaphore.NewWeighted(int64(opts.MaxConnections - opts.Concurrency)),
	}
}

// Cache is the cache the fetcher pulls into.
func (f *Fetcher) Cache() *cache.Cache { return f.cache }

// Resolve returns the manifest descriptor that ref (registry/repo:tag or
// registry/repo@digest) points to now. The registry's mirrors, if any, are
// asked first (see fromEach); for a tag, the first that knows it is
// trusted, as containerd does; for a digest, the answer must name that
// digest (else an error wrapping cache.ErrDigestMismatch). For an
// oci-layout:// reference the layout on disk answers; a missing layout or
// tag is ErrNotFound.
func (f *Fetcher) Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	if dir, reference, ok, err := oci.ParseLayoutReference(ref); ok {
		if err != nil {
			return ocispec.Descriptor{}, err
		}
		layout, err := openLayout(ctx, f, dir)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", ref, err)
		}
		desc, err := layout.resolve(ctx, reference)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", ref, err)
		}
		return desc, nil
	}
	repos, parsed, err := f.client.Repositories(ref)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc, _, err := fromEach(ctx, f.opts.Logger.With("ref", ref), repos, "manifest", func(repo *remote.Repository) (ocispec.Descriptor, error) {
		desc, err := repo.Resolve(ctx, parsed.Reference)
		if err != nil {
			return ocispec.Descriptor{}, classify(err)
		}
		return desc, nil
	})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	if want, err := parsed.Digest(); err == nil && desc.Digest != want {
		return ocispec.Descriptor{}, fmt.Errorf("resolve %s: registry answered %s: %w", ref, desc.Digest, cache.ErrDigestMismatch)
	}
	return desc, nil
}

// Pull makes the model that ref points to present in the cache. A model
// already cached costs one manifest HEAD (none for a digest reference).
// ref may also name an OCI image layout on disk,
// oci-layout:///abs/path:tag or oci-layout:///abs/path@sha256:DIGEST.
func (f *Fetcher) Pull(ctx context.Context, ref string) (*Result, error) {
	if d, err := referenceDigest(ref); err != nil {
		return nil, err
	} else if d != "" {
		if m, err := f.cache.Lookup(d); err == nil {
			return &Result{Model: m}, nil
		}
	}
	desc, err := f.Resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	return f.PullDescriptor(ctx, ref, desc)
}

// PullDescriptor is Pull for a manifest already resolved from ref.
//
// Concurrent pulls of one manifest share one download (see flightGroup): a
// caller whose ctx ends gets an error wrapping ctx.Err() at once, while the
// download goes on for the callers still waiting; when the last of them has
// gone, it stops, keeping the bytes received in ingest/ for the next pull to
// resume from. A pull that runs out of disk space returns an error wrapping
// cache.ErrNoSpace (and the syscall error); its partial files stay, and no
// blob or model that was not verified and complete becomes visible.
func (f *Fetcher) PullDescriptor(ctx context.Context, ref string, desc ocispec.Descriptor) (*Result, error) {
	if m, err := f.cache.Lookup(desc.Digest); err == nil {
		return &Result{Model: m}, nil
	}
	for attempt := 1; ; attempt++ {
		res, err := f.models.Do(ctx, desc.Digest.String(), func(ctx context.Context) (*Result, error) {
			res, err := f.pull(ctx, ref, desc)
			if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
				return nil, fmt.Errorf("%w: cache directory %s: %w", cache.ErrNoSpace, f.cache.Root(), err)
			}
			return res, err
		})
		if err == nil {
			return res, nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("pull %s: %w", ref, ctxErr)
		}
		// This flight is cancelled only when no caller waits for it, so a
		// cancellation seen by a caller still waiting comes from a blob
		// download shared with the flight of another manifest (f.blobs)
		// whose callers all left: start again, for a bounded number of
		// times.
		if errors.Is(err, context.Canceled) && attempt < maxFlightAttempts {
			f.opts.Logger.Info("shared blob download was cancelled by another pull; pulling again", "ref", ref, "digest", desc.Digest.String())
			continue
		}
		return nil, err
	}
}

func (f *Fetcher) pull(ctx context.Context, ref string, desc ocispec.Descriptor) (*Result, error) {
	// Re-check inside the flight: a pull that just finished may have
	// committed the model between our check and this call.
	if m, err := f.cache.Model(desc.Digest); err == nil {
		return &Result{Model: m}, nil
	}
	src, err := f.openSource(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	manifest, err := f.fetchManifest(ctx, src, ref, desc)
	if err != nil {
		return nil, err
	}
	var config []byte
	if NeedsConfig(manifest) {
		if config, err = f.readCapped(ctx, src, ref, "config", manifest.Config); err != nil {
			return nil, err
		}
	}
	plan, err := Classify(manifest, config, ClassifyOptions{ImageModelDir: f.opts.ImageModelDir})
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	entries := make([]cache.Entry, 0, len(plan.Entries))
	var blobs []ocispec.Descriptor
	var total int64
	seen := map[digest.Digest]bool{}
	names := map[digest.Digest]string{} // what progress calls each blob
	for _, e := range plan.Entries {
		entries = append(entries, cache.Entry{Digest: e.Layer.Digest, Size: e.Layer.Size, Path: e.Path, Archive: e.Archive})
		if names[e.Layer.Digest] == "" {
			names[e.Layer.Digest] = cmp.Or(e.Path, e.Layer.Digest.Encoded()[:12])
		}
		if !seen[e.Layer.Digest] {
			seen[e.Layer.Digest] = true
			blobs = append(blobs, e.Layer)
			total += e.Layer.Size
		}
	}
	// A model larger than the whole budget is refused before anything else.
	if err := f.cache.CheckFits(total); err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	// Pins keep the blobs this model will link, and the model once
	// committed, from an eviction by any process until the pull returns.
	digests := make([]digest.Digest, 0, len(blobs))
	for _, l := range blobs {
		digests = append(digests, l.Digest)
	}
	releaseBlobs, err := f.cache.PinBlobs(digests)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	defer releaseBlobs()
	releaseModel, err := f.cache.PinModel(desc.Digest)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	defer releaseModel()

	log := f.opts.Logger.With("ref", ref, "digest", desc.Digest.String())
	log.Info("pull started", "format", plan.Format, "layers", len(blobs), "bytes", total)
	for _, s := range plan.Skipped {
		log.Info("layer skipped", "reason", s)
	}
	start := time.Now()
	var missing []ocispec.Descriptor
	var missingBytes int64
	for _, l := range blobs {
		if !f.cache.HasBlob(l.Digest, l.Size) {
			missing = append(missing, l)
			missingBytes += l.Size
		}
	}
	// Room for what is downloaded, and for what archives unpack to
	// (estimated as their size: weights barely compress).
	need := missingBytes
	for _, e := range plan.Entries {
		if e.Archive != nil {
			need += e.Layer.Size
		}
	}
	releaseRoom, err := f.cache.Reserve(ctx, need)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	defer releaseRoom()
	tracker, err := f.newTracker(missingBytes)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	defer tracker.Done()
	limiter := f.newLimiter()
	var downloaded atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.opts.Concurrency)
	for _, l := range missing {
		name := names[l.Digest]
		g.Go(func() error {
			n, err := f.fetchBlob(gctx, src, l, func(body io.Reader, size int64) io.Reader {
				r := tracker.Reader(name, body, size)
				if limiter != nil {
					r = &limitedReader{ctx: gctx, r: r, lim: limiter}
				}
				return r
			})
			downloaded.Add(n)
			if err != nil {
				return fmt.Errorf("pull %s: %w", ref, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	m, err := f.cache.Commit(ctx, desc.Digest, ref, entries, plan.MainFile)
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	log.Info("pull finished", "downloaded_bytes", downloaded.Load(), "seconds", time.Since(start).Seconds(), "dir", m.Dir, "main_file", m.MainFile)
	return &Result{Model: m, Downloaded: downloaded.Load(), Format: plan.Format}, nil
}

// fetchManifest reads the manifest desc names from src; an image index is
// resolved to its linux/amd64 manifest first.
func (f *Fetcher) fetchManifest(ctx context.Context, src source, ref string, desc ocispec.Descriptor) (*ocispec.Manifest, error) {
	switch desc.MediaType {
	case ocispec.MediaTypeImageIndex, mediaTypeDockerManifestList:
		data, err := f.readCapped(ctx, src, ref, "index", desc)
		if err != nil {
			return nil, err
		}
		var index ocispec.Index
		if err := json.Unmarshal(data, &index); err != nil {
			return nil, fmt.Errorf("fetch index %s: %w: %w", ref, ErrUnsupported, err)
		}
		if desc, err = SelectManifest(&index, ocispec.Platform{OS: "linux", Architecture: "amd64"}); err != nil {
			return nil, fmt.Errorf("fetch index %s: %w", ref, err)
		}
	case ocispec.MediaTypeImageManifest, mediaTypeDockerManifest:
	default:
		return nil, fmt.Errorf("fetch manifest %s: media type %q: %w", ref, desc.MediaType, ErrUnsupported)
	}
	data, err := f.readCapped(ctx, src, ref, "manifest", desc)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("fetch manifest %s: %w: %w", ref, ErrUnsupported, err)
	}
	return &m, nil
}

// readCapped reads a manifest, index or config blob of at most
// MaxManifestBytes from src, which checks its size and digest.
func (f *Fetcher) readCapped(ctx context.Context, src source, ref, what string, desc ocispec.Descriptor) ([]byte, error) {
	if desc.Size > f.opts.MaxManifestBytes {
		return nil, fmt.Errorf("fetch %s %s: %d bytes exceeds the %d-byte cap: %w", what, ref, desc.Size, f.opts.MaxManifestBytes, ErrManifestTooLarge)
	}
	data, err := src.read(ctx, what, desc)
	if err != nil {
		return nil, fmt.Errorf("fetch %s %s: %w", what, ref, err)
	}
	return data, nil
}

// fetchBlob downloads one blob from src into the cache, once per digest
// however many pulls ask for it at the same time, in this process
// (singleflight) and in any other sharing the cache directory (the blob's
// ingest lock: a process that waited for it finds the blob present). It
// returns the body bytes received.
func (f *Fetcher) fetchBlob(ctx context.Context, src source, desc ocispec.Descriptor, watch watchFunc) (int64, error) {
	v, err, shared := f.blobs.Do(desc.Digest.String(), func() (any, error) {
		if f.cache.HasBlob(desc.Digest, desc.Size) {
			return int64(0), nil
		}
		unlock, err := f.cache.LockBlobIngest(ctx, desc.Digest)
		if err != nil {
			return int64(0), fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
		}
		defer unlock()
		if f.cache.HasBlob(desc.Digest, desc.Size) {
			f.opts.Logger.Info("blob downloaded by another process meanwhile", "digest", desc.Digest.String())
			return int64(0), nil
		}
		return src.download(ctx, desc, watch)
	})
	if shared {
		// The bytes are counted by the pull that did the download.
		return 0, err
	}
	return v.(int64), err
}

// referenceDigest returns the digest ref names, or "" for a tag.
func referenceDigest(ref string) (digest.Digest, error) {
	if _, reference, ok, err := oci.ParseLayoutReference(ref); ok {
		if err != nil {
			return "", err
		}
		if d, err := digest.Parse(reference); err == nil {
			return d, nil
		}
		return "", nil
	}
	parsed, err := oci.ParseReference(ref)
	if err != nil {
		return "", err
	}
	if d, err := parsed.Digest(); err == nil {
		return d, nil
	}
	return "", nil
}

// newTracker reports the progress of one pull's downloads of total bytes;
// a tracker of mode none when no Progress writer is set.
func (f *Fetcher) newTracker(total int64) (*progress.Tracker, error) {
	if f.opts.Progress == nil {
		return progress.New(io.Discard, total, progress.Options{Mode: progress.None})
	}
	return progress.New(f.opts.Progress, total, progress.Options{Mode: f.opts.ProgressMode, Verbs: progress.Download})
}
