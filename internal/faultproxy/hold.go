package faultproxy

import (
	"context"
	"net/http"
	"sync"
)

// holds tracks the responses held by Hold faults. The zero value is ready
// to use.
type holds struct {
	mu       sync.Mutex
	released chan struct{} // closed by Release
	n        int           // responses held now
	changed  chan struct{} // closed and replaced whenever n changes
}

// init makes the channels. h.mu is held.
func (h *holds) init() {
	if h.released == nil {
		h.released = make(chan struct{})
		h.changed = make(chan struct{})
	}
}

// add changes the number of held responses by d and wakes the waiters of
// AwaitHolding.
func (h *holds) add(d int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.init()
	h.n += d
	close(h.changed)
	h.changed = make(chan struct{})
}

// releasedChan returns the channel Release closes.
func (h *holds) releasedChan() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.init()
	return h.released
}

// Release lets every response held by a Hold fault, now or later, send the
// rest of its body. It is idempotent.
func (p *Proxy) Release() {
	h := &p.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	h.init()
	select {
	case <-h.released:
	default:
		close(h.released)
	}
}

// Holding returns the number of responses a Hold fault is holding now. A
// held response stops being held when it is released, when its client goes
// away (closes the connection or cancels the request) or when the proxy is
// closed.
func (p *Proxy) Holding() int {
	h := &p.holds
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// AwaitHolding waits until exactly n responses are held, or ctx ends.
func (p *Proxy) AwaitHolding(ctx context.Context, n int) error {
	h := &p.holds
	for {
		h.mu.Lock()
		h.init()
		cur, changed := h.n, h.changed
		h.mu.Unlock()
		if cur == n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// holdWriter passes after body bytes, then blocks the response until the
// proxy releases it (the rest of the body follows), the client goes away or
// the proxy is closed (the body ends there).
type holdWriter struct {
	http.ResponseWriter
	rec    *record
	after  int64
	req    *http.Request
	closed <-chan struct{}
	holds  *holds
	sent   int64
	state  holdState
}

type holdState int

const (
	beforeHold holdState = iota
	released             // every later write passes
	abandoned            // the client or the proxy went away; writes fail
)

func (w *holdWriter) Write(b []byte) (int, error) {
	switch w.state {
	case released:
		return w.write(b)
	case abandoned:
		return 0, errInjected
	}
	room := w.after - w.sent
	if int64(len(b)) <= room {
		return w.write(b)
	}
	n, err := w.write(b[:max(room, 0)])
	if err != nil {
		return n, err
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush() // the first After bytes reach the client
	w.holds.add(1)
	select {
	case <-w.holds.releasedChan():
		w.state = released
	case <-w.req.Context().Done():
		w.state = abandoned
	case <-w.closed:
		w.state = abandoned
	}
	w.holds.add(-1)
	if w.state == abandoned {
		return n, errInjected
	}
	m, err := w.write(b[n:])
	return n + m, err
}

func (w *holdWriter) write(b []byte) (int, error) {
	w.rec.bytes.Add(int64(len(b)))
	n, err := w.ResponseWriter.Write(b)
	w.rec.bytes.Add(int64(n - len(b)))
	w.sent += int64(n)
	return n, err
}

// Flush is a no-op once the response was abandoned (the connection may be
// gone).
func (w *holdWriter) Flush() {
	if w.state != abandoned {
		_ = http.NewResponseController(w.ResponseWriter).Flush()
	}
}
