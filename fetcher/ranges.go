package fetcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/modelgate/modelgate/cache"
)

// Ranged download defaults; see docs/pull.md.
const (
	// defaultRangeThreshold is the size from which a blob is split: below
	// it one stream is quick enough, and a model's weights (gigabytes) are
	// far above it.
	defaultRangeThreshold = 64 << 20
	// defaultRangeParts is how many connections one large blob uses: one
	// connection to object storage is limited by its window and round
	// trip; 8 fill a fast link without looking like abuse.
	defaultRangeParts = 8
	// partAlign rounds part sizes up, so that parts start at round offsets
	// and none is a sliver.
	partAlign = 1 << 20
)

var (
	// errPartRange is the cause of a part attempt whose answer was not the
	// bytes asked for (a 200, 416, or a 206 for other bytes); the part is
	// asked for again.
	errPartRange = errors.New("answer is not the part asked for")
	// errNoRanges means the registry answered the first part request with
	// other bytes than asked for: the blob is downloaded in one stream.
	errNoRanges = errors.New("registry does not serve the ranges asked for")
)

// partSize returns the part size for a blob of size bytes and whether it is
// split at all: ceil(size/RangeParts) rounded up to 1 MiB, for blobs of at
// least RangeThreshold bytes (so, with the defaults, parts are at least
// 8 MiB) that make two parts or more.
func (f *Fetcher) partSize(size int64) (int64, bool) {
	if f.opts.RangeThreshold <= 0 || f.opts.RangeParts < 2 || size < f.opts.RangeThreshold {
		return 0, false
	}
	n := int64(f.opts.RangeParts)
	ps := (size + n - 1) / n
	ps = (ps + partAlign - 1) / partAlign * partAlign
	return ps, ps < size
}

// downloadRanged is download in parts of partSize bytes, fetched in
// parallel (up to RangeParts connections) and written at their offsets
// into ingest/<hex>.partial; the parts done are recorded beside it
// (cache.RangeWriter), so a later attempt or process fetches only the
// missing ones. The first missing part is asked for alone: a 206 for it
// starts the others; a 200 (the registry ignored Range) becomes the first
// answer of a single-stream download, so its body is not wasted.
//
// Each part resumes on its own after a cut or a stall, from the bytes it
// wrote, up to MaxAttempts requests. A part that gives up does not stop the
// others: what they finish is kept for the resume. The whole file is hashed
// from disk before it becomes visible; on a mismatch the partial file and
// its record are deleted and the blob is downloaded once more from scratch
// (it was assembled from several responses), then the pull fails.
func (f *Fetcher) downloadRanged(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, partSize int64, watch watchFunc) (int64, error) {
	log := f.opts.Logger.With("digest", desc.Digest.String(), "size", desc.Size)
	var received int64
	for restarted := false; ; restarted = true {
		w, err := f.cache.OpenRangeWriter(desc.Digest, desc.Size, partSize)
		if err != nil {
			return received, fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
		}
		n, whole, err := f.fetchParts(ctx, repo, desc, w, watch, log)
		received += n
		if err == nil && whole == nil {
			err = w.Commit(ctx)
		}
		if errors.Is(err, cache.ErrDigestMismatch) {
			_ = w.Delete()
		}
		_ = w.Close()
		switch {
		case whole != nil || errors.Is(err, errNoRanges):
			log.Info("registry ignored the range request; downloading the blob in one stream", "error", err)
			n, err := f.downloadStream(ctx, repo, desc, watch, whole)
			return received + n, err
		case err == nil:
			return received, nil
		case errors.Is(err, cache.ErrDigestMismatch) && !restarted:
			log.Warn("blob assembled from parts does not match its digest; downloading it again", "error", err)
			continue
		}
		return received, fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
	}
}

// fetchParts fetches the parts of w not done yet and returns the body bytes
// received. When the registry answers the first part request with the whole
// blob (200), it fetches nothing more and returns that answer, unread, for
// the caller to use and close.
func (f *Fetcher) fetchParts(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, w *cache.RangeWriter, watch watchFunc, log *slog.Logger) (int64, *answer, error) {
	missing := w.Missing()
	if len(missing) == 0 {
		// A crash after the last part, before the rename: Commit verifies.
		return 0, nil, nil
	}
	start, end := w.Part(missing[0])
	var first *answer
	err := f.retry(ctx, func() error {
		a, err := f.get(ctx, repo, desc, start, end-1)
		if err != nil {
			return err
		}
		if s := a.resp.StatusCode; s != http.StatusOK && s != http.StatusPartialContent {
			defer a.close()
			return statusError(a.resp)
		}
		first = a
		return nil
	}, func(attempt int, wait time.Duration, err error) {
		log.Warn("blob part request failed; retrying", "part", missing[0], "attempt", attempt, "retry_in", wait, "error", err)
	})
	if err != nil {
		return 0, nil, err
	}
	if first.resp.StatusCode == http.StatusOK {
		return 0, first, nil
	}
	s, e, total, ok := parseContentRange(first.resp.Header.Get("Content-Range"))
	if ok && total >= 0 && total != desc.Size {
		first.close()
		return 0, nil, fmt.Errorf("GET %s: Content-Range total %d, descriptor says %d: %w", first.url, total, desc.Size, cache.ErrDigestMismatch)
	}
	if !ok || s != start || e != end-1 {
		cr := first.resp.Header.Get("Content-Range")
		first.close()
		return 0, nil, fmt.Errorf("GET %s: asked for bytes=%d-%d, got Content-Range %q: %w", first.url, start, end-1, cr, errNoRanges)
	}

	// A part that fails for good (a status, the disk) stops the others; one
	// that gave up on a broken link leaves them to finish.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var received atomic.Int64
	var g errgroup.Group
	g.SetLimit(f.opts.RangeParts)
	for k, i := range missing {
		a := first
		if k > 0 {
			a = nil
		}
		g.Go(func() error {
			n, err := f.fetchPart(ctx, repo, desc, w, i, a, watch, log)
			received.Add(n)
			if err != nil && !retryable(ctx, err) {
				cancel(err)
			}
			return err
		})
	}
	err = g.Wait()
	if cause := context.Cause(ctx); cause != nil {
		err = cause
	}
	return received.Load(), nil, err
}

// fetchPart fetches part i of w, resuming after a cut or a stall from the
// bytes it wrote, and records it done. a, when not nil, is the answer to
// its first request, which fetchPart closes. It returns the body bytes
// received.
func (f *Fetcher) fetchPart(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, w *cache.RangeWriter, i int, a *answer, watch watchFunc, log *slog.Logger) (int64, error) {
	start, end := w.Part(i)
	off := start
	err := f.retry(ctx, func() error {
		if off == end {
			return nil
		}
		if a == nil {
			var err error
			if a, err = f.get(ctx, repo, desc, off, end-1); err != nil {
				return err
			}
		}
		n, err := f.readPart(desc, w, a, off, end, watch)
		a = nil
		off += n
		return err
	}, func(attempt int, wait time.Duration, err error) {
		log.Warn("blob part interrupted; resuming", "part", i, "attempt", attempt, "offset", off, "retry_in", wait, "error", err)
	})
	if a != nil {
		a.close()
	}
	if err != nil {
		return off - start, fmt.Errorf("part %d (bytes %d-%d, %d kept in memory only): %w", i, start, end-1, off-start, err)
	}
	if err := w.MarkDone(i); err != nil {
		return off - start, err
	}
	return off - start, nil
}

// readPart writes the body of a, the answer to a request for the bytes
// [off, end) of desc, at its place in w, and closes a. It returns the bytes
// written, which stay even when it fails.
func (f *Fetcher) readPart(desc ocispec.Descriptor, w *cache.RangeWriter, a *answer, off, end int64, watch watchFunc) (int64, error) {
	defer a.close()
	switch a.resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK, http.StatusRequestedRangeNotSatisfiable:
		return 0, fmt.Errorf("GET %s: asked for bytes=%d-%d, answered %d: %w", a.url, off, end-1, a.resp.StatusCode, errPartRange)
	default:
		return 0, statusError(a.resp)
	}
	s, e, total, ok := parseContentRange(a.resp.Header.Get("Content-Range"))
	if ok && total >= 0 && total != desc.Size {
		return 0, fmt.Errorf("GET %s: Content-Range total %d, descriptor says %d: %w", a.url, total, desc.Size, cache.ErrDigestMismatch)
	}
	if !ok || s != off || e != end-1 {
		return 0, fmt.Errorf("GET %s: asked for bytes=%d-%d, got Content-Range %q: %w", a.url, off, end-1, a.resp.Header.Get("Content-Range"), errPartRange)
	}
	var body io.Reader = &idleReader{r: a.resp.Body, timeout: f.opts.ReadTimeout, cancel: a.cancel}
	if watch != nil {
		body = watch(body, end-off)
	}
	n, err := w.CopyAt(a.ctx, off, end, body)
	if err != nil {
		if errors.Is(context.Cause(a.ctx), errReadTimeout) {
			return n, fmt.Errorf("%w: GET %s: %w after %s (byte %d of the blob)", ErrUnreachable, a.url, errReadTimeout, f.opts.ReadTimeout, off+n)
		}
		return n, classify(err)
	}
	return n, nil
}

// retry calls try until it succeeds, fails with an error another attempt
// cannot fix (retryable), or MaxAttempts calls have failed, waiting
// backoff(n) after failed call n; onRetry notes each wait.
func (f *Fetcher) retry(ctx context.Context, try func() error, onRetry func(attempt int, wait time.Duration, err error)) error {
	for attempt := 1; ; attempt++ {
		err := try()
		if err == nil {
			return nil
		}
		if !retryable(ctx, err) {
			return err
		}
		if attempt >= f.opts.MaxAttempts {
			return fmt.Errorf("gave up after %d attempts: %w", attempt, err)
		}
		wait := backoff(attempt)
		onRetry(attempt, wait, err)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
}
