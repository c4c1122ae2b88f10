package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/singleflight"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/oci"
	"github.com/modelgate/modelgate/runtime"
)

// ErrUnknownModel means no model of that name is configured.
var ErrUnknownModel = errors.New("unknown model")

// ErrShuttingDown means the gateway is stopping and starts nothing new.
var ErrShuttingDown = errors.New("gateway shutting down")

// ModelSpec is one configured model: a name bound to a reference and the
// runtime profile it runs under.
type ModelSpec struct {
	Name    string
	Ref     string
	Profile runtime.Profile
}

// Fleet holds every configured model and brings each up on first use.
type Fleet struct {
	fetcher *fetcher.Fetcher
	cache   *cache.Cache // the fetcher's
	log     *slog.Logger
	models  map[string]*Model

	// stopping is closed by Stop; cold starts in flight watch it.
	stopping chan struct{}
	stopOnce sync.Once
	starts   sync.WaitGroup // cold starts in flight
}

// NewFleet returns a fleet of cold models.
func NewFleet(f *fetcher.Fetcher, specs []ModelSpec, log *slog.Logger) *Fleet {
	fl := &Fleet{fetcher: f, cache: f.Cache(), log: log, models: map[string]*Model{}, stopping: make(chan struct{})}
	for _, s := range specs {
		fl.models[s.Name] = &Model{spec: s, fleet: fl, state: StateCold}
	}
	return fl
}

// Model returns the model called name, or an error wrapping ErrUnknownModel.
func (fl *Fleet) Model(name string) (*Model, error) {
	m, ok := fl.models[name]
	if !ok {
		return nil, fmt.Errorf("model %q: %w (configured: %s)", name, ErrUnknownModel, fl.namesList())
	}
	return m, nil
}

// Models returns every model, sorted by name.
func (fl *Fleet) Models() []*Model {
	out := make([]*Model, 0, len(fl.models))
	for _, m := range fl.models {
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].spec.Name < out[j].spec.Name })
	return out
}

func (fl *Fleet) namesList() string {
	s := ""
	for i, m := range fl.Models() {
		if i > 0 {
			s += ", "
		}
		s += m.spec.Name
	}
	return s
}

// Stop refuses new cold starts, cancels those in flight, and stops every
// runtime process, waiting until all have exited.
func (fl *Fleet) Stop() {
	fl.stopOnce.Do(func() { close(fl.stopping) })
	fl.starts.Wait()
	var wg sync.WaitGroup
	for _, m := range fl.models {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.stop()
		}()
	}
	wg.Wait()
}

// startContext derives the context of a cold start: it outlives the request
// that triggered it (other requests wait on the same start) but ends when
// the fleet stops.
func (fl *Fleet) startContext(ctx context.Context) (context.Context, context.CancelFunc, error) {
	select {
	case <-fl.stopping:
		return nil, nil, ErrShuttingDown
	default:
	}
	fl.starts.Add(1)
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-fl.stopping:
			cancel()
		case <-sctx.Done():
		}
	}()
	return sctx, func() { cancel(); fl.starts.Done() }, nil
}

// Backend is a ready runtime serving one model digest. While it runs, the
// model is pinned in the cache (cache.PinModel): no process sharing the
// cache directory evicts it.
type Backend struct {
	Process *runtime.Process
	Digest  digest.Digest
	// Origin says how the start chose Digest.
	Origin Origin

	created time.Time // when the model entered the cache
	unpin   func()    // releases the pin; safe to call more than once
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

// Model is one configured model and its lifecycle:
//
//	cold → resolving → pulling → starting → ready → stopped
//	                                  any → failed → (next request) resolving
//
// A ready model whose process exits goes back to cold and is started again
// by the next request.
type Model struct {
	spec   ModelSpec
	fleet  *Fleet
	flight singleflight.Group

	mu      sync.Mutex
	state   State
	backend *Backend
	lastErr error
}

// Name is the model's configured name.
func (m *Model) Name() string { return m.spec.Name }

// Ref is the model's configured reference.
func (m *Model) Ref() string { return m.spec.Ref }

// ModelStatus is a snapshot of a model, for GET /v1/models.
type ModelStatus struct {
	State State
	// Digest is the manifest digest served now, "" when no runtime runs;
	// Origin and Created describe it.
	Digest  digest.Digest
	Origin  Origin
	Created time.Time // when the model entered the cache
	// Err is the error of the last failed start, if the model is failed.
	Err error
}

// Status reports the model's state, what it serves, and the error of the
// last failed start.
func (m *Model) Status() ModelStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := ModelStatus{State: m.state, Err: m.lastErr}
	if m.backend != nil {
		st.Digest, st.Origin, st.Created = m.backend.Digest, m.backend.Origin, m.backend.created
	}
	return st
}

// Acquire returns a ready backend for the model, starting it if it is cold,
// and records a use of its model in the cache (for LRU eviction): call it
// once per request. Concurrent callers share one start. A caller whose ctx
// ends stops waiting without cancelling the start for the others. A failed
// start is not remembered: the next call tries again.
func (m *Model) Acquire(ctx context.Context) (*Backend, error) {
	b, err := m.acquire(ctx)
	if err != nil {
		return nil, err
	}
	// Cheap: the cache throttles its writes of use times.
	m.fleet.cache.Touch(b.Digest)
	return b, nil
}

func (m *Model) acquire(ctx context.Context) (*Backend, error) {
	if b := m.readyBackend(); b != nil {
		return b, nil
	}
	ch := m.flight.DoChan("start", func() (any, error) {
		// Re-check inside the flight: a start may have just finished.
		if b := m.readyBackend(); b != nil {
			return b, nil
		}
		sctx, done, err := m.fleet.startContext(ctx)
		if err != nil {
			return nil, err
		}
		defer done()
		return m.coldStart(sctx)
	})
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("model %q: %w", m.spec.Name, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Backend), nil
	}
}

// readyBackend returns the backend if the model is ready and its process is
// alive; a dead process sends the model back to cold.
func (m *Model) readyBackend() *Backend {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state != StateReady || m.backend == nil {
		return nil
	}
	select {
	case <-m.backend.Process.Exited():
		m.fleet.log.Warn("runtime exited; model goes cold", "model", m.spec.Name, "error", m.backend.Process.ExitError())
		m.backend = nil
		m.setState(StateCold)
		return nil
	default:
		return m.backend
	}
}

func (m *Model) coldStart(ctx context.Context) (*Backend, error) {
	log := m.fleet.log.With("model", m.spec.Name, "ref", m.spec.Ref)
	b, err := m.bringUp(ctx, log)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		log.Error("cold start failed", "error", err)
		m.lastErr = err
		m.setState(StateFailed)
		return nil, err
	}
	m.backend, m.lastErr = b, nil
	m.setState(StateReady)
	return b, nil
}

// bringUp finds the model's directory (resolve, pull, or the cache), pins
// it and starts its runtime. The pin is released when the runtime exits,
// whatever ends it (stop, crash), or at once if the start fails.
func (m *Model) bringUp(ctx context.Context, log *slog.Logger) (*Backend, error) {
	m.transition(StateResolving)
	model, origin, unpin, err := m.locate(ctx, log)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", m.spec.Name, err)
	}
	m.transition(StateStarting)
	proc, err := runtime.Start(ctx, runtime.Spec{
		Profile:      m.spec.Profile,
		Model:        m.spec.Name,
		ModelDir:     model.Dir,
		ModelFile:    model.MainFilePath(),
		Logger:       m.fleet.log,
		ErrorHandler: writeForwardError,
	})
	if err != nil {
		unpin()
		if errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("model %q: %w", m.spec.Name, ErrShuttingDown)
		}
		return nil, fmt.Errorf("model %q: %w", m.spec.Name, err)
	}
	b := &Backend{Process: proc, Digest: model.Digest, Origin: origin, created: model.Created, unpin: sync.OnceFunc(unpin)}
	// A runtime that exits on its own (a crash) releases the pin too; stop
	// releases it before it returns.
	go func() {
		<-proc.Exited()
		b.unpin()
	}()
	return b, nil
}

// locate returns the cached model to serve and a pin on it (release it
// once). A digest reference whose model is cached needs no registry. Else
// the reference is resolved and pulled, and the digest remembered in the
// cache; when the registry is unreachable, the model the reference last
// resolved to is served from the cache if it is there (see offline).
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

// stop stops the model's runtime, if any. The caller ensures no start is in
// flight.
func (m *Model) stop() {
	m.mu.Lock()
	b := m.backend
	m.backend = nil
	m.mu.Unlock()
	if b != nil {
		b.Process.Stop()
		b.unpin()
	}
	m.transition(StateStopped)
}
