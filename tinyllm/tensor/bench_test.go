package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/modelgate/modelgate/tinyllm/gguf"
)

// benchShapes are the demo model's matrices (rows x cols), then a 7B-class
// layer's.
var benchShapes = [][2]int{{64, 64}, {172, 64}, {64, 172}, {512, 64}, {1024, 1024}, {4096, 4096}}

func reportMACs(b *testing.B, macs int) {
	b.ReportMetric(float64(macs)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GMAC/s")
}

// BenchmarkMatVec measures one-token products on one thread and on a pool
// of GOMAXPROCS threads; the pool stays single-threaded below
// parallelMinWork.
func BenchmarkMatVec(b *testing.B) {
	r := rand.New(rand.NewPCG(41, 42))
	pool := NewPool(runtime.GOMAXPROCS(0))
	defer pool.Close()
	for _, typ := range allTypes {
		for _, s := range benchShapes {
			rows, cols := s[0], s[1]
			if cols%typ.BlockSize() != 0 {
				continue
			}
			w := benchMatrix(r, typ, rows, cols)
			x, out := randVec(r, cols), make([]float32, rows)
			b.Run(fmt.Sprintf("%s/%dx%d/1thread", typ, rows, cols), func(b *testing.B) {
				for b.Loop() {
					MatVec(out, w, x)
				}
				reportMACs(b, rows*cols)
			})
			b.Run(fmt.Sprintf("%s/%dx%d/pool", typ, rows, cols), func(b *testing.B) {
				for b.Loop() {
					pool.MatVec(out, w, x)
				}
				reportMACs(b, rows*cols)
			})
		}
	}
}

// BenchmarkMatMul measures batched products (prompt processing) of 32
// vectors.
func BenchmarkMatMul(b *testing.B) {
	const n = 32
	r := rand.New(rand.NewPCG(43, 44))
	pool := NewPool(runtime.GOMAXPROCS(0))
	defer pool.Close()
	for _, typ := range []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeQ8_0, gguf.TypeQ4_0} {
		for _, s := range benchShapes[:5] {
			rows, cols := s[0], s[1]
			if cols%typ.BlockSize() != 0 {
				continue
			}
			w := benchMatrix(r, typ, rows, cols)
			x, out := randVec(r, n*cols), make([]float32, n*rows)
			b.Run(fmt.Sprintf("%s/%dx%d/1thread", typ, rows, cols), func(b *testing.B) {
				for b.Loop() {
					MatMul(out, w, x, n)
				}
				reportMACs(b, n*rows*cols)
			})
			b.Run(fmt.Sprintf("%s/%dx%d/pool", typ, rows, cols), func(b *testing.B) {
				for b.Loop() {
					pool.MatMul(out, w, x, n)
				}
				reportMACs(b, n*rows*cols)
			})
		}
	}
}

var sink float32

func BenchmarkExp(b *testing.B) {
	b.Run("Exp", func(b *testing.B) {
		x := float32(-10)
		for b.Loop() {
			sink += Exp(x)
			x += 1e-6
		}
	})
	b.Run("math.Exp", func(b *testing.B) {
		x := -10.0
		for b.Loop() {
			sink += float32(math.Exp(x))
			x += 1e-6
		}
	})
}

// benchMatrix encodes normally distributed weights (no subnormals, which
// would time the CPU's slow path): up to 16 distinct rows, repeated.
func benchMatrix(r *rand.Rand, typ gguf.Type, rows, cols int) Matrix {
	distinct := refQuantize(typ, randVec(r, min(rows, 16)*cols))
	w := Matrix{Type: typ, Rows: rows, Cols: cols, Data: make([]byte, 0, rows*typ.RowBytes(cols))}
	for len(w.Data) < cap(w.Data) {
		w.Data = append(w.Data, distinct[:min(len(distinct), cap(w.Data)-len(w.Data))]...)
	}
	return w
}
