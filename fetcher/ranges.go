package fetcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"

	"github.com/modelgate/modelgate/cache"
)

// Ranged download defaults; see docs/pull.md.
const (
	// defaultRangeThreshold is the size from which a blob downloads in
	// parts: below it one stream finishes before adding connections could
	// pay, and a model's weights (gigabytes) are far above it.
	defaultRangeThreshold = 64 << 20
	// defaultRangeConnections is the most connections one blob uses: one
	// connection to object storage is limited by its window and round
	// trip; 8 fill a fast link without looking like abuse.
	defaultRangeConnections = 8
	// defaultMaxConnections bounds the blob connections of a Fetcher, all
	// pulls together: enough for Concurrency blobs and the extra
	// connections of the large ones, few enough that the buffers stay
	// small.
	defaultMaxConnections = 16
	// defaultRangeProbe is how often a ranged download measures its rate
	// and decides whether more connections would pay.
	defaultRangeProbe = 250 * time.Millisecond
	// rangeGain is how much faster the download must get after
	// connections were added for more to be added: on a link whose limit
	// is per connection, doubling them nearly doubles the rate; on one
	// limited by the disk, the CPU or the whole pipe, it does not.
	rangeGain = 1.3
	// minPartSize and maxParts shape the parts: at least 8 MiB (so a part
	// is worth a request), at most 1024 of them (so the record of parts
	// stays small), rounded up to partAlign.
	minPartSize = 8 << 20
	maxParts    = 1024
	partAlign   = 1 << 20
)

var (
	// errPartRange is the cause of an attempt whose answer was not the
	// bytes asked for (a 416, or a 206 for other bytes); it is retried.
	errPartRange = errors.New("answer is not the range asked for")
	// errNoRanges means the registry answered a range request with the
	// whole blob (200): the blob is downloaded in one stream.
	errNoRanges = errors.New("registry does not serve the ranges asked for")
)

// partSize returns the part size for a blob of size bytes and whether it
// downloads in parts at all (blobs of at least RangeThreshold bytes, when
// more than one connection is allowed).
func (f *Fetcher) partSize(size int64) (int64, bool) {
	if f.opts.RangeThreshold <= 0 || f.opts.RangeConnections < 2 || size < f.opts.RangeThreshold {
		return 0, false
	}
	ps := f.opts.RangePartSize
	if ps <= 0 {
		ps = max(minPartSize, (size+maxParts-1)/maxParts)
		ps = (ps + partAlign - 1) / partAlign * partAlign
	}
	return ps, ps < size
}

// downloadRanged is download for a large blob, in parts of partSize bytes
// written at their offsets into ingest/<hex>.partial; the parts done are
// recorded beside it (cache.RangeWriter), so a later attempt or process
// fetches only the missing ones, and the file is hashed as its prefix
// fills in, so the digest is known moments after the last byte.
//
// It starts with one connection asking for all the missing bytes, and
// adds connections only while they pay (rangedDownload.probe): every
// RangeProbe it measures the rate and, if the connections added last made
// it at least rangeGain times faster (or none were added yet), doubles
// them, up to RangeConnections, each new one taking the back half of the
// largest run of parts left to another. On loopback or a fast local
// mirror one stream is already limited by the disk or the CPU and the
// download stays at one or two connections; on a link that limits each
// connection (object storage behind a registry's redirect) it grows to
// RangeConnections. A connection that finishes its run takes half of the
// largest one left, so the connections stay busy to the end.
//
// A broken or stalled connection resumes from the bytes it wrote, up to
// MaxAttempts requests. One that gives up does not stop the others: what
// they finish is kept for the resume. A registry that answers 200 (it
// ignores Range) gets the blob downloaded in one stream from that answer.
// On a digest mismatch the partial file and its record are deleted and the
// blob is downloaded once more from scratch (it was assembled from several
// responses), then the pull fails.
func (f *Fetcher) downloadRanged(ctx context.Context, repo *remote.Repository, desc ocispec.Descriptor, partSize int64, watch watchFunc) (int64, error) {
	log := f.opts.Logger.With("digest", desc.Digest.String(), "size", desc.Size)
	var received int64
	for restarted := false; ; restarted = true {
		w, err := f.cache.OpenRangeWriter(desc.Digest, desc.Size, partSize)
		if err != nil {
			return received, fmt.Errorf("fetch blob %s: %w", desc.Digest, err)
		}
		d := &rangedDownload{f: f, repo: repo, desc: desc, w: w, watch: watch, log: log}
		whole, err := d.run(ctx)
		received += d.received.Load()
		if err == nil && whole == nil {
			err = w.Commit(ctx)
		}
		if errors.Is(err, cache.ErrDigestMismatch) {
			_ = w.Delete()
		}
		_ = w.Close()
		switch {
		case whole != nil:
			log.Info("registry ignored the range request; downloading the blob in one stream")
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

// rangedDownload is one attempt of downloadRanged: the connections that
// fetch the missing parts of w, and the probe that adds connections.
type rangedDownload struct {
	f     *Fetcher
	repo  *remote.Repository
	desc  ocispec.Descriptor
	w     *cache.RangeWriter
	watch watchFunc
	log   *slog.Logger

	// ctx is cancelled, with the error as its cause, by a failure no
	// retry can fix (a status, the disk, the digest).
	ctx    context.Context
	cancel context.CancelCauseFunc

	received atomic.Int64 // body bytes read

	mu       sync.Mutex
	queue    []*run    // runs of missing parts no connection has taken
	active   []*run    // runs being fetched, one per connection
	conns    int       // connections running
	finished bool      // no connection left: none may start
	allDone  chan bool // closed when finished
	whole    *answer   // a 200: the registry ignores Range
	errs     []error   // of connections that gave up
}

// run is a run of parts [next, end) that one connection fetches in order.
// next moves as parts complete; end moves down when another connection
// takes the back half. Both are guarded by rangedDownload.mu.
type run struct{ next, end int }

// runsOf groups sorted part numbers into runs of consecutive parts.
func runsOf(parts []int) []*run {
	var out []*run
	for _, p := range parts {
		if n := len(out); n > 0 && out[n-1].end == p {
			out[n-1].end++
			continue
		}
		out = append(out, &run{next: p, end: p + 1})
	}
	return out
}

// run fetches every missing part and returns when all connections ended.
// It returns the answer to hand to a single stream when the registry
// ignored Range, or the error that stopped the download: a fatal one, or
// those of the connections that gave up, when parts are missing.
func (d *rangedDownload) run(parent context.Context) (*answer, error) {
	d.ctx, d.cancel = context.WithCancelCause(parent)
	defer func() {
		// A handed-over answer lives under d.ctx: closing it ends both.
		if d.whole == nil {
			d.cancel(nil)
		}
	}()
	d.queue = runsOf(d.w.Missing())
	if len(d.queue) == 0 {
		// A crash after the last part, before the rename: Commit verifies.
		return nil, nil
	}
	d.allDone = make(chan bool)
	// The first connection is this blob's own (the Concurrency limit of
	// the pull counts it); only the ones the probe adds take a slot of
	// the Fetcher's connection budget.
	d.mu.Lock()
	d.startLocked(d.takeLocked(), false)
	d.mu.Unlock()
	stop := make(chan struct{})
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		d.probe(stop)
	}()
	<-d.allDone
	close(stop)
	<-probed

	if d.whole != nil {
		return d.whole, nil
	}
	if cause := context.Cause(d.ctx); cause != nil {
		return nil, cause
	}
	if m := d.w.Missing(); len(m) > 0 {
		if err := errors.Join(d.errs...); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("parts %v of %d not fetched", m, d.w.Parts())
	}
	return nil, nil
}

// startLocked starts a connection on r; extra says it holds a slot of the
// Fetcher's connection budget. d.mu is held.
func (d *rangedDownload) startLocked(r *run, extra bool) {
	d.conns++
	d.active = append(d.active, r)
	go d.connection(r, extra)
}

// takeLocked returns a run for a connection to fetch: a queued one, else
// the back half of the active run with the most parts after the one being
// fetched (at least two), else nil. d.mu is held.
func (d *rangedDownload) takeLocked() *run {
	if d.ctx.Err() != nil || d.whole != nil {
		return nil
	}
	if len(d.queue) > 0 {
		r := d.queue[0]
		d.queue = d.queue[1:]
		return r
	}
	var largest *run
	most := 1
	for _, r := range d.active {
		if after := r.end - r.next - 1; after > most {
			largest, most = r, after
		}
	}
	if largest == nil {
		return nil
	}
	back := &run{next: largest.end - most/2, end: largest.end}
	largest.end = back.next
	return back
}

// connection fetches r, then takes more work until none is left or it
// fails.
func (d *rangedDownload) connection(r *run, extra bool) {
	if extra {
		defer d.f.extraConns.Release(1)
	}
	for r != nil {
		err := d.fetchRun(r)
		d.mu.Lock()
		d.active = slices.DeleteFunc(d.active, func(a *run) bool { return a == r })
		r = nil
		switch {
		case err == nil:
			if r = d.takeLocked(); r != nil {
				d.active = append(d.active, r)
			}
		case retryable(d.ctx, err):
			// Gave up on a broken link: the others go on, and what is
			// missing is fetched by a later attempt.
			d.errs = append(d.errs, err)
		default:
			d.cancel(err)
		}
		if r == nil {
			d.conns--
			if d.conns == 0 {
				d.finished = true
				close(d.allDone)
			}
		}
		d.mu.Unlock()
	}
}

// fetchRun fetches the parts of r in order, with one request for all of
// them, resuming after a cut or a stall from the bytes written, up to
// MaxAttempts requests. It stops at the end of r, which may move down
// while it runs, or when the registry turned out to ignore Range.
func (d *rangedDownload) fetchRun(r *run) error {
	d.mu.Lock()
	first, _ := d.w.Part(r.next)
	d.mu.Unlock()
	off := first
	err := d.f.retry(d.ctx, func() error {
		n, done, err := d.request(r, off)
		off += n
		if done {
			return nil
		}
		return err
	}, func(attempt int, wait time.Duration, err error) {
		d.log.Warn("blob range interrupted; resuming", "attempt", attempt, "offset", off, "retry_in", wait, "error", err)
	})
	if err != nil {
		d.mu.Lock()
		next, end := r.next, r.end
		d.mu.Unlock()
		_, last := d.w.Part(end - 1)
		return fmt.Errorf("parts %d-%d (bytes %d-%d), from byte %d: %w", next, end-1, first, last-1, off, err)
	}
	return nil
}

// request sends one GET for the bytes of r from off on and writes the body
// part by part, marking each part done. It returns the bytes written and
// whether r is done (its end reached, or the blob handed to one stream).
func (d *rangedDownload) request(r *run, off int64) (int64, bool, error) {
	d.mu.Lock()
	_, end := d.w.Part(r.end - 1)
	d.mu.Unlock()
	a, err := d.f.get(d.ctx, d.repo, d.desc, off, end-1)
	if err != nil {
		return 0, false, err
	}
	handed := false
	defer func() {
		if !handed {
			a.close()
		}
	}()
	switch a.resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		if cl := a.resp.ContentLength; cl != -1 && cl != d.desc.Size {
			return 0, false, fmt.Errorf("GET %s: Content-Length %d, descriptor says %d: %w", a.url, cl, d.desc.Size, cache.ErrDigestMismatch)
		}
		d.mu.Lock()
		if d.whole == nil {
			answerCancel := a.cancel
			a.cancel = func(cause error) {
				answerCancel(cause)
				d.cancel(cause)
			}
			d.whole, handed = a, true
		}
		d.mu.Unlock()
		return 0, true, nil
	case http.StatusRequestedRangeNotSatisfiable:
		return 0, false, fmt.Errorf("GET %s: range bytes=%d-%d refused (416): %w", a.url, off, end-1, errPartRange)
	default:
		return 0, false, statusError(a.resp)
	}
	s, e, total, ok := parseContentRange(a.resp.Header.Get("Content-Range"))
	if ok && total >= 0 && total != d.desc.Size {
		return 0, false, fmt.Errorf("GET %s: Content-Range total %d, descriptor says %d: %w", a.url, total, d.desc.Size, cache.ErrDigestMismatch)
	}
	if !ok || s != off || e != end-1 {
		return 0, false, fmt.Errorf("GET %s: asked for bytes=%d-%d, got Content-Range %q: %w", a.url, off, end-1, a.resp.Header.Get("Content-Range"), errPartRange)
	}
	var body io.Reader = &idleReader{r: a.resp.Body, timeout: d.f.opts.ReadTimeout, cancel: a.cancel}
	if d.watch != nil {
		body = d.watch(body, end-off)
	}
	// Counted as read, not per part, so that the probe sees the rate.
	body = &countingReader{r: body, n: &d.received}
	var written int64
	for {
		part := d.w.PartOf(off + written)
		_, partEnd := d.w.Part(part)
		n, err := d.w.CopyAt(a.ctx, off+written, partEnd, body)
		written += n
		if err != nil {
			if errors.Is(context.Cause(a.ctx), errReadTimeout) {
				return written, false, fmt.Errorf("%w: GET %s: %w after %s (byte %d of the blob)", ErrUnreachable, a.url, errReadTimeout, d.f.opts.ReadTimeout, off+written)
			}
			return written, false, classify(err)
		}
		if err := d.w.MarkDone(part); err != nil {
			return written, false, err
		}
		d.mu.Lock()
		r.next = part + 1
		stop := r.next >= r.end || d.whole != nil
		d.mu.Unlock()
		if stop {
			return written, true, nil
		}
	}
}

// probe adds connections while they pay: every RangeProbe it measures the
// rate of the last interval and, when it is the first measure or at least
// rangeGain times the rate before the last addition, doubles the
// connections (up to RangeConnections, as the Fetcher's budget and the
// parts left allow). It stops growing for good at the first addition that
// did not pay, and returns when stop is closed.
func (d *rangedDownload) probe(stop <-chan struct{}) {
	t := time.NewTicker(d.f.opts.RangeProbe)
	defer t.Stop()
	last, lastAt := d.received.Load(), time.Now()
	var before float64 // bytes/s before the last addition; 0 before any
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			n := d.received.Load()
			rate := float64(n-last) / now.Sub(lastAt).Seconds()
			last, lastAt = n, now
			if before > 0 && rate < before*rangeGain {
				d.log.Debug("more connections did not pay; keeping these", "rate_mib_s", rate/(1<<20), "before_mib_s", before/(1<<20))
				return
			}
			added, conns := d.grow()
			if added == 0 {
				return
			}
			d.log.Debug("connections added", "added", added, "connections", conns, "rate_mib_s", rate/(1<<20))
			before = rate
		}
	}
}

// grow doubles the running connections as far as allowed and returns how
// many it added and how many run now.
func (d *rangedDownload) grow() (added, conns int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.finished {
		return 0, d.conns
	}
	want := min(d.conns, d.f.opts.RangeConnections-d.conns)
	for range want {
		if !d.f.extraConns.TryAcquire(1) {
			break
		}
		r := d.takeLocked()
		if r == nil {
			d.f.extraConns.Release(1)
			break
		}
		d.startLocked(r, true)
		added++
	}
	return added, d.conns
}

// countingReader adds the bytes read from r to n.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	c.n.Add(int64(k))
	return k, err
}
