package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/singleflight"

	"github.com/modelgate/modelgate/fetcher"
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
	log     *slog.Logger
	models  map[string]*Model

	// stopping is closed by Stop; cold starts in flight watch it.
	stopping chan struct{}
	stopOnce sync.Once
	starts   sync.WaitGroup // cold starts in flight
}

// NewFleet returns a fleet of cold models.
func NewFleet(f *fetcher.Fetcher, specs []ModelSpec, log *slog.Logger) *Fleet {
	fl := &Fleet{fetcher: f, log: log, models: map[string]*Model{}, stopping: make(chan struct{})}
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

// Backend is a ready runtime serving one model digest.
type Backend struct {
	Process *runtime.Process
	Digest  digest.Digest
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

// Status reports the state, the digest being served (if any) and the error
// of the last failed start (if the model is failed).
func (m *Model) Status() (State, digest.Digest, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var d digest.Digest
	if m.backend != nil {
		d = m.backend.Digest
	}
	return m.state, d, m.lastErr
}

// Acquire returns a ready backend for the model, starting it if it is cold.
// Concurrent callers share one start. A caller whose ctx ends stops waiting
// without cancelling the start for the others. A failed start is not
// remembered: the next call tries again.
func (m *Model) Acquire(ctx context.Context) (*Backend, error) {
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

func (m *Model) bringUp(ctx context.Context, log *slog.Logger) (*Backend, error) {
	m.transition(StateResolving)
	desc, err := m.fleet.fetcher.Resolve(ctx, m.spec.Ref)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", m.spec.Name, err)
	}
	m.transition(StatePulling)
	res, err := m.fleet.fetcher.PullDescriptor(ctx, m.spec.Ref, desc)
	if err != nil {
		return nil, fmt.Errorf("model %q: %w", m.spec.Name, err)
	}
	log.Info("model in cache", "digest", desc.Digest.String(), "downloaded_bytes", res.Downloaded, "dir", res.Model.Dir)
	m.transition(StateStarting)
	proc, err := runtime.Start(ctx, runtime.Spec{
		Profile:      m.spec.Profile,
		Model:        m.spec.Name,
		ModelDir:     res.Model.Dir,
		ModelFile:    res.Model.MainFilePath(),
		Logger:       m.fleet.log,
		ErrorHandler: writeForwardError,
	})
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, fmt.Errorf("model %q: %w", m.spec.Name, ErrShuttingDown)
		}
		return nil, fmt.Errorf("model %q: %w", m.spec.Name, err)
	}
	return &Backend{Process: proc, Digest: desc.Digest}, nil
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
	}
	m.transition(StateStopped)
}
