package gateway

import (
	"fmt"
	"slices"
	"time"
)

// State is where a model is in its lifecycle (docs/lifecycle.md).
type State string

// The states of a model.
const (
	StateCold      State = "cold"      // no runtime; the next request (or load) starts one
	StateResolving State = "resolving" // asking the registry which digest the reference names
	StatePulling   State = "pulling"   // bringing the artifact into the cache
	StateWaiting   State = "waiting"   // in the cache, waiting for a running slot (max_running)
	StateStarting  State = "starting"  // runtime launched, waiting for its health check
	StateReady     State = "ready"     // serving
	StateDraining  State = "draining"  // being unloaded: no new request, waiting for those in flight
	StateStopping  State = "stopping"  // stop signal sent, waiting for the process to exit
	StateFailed    State = "failed"    // the last start failed or the runtime died; see Model.Status
	StateStopped   State = "stopped"   // the gateway shut down (final)
)

// transitions lists, for each state, the states it may move to. It is the
// only statement of the state machine; setState refuses anything else.
var transitions = map[State][]State{
	StateCold: {StateResolving, StateStopped},
	// starting: the model was in the cache and a slot was free.
	StateResolving: {StatePulling, StateWaiting, StateStarting, StateFailed, StateStopped},
	StatePulling:   {StateWaiting, StateStarting, StateFailed, StateStopped},
	// cold: every caller left while the start waited for a slot.
	StateWaiting:  {StateStarting, StateCold, StateStopped},
	StateStarting: {StateReady, StateFailed, StateStopped},
	// draining: unload; stopping: idle_ttl, evicted for max_running, hung;
	// failed: the process exited on its own.
	StateReady: {StateDraining, StateStopping, StateFailed, StateStopped},
	// failed: the process exited on its own while draining.
	StateDraining: {StateStopping, StateFailed, StateStopped},
	// cold: stopped on purpose; failed: killed because it hung.
	StateStopping: {StateCold, StateFailed, StateStopped},
	StateFailed:   {StateResolving, StateStopped},
	StateStopped:  {},
}

// holdsSlot reports whether a model in state s counts against max_running:
// from the moment its runtime is launched until its process has exited.
func (s State) holdsSlot() bool {
	switch s {
	case StateStarting, StateReady, StateDraining, StateStopping:
		return true
	}
	return false
}

// errBadTransition means the code asked for a transition the table does
// not allow: a bug, refused and logged (the gateway's tests fail on it).
type errBadTransition struct{ from, to State }

func (e errBadTransition) Error() string {
	return fmt.Sprintf("model state transition %s → %s is not allowed", e.from, e.to)
}

// checkTransition is the one place transitions are checked.
func checkTransition(from, to State) error {
	if slices.Contains(transitions[from], to) {
		return nil
	}
	return errBadTransition{from, to}
}

// badTransitionMsg is logged, at level Error, for every refused transition.
const badTransitionMsg = "BUG: model state transition refused"

// setState moves the model to state to, records when, releases its running
// slot when it leaves the states that hold one, and wakes whoever waits for
// a change. A transition not in the table is refused: the state stays, and
// the refusal is logged at level Error. The caller holds m.mu.
func (m *Model) setState(to State) {
	if err := checkTransition(m.state, to); err != nil {
		m.fleet.log.Error(badTransitionMsg, "model", m.spec.Name, "from", m.state, "to", to, "error", err)
		return
	}
	from := m.state
	m.state, m.since = to, time.Now()
	if from.holdsSlot() && !to.holdsSlot() {
		m.fleet.releaseSlot(m)
	}
	m.notifyLocked()
}

// notifyLocked wakes every goroutine waiting on m.changed. The caller
// holds m.mu.
func (m *Model) notifyLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}
