package tensor

import (
	"math"
	"math/rand/v2"
	"testing"
)

// refHalf decodes half-precision bits with float64 arithmetic.
func refHalf(h uint16) float64 {
	sign := 1.0
	if h&0x8000 != 0 {
		sign = -1
	}
	exp, mant := int(h>>10&0x1f), float64(h&0x3ff)
	switch exp {
	case 0:
		return sign * math.Ldexp(mant, -24)
	case 0x1f:
		if mant != 0 {
			return math.NaN()
		}
		return sign * math.Inf(1)
	}
	return sign * math.Ldexp(1+mant/1024, exp-15)
}

func TestF16ToF32IsExactForEveryValue(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		got, want := float64(F16ToF32(uint16(h))), refHalf(uint16(h))
		if math.IsNaN(want) != math.IsNaN(got) || !math.IsNaN(want) && got != want {
			t.Fatalf("F16ToF32(%#04x) = %g, want %g", h, got, want)
		}
		if math.IsNaN(want) {
			continue
		}
		if back := F32ToF16(float32(got)); back != uint16(h) {
			t.Fatalf("F32ToF16(%g) = %#04x, want %#04x", got, back, h)
		}
	}
}

func TestF32ToF16RoundsToNearestEven(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	cases := []float32{0, 65504, 65519, 65520, 1e6, 5.96e-8, 2.98e-8, 2.99e-8, 1e-9, 1.00048828125, 1.000732421875}
	for range 200000 {
		cases = append(cases, float32(r.NormFloat64()*math.Pow(2, float64(r.IntN(40)-25))))
	}
	for _, f := range cases {
		h := F32ToF16(f)
		got := refHalf(h)
		// No other half value is nearer; on a tie the mantissa is even.
		for _, nb := range []uint16{h - 1, h + 1, h ^ 0x8000} {
			alt := refHalf(nb)
			if math.IsNaN(alt) || math.IsInf(alt, 0) && !math.IsInf(got, 0) {
				continue
			}
			dg, da := math.Abs(got-float64(f)), math.Abs(alt-float64(f))
			if math.IsInf(got, 0) {
				dg = math.Abs(float64(f)) - 65520 // rounds to infinity from 65520 on
				if dg < 0 {
					t.Fatalf("F32ToF16(%g) = inf", f)
				}
				continue
			}
			if da < dg || da == dg && h&1 == 1 {
				t.Fatalf("F32ToF16(%g) = %#04x (%g); %#04x (%g) is nearer", f, h, got, nb, alt)
			}
		}
	}
	for _, f := range []float32{float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN())} {
		if got, want := float64(F16ToF32(F32ToF16(f))), float64(f); !(got == want || math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("round trip of %g = %g", want, got)
		}
	}
}

func TestBF16ToF32(t *testing.T) {
	for _, f := range []float32{0, 1, -2.5, 3.140625, 1e30} {
		if got := BF16ToF32(f32ToBF16(f)); math.Abs(float64(got-f)) > math.Abs(float64(f))/128 {
			t.Errorf("bf16 round trip of %g = %g", f, got)
		}
	}
	if f32ToBF16(1+1.0/256) != 0x3f80 || f32ToBF16(1+3.0/256) != 0x3f82 { // ties to even
		t.Errorf("bf16 ties: %#x %#x", f32ToBF16(1+1.0/256), f32ToBF16(1+3.0/256))
	}
}
