package gateway

import (
	"bytes"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

var allStates = []State{StateCold, StateResolving, StatePulling, StateWaiting, StateStarting, StateReady, StateDraining, StateStopping, StateFailed, StateStopped}

// TestTransitionTable: every state is in the table and reachable from
// cold, every state but stopped can reach stopped (shutdown), stopped is
// final, and no state lists itself.
func TestTransitionTable(t *testing.T) {
	for _, s := range allStates {
		if _, ok := transitions[s]; !ok {
			t.Errorf("state %s missing from the table", s)
		}
		if slices.Contains(transitions[s], s) {
			t.Errorf("%s → %s listed", s, s)
		}
		if s != StateStopped && checkTransition(s, StateStopped) != nil {
			t.Errorf("%s cannot reach stopped: a shutdown would be refused", s)
		}
	}
	if len(transitions) != len(allStates) {
		t.Errorf("table has %d states, want %d", len(transitions), len(allStates))
	}
	if len(transitions[StateStopped]) != 0 {
		t.Errorf("stopped is not final: %v", transitions[StateStopped])
	}
	seen := map[State]bool{StateCold: true}
	queue := []State{StateCold}
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		for _, to := range transitions[s] {
			if !seen[to] {
				seen[to] = true
				queue = append(queue, to)
			}
		}
	}
	for _, s := range allStates {
		if !seen[s] {
			t.Errorf("state %s unreachable from cold", s)
		}
	}
	// The slot-holding states are exactly those with a runtime launched.
	for _, s := range allStates {
		want := s == StateStarting || s == StateReady || s == StateDraining || s == StateStopping
		if s.holdsSlot() != want {
			t.Errorf("%s.holdsSlot() = %v", s, s.holdsSlot())
		}
	}
}

// TestSetStateRefusesTransitionsNotInTheTable: a transition the table does
// not list leaves the state as it was and is logged at level Error.
func TestSetStateRefusesTransitionsNotInTheTable(t *testing.T) {
	var logged bytes.Buffer
	fl := &Fleet{log: slog.New(slog.NewTextHandler(&logged, nil)), running: map[*Model]struct{}{}, slotChanged: make(chan struct{})}
	m := &Model{spec: ModelSpec{Name: "tiny"}, fleet: fl, state: StateCold, changed: make(chan struct{})}
	for _, bad := range [][2]State{{StateCold, StateReady}, {StateReady, StateCold}, {StateFailed, StateReady}, {StateStopped, StateCold}, {StateCold, StateCold}} {
		m.state = bad[0]
		changed := m.changed
		m.setState(bad[1])
		if m.state != bad[0] {
			t.Errorf("%s → %s applied", bad[0], bad[1])
		}
		select {
		case <-changed:
			t.Errorf("%s → %s refused but waiters woken", bad[0], bad[1])
		default:
		}
	}
	if n := strings.Count(logged.String(), "level=ERROR msg=\""+badTransitionMsg+"\""); n != 5 {
		t.Errorf("%d refusals logged at level Error, want 5:\n%s", n, logged.String())
	}
	m.state = StateCold
	changed := m.changed
	m.setState(StateResolving)
	if m.state != StateResolving || m.since.IsZero() {
		t.Errorf("cold → resolving: state %s since %v", m.state, m.since)
	}
	select {
	case <-changed:
	default:
		t.Error("a transition did not wake the waiters")
	}
}

// TestRestartBackoff doubles from Backoff up to MaxBackoff.
func TestRestartBackoff(t *testing.T) {
	p := RestartPolicy{Backoff: 1e9, MaxBackoff: 5e9}
	var got []int64
	for n := 1; n <= 5; n++ {
		got = append(got, int64(p.backoff(n)/1e9))
	}
	if want := []int64{1, 2, 4, 5, 5}; !slices.Equal(got, want) {
		t.Errorf("backoff(1..5) = %v s, want %v", got, want)
	}
	if s := retryAfterSeconds(1500e6); s != "2" {
		t.Errorf("Retry-After for 1.5s = %s, want 2", s)
	}
	if s := retryAfterSeconds(-1); s != "1" {
		t.Errorf("Retry-After for a past time = %s, want 1", s)
	}
}
