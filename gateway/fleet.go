package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/runtime"
)

// ErrUnknownModel means no model of that name is configured.
var ErrUnknownModel = errors.New("unknown model")

// ErrShuttingDown means the gateway is stopping and starts nothing new.
var ErrShuttingDown = errors.New("gateway shutting down")

// ErrCrashLoop means the model's runtime failed RestartPolicy.MaxFailures
// times within the window and the backoff has not ended yet: no start is
// tried until then. The error carries when (see retryAfter).
var ErrCrashLoop = errors.New("runtime failing repeatedly")

// errAbandoned ends a start that waited (for its backoff or a running
// slot) until nobody wanted it any more. A caller that arrives just then
// starts again.
var errAbandoned = errors.New("start abandoned: no caller left")

// ModelSpec is one configured model: a name bound to a reference, the
// runtime profile it runs under and when it runs.
type ModelSpec struct {
	Name    string
	Ref     string
	Profile runtime.Profile
	// IdleTTL stops the runtime once it has had no request for this long;
	// 0 never stops it.
	IdleTTL time.Duration
	// Group names the FleetOptions.GroupMaxRunning entry the model counts
	// against; "" means none.
	Group string
	// Preload starts the model at boot (Fleet.Preload).
	Preload bool
}

// RestartPolicy says when a runtime that failed (exited on its own, hung,
// or failed to start) may start again. Failures older than Window are
// forgotten; after the n-th failure within it, no start is tried for
// Backoff·2^(n-1), at most MaxBackoff. A request in that time waits for
// the backoff to end, unless MaxFailures failures are within the window:
// then the model is failed and requests are answered 503 (ErrCrashLoop)
// with Retry-After until it ends.
type RestartPolicy struct {
	Backoff     time.Duration // default 1s
	MaxBackoff  time.Duration // default 5m
	MaxFailures int           // default 5
	Window      time.Duration // default 10m
}

// Defaults of RestartPolicy, as config.DefaultRestart* documents them.
const (
	defaultRestartBackoff     = time.Second
	defaultRestartMaxBackoff  = 5 * time.Minute
	defaultRestartMaxFailures = 5
	defaultRestartWindow      = 10 * time.Minute
)

// backoff is the wait after the n-th failure within the window.
func (p RestartPolicy) backoff(n int) time.Duration {
	d := p.Backoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// FleetOptions configure a Fleet; zero values take the defaults.
type FleetOptions struct {
	Logger *slog.Logger // default slog.Default()
	// MaxRunning bounds the runtimes running at once; 0 means no limit.
	MaxRunning int
	// GroupMaxRunning bounds the runtimes running at once among the models
	// of each group (ModelSpec.Group); a group missing or 0 has no limit.
	GroupMaxRunning map[string]int
	Restart         RestartPolicy
}

// Fleet holds every configured model, brings each up on first use and
// decides which runtimes may run (max_running). Its methods are safe for
// concurrent use.
type Fleet struct {
	fetcher *fetcher.Fetcher
	cache   *cache.Cache // the fetcher's
	log     *slog.Logger
	opts    FleetOptions
	models  map[string]*Model

	// ctx ends when Stop begins: cold starts and preloads watch it.
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex // guards closed against starts.Add and bg.Add
	closed bool
	starts sync.WaitGroup // cold starts in flight
	bg     sync.WaitGroup // supervisors, evictions, unloads, preloads

	// Running slots (max_running). Lock order: evictMu, then a model's
	// mu, then slotMu.
	evictMu     sync.Mutex // one eviction decision at a time
	slotMu      sync.Mutex
	running     map[*Model]struct{} // models whose state holds a slot
	slotChanged chan struct{}       // closed and replaced when a slot frees or a model turns idle
	slotWaiters atomic.Int32        // starts waiting for a slot

	preloadMu  sync.Mutex
	preloading map[string]bool // preloads not yet ready once
}

// NewFleet returns a fleet of cold models.
func NewFleet(f *fetcher.Fetcher, specs []ModelSpec, opts FleetOptions) *Fleet {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	r := &opts.Restart
	if r.Backoff <= 0 {
		r.Backoff = defaultRestartBackoff
	}
	if r.MaxBackoff <= 0 {
		r.MaxBackoff = max(defaultRestartMaxBackoff, r.Backoff)
	}
	if r.MaxFailures <= 0 {
		r.MaxFailures = defaultRestartMaxFailures
	}
	if r.Window <= 0 {
		r.Window = defaultRestartWindow
	}
	ctx, cancel := context.WithCancel(context.Background())
	fl := &Fleet{fetcher: f, cache: f.Cache(), log: opts.Logger, opts: opts, models: map[string]*Model{},
		ctx: ctx, cancel: cancel, running: map[*Model]struct{}{}, slotChanged: make(chan struct{}), preloading: map[string]bool{}}
	now := time.Now()
	for _, s := range specs {
		fl.models[s.Name] = &Model{spec: s, fleet: fl, state: StateCold, since: now, changed: make(chan struct{})}
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
	names := make([]string, 0, len(fl.models))
	for _, m := range fl.Models() {
		names = append(names, m.spec.Name)
	}
	return strings.Join(names, ", ")
}

// Stop refuses new cold starts, cancels those in flight, and stops every
// runtime process, waiting until all have exited and every goroutine of
// the fleet has ended.
func (fl *Fleet) Stop() {
	fl.mu.Lock()
	fl.closed = true
	fl.mu.Unlock()
	fl.cancel()
	fl.starts.Wait()
	var wg sync.WaitGroup
	for _, m := range fl.models {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.shutdown()
		}()
	}
	wg.Wait()
	fl.bg.Wait()
}

// goBackground runs fn on a goroutine that Stop waits for, unless Stop has
// begun; it reports whether fn runs.
func (fl *Fleet) goBackground(fn func()) bool {
	fl.mu.Lock()
	defer fl.mu.Unlock()
	if fl.closed {
		return false
	}
	fl.bg.Add(1)
	go func() {
		defer fl.bg.Done()
		fn()
	}()
	return true
}

// startContext derives the context of a cold start: it outlives the request
// that triggered it (other requests wait on the same start) but ends when
// the fleet stops. Call the returned function once the start is over.
func (fl *Fleet) startContext(ctx context.Context) (context.Context, func(), error) {
	fl.mu.Lock()
	if fl.closed {
		fl.mu.Unlock()
		return nil, nil, ErrShuttingDown
	}
	fl.starts.Add(1)
	fl.mu.Unlock()
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	unhook := context.AfterFunc(fl.ctx, cancel)
	return sctx, func() { unhook(); cancel(); fl.starts.Done() }, nil
}

// acquireSlot moves m, which is resolving, pulling or waiting, to starting
// once a running slot is free for it under max_running (global, and its
// group's). While none is, m is waiting, and the least recently used idle
// model of the full scope (ready, no request in flight or waiting) is
// stopped to make room, unless one of that scope is already stopping. It
// waits until ctx ends otherwise: a start waits as long as some caller
// does.
func (fl *Fleet) acquireSlot(ctx context.Context, m *Model) error {
	waiting := false
	for {
		fl.evictMu.Lock()
		m.mu.Lock()
		fl.slotMu.Lock()
		scope, full := fl.fullScopeLocked(m)
		if !full {
			fl.running[m] = struct{}{}
			fl.slotMu.Unlock()
			m.setState(StateStarting)
			m.mu.Unlock()
			fl.evictMu.Unlock()
			return nil
		}
		var members []*Model
		for x := range fl.running {
			if scope(x) {
				members = append(members, x)
			}
		}
		// Counted before the members are looked at, so that a model
		// turning idle from now on wakes this start (slotEvent).
		fl.slotWaiters.Add(1)
		wake := fl.slotChanged
		fl.slotMu.Unlock()
		if !waiting {
			waiting = true
			m.setState(StateWaiting)
			fl.log.Info("model waits for a running slot", "model", m.spec.Name, "group", m.spec.Group, "max_running", fl.opts.MaxRunning, "running", len(members))
		}
		m.mu.Unlock()
		fl.evictLRU(members)
		fl.evictMu.Unlock()
		select {
		case <-wake:
			fl.slotWaiters.Add(-1)
		case <-ctx.Done():
			fl.slotWaiters.Add(-1)
			return ctx.Err()
		}
	}
}

// fullScopeLocked reports whether m must wait for a slot, and which models
// could free one: its group's when the group is full, every model when
// only the global limit is reached. The caller holds slotMu.
func (fl *Fleet) fullScopeLocked(m *Model) (scope func(*Model) bool, full bool) {
	if g := m.spec.Group; g != "" {
		if limit := fl.opts.GroupMaxRunning[g]; limit > 0 {
			inGroup := func(x *Model) bool { return x.spec.Group == g }
			n := 0
			for x := range fl.running {
				if inGroup(x) {
					n++
				}
			}
			if n >= limit {
				return inGroup, true
			}
		}
	}
	if fl.opts.MaxRunning > 0 && len(fl.running) >= fl.opts.MaxRunning {
		return func(*Model) bool { return true }, true
	}
	return nil, false
}

// evictLRU stops the least recently used idle model among members, unless
// one of them is already on its way out. The caller holds evictMu, so two
// waiting starts never stop two models where one was enough.
func (fl *Fleet) evictLRU(members []*Model) {
	var victim *Model
	var lastUsed time.Time
	for _, x := range members {
		x.mu.Lock()
		freeing := x.state == StateDraining || x.state == StateStopping
		if !freeing && x.idleLocked() && (victim == nil || x.backend.lastUsed.Before(lastUsed)) {
			victim, lastUsed = x, x.backend.lastUsed
		}
		x.mu.Unlock()
		if freeing {
			return
		}
	}
	if victim == nil {
		return
	}
	victim.mu.Lock()
	b := victim.backend
	ok := victim.idleLocked()
	if ok {
		victim.beginStopLocked(b)
	}
	victim.mu.Unlock()
	if ok {
		fl.log.Info("stopping the least recently used idle model to make room (max_running)", "model", victim.spec.Name, "group", victim.spec.Group, "last_used", lastUsed)
		fl.bg.Add(1) // within a start: before Stop waits for bg
		go func() {
			defer fl.bg.Done()
			victim.finishStop(b, stopEvicted, nil)
		}()
	}
}

// releaseSlot gives m's slot back and wakes the starts waiting for one.
// The caller holds m.mu (setState calls it).
func (fl *Fleet) releaseSlot(m *Model) {
	fl.slotMu.Lock()
	delete(fl.running, m)
	close(fl.slotChanged)
	fl.slotChanged = make(chan struct{})
	fl.slotMu.Unlock()
}

// slotEvent wakes the starts waiting for a slot, if any: a model may have
// turned idle and can be stopped for them.
func (fl *Fleet) slotEvent() {
	if fl.slotWaiters.Load() == 0 {
		return
	}
	fl.slotMu.Lock()
	close(fl.slotChanged)
	fl.slotChanged = make(chan struct{})
	fl.slotMu.Unlock()
}

// Preload starts every model marked Preload, each on a goroutine of its
// own, and returns at once. A preload that fails is tried again with the
// restart backoff (doubling from RestartPolicy.Backoff up to MaxBackoff)
// until it succeeds or the fleet stops. Ready reports when all have been
// ready once.
func (fl *Fleet) Preload() {
	for _, m := range fl.Models() {
		if !m.spec.Preload {
			continue
		}
		fl.preloadMu.Lock()
		fl.preloading[m.spec.Name] = true
		fl.preloadMu.Unlock()
		fl.goBackground(func() { fl.preload(m) })
	}
}

func (fl *Fleet) preload(m *Model) {
	log := fl.log.With("model", m.spec.Name)
	log.Info("preloading model")
	delay := fl.opts.Restart.Backoff
	for {
		err := m.Load(fl.ctx)
		if err == nil {
			fl.preloadMu.Lock()
			delete(fl.preloading, m.spec.Name)
			fl.preloadMu.Unlock()
			log.Info("model preloaded")
			return
		}
		if fl.ctx.Err() != nil {
			return
		}
		wait := delay
		if st := m.Status(); time.Until(st.RetryAt) > wait {
			wait = time.Until(st.RetryAt)
		}
		log.Warn("preload failed; trying again", "error", err, "in", wait.String())
		if sleep(fl.ctx, wait) != nil {
			return
		}
		delay = min(delay*2, fl.opts.Restart.MaxBackoff)
	}
}

// Ready reports whether every preload has been ready once (true when
// there are none), and the models still preloading, sorted. It is false
// once Stop has begun.
func (fl *Fleet) Ready() (bool, []string) {
	fl.preloadMu.Lock()
	waiting := make([]string, 0, len(fl.preloading))
	for name := range fl.preloading {
		waiting = append(waiting, name)
	}
	fl.preloadMu.Unlock()
	sort.Strings(waiting)
	return len(waiting) == 0 && fl.ctx.Err() == nil, waiting
}

// sleep waits d or until ctx ends, and returns ctx's error in that case.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
