package tensor

import "math"

// The element-wise operations below follow ggml's CPU code where the order
// of float32 operations matters, so that results agree with llama.cpp to
// the last bits as far as plain Go allows. They panic, as an index out of
// range would, when slice lengths do not match.

// RMSNorm sets out = x / sqrt(mean(x²) + eps) * weight, element-wise; out
// may be x. The mean is accumulated in float64, as ggml does.
func RMSNorm(out, x, weight []float32, eps float32) {
	out, weight = out[:len(x)], weight[:len(x)]
	var sum float64
	for _, v := range x {
		sum += float64(v * v)
	}
	mean := float32(sum / float64(len(x)))
	scale := 1 / float32(math.Sqrt(float64(mean+eps)))
	for i, v := range x {
		out[i] = v * scale * weight[i]
	}
}

// Softmax replaces x by exp(x - max) / sum, in place. The sum is
// accumulated in float64. This is the inner loop of attention, one
// exponential per score, so the exponential is written out here.
func Softmax(x []float32) {
	if len(x) == 0 {
		return
	}
	m := x[0]
	for _, v := range x {
		if v > m {
			m = v
		}
	}
	var s0, s1 float64
	for i, v := range x {
		d := v - m // <= 0, or NaN
		var e float32
		if d > -87 {
			t := d*log2e + roundMagic
			n := t - roundMagic
			r := d - n*ln2Hi - n*ln2Lo
			p := ((((expP0*r+expP1)*r+expP2)*r+expP3)*r+expP4)*r + expP5
			e = (p*r*r + r + 1) * math.Float32frombits((math.Float32bits(t)-(math.Float32bits(roundMagic)-127))<<23)
		} else {
			e = float32(math.Exp(float64(d)))
		}
		x[i] = e
		if i&1 == 0 {
			s0 += float64(e)
		} else {
			s1 += float64(e)
		}
	}
	Scale(x, float32(1/(s0+s1)))
}

// SiLU replaces x by x * sigmoid(x) = x / (1 + exp(-x)), in place.
func SiLU(x []float32) {
	for i, v := range x {
		x[i] = v / (1 + Exp(-v))
	}
}

// SwiGLU sets gate = silu(gate) * up, element-wise: the gated activation
// of a llama feed-forward block.
func SwiGLU(gate, up []float32) {
	up = up[:len(gate)]
	for i, v := range gate {
		gate[i] = v / (1 + Exp(-v)) * up[i]
	}
}

// Add sets dst += x, element-wise.
func Add(dst, x []float32) {
	x = x[:len(dst)]
	for i := range dst {
		dst[i] += x[i]
	}
}

// Mul sets dst *= x, element-wise.
func Mul(dst, x []float32) {
	x = x[:len(dst)]
	for i := range dst {
		dst[i] *= x[i]
	}
}

// Scale sets x *= s.
func Scale(x []float32, s float32) {
	for i := range x {
		x[i] *= s
	}
}

// AXPY sets dst += a * x, element-wise: a weighted sum of value vectors
// in attention.
func AXPY(dst []float32, a float32, x []float32) {
	x = x[:len(dst)]
	for len(dst) >= 4 && len(x) >= 4 {
		d, v := dst[:4:4], x[:4:4]
		d[0] += a * v[0]
		d[1] += a * v[1]
		d[2] += a * v[2]
		d[3] += a * v[3]
		dst, x = dst[4:], x[4:]
	}
	for i := range dst {
		dst[i] += a * x[i]
	}
}

// Argmax returns the index of the largest element, the lowest such index
// on ties, or -1 for an empty slice. NaNs are never chosen.
func Argmax(x []float32) int {
	best := -1
	var m float32
	for i, v := range x {
		if best < 0 && v == v || v > m {
			best, m = i, v
		}
	}
	return best
}

// RopeAngles fills cos and sin, of equal length ropeDim/2, with the
// rotation of each pair of dimensions at position pos: pair i turns by
// pos * base^(-2i/ropeDim) / factors[i]. factors, the per-pair frequency
// divisors of Llama 3 (the rope_freqs tensor), may be nil for none. As in
// ggml (rope_cache_init) the angle is built by repeated float32
// multiplication.
func RopeAngles(cos, sin []float32, pos int, base float32, factors []float32) {
	sin = sin[:len(cos)]
	if factors != nil {
		factors = factors[:len(cos)]
	}
	if len(cos) == 0 {
		return
	}
	step := float32(math.Pow(float64(base), float64(-2/float32(2*len(cos)))))
	theta := float32(pos)
	for i := range cos {
		t := theta
		if factors != nil {
			t /= factors[i]
		}
		s, c := math.Sincos(float64(t))
		cos[i], sin[i] = float32(c), float32(s)
		theta *= step
	}
}

// Rope applies rotary position embedding, ggml's "normal" mode (rope type
// 0, the llama one), to every head of x: in each head of headDim elements,
// the adjacent pairs (x[2i], x[2i+1]) for i < len(cos) turn by the angles
// RopeAngles gave. Elements of a head beyond 2*len(cos) are unchanged.
func Rope(x []float32, headDim int, cos, sin []float32) {
	n := len(cos)
	sin = sin[:n]
	if 2*n > headDim {
		panic("tensor: Rope over more dimensions than a head has")
	}
	for h := 0; h+headDim <= len(x); h += headDim {
		v := x[h : h+2*n]
		for i := range n {
			x0, x1 := v[2*i], v[2*i+1]
			v[2*i] = x0*cos[i] - x1*sin[i]
			v[2*i+1] = x0*sin[i] + x1*cos[i]
		}
	}
}

// Exp returns e^x in float32, within 2 ulp of the exact value: a
// polynomial after range reduction (after Cephes' expf), faster than
// math.Exp on float64. Softmax and SiLU use it.
func Exp(x float32) float32 {
	if !(x > -87 && x < 88) { // also NaN; underflow and overflow are rare
		return float32(math.Exp(float64(x)))
	}
	return expCore(x)
}

// Constants of Exp (after Cephes' expf).
const (
	log2e      = 1.44269504088896341
	ln2Hi      = 0.693359375 // ln 2 split in two for an exact reduction
	ln2Lo      = -2.12194440e-4
	roundMagic = 12582912 // 1.5 * 2^23: adding it rounds to an integer
	expP0      = 1.9875691500e-4
	expP1      = 1.3981999507e-3
	expP2      = 8.3334519073e-3
	expP3      = 4.1665795894e-2
	expP4      = 1.6666665459e-1
	expP5      = 5.0000001201e-1
)

// expCore is Exp for -87 < x < 88: e^x = 2^n * e^r with |r| <= ln2/2, the
// latter a polynomial, 2^n built in the exponent bits.
func expCore(x float32) float32 {
	t := x*log2e + roundMagic
	n := t - roundMagic
	r := x - n*ln2Hi - n*ln2Lo
	p := ((((expP0*r+expP1)*r+expP2)*r+expP3)*r+expP4)*r + expP5
	return (p*r*r + r + 1) * math.Float32frombits((math.Float32bits(t)-(math.Float32bits(roundMagic)-127))<<23)
}
