package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/singleflight"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/oci"
	"github.com/modelgate/modelgate/runtime"
)

// Backend is a running runtime serving one model digest. While it runs, the
// model is pinned in the cache (cache.PinModel): no process sharing the
// cache directory evicts it.
type Backend struct {
	Process *runtime.Process
	Digest  digest.Digest
	// Origin says how the start chose Digest.
	Origin Origin

	created time.Time // when the model entered the cache
	unpin   func()    // releases the pin; safe to call more than once

	// Guarded by the model's mu.
	inflight int       // requests holding a lease (Acquire until release)
	lastUsed time.Time // when the last lease was taken or released
	stopping bool      // a stop is under way: the exit is expected
}

// Origin is how a cold start chose the digest it serves.
type Origin struct {
	// ResolvedAt is when the reference was resolved to the digest: during
	// this start, or, when Offline, the time the cache remembered. Zero for
	// a digest reference served from the cache (nothing to resolve).
	ResolvedAt time.Time
	// Offline is set when the registry could not be reached and the start
	// serves the digest the reference last resolved to, from the cache; a
	// tag may have moved since. The next cold start asks the registry again.
	Offline bool
	// Cause is the registry error that sent the start offline.
	Cause error
}

// Model is one configured model and its lifecycle, a state machine whose
// transitions are listed in state.go and described in docs/lifecycle.md:
//
//	cold → resolving → [pulling] → [waiting] → starting → ready
//	ready → draining → stopping → cold      (unload)
//	ready → stopping → cold                 (idle_ttl, max_running)
//	ready | draining → failed               (the process exited)
//	ready | draining → stopping → failed    (hung: killed)
//	failed → resolving                      (next request, after the backoff)
//	any → stopped                           (shutdown)
//
// Requests take a lease on the ready backend (Acquire) until their answer
// is streamed; idle_ttl, max_running evictions and unloads only stop a
// runtime that no lease holds (an unload waits for them, within its grace).
type Model struct {
	spec   ModelSpec
	fleet  *Fleet
	flight singleflight.Group

	mu      sync.Mutex
	state   State
	since   time.Time     // when state was entered
	changed chan struct{} // closed and replaced at each state change, and when a draining backend's last lease ends
	backend *Backend      // set in ready, draining and stopping
	waiters int           // Acquire callers waiting for a start
	// abandon ends the current start's waits (backoff, slot) once waiters
	// drops to 0; nil outside them.
	abandon context.CancelFunc

	err        error       // why the model is failed; nil in other states
	lastErr    error       // the last failure, kept after recovery
	lastErrAt  time.Time   // when lastErr happened
	failures   []time.Time // runtime failures, oldest first (pruned to the restart window)
	retryAt    time.Time   // no start before this (restart backoff)
	restarts   int         // runtime starts that followed a runtime failure
	restartDue bool        // the next runtime start is a restart
}

// Name is the model's configured name.
func (m *Model) Name() string { return m.spec.Name }

// Ref is the model's configured reference.
func (m *Model) Ref() string { return m.spec.Ref }

// Spec is the model's configuration.
func (m *Model) Spec() ModelSpec { return m.spec }

// ModelStatus is a snapshot of a model, for GET /v1/models and
// GET /models/{name}.
type ModelStatus struct {
	State State
	Since time.Time // when State was entered
	// Digest is the manifest digest served now, "" when no runtime runs;
	// Origin and Created describe it; PID and Port are its process's.
	Digest   digest.Digest
	Origin   Origin
	Created  time.Time // when the model entered the cache
	PID      int
	Port     int
	InFlight int       // requests being answered
	LastUsed time.Time // last request start or end; zero when no runtime runs
	// Err is why the model is failed; nil in every other state.
	Err error
	// LastErr is the last failure (of a start or of a running runtime),
	// kept after the model recovers; LastErrAt is when.
	LastErr   error
	LastErrAt time.Time
	// Restarts counts the runtime starts that followed a runtime failure.
	Restarts int
	// Failures counts the runtime failures within the restart window.
	Failures int
	// RetryAt is when the restart backoff ends; zero when none is running.
	RetryAt time.Time
	// CrashLoop is set while requests are refused with ErrCrashLoop.
	CrashLoop bool
}

// Status reports the model's state and what it serves.
func (m *Model) Status() ModelStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	st := ModelStatus{State: m.state, Since: m.since, Err: m.err, LastErr: m.lastErr, LastErrAt: m.lastErrAt,
		Restarts: m.restarts, Failures: len(m.recentFailuresLocked(now)), CrashLoop: m.crashLoopLocked(now) != nil}
	if now.Before(m.retryAt) {
		st.RetryAt = m.retryAt
	}
	if b := m.backend; b != nil {
		st.Digest, st.Origin, st.Created = b.Digest, b.Origin, b.created
		st.PID, st.Port, st.InFlight, st.LastUsed = b.Process.PID(), b.Process.Port(), b.inflight, b.lastUsed
	}
	return st
}

// Acquire returns a ready backend for the model, starting it if needed, and
// the function that releases it: call it once, when the answer has been
// streamed. Until then the request counts as in flight, which keeps
// idle_ttl, max_running evictions and unloads off the runtime. Acquire
// records a use of the model in the cache (for LRU eviction).
//
// Concurrent callers share one start. A caller whose ctx ends stops waiting
// without cancelling the start for the others. A failed start is not
// remembered, except that a runtime failure delays the next start by the
// restart backoff, and that a model failing repeatedly is refused with an
// error wrapping ErrCrashLoop until its backoff ends.
func (m *Model) Acquire(ctx context.Context) (*Backend, func(), error) {
	for {
		b, err := m.lease()
		if err != nil {
			return nil, nil, err
		}
		if b == nil {
			m.mu.Lock()
			m.waiters++
			m.mu.Unlock()
			ch := m.flight.DoChan("start", func() (any, error) { return nil, m.start(ctx) })
			var r singleflight.Result
			select {
			case <-ctx.Done():
				m.leave(false)
				return nil, nil, fmt.Errorf("model %q: %w", m.spec.Name, ctx.Err())
			case r = <-ch:
			}
			b = m.leave(r.Err == nil)
			if r.Err != nil && !errors.Is(r.Err, errAbandoned) {
				return nil, nil, r.Err
			}
		}
		if b != nil {
			// Cheap: the cache throttles its writes of use times.
			m.fleet.cache.Touch(b.Digest)
			return b, sync.OnceFunc(func() { m.release(b) }), nil
		}
		// The start was abandoned just as this caller arrived, or the
		// runtime stopped before it could take it: start again.
	}
}

// Peek returns the running backend, if the model is ready, without
// starting it and without counting a use: for the gateway's own calls to
// the runtime (a metrics scrape), which must not keep it alive past
// idle_ttl nor hold off an eviction. The backend may be stopped at any
// moment after Peek returns.
func (m *Model) Peek() (*Backend, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != StateReady || m.backend == nil {
		return nil, false
	}
	return m.backend, true
}

// Load starts the model, as a request would, and returns once it is ready
// (or failed, or ctx ended). It counts as a use for idle_ttl.
func (m *Model) Load(ctx context.Context) error {
	_, release, err := m.Acquire(ctx)
	if err != nil {
		return err
	}
	release()
	return nil
}

// lease takes a lease on the ready backend, if any; it fails only for a
// model in its crash-loop backoff.
func (m *Model) lease() (*Backend, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leaseLocked(), m.crashLoopLocked(time.Now())
}

func (m *Model) leaseLocked() *Backend {
	b := m.backend
	if m.state != StateReady || b == nil {
		return nil
	}
	select {
	case <-b.Process.Exited():
		// The supervisor records the exit; the start waits for it.
		return nil
	default:
	}
	b.inflight++
	b.lastUsed = time.Now()
	return b
}

// leave ends a caller's wait for a start, taking a lease on the backend if
// the start succeeded (before the caller stops counting as a waiter, so
// that no eviction slips in between).
func (m *Model) leave(started bool) *Backend {
	m.mu.Lock()
	var b *Backend
	if started {
		b = m.leaseLocked()
	}
	m.waiters--
	last := m.waiters == 0
	if last && m.abandon != nil {
		m.abandon()
	}
	m.mu.Unlock()
	if last {
		m.fleet.slotEvent()
	}
	return b
}

// release ends a lease taken by Acquire.
func (m *Model) release(b *Backend) {
	m.mu.Lock()
	b.inflight--
	b.lastUsed = time.Now()
	idle := b.inflight == 0
	if idle && m.backend == b && m.state == StateDraining {
		m.notifyLocked()
	}
	m.mu.Unlock()
	if idle {
		m.fleet.slotEvent()
	}
}

// idleLocked reports whether the model may be stopped for idleness or to
// make room: ready, no lease and no caller waiting for it.
func (m *Model) idleLocked() bool {
	return m.state == StateReady && m.backend != nil && !m.backend.stopping && m.backend.inflight == 0 && m.waiters == 0
}

// start is the shared start of the model (one flight at a time): it waits
// for a stop under way to finish, then for the restart backoff, then
// brings the model up. It returns nil once the model is ready.
func (m *Model) start(ctx context.Context) error {
	sctx, done, err := m.fleet.startContext(ctx)
	if err != nil {
		return fmt.Errorf("model %q: %w", m.spec.Name, err)
	}
	defer done()
	log := m.fleet.log.With("model", m.spec.Name, "ref", m.spec.Ref)

	// wctx ends the waits that only matter to callers (the backoff, a
	// free slot) once none is left; the pull goes on.
	wctx, abandon := context.WithCancel(sctx)
	defer abandon()

	m.mu.Lock()
	for {
		if m.state == StateReady && m.leaseable() {
			m.mu.Unlock()
			return nil
		}
		if m.state != StateReady && m.state != StateDraining && m.state != StateStopping {
			break
		}
		// A stop (or the record of an exit) is under way.
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ch:
		case <-sctx.Done():
			return fmt.Errorf("model %q: %w", m.spec.Name, ErrShuttingDown)
		}
		m.mu.Lock()
	}
	now := time.Now()
	if err := m.crashLoopLocked(now); err != nil {
		m.mu.Unlock()
		return err
	}
	backoff := m.retryAt.Sub(now)
	m.abandon = abandon
	if m.waiters == 0 {
		abandon()
	}
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.abandon = nil
		m.mu.Unlock()
	}()

	if backoff > 0 {
		log.Info("waiting for the restart backoff", "wait", backoff.String())
		if err := sleep(wctx, backoff); err != nil {
			if sctx.Err() != nil {
				return fmt.Errorf("model %q: %w", m.spec.Name, ErrShuttingDown)
			}
			return errAbandoned
		}
	}
	b, err := m.bringUp(sctx, wctx, log)
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case err == nil:
		m.backend, m.err = b, nil
		m.setState(StateReady)
		m.fleet.bg.Add(1) // within a start: before Stop waits for bg
		go m.supervise(b)
		return nil
	case sctx.Err() != nil:
		m.setState(StateStopped)
		return fmt.Errorf("model %q: %w", m.spec.Name, ErrShuttingDown)
	case wctx.Err() != nil && m.state == StateWaiting:
		log.Info("start abandoned while waiting for a running slot: no caller left")
		m.setState(StateCold)
		return errAbandoned
	default:
		log.Error("cold start failed", "error", err)
		m.failLocked(err, isRuntimeFailure(err))
		return err
	}
}

// leaseable reports whether the ready backend's process is alive. The
// caller holds m.mu.
func (m *Model) leaseable() bool {
	select {
	case <-m.backend.Process.Exited():
		return false
	default:
		return true
	}
}

// isRuntimeFailure tells the failures that count for the restart policy
// (the runtime's own) from the others (registry, cache), which are
// retried by the next request at once.
func isRuntimeFailure(err error) bool {
	return errors.Is(err, runtime.ErrExited) || errors.Is(err, runtime.ErrNotReady) || errors.Is(err, runtime.ErrHung)
}

// failLocked records a failure and moves the model to failed. A runtime
// failure also counts for the restart policy: the next start waits for the
// backoff. The caller holds m.mu.
func (m *Model) failLocked(err error, runtimeFailure bool) {
	now := time.Now()
	m.err, m.lastErr, m.lastErrAt = err, err, now
	if runtimeFailure {
		m.failures = append(m.recentFailuresLocked(now), now)
		m.retryAt = now.Add(m.fleet.opts.Restart.backoff(len(m.failures)))
		m.restartDue = true
	}
	m.setState(StateFailed)
}

// recentFailuresLocked returns the failures within the restart window,
// dropping the older ones. The caller holds m.mu.
func (m *Model) recentFailuresLocked(now time.Time) []time.Time {
	cut := now.Add(-m.fleet.opts.Restart.Window)
	i := 0
	for i < len(m.failures) && m.failures[i].Before(cut) {
		i++
	}
	m.failures = m.failures[i:]
	return m.failures
}

// crashLoopLocked returns an error wrapping ErrCrashLoop while the model
// is failed with MaxFailures runtime failures in the window and its
// backoff has not ended; nil otherwise. The caller holds m.mu.
func (m *Model) crashLoopLocked(now time.Time) error {
	if m.state != StateFailed || !now.Before(m.retryAt) {
		return nil
	}
	p := m.fleet.opts.Restart
	n := len(m.recentFailuresLocked(now))
	if n < p.MaxFailures {
		return nil
	}
	return &crashLoopError{model: m.spec.Name, failures: n, window: p.Window, retryAt: m.retryAt, cause: m.err}
}

// crashLoopError is ErrCrashLoop with the model's reason and the end of
// its backoff.
type crashLoopError struct {
	model    string
	failures int
	window   time.Duration
	retryAt  time.Time
	cause    error
}

func (e *crashLoopError) Error() string {
	return fmt.Sprintf("model %q: %v: %d runtime failures within %s; next start in %s (at %s); last failure: %v",
		e.model, ErrCrashLoop, e.failures, e.window, e.retryAfter().Round(time.Second), e.retryAt.UTC().Format(time.RFC3339), e.cause)
}

func (e *crashLoopError) Unwrap() error { return ErrCrashLoop }

func (e *crashLoopError) retryAfter() time.Duration { return time.Until(e.retryAt) }

// retryAfterSeconds renders a wait as a Retry-After value: whole seconds,
// rounded up, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}

// bringUp finds the model's directory (resolve, pull, or the cache), pins
// it, waits for a running slot (on wctx) and starts its runtime (on sctx).
// The pin is released at once if the start fails; the supervisor releases
// it when the runtime exits.
func (m *Model) bringUp(sctx, wctx context.Context, log *slog.Logger) (*Backend, error) {
	m.transition(StateResolving)
	model, origin, unpin, err := m.locate(sctx, log)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", m.spec.Name, err)
	}
	if err := m.fleet.acquireSlot(wctx, m); err != nil {
		unpin()
		return nil, fmt.Errorf("model %q: wait for a running slot: %w", m.spec.Name, err)
	}
	m.mu.Lock()
	if m.restartDue {
		m.restarts++
		m.restartDue = false
	}
	m.mu.Unlock()
	// The runtime's startup_timeout counts from its process start, inside
	// runtime.Start: the resolve, the pull and the wait for a slot above
	// do not eat into it.
	proc, err := runtime.Start(sctx, runtime.Spec{
		Profile:      m.spec.Profile,
		Model:        m.spec.Name,
		ModelDir:     model.Dir,
		ModelFile:    model.MainFilePath(),
		Logger:       m.fleet.log,
		ErrorHandler: writeForwardError,
	})
	if err != nil {
		unpin()
		return nil, fmt.Errorf("model %q: %w", m.spec.Name, err)
	}
	return &Backend{Process: proc, Digest: model.Digest, Origin: origin, created: model.Created, unpin: sync.OnceFunc(unpin), lastUsed: time.Now()}, nil
}

// locate returns the cached model to serve and a pin on it (release it
// once). A digest reference whose model is cached needs no registry. Else
// the reference is resolved and pulled, and the digest remembered in the
// cache; when the registry is unreachable, the model the reference last
// resolved to is served from the cache if it is there (see offline).
//
// No deadline bounds the pull as a whole: it fails only when the registry
// refuses it or a connection delivers nothing for the fetcher's
// ReadTimeout (pull_stall_timeout), so that a large model takes as long as
// it takes.
func (m *Model) locate(ctx context.Context, log *slog.Logger) (*cache.Model, Origin, func(), error) {
	ref := m.spec.Ref
	pinned := referenceDigest(ref)
	if pinned != "" {
		if model, unpin, err := m.cached(pinned); err == nil {
			log.Info("model in cache", "digest", pinned.String(), "dir", model.Dir)
			return model, Origin{}, unpin, nil
		}
	}
	desc, err := m.fleet.fetcher.Resolve(ctx, ref)
	if err != nil {
		return m.offline(ctx, log, err)
	}
	origin := Origin{ResolvedAt: time.Now()}
	// Pinned before the pull, so that the model cannot be evicted between
	// its commit and the runtime's start.
	unpin, err := m.fleet.cache.PinModel(desc.Digest)
	if err != nil {
		return nil, Origin{}, nil, err
	}
	m.transition(StatePulling)
	res, err := m.fleet.fetcher.PullDescriptor(ctx, ref, desc)
	if err != nil {
		unpin()
		return m.offline(ctx, log, err)
	}
	log.Info("model in cache", "digest", desc.Digest.String(), "downloaded_bytes", res.Downloaded, "dir", res.Model.Dir)
	// Remembered once the model is complete in the cache, so that the
	// memory always names a model an offline restart can serve. A digest
	// reference carries its digest and needs no memory.
	if pinned == "" {
		if err := m.fleet.cache.RememberRef(ref, desc.Digest); err != nil {
			log.Warn("cannot remember the resolved digest; an offline restart will not serve it", "digest", desc.Digest.String(), "error", err)
		}
	}
	return res.Model, origin, unpin, nil
}

// offline answers a resolve or pull that failed with err: when the
// registry was unreachable and the model the reference last resolved to is
// complete in the cache, that model, pinned, marked Offline. Otherwise err.
func (m *Model) offline(ctx context.Context, log *slog.Logger, err error) (*cache.Model, Origin, func(), error) {
	if !errors.Is(err, fetcher.ErrUnreachable) || ctx.Err() != nil {
		return nil, Origin{}, nil, err
	}
	d, resolvedAt, lerr := m.fleet.cache.LastResolved(m.spec.Ref)
	if lerr != nil {
		if !errors.Is(lerr, cache.ErrModelNotFound) {
			log.Warn("registry unreachable and the last resolved digest cannot be read", "error", err, "cache_error", lerr)
		}
		return nil, Origin{}, nil, err
	}
	model, unpin, merr := m.cached(d)
	if merr != nil {
		log.Warn("registry unreachable and the model last resolved is no longer in the cache", "digest", d.String(), "resolved_at", resolvedAt, "error", err, "cache_error", merr)
		return nil, Origin{}, nil, err
	}
	log.Warn("registry unreachable; serving the digest last resolved, from the cache (offline)",
		"digest", d.String(), "resolved_at", resolvedAt, "error", err)
	return model, Origin{ResolvedAt: resolvedAt, Offline: true, Cause: err}, unpin, nil
}

// cached pins model d and returns it if it is complete in the cache. The
// pin comes first, so that the model cannot be evicted between the check
// and the runtime's start.
func (m *Model) cached(d digest.Digest) (*cache.Model, func(), error) {
	unpin, err := m.fleet.cache.PinModel(d)
	if err != nil {
		return nil, nil, err
	}
	model, err := m.fleet.cache.Model(d)
	if err != nil {
		unpin()
		return nil, nil, err
	}
	return model, unpin, nil
}

// referenceDigest returns the digest a reference names (ref@sha256:...),
// or "" for a tag, as the fetcher reads it. A reference that does not parse
// is left to Resolve to refuse.
func referenceDigest(ref string) digest.Digest {
	if _, reference, ok, err := oci.ParseLayoutReference(ref); ok {
		if d, perr := digest.Parse(reference); err == nil && perr == nil {
			return d
		}
		return ""
	}
	parsed, err := oci.ParseReference(ref)
	if err != nil {
		return ""
	}
	d, err := parsed.Digest()
	if err != nil {
		return ""
	}
	return d
}

func (m *Model) transition(to State) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setState(to)
}
