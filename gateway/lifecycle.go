package gateway

import (
	"context"
	"fmt"
	"time"
)

// stopReason is why the gateway stops a running runtime.
type stopReason string

const (
	stopIdle    stopReason = "idle_ttl"    // no request for idle_ttl
	stopEvicted stopReason = "max_running" // room for another model
	stopUnload  stopReason = "unload"      // POST /admin/models/{name}/unload
	stopHung    stopReason = "hung"        // its health path stopped answering
)

// supervise watches one ready backend until its process exits: it stops
// the runtime once it has been idle for idle_ttl, and kills it when its
// health path stops answering (runtime.Process.Watch). An exit it did not
// cause is a crash: the model is failed and the next request restarts it
// after the backoff. Started by start, it ends with the process.
func (m *Model) supervise(b *Backend) {
	defer m.fleet.bg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hung := make(chan error, 1)
	go func() { hung <- b.Process.Watch(ctx) }()

	var idle *time.Timer
	var idleC <-chan time.Time // nil (never fires) without idle_ttl
	ttl := m.spec.IdleTTL
	if ttl > 0 {
		idle = time.NewTimer(ttl)
		defer idle.Stop()
		idleC = idle.C
	}
	for {
		select {
		case <-b.Process.Exited():
			b.unpin()
			m.exited(b)
			return
		case err := <-hung:
			hung = nil // Watch is over
			if err != nil {
				m.stopBackend(b, stopHung, err)
			}
		case <-idleC:
			if wait := m.idleWait(b, ttl); wait > 0 {
				idle.Reset(wait)
			} else if !m.stopBackend(b, stopIdle, nil) {
				idle.Reset(ttl)
			}
		}
	}
}

// idleWait returns how long b must still stay unused before idle_ttl stops
// it, 0 when it may stop now. A backend with a request in flight (a long
// stream included), a caller waiting, or not ready (draining, stopping)
// gets a full ttl more.
func (m *Model) idleWait(b *Backend, ttl time.Duration) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.backend != b || !m.idleLocked() {
		return ttl
	}
	return max(0, ttl-time.Since(b.lastUsed))
}

// stopBackend stops b for reason, if that is still right when it looks:
// idle_ttl and evictions stop only an idle backend, a hang only a ready or
// draining one, and never one that another stop handles. It returns once
// the process has exited, and reports whether it stopped it.
func (m *Model) stopBackend(b *Backend, reason stopReason, cause error) bool {
	m.mu.Lock()
	ok := m.backend == b && !b.stopping
	switch reason {
	case stopIdle, stopEvicted:
		ok = ok && m.idleLocked()
	case stopHung:
		ok = ok && (m.state == StateReady || m.state == StateDraining)
	}
	if ok {
		m.beginStopLocked(b)
	}
	m.mu.Unlock()
	if ok {
		m.finishStop(b, reason, cause)
	}
	return ok
}

// beginStopLocked marks b as stopping: no lease is taken on it any more
// and its exit is expected. The caller holds m.mu, and b is m.backend in
// ready or draining.
func (m *Model) beginStopLocked(b *Backend) {
	b.stopping = true
	m.setState(StateStopping)
}

// finishStop stops b's process (stop signal, SIGKILL after stop_timeout),
// releases its pin, and moves the model to cold, or to failed when it was
// killed because it hung (a failure for the restart policy).
func (m *Model) finishStop(b *Backend, reason stopReason, cause error) {
	log := m.fleet.log.With("model", m.spec.Name, "pid", b.Process.PID(), "reason", string(reason))
	if reason == stopHung {
		log.Error("runtime hung; killing it", "error", cause)
	} else {
		log.Info("stopping runtime")
	}
	b.Process.Stop()
	b.unpin()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.backend != b {
		return // shutdown took over
	}
	m.backend = nil
	if m.state != StateStopping {
		return
	}
	if reason == stopHung {
		m.failLocked(fmt.Errorf("model %q: %w", m.spec.Name, cause), true)
		return
	}
	m.setState(StateCold)
}

// exited records the exit of b's process. An exit no stop asked for is a
// crash: the model is failed, the failure counts for the restart policy,
// and the next request starts a new process after the backoff (on demand,
// as llama-swap does; nothing restarts a model nobody asks for).
func (m *Model) exited(b *Backend) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.backend != b || b.stopping {
		return
	}
	m.backend = nil
	err := b.Process.ExitError()
	m.fleet.log.Warn("runtime exited on its own; the next request restarts it", "model", m.spec.Name, "error", err)
	m.failLocked(fmt.Errorf("model %q: %w", m.spec.Name, err), true)
}

// shutdown stops the model's runtime, if any, and moves it to stopped. It
// is called by Fleet.Stop once no start is in flight.
func (m *Model) shutdown() {
	m.mu.Lock()
	b := m.backend
	if b != nil {
		b.stopping = true
	}
	m.mu.Unlock()
	if b != nil {
		b.Process.Stop()
		b.unpin()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.backend == b {
		m.backend = nil
	}
	if m.state != StateStopped {
		m.setState(StateStopped)
	}
}

// UnloadResult says how an unload went.
type UnloadResult struct {
	// Stopped is false when no runtime was running.
	Stopped bool
	// Cut counts the requests still in flight when the grace ended, cut
	// by the stop.
	Cut int
}

// Unload stops the model's runtime once the requests in flight have been
// answered, waiting at most grace for them (the rest are cut). A start
// under way finishes first; a model without a runtime is left as it is.
// While it drains the model takes no new request: those wait, and start a
// new runtime once this one has stopped (unload frees the runtime, it does
// not disable the model). Unload returns when the runtime has exited, or
// when ctx ends, the unload going on without it.
func (m *Model) Unload(ctx context.Context, grace time.Duration) (UnloadResult, error) {
	for {
		m.mu.Lock()
		switch m.state {
		case StateCold, StateFailed, StateStopped:
			m.mu.Unlock()
			return UnloadResult{}, nil
		case StateReady:
			b := m.backend
			m.setState(StateDraining)
			m.mu.Unlock()
			done := make(chan UnloadResult, 1)
			if !m.fleet.goBackground(func() { done <- m.drain(b, grace) }) {
				return UnloadResult{}, fmt.Errorf("unload model %q: %w", m.spec.Name, ErrShuttingDown)
			}
			select {
			case r := <-done:
				return r, nil
			case <-ctx.Done():
				return UnloadResult{}, fmt.Errorf("unload model %q: %w", m.spec.Name, ctx.Err())
			}
		}
		// A start or a stop is under way: wait for it.
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return UnloadResult{}, fmt.Errorf("unload model %q: %w", m.spec.Name, ctx.Err())
		}
	}
}

// drain waits until b, draining, has no request in flight or grace has
// passed, then stops it. If b crashed or hung meanwhile, that path stops
// it instead.
func (m *Model) drain(b *Backend, grace time.Duration) UnloadResult {
	timer := time.NewTimer(grace)
	defer timer.Stop()
	for {
		m.mu.Lock()
		if m.backend != b || b.stopping || m.state != StateDraining {
			m.mu.Unlock()
			return UnloadResult{Stopped: true}
		}
		if b.inflight == 0 {
			m.beginStopLocked(b)
			m.mu.Unlock()
			m.finishStop(b, stopUnload, nil)
			return UnloadResult{Stopped: true}
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ch:
			continue
		case <-timer.C:
		}
		m.mu.Lock()
		if m.backend != b || b.stopping || m.state != StateDraining {
			m.mu.Unlock()
			return UnloadResult{Stopped: true}
		}
		cut := b.inflight
		m.beginStopLocked(b)
		m.mu.Unlock()
		m.fleet.log.Warn("unload grace over; cutting the requests still in flight", "model", m.spec.Name, "grace", grace.String(), "in_flight", cut)
		m.finishStop(b, stopUnload, nil)
		return UnloadResult{Stopped: true, Cut: cut}
	}
}
