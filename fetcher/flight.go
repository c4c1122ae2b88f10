package fetcher

import (
	"context"
	"sync"
)

// maxFlightAttempts bounds the flights one PullDescriptor call starts when
// a flight ends cancelled although the caller still waits (a blob download
// shared with another manifest's pull whose callers all left).
const maxFlightAttempts = 3

// flightGroup runs one shared piece of work per key for any number of
// waiters, like golang.org/x/sync/singleflight, but reference-counted: the
// work stops when every waiter has gone, and only then.
//
//   - The work runs in its own goroutine on a context that keeps the values of
//     the first waiter's context and is cancelled when the last waiter has
//     left (its context ended and it stopped waiting), never by one waiter
//     of many.
//   - A waiter whose context ends gets its context's error at once, whether
//     or not others stay.
//   - Nothing is remembered beyond the flight: the key is forgotten when the
//     work returns, so a failure (a cancellation included) is never handed
//     to a later caller. A caller that arrives while a cancelled flight is
//     still winding down waits for it to end, then starts a new one: the two
//     never run side by side (a new pull resumes from the partial files the
//     old one left, which must be closed first).
//
// The zero value is ready to use; a flightGroup is safe for concurrent use.
type flightGroup[T any] struct {
	mu      sync.Mutex
	flights map[string]*flight[T]
}

// flight is one run of the shared work.
type flight[T any] struct {
	done chan struct{} // closed when val and err are set
	val  T
	err  error

	// Guarded by flightGroup.mu.
	waiters   int
	cancel    context.CancelFunc
	cancelled bool // every waiter left; the work is winding down
}

// Do returns the result of fn for key, starting fn unless a flight for key is
// under way, in which case it waits for that flight's result. fn receives the
// flight's context. If ctx ends first, Do returns ctx.Err() without waiting;
// fn's context is cancelled when that leaves no waiter.
func (g *flightGroup[T]) Do(ctx context.Context, key string, fn func(ctx context.Context) (T, error)) (T, error) {
	var zero T
	for {
		g.mu.Lock()
		fl := g.flights[key]
		if fl != nil && fl.cancelled {
			// A flight nobody waits for any more: let it end, then start
			// afresh.
			g.mu.Unlock()
			select {
			case <-fl.done:
				continue
			case <-ctx.Done():
				return zero, ctx.Err()
			}
		}
		if fl == nil {
			fl = g.start(ctx, key, fn)
		}
		fl.waiters++
		g.mu.Unlock()
		return g.wait(ctx, key, fl)
	}
}

// start launches fn for key. g.mu is held.
func (g *flightGroup[T]) start(ctx context.Context, key string, fn func(ctx context.Context) (T, error)) *flight[T] {
	// The work must outlive the waiter that started it; it ends when the
	// last waiter leaves (cancel) or when it returns.
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	fl := &flight[T]{done: make(chan struct{}), cancel: cancel}
	if g.flights == nil {
		g.flights = map[string]*flight[T]{}
	}
	g.flights[key] = fl
	go func() {
		defer cancel()
		val, err := fn(wctx)
		g.mu.Lock()
		if g.flights[key] == fl {
			delete(g.flights, key)
		}
		g.mu.Unlock()
		fl.val, fl.err = val, err
		close(fl.done)
	}()
	return fl
}

// wait waits for fl's result or the end of ctx, whichever comes first; a
// result already there wins over a context that ended at the same time.
func (g *flightGroup[T]) wait(ctx context.Context, key string, fl *flight[T]) (T, error) {
	select {
	case <-fl.done:
		return fl.val, fl.err
	case <-ctx.Done():
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-fl.done:
		return fl.val, fl.err
	default:
	}
	fl.waiters--
	if fl.waiters == 0 {
		fl.cancelled = true
		fl.cancel()
	}
	var zero T
	return zero, ctx.Err()
}
