package gateway

// State is where a model is in its lifecycle.
type State string

// The states of a model.
const (
	StateCold      State = "cold"      // nothing running; the next request starts it
	StateResolving State = "resolving" // asking the registry which digest the reference names
	StatePulling   State = "pulling"   // bringing the artifact into the cache
	StateStarting  State = "starting"  // runtime launched, waiting for its health check
	StateReady     State = "ready"     // serving
	StateFailed    State = "failed"    // the last start failed; the next request retries
	StateStopped   State = "stopped"   // the gateway stopped it
)

// allowedTransitions lists, for each state, the states it may move to.
var allowedTransitions = map[State][]State{
	StateCold:      {StateResolving, StateStopped},
	StateResolving: {StatePulling, StateStarting, StateFailed, StateStopped}, // starting: the model was in the cache
	StatePulling:   {StateStarting, StateFailed, StateStopped},
	StateStarting:  {StateReady, StateFailed, StateStopped},
	StateReady:     {StateCold, StateStopped},
	StateFailed:    {StateResolving, StateStopped},
	StateStopped:   {StateStopped, StateFailed},
}

// setState moves the model to state to. Transitions not in the table are a
// programming error, logged and applied anyway so that the model never gets
// stuck. The caller holds m.mu.
func (m *Model) setState(to State) {
	for _, ok := range allowedTransitions[m.state] {
		if ok == to {
			m.state = to
			return
		}
	}
	m.fleet.log.Error("unexpected model state transition", "model", m.spec.Name, "from", m.state, "to", to)
	m.state = to
}
