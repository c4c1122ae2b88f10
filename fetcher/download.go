package fetcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/modelgate/modelgate/cache"
)

// Download defaults; see docs/pull.md.
const (
	// defaultReadTimeout fails a body read that receives nothing for this
	// long: long enough for a registry under load, short enough that a dead
	// link is noticed and resumed well before a human gives up.
	defaultReadTimeout = 30 * time.Second
	// defaultMaxAttempts bounds the requests for one blob whose body breaks
	// or stalls; each resumes from the bytes on disk.
	defaultMaxAttempts = 5
	// backoffBase and backoffMax shape the wait between attempts:
	// 200ms, 400ms, 800ms, ... capped, each ±20%.
	backoffBase = 200 * time.Millisecond
	backoffMax  = 10 * time.Second
	// maxErrorBodyBytes caps how much of an error response is read.
	maxErrorBodyBytes = 8 << 10
)

var (
	// errReadTimeout is the cause of a body read cancelled because no byte
	// arrived within the read timeout.
	errReadTimeout = errors.New("no data within the read timeout")
	// errRestart means the registry's answer to a range request cannot be
	// appended (416, or a 206 for other bytes); the partial file was
	// emptied and the next attempt starts from the first byte.
	errRestart = errors.New("range not usable; starting over")
)

// download brings blob desc into the cache, resuming from the bytes that an
// earlier attempt, or an earlier process, left in ingest/. It returns the
// body bytes received from the registry, wasted ones included.
//
// A body that breaks (unexpected EOF, connection reset) or stalls for
// ReadTimeout is retried up to MaxAttempts times with exponential backoff,
// each attempt asking only for the missing bytes (Range: bytes=N-). Status
// answers (429, 5xx) get their bounded retries, honouring Retry-After, from
// the client's retry transport (oras-go retry.DefaultPolicy) and are not
// retried again here. A digest mismatch deletes the partial file; it is
// retried once from the first byte, only when the blob was assembled from
// several responses (the kept bytes may be the bad ones).
//
// Blobs of at least RangeThreshold bytes download in parallel parts instead
// (downloadRanged, see ranges.go), unless the registry ignores Range.
//
// watch, when not nil, wraps each response body to report progress.
func (f *Fetcher) download(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, watch watchFunc) (int64, error) {
	if ps, ok := f.partSize(desc.Size); ok {
		return f.downloadRanged(ctx, repo, desc, ps, watch)
	}
	return f.downloadStream(ctx, repo, desc, watch, nil)
}

// downloadStream is download in one stream, resuming with Range: bytes=N-.
// first, when not nil, is the answer to use for the first attempt (a 200
// the registry sent to a part request), which it closes.
func (f *Fetcher) downloadStream(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, watch watchFunc, first *answer) (int64, error) {
	w, err := f.cache.OpenBlobWriter(desc.Digest, desc.Size)
	if err != nil {
		if first != nil {
			first.close()
		}
		return 0, fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
	}
	defer func() { _ = w.Close() }()
	log := f.opts.Logger.With("digest", desc.Digest.String(), "size", desc.Size)

	var received int64
	restarted := false
	for attempt := 1; ; attempt++ {
		from := w.Offset()
		n, err := f.fetchRange(ctx, repo, desc, w, watch, first)
		first = nil
		received += n
		if err == nil {
			err = w.Commit(ctx)
			if err == nil {
				return received, nil
			}
			if errors.Is(err, cache.ErrDigestMismatch) && from > 0 && !restarted {
				restarted = true
				log.Warn("blob resumed from kept bytes does not match its digest; downloading it again", "resumed_at", from, "error", err)
				_ = w.Close()
				if w, err = f.cache.OpenBlobWriter(desc.Digest, desc.Size); err != nil {
					return received, fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
				}
				continue
			}
			return received, fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
		}
		if !retryable(ctx, err) {
			return received, fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
		}
		if attempt >= f.opts.MaxAttempts {
			return received, fmt.Errorf("fetch blob %s: gave up after %d attempts, %d of %d bytes kept for a later resume: %w",
				desc.Digest, attempt, w.Offset(), desc.Size, err)
		}
		wait := backoff(attempt)
		log.Warn("blob download interrupted; resuming", "attempt", attempt, "offset", w.Offset(), "retry_in", wait, "error", err)
		if err := sleep(ctx, wait); err != nil {
			return received, fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
		}
	}
}

// sleep waits d or until ctx ends, returning ctx.Err() then.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// watchFunc wraps a response body of size bytes to observe its progress.
type watchFunc func(body io.Reader, size int64) io.Reader

// answer is the response to a blob GET, its body not read yet, with the
// context of its request and the function that cancels it (the idle read
// timeout does). close releases both.
type answer struct {
	resp   *http.Response
	url    string
	ctx    context.Context
	cancel context.CancelCauseFunc
}

func (a *answer) close() {
	_ = a.resp.Body.Close()
	a.cancel(nil)
}

// get sends a GET for blob desc: the bytes from start to end inclusive, to
// the blob's end when end < 0, the whole blob without a Range header when
// start is 0 and end < 0. Any status is an answer; the caller closes it.
func (f *Fetcher) get(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, start, end int64) (*answer, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	ref := repo.Reference
	ref.Reference = desc.Digest.String()
	ctx = auth.AppendRepositoryScope(ctx, ref, auth.ActionPull)
	scheme := "https"
	if repo.PlainHTTP {
		scheme = "http"
	}
	// https://distribution.github.io/distribution/spec/api/#fetch-blob-part
	url := fmt.Sprintf("%s://%s/v2/%s/blobs/%s", scheme, ref.Host(), ref.Repository, desc.Digest)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		cancel(nil)
		return nil, err
	}
	// net/http keeps Range on redirects, also to another host (object
	// storage), where it drops only Authorization and cookies.
	switch {
	case end >= 0:
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start, end))
	case start > 0:
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", start))
	}
	client := repo.Client
	if client == nil {
		client = auth.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		cancel(nil)
		return nil, classify(err)
	}
	return &answer{resp: resp, url: url, ctx: ctx, cancel: cancel}, nil
}

// fetchRange sends one GET for the bytes of desc from w.Offset() on and
// appends the body to w. It returns the body bytes appended. A partial file
// that already holds the whole blob needs no request: Commit verifies it.
// a, when not nil, is the answer to use instead of sending a request (a 200
// to a part request); fetchRange closes it.
func (f *Fetcher) fetchRange(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, w *cache.BlobWriter, watch watchFunc, a *answer) (int64, error) {
	off := w.Offset()
	if a == nil {
		if off == desc.Size {
			return 0, nil
		}
		var err error
		if a, err = f.get(ctx, repo, desc, off, -1); err != nil {
			return 0, err
		}
	}
	defer a.close()
	ctx, resp, url := a.ctx, a.resp, a.url

	switch resp.StatusCode {
	case http.StatusOK:
		if resp.ContentLength != -1 && resp.ContentLength != desc.Size {
			return 0, fmt.Errorf("GET %s: Content-Length %d, descriptor says %d: %w", url, resp.ContentLength, desc.Size, cache.ErrDigestMismatch)
		}
		if off > 0 {
			// The range was ignored: the body is the whole blob.
			f.opts.Logger.Info("registry ignored the range request; downloading the blob from the start", "digest", desc.Digest.String(), "offset", off)
			if err := w.Reset(); err != nil {
				return 0, err
			}
		}
	case http.StatusPartialContent:
		start, _, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if ok && total >= 0 && total != desc.Size {
			return 0, fmt.Errorf("GET %s: Content-Range total %d, descriptor says %d: %w", url, total, desc.Size, cache.ErrDigestMismatch)
		}
		if !ok || start != off {
			if err := w.Reset(); err != nil {
				return 0, err
			}
			return 0, fmt.Errorf("GET %s: asked for bytes=%d-, got Content-Range %q: %w", url, off, resp.Header.Get("Content-Range"), errRestart)
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if err := w.Reset(); err != nil {
			return 0, err
		}
		return 0, fmt.Errorf("GET %s: range bytes=%d- refused (416): %w", url, off, errRestart)
	default:
		return 0, statusError(resp)
	}

	var body io.Reader = &idleReader{r: resp.Body, timeout: f.opts.ReadTimeout, cancel: a.cancel}
	if watch != nil {
		body = watch(body, desc.Size-w.Offset())
	}
	n, err := w.Append(ctx, body)
	if err != nil {
		if errors.Is(context.Cause(ctx), errReadTimeout) {
			return n, fmt.Errorf("%w: GET %s: %w after %s (%d bytes into the blob)", ErrUnreachable, url, errReadTimeout, f.opts.ReadTimeout, w.Offset())
		}
		return n, classify(err)
	}
	return n, nil
}

// retryable reports whether another attempt could succeed: the connection
// broke or stalled, or a range answer forced a restart or was not the part
// asked for, and ctx is live.
// Status answers (errcode.ErrorResponse) are final here: the client's retry
// transport already retried them.
func retryable(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	if errors.Is(err, errRestart) || errors.Is(err, errPartRange) {
		return true
	}
	var resp *errcode.ErrorResponse
	return errors.Is(err, ErrUnreachable) && !errors.As(err, &resp)
}

// backoff is the wait after failed attempt n (1-based): backoffBase doubled
// per attempt, capped at backoffMax, with ±20% jitter so that many pulls
// cut at once don't come back at once.
func backoff(n int) time.Duration {
	d := backoffBase << min(n-1, 16)
	d = min(d, backoffMax)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// statusError turns an unexpected status into an error that classify
// understands: 404 → ErrNotFound, 401/403 → ErrDenied, and 429/5xx →
// ErrUnreachable (the registry is there but not serving).
func statusError(resp *http.Response) error {
	e := &errcode.ErrorResponse{Method: resp.Request.Method, URL: resp.Request.URL, StatusCode: resp.StatusCode}
	var body struct {
		Errors errcode.Errors `json:"errors"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxErrorBodyBytes)).Decode(&body); err == nil {
		e.Errors = body.Errors
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
		if ra := resp.Header.Get("Retry-After"); ra != "" {
			return fmt.Errorf("%w (Retry-After %s): %w", ErrUnreachable, ra, e)
		}
		return fmt.Errorf("%w: %w", ErrUnreachable, e)
	}
	return classify(e)
}

// parseContentRange parses "bytes START-END/TOTAL" (TOTAL may be "*",
// returned as -1).
func parseContentRange(v string) (start, end, total int64, ok bool) {
	spec, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(spec, "/")
	if !found {
		return 0, 0, 0, false
	}
	s, e, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	start, err := strconv.ParseInt(s, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, 0, false
	}
	end, err = strconv.ParseInt(e, 10, 64)
	if err != nil || end < start {
		return 0, 0, 0, false
	}
	if tot == "*" {
		return start, end, -1, true
	}
	total, err = strconv.ParseInt(tot, 10, 64)
	if err != nil {
		return 0, 0, 0, false
	}
	return start, end, total, true
}

// idleReader cancels the request (cause errReadTimeout) when one Read waits
// longer than timeout: a stalled connection fails instead of hanging. Time
// spent between reads (writing to disk) does not count.
type idleReader struct {
	r       io.Reader
	timeout time.Duration
	cancel  context.CancelCauseFunc
	timer   *time.Timer
}

func (r *idleReader) Read(p []byte) (int, error) {
	if r.timer == nil {
		r.timer = time.AfterFunc(r.timeout, func() { r.cancel(errReadTimeout) })
	} else {
		r.timer.Reset(r.timeout)
	}
	n, err := r.r.Read(p)
	r.timer.Stop()
	return n, err
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
