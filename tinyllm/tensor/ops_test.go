package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// closeTo reports whether got is within tol of want, relative to |want|
// above 1 and absolute below.
func closeTo(got float32, want, tol float64) bool {
	return math.Abs(float64(got)-want) <= tol*math.Max(1, math.Abs(want))
}

func TestRMSNorm(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	for _, n := range []int{1, 8, 64, 4096} {
		x, w := randVec(r, n), randVec(r, n)
		var ss float64
		for _, v := range x {
			ss += float64(v) * float64(v)
		}
		scale := 1 / math.Sqrt(ss/float64(n)+1e-5)
		out := make([]float32, n)
		RMSNorm(out, x, w, 1e-5)
		for i := range out {
			if want := float64(x[i]) * scale * float64(w[i]); !closeTo(out[i], want, 1e-6) {
				t.Fatalf("n=%d: out[%d] = %g, want %g", n, i, out[i], want)
			}
		}
		RMSNorm(x, x, w, 1e-5)
		for i := range out {
			if out[i] != x[i] {
				t.Fatalf("n=%d: in place differs at %d", n, i)
			}
		}
	}
}

func TestSoftmax(t *testing.T) {
	r := rand.New(rand.NewPCG(23, 24))
	for _, x := range [][]float32{{0}, {1, 2, 3}, {-1e4, 0, 5}, {80, 90, 100}, randVec(r, 1000)} {
		m := math.Inf(-1)
		for _, v := range x {
			m = math.Max(m, float64(v))
		}
		want := make([]float64, len(x))
		var sum float64
		for i, v := range x {
			want[i] = math.Exp(float64(v) - m)
			sum += want[i]
		}
		Softmax(x)
		var total float64
		for i := range x {
			if !closeTo(x[i], want[i]/sum, 1e-6) {
				t.Fatalf("softmax[%d] = %g, want %g", i, x[i], want[i]/sum)
			}
			total += float64(x[i])
		}
		if math.Abs(total-1) > 1e-5 {
			t.Errorf("softmax sums to %g", total)
		}
	}
	Softmax(nil)
}

func TestSiLUAndSwiGLU(t *testing.T) {
	r := rand.New(rand.NewPCG(25, 26))
	x := append(randVec(r, 500), 0, -100, 100, 20, -20)
	up := randVec(r, len(x))
	silu := func(v float32) float64 { return float64(v) / (1 + math.Exp(-float64(v))) }
	got := slicesClone(x)
	SiLU(got)
	gate := slicesClone(x)
	SwiGLU(gate, up)
	for i, v := range x {
		if !closeTo(got[i], silu(v), 1e-6) {
			t.Fatalf("silu(%g) = %g, want %g", v, got[i], silu(v))
		}
		if want := silu(v) * float64(up[i]); !closeTo(gate[i], want, 1e-6) {
			t.Fatalf("swiglu(%g, %g) = %g, want %g", v, up[i], gate[i], want)
		}
	}
}

func TestExp(t *testing.T) {
	for x := float32(-90); x < 89; x += 0.001 {
		got, want := float64(Exp(x)), math.Exp(float64(x))
		ulp := math.Abs(float64(math.Nextafter32(float32(want), float32(math.Inf(1)))) - float64(float32(want)))
		if math.Abs(got-want) > 2*ulp {
			t.Fatalf("Exp(%g) = %g, want %g (%g ulp)", x, got, want, math.Abs(got-want)/ulp)
		}
	}
	for _, c := range []struct{ x, want float32 }{
		{0, 1}, {float32(math.Inf(-1)), 0}, {-200, 0}, {float32(math.Inf(1)), float32(math.Inf(1))}, {100, float32(math.Inf(1))},
	} {
		if got := Exp(c.x); got != c.want {
			t.Errorf("Exp(%g) = %g, want %g", c.x, got, c.want)
		}
	}
	if v := Exp(float32(math.NaN())); v == v {
		t.Errorf("Exp(NaN) = %g", v)
	}
}

func TestElementWise(t *testing.T) {
	r := rand.New(rand.NewPCG(27, 28))
	for _, n := range []int{0, 1, 5, 64, 67} {
		a, b := randVec(r, n), randVec(r, n)
		add, mul, scale, axpy := slicesClone(a), slicesClone(a), slicesClone(a), slicesClone(a)
		Add(add, b)
		Mul(mul, b)
		Scale(scale, 0.5)
		AXPY(axpy, -1.5, b)
		for i := range a {
			x, y := float64(a[i]), float64(b[i])
			if !closeTo(add[i], x+y, 1e-7) || !closeTo(mul[i], x*y, 1e-7) || !closeTo(scale[i], x/2, 1e-7) || !closeTo(axpy[i], x-1.5*y, 1e-7) {
				t.Fatalf("n=%d, element %d: add %g mul %g scale %g axpy %g", n, i, add[i], mul[i], scale[i], axpy[i])
			}
		}
	}
}

func TestArgmax(t *testing.T) {
	nan := float32(math.NaN())
	cases := []struct {
		x    []float32
		want int
	}{
		{nil, -1},
		{[]float32{3}, 0},
		{[]float32{1, 5, 5, 2}, 1},
		{[]float32{-3, -1, -2}, 1},
		{[]float32{nan, 2, nan, 7, 7}, 3},
		{[]float32{float32(math.Inf(-1)), float32(math.Inf(-1))}, 0},
	}
	for _, c := range cases {
		if got := Argmax(c.x); got != c.want {
			t.Errorf("Argmax(%v) = %d, want %d", c.x, got, c.want)
		}
	}
}

func TestRope(t *testing.T) {
	r := rand.New(rand.NewPCG(29, 30))
	for _, c := range []struct{ heads, headDim, ropeDim, pos int }{
		{1, 8, 8, 0}, {4, 8, 8, 3}, {2, 16, 8, 100}, {3, 64, 64, 511}, {2, 128, 128, 4000},
	} {
		x := randVec(r, c.heads*c.headDim)
		orig := slicesClone(x)
		cos, sin := make([]float32, c.ropeDim/2), make([]float32, c.ropeDim/2)
		RopeAngles(cos, sin, c.pos, 10000, nil)
		Rope(x, c.headDim, cos, sin)
		for h := range c.heads {
			for i := range c.headDim / 2 {
				j := h*c.headDim + 2*i
				x0, x1 := float64(orig[j]), float64(orig[j+1])
				w0, w1 := x0, x1
				if 2*i < c.ropeDim {
					theta := float64(c.pos) * math.Pow(10000, -2*float64(i)/float64(c.ropeDim))
					w0 = x0*math.Cos(theta) - x1*math.Sin(theta)
					w1 = x0*math.Sin(theta) + x1*math.Cos(theta)
				}
				// The angle is rounded to float32, so allow pos * 2^-23 radians.
				tol := 1e-6 + 4*float64(c.pos)*0x1p-23
				if !closeTo(x[j], w0, tol) || !closeTo(x[j+1], w1, tol) {
					t.Fatalf("%+v: head %d pair %d = (%g, %g), want (%g, %g)", c, h, i, x[j], x[j+1], w0, w1)
				}
			}
		}
	}
}

func TestRopeFrequencyFactors(t *testing.T) {
	factors := []float32{1, 2, 8, 32}
	cos, sin := make([]float32, 4), make([]float32, 4)
	RopeAngles(cos, sin, 77, 500000, factors)
	for i := range cos {
		theta := 77 * math.Pow(500000, -2*float64(i)/8) / float64(factors[i])
		if !closeTo(cos[i], math.Cos(theta), 1e-5) || !closeTo(sin[i], math.Sin(theta), 1e-5) {
			t.Errorf("pair %d: (cos, sin) = (%g, %g), want (%g, %g)", i, cos[i], sin[i], math.Cos(theta), math.Sin(theta))
		}
	}
}

func TestStridedProducts(t *testing.T) {
	r := rand.New(rand.NewPCG(35, 36))
	for _, c := range []struct{ rows, cols, stride int }{{1, 1, 1}, {3, 5, 9}, {8, 64, 64}, {9, 130, 200}, {16, 7, 512}} {
		a := randVec(r, c.rows*c.stride)
		x, y := randVec(r, c.cols), randVec(r, c.rows)
		mv, vm := make([]float32, c.rows), make([]float32, c.cols)
		for i := range vm {
			vm[i] = 99 // overwritten, not accumulated into
		}
		MatVecF32(mv, a, c.stride, x)
		VecMatF32(vm, y, a, c.stride)
		for i := range c.rows {
			var want, mag float64
			for j := range c.cols {
				want += float64(a[i*c.stride+j]) * float64(x[j])
				mag += math.Abs(float64(a[i*c.stride+j]) * float64(x[j]))
			}
			checkClose(t, "MatVecF32", mv[i:i+1], []float64{want}, []float64{mag})
		}
		for j := range c.cols {
			var want, mag float64
			for i := range c.rows {
				want += float64(y[i]) * float64(a[i*c.stride+j])
				mag += math.Abs(float64(y[i]) * float64(a[i*c.stride+j]))
			}
			checkClose(t, "VecMatF32", vm[j:j+1], []float64{want}, []float64{mag})
		}
	}
}
