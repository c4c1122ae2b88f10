package tensor

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/modelgate/modelgate/tinyllm/gguf"
)

// countTask counts how often each index is run and checks worker numbers.
type countTask struct {
	hits    []atomic.Int32
	threads int
	bad     atomic.Bool
}

func (c *countTask) Run(worker, lo, hi int) {
	if worker < 0 || worker >= c.threads || lo < 0 || hi > len(c.hits) || lo >= hi && len(c.hits) > 0 {
		c.bad.Store(true)
	}
	for i := lo; i < hi; i++ {
		c.hits[i].Add(1)
	}
}

func TestParallelRunsEveryIndexOnce(t *testing.T) {
	for _, threads := range []int{1, 2, 5} {
		p := NewPool(threads)
		for _, c := range []struct{ n, grain int }{{0, 1}, {1, 1}, {10, 1}, {10, 3}, {100, 7}, {1000, 1000}, {5, 0}} {
			t.Run(fmt.Sprintf("threads=%d/n=%d/grain=%d", threads, c.n, c.grain), func(t *testing.T) {
				task := &countTask{hits: make([]atomic.Int32, c.n), threads: threads}
				p.Parallel(c.n, c.grain, task)
				if task.bad.Load() {
					t.Fatal("a chunk out of range or a bad worker number")
				}
				for i := range task.hits {
					if h := task.hits[i].Load(); h != 1 {
						t.Fatalf("index %d ran %d times", i, h)
					}
				}
			})
		}
		p.Close()
		if p.Threads() != threads {
			t.Errorf("Threads = %d, want %d", p.Threads(), threads)
		}
	}
}

func TestPoolIsSafeForConcurrentUse(t *testing.T) {
	p := NewPool(3)
	defer p.Close()
	r := rand.New(rand.NewPCG(31, 32))
	w := randMatrix(r, gguf.TypeQ8_0, 256, 512)
	x := randVec(r, 512)
	want := make([]float32, 256)
	MatVec(want, w, x)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			out := make([]float32, 256)
			for range 20 {
				p.MatVec(out, w, x)
				for i := range out {
					if out[i] != want[i] {
						t.Errorf("goroutine %d: row %d = %g, want %g", g, i, out[i], want[i])
						return
					}
				}
				task := &countTask{hits: make([]atomic.Int32, 50), threads: 3}
				p.Parallel(50, 4, task)
			}
		})
	}
	wg.Wait()
}

func TestClosedAndNilPoolsRunInline(t *testing.T) {
	p := NewPool(4)
	p.Close()
	p.Close()
	var nilPool *Pool
	for name, pool := range map[string]*Pool{"closed": p, "nil": nilPool} {
		task := &countTask{hits: make([]atomic.Int32, 100), threads: 1}
		pool.Parallel(100, 10, task)
		if task.bad.Load() || task.hits[99].Load() != 1 {
			t.Errorf("%s pool: Parallel did not run inline", name)
		}
		r := rand.New(rand.NewPCG(33, 34))
		w := randMatrix(r, gguf.TypeF32, 512, 512)
		x := randVec(r, 512)
		got, want := make([]float32, 512), make([]float32, 512)
		pool.MatVec(got, w, x)
		MatVec(want, w, x)
		if got[511] != want[511] {
			t.Errorf("%s pool: MatVec = %g, want %g", name, got[511], want[511])
		}
	}
	if nilPool.Threads() != 1 {
		t.Errorf("nil pool Threads = %d", nilPool.Threads())
	}
	nilPool.Close()
}

// TestKernelsDoNotAllocate: the hot path allocates nothing per call, on
// one thread or several.
func TestKernelsDoNotAllocate(t *testing.T) {
	r := rand.New(rand.NewPCG(37, 38))
	pool := NewPool(2)
	defer pool.Close()
	w := randMatrix(r, gguf.TypeQ8_0, 512, 256)
	x, x4 := randVec(r, 256), randVec(r, 4*256)
	out, out4 := make([]float32, 512), make([]float32, 4*512)
	scores := randVec(r, 100)
	for name, f := range map[string]func(){
		"MatVec":      func() { MatVec(out, w, x) },
		"Pool.MatVec": func() { pool.MatVec(out, w, x) },
		"Pool.MatMul": func() { pool.MatMul(out4, w, x4, 4) },
		"Softmax":     func() { Softmax(scores) },
	} {
		if n := testing.AllocsPerRun(20, f); n != 0 {
			t.Errorf("%s: %g allocations per call", name, n)
		}
	}
}
