package fetcher

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// FlightWaiters reports, for the tests of package fetcher_test, how many
// callers wait for the pull of manifest d and whether one is under way (a
// cancelled one still winding down included).
func (f *Fetcher) FlightWaiters(d digest.Digest) (n int, flying bool) {
	return f.models.waiters(d.String())
}

func (g *flightGroup[T]) waiters(key string) (int, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	fl := g.flights[key]
	if fl == nil {
		return 0, false
	}
	return fl.waiters, true
}

// awaitWaiters waits until the flight for key has n waiters.
func awaitWaiters[T any](t *testing.T, g *flightGroup[T], key string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got, _ := g.waiters(key); got == n {
			return
		}
		if time.Now().After(deadline) {
			got, _ := g.waiters(key)
			t.Fatalf("flight %q has %d waiters, want %d", key, got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

type outcome struct {
	val int
	err error
}

func doAsync(ctx context.Context, g *flightGroup[int], fn func(context.Context) (int, error)) <-chan outcome {
	ch := make(chan outcome, 1)
	go func() {
		v, err := g.Do(ctx, "k", fn)
		ch <- outcome{v, err}
	}()
	return ch
}

func receive(t *testing.T, ch <-chan outcome) outcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(10 * time.Second):
		t.Fatal("Do did not return")
		return outcome{}
	}
}

func TestFlightOneWaiterLeavesTheOthersGetTheResult(t *testing.T) {
	var g flightGroup[int]
	var calls atomic.Int32
	release := make(chan struct{})
	workCtx := make(chan context.Context, 1)
	fn := func(ctx context.Context) (int, error) {
		calls.Add(1)
		workCtx <- ctx
		select {
		case <-release:
			return 42, nil
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	ctx1, cancel1 := context.WithCancel(t.Context())
	defer cancel1()
	first := doAsync(ctx1, &g, fn)
	awaitWaiters(t, &g, "k", 1)
	second := doAsync(t.Context(), &g, fn)
	awaitWaiters(t, &g, "k", 2)

	cancel1()
	if o := receive(t, first); !errors.Is(o.err, context.Canceled) {
		t.Fatalf("leaving waiter got %v, want its context's error", o.err)
	}
	wctx := <-workCtx
	if err := wctx.Err(); err != nil {
		t.Fatalf("work cancelled when one of two waiters left: %v", err)
	}
	awaitWaiters(t, &g, "k", 1)
	close(release)
	if o := receive(t, second); o.err != nil || o.val != 42 {
		t.Fatalf("staying waiter got %+v, want 42", o)
	}
	if n := calls.Load(); n != 1 {
		t.Errorf("work ran %d times, want once", n)
	}
	if _, flying := g.waiters("k"); flying {
		t.Error("result remembered after the flight")
	}
}

func TestFlightLastWaiterLeavingCancelsTheWork(t *testing.T) {
	var g flightGroup[int]
	var calls atomic.Int32
	stopped := make(chan struct{})
	finish := make(chan struct{})
	fn := func(ctx context.Context) (int, error) {
		if calls.Add(1) > 1 {
			return 7, nil
		}
		<-ctx.Done()
		close(stopped)
		<-finish // wind down slowly
		return 0, ctx.Err()
	}
	ctx1, cancel1 := context.WithCancel(t.Context())
	ctx2, cancel2 := context.WithCancel(t.Context())
	first := doAsync(ctx1, &g, fn)
	awaitWaiters(t, &g, "k", 1)
	second := doAsync(ctx2, &g, fn)
	awaitWaiters(t, &g, "k", 2)
	cancel1()
	receive(t, first)
	select {
	case <-stopped:
		t.Fatal("work cancelled while a waiter remained")
	default:
	}
	cancel2()
	if o := receive(t, second); !errors.Is(o.err, context.Canceled) {
		t.Fatalf("last waiter got %v, want context.Canceled", o.err)
	}
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("work not cancelled when every waiter had left")
	}

	// A new caller does not join the cancelled flight, nor run beside it:
	// it waits for it to end, then starts afresh.
	third := doAsync(t.Context(), &g, fn)
	time.Sleep(20 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Fatalf("work started %d times while the cancelled flight winds down, want 1", n)
	}
	close(finish)
	if o := receive(t, third); o.err != nil || o.val != 7 {
		t.Fatalf("caller after a cancelled flight got %+v, want a fresh result 7", o)
	}
	if n := calls.Load(); n != 2 {
		t.Errorf("work ran %d times, want 2", n)
	}
}

func TestFlightForgetsFailures(t *testing.T) {
	var g flightGroup[int]
	boom := errors.New("boom")
	if _, err := g.Do(t.Context(), "k", func(context.Context) (int, error) { return 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("got %v, want boom", err)
	}
	v, err := g.Do(t.Context(), "k", func(context.Context) (int, error) { return 1, nil })
	if err != nil || v != 1 {
		t.Fatalf("second call got %d, %v: the failure was remembered", v, err)
	}
}

func TestFlightWaiterOfCancelledFlightCanLeave(t *testing.T) {
	var g flightGroup[int]
	finish := make(chan struct{})
	defer close(finish)
	ctx1, cancel1 := context.WithCancel(t.Context())
	first := doAsync(ctx1, &g, func(ctx context.Context) (int, error) {
		<-ctx.Done()
		<-finish
		return 0, ctx.Err()
	})
	awaitWaiters(t, &g, "k", 1)
	cancel1()
	receive(t, first)
	// The cancelled flight is still winding down; a caller waiting for it
	// to end leaves when its own context ends.
	ctx2, cancel2 := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel2()
	if _, err := g.Do(ctx2, "k", func(context.Context) (int, error) { return 1, nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
}
