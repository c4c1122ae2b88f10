package tensor

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Task is work over the index range [0, n) that Pool.Parallel splits into
// chunks.
type Task interface {
	// Run does items [lo, hi). worker (0 <= worker < Pool.Threads) names
	// the thread, so that a task can keep per-thread scratch space: no two
	// concurrent Runs of one Parallel call share a worker number.
	Run(worker, lo, hi int)
}

// Pool is a fixed set of threads for data-parallel kernels, started once:
// a call wakes the helpers, the calling goroutine works too, and the call
// returns when every chunk is done. No goroutine is started per call.
//
// Waking a parked thread costs tens of microseconds on some machines
// (virtual CPUs most of all), as much as a whole product of a small model,
// so a helper spins for spinWait after each call before it parks: the
// matrix products of a forward pass come microseconds apart and find it
// awake.
//
// A Pool is safe for concurrent use; parallel calls from different
// goroutines take turns, since each one would use every thread anyway.
// Calls too small to gain from threads run on the calling goroutine
// without waiting. A nil *Pool runs everything on the calling goroutine.
type Pool struct {
	threads int
	helpers []*helper

	mu     sync.Mutex // held for the whole of a parallel call
	closed bool
	// The call in progress: written under mu before open is set.
	gen    atomic.Uint64 // calls posted so far
	open   atomic.Bool   // whether helpers may still join the current call
	joined atomic.Int32  // helpers working on the current call
	task   Task
	n      int
	grain  int
	next   atomic.Int64
	mul    mulTask
}

// helper is one helper goroutine's wake-up line.
type helper struct {
	parked atomic.Bool
	wake   chan struct{} // capacity 1; closed by Close
}

// spinWait is how long a helper polls for the next call before it parks.
const spinWait = 50 * time.Microsecond

// NewPool starts a pool of threads threads (at least 1), the calling
// goroutine counting as one: threads-1 helper goroutines. Close stops them.
func NewPool(threads int) *Pool {
	p := &Pool{threads: max(threads, 1)}
	for id := 1; id < p.threads; id++ {
		h := &helper{wake: make(chan struct{}, 1)}
		p.helpers = append(p.helpers, h)
		go p.help(id, h)
	}
	return p
}

// Threads is the number of threads, the caller included; 1 for a nil Pool.
func (p *Pool) Threads() int {
	if p == nil {
		return 1
	}
	return p.threads
}

// Close stops the helper goroutines once the call in progress, if any,
// returns. Later calls run on the calling goroutine. Close is idempotent.
func (p *Pool) Close() {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	for _, h := range p.helpers {
		close(h.wake)
	}
}

// help is a helper goroutine: it waits for each call, joins it if the
// caller has not finished it alone, and works on it.
//
// A helper that was slow to wake may join a later call than the one that
// woke it: that is harmless, since it reads the call's fields only after
// seeing open set for it, and claims chunks one at a time.
func (p *Pool) help(id int, h *helper) {
	var seen uint64
	for {
		if !p.await(h, seen) {
			return
		}
		seen = p.gen.Load()
		p.joined.Add(1)
		if p.open.Load() {
			p.drain(id)
		}
		p.joined.Add(-1)
	}
}

// await returns when a call after seen is posted (true) or the pool is
// closed (false): it spins for spinWait, then parks on h.wake. A poster that
// finds h parked sends a wake-up; one sent while the helper was already
// leaving stays in the channel and costs a second look later.
func (p *Pool) await(h *helper, seen uint64) bool {
	start := time.Now()
	for i := 0; p.gen.Load() == seen; i++ {
		if i%64 != 63 {
			continue
		}
		if time.Since(start) < spinWait {
			runtime.Gosched()
			continue
		}
		h.parked.Store(true)
		for p.gen.Load() == seen {
			if _, ok := <-h.wake; !ok {
				return false
			}
		}
		h.parked.Store(false)
	}
	return true
}

// drain runs chunks of the current call until none is left.
func (p *Pool) drain(worker int) {
	for {
		lo := int(p.next.Add(int64(p.grain))) - p.grain
		if lo >= p.n {
			return
		}
		p.task.Run(worker, lo, min(lo+p.grain, p.n))
	}
}

// Parallel runs t over [0, n) in chunks of grain items (the last may be
// shorter), on every thread, and returns when all are done. With n <=
// grain, one thread or a nil or closed Pool it calls t.Run(0, 0, n) on the
// calling goroutine.
func (p *Pool) Parallel(n, grain int, t Task) {
	grain = max(grain, 1)
	if p == nil || p.threads == 1 || n <= grain {
		t.Run(0, 0, n)
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.run(n, grain, t)
}

// run is Parallel with mu held.
func (p *Pool) run(n, grain int, t Task) {
	if p.closed {
		t.Run(0, 0, n)
		return
	}
	p.task, p.n, p.grain = t, n, grain
	p.next.Store(0)
	p.open.Store(true)
	p.gen.Add(1)
	for _, h := range p.helpers {
		if h.parked.Load() {
			select {
			case h.wake <- struct{}{}:
			default: // a wake-up is already pending
			}
		}
	}
	p.drain(0)
	// No chunk is left to claim: wait only for the helpers that joined,
	// spinning, since they are about done and a parked caller would wait
	// for the scheduler to wake it. Helpers still waking up find the call
	// closed.
	p.open.Store(false)
	for i := 0; p.joined.Load() != 0; i++ {
		if i%64 == 63 {
			runtime.Gosched()
		}
	}
	p.task = nil
}

// parallelMinWork is the size of a product, in multiply-adds, below which
// it runs on the calling goroutine. Measured on 2 virtual CPUs with
// BenchmarkMatVec and tinyllm/llama's benchmarks: a product this size
// takes about 13µs on one thread; smaller ones gain at most a few percent
// from a spinning helper, and lose outright when the helper has parked and
// must be woken. So the demo model's one-token products (4K to 32K
// multiply-adds) run on one thread and its prompt batches (from 131K) on
// all.
const parallelMinWork = 1 << 16

// MatVec is the package function MatVec, spread over the pool's threads
// when w is large enough to gain from it.
func (p *Pool) MatVec(out []float32, w Matrix, x []float32) {
	p.MatMul(out, w, x, 1)
}

// MatMul is the package function MatMul, spread over the pool's threads
// by rows of w when the product is large enough to gain from it.
func (p *Pool) MatMul(out []float32, w Matrix, x []float32, n int) {
	checkMul(out, w, x, n)
	if p == nil || p.threads == 1 || n*w.Rows*w.Cols < parallelMinWork || w.Rows < 2*rowTile {
		mulRows(out, w, x, n, 0, w.Rows)
		return
	}
	// About four chunks per thread, whole row tiles, so that a slow thread
	// is not waited for long.
	grain := (w.Rows + 4*p.threads - 1) / (4 * p.threads)
	grain = (grain + rowTile - 1) / rowTile * rowTile
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mul = mulTask{out: out, w: w, x: x, n: n}
	p.run(w.Rows, grain, &p.mul)
	p.mul = mulTask{}
}

func mulRows(out []float32, w Matrix, x []float32, n, lo, hi int) {
	if n == 1 {
		matVecRows(out, w, x, lo, hi)
	} else {
		matMulRows(out, w, x, n, lo, hi)
	}
}

// mulTask is a matrix product as a Task over rows of w.
type mulTask struct {
	out []float32
	w   Matrix
	x   []float32
	n   int
}

func (m *mulTask) Run(_, lo, hi int) { mulRows(m.out, m.w, m.x, m.n, lo, hi) }
