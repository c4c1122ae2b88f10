package tensor

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/modelgate/modelgate/tinyllm/gguf"
)

// The reference quantizers and decoders below are written from the ggml
// block descriptions, element by element and in float64 where it does not
// change the bytes, independently of the package's kernels.

func putHalf(b []byte, v float64) { binary.LittleEndian.PutUint16(b, F32ToF16(float32(v))) }

func getHalf(b []byte) float64 { return refHalf(binary.LittleEndian.Uint16(b)) }

// refQuantize encodes x as type t: ggml's reference algorithms for the
// types Quantize writes, simple valid encoders for Q4_K and Q6_K.
func refQuantize(t gguf.Type, x []float32) []byte {
	out := make([]byte, t.RowBytes(len(x)))
	bs, bb := t.BlockSize(), t.BlockBytes()
	for i := 0; i < len(x)/bs; i++ {
		b, v := out[i*bb:(i+1)*bb], x[i*bs:(i+1)*bs]
		switch t {
		case gguf.TypeF32:
			binary.LittleEndian.PutUint32(b, math.Float32bits(v[0]))
		case gguf.TypeF16:
			putHalf(b, float64(v[0]))
		case gguf.TypeBF16:
			binary.LittleEndian.PutUint16(b, f32ToBF16(v[0]))
		case gguf.TypeQ8_0:
			refQ8_0(b, v)
		case gguf.TypeQ4_0:
			refQ4_0(b, v)
		case gguf.TypeQ4_1:
			refQ4_1(b, v)
		case gguf.TypeQ4_K:
			refQ4_K(b, v)
		case gguf.TypeQ6_K:
			refQ6_K(b, v)
		default:
			panic("no reference quantizer for " + t.String())
		}
	}
	return out
}

func refQ8_0(b []byte, v []float32) {
	var amax float32
	for _, e := range v {
		amax = float32(math.Max(float64(amax), math.Abs(float64(e))))
	}
	d := amax / 127
	id := float32(0)
	if d != 0 {
		id = 1 / d
	}
	putHalf(b, float64(d))
	for j, e := range v {
		b[2+j] = byte(int8(math.Round(float64(e * id))))
	}
}

func refQ4_0(b []byte, v []float32) {
	var m float32
	for _, e := range v {
		if math.Abs(float64(e)) > math.Abs(float64(m)) {
			m = e
		}
	}
	d := m / -8
	id := float32(0)
	if d != 0 {
		id = 1 / d
	}
	putHalf(b, float64(d))
	q := func(e float32) byte { return byte(min(15, math.Trunc(float64(e*id+8.5)))) }
	for j := 0; j < 16; j++ {
		b[2+j] = q(v[j]) | q(v[16+j])<<4
	}
}

func refQ4_1(b []byte, v []float32) {
	lo, hi := float32(math.Inf(1)), float32(math.Inf(-1))
	for _, e := range v {
		lo, hi = min(lo, e), max(hi, e)
	}
	d := (hi - lo) / 15
	id := float32(0)
	if d != 0 {
		id = 1 / d
	}
	putHalf(b, float64(d))
	putHalf(b[2:], float64(lo))
	q := func(e float32) byte { return byte(min(15, math.Trunc(float64((e-lo)*id+0.5)))) }
	for j := 0; j < 16; j++ {
		b[4+j] = q(v[j]) | q(v[16+j])<<4
	}
}

// refQ4_K: eight sub-blocks of 32 with their own scale and min, both as
// 6-bit multiples of the block's d and dmin.
func refQ4_K(b []byte, v []float32) {
	var scale, minus [8]float64
	for j := range 8 {
		lo, hi := 0.0, math.Inf(-1)
		for _, e := range v[32*j : 32*j+32] {
			lo, hi = math.Min(lo, float64(e)), math.Max(hi, float64(e))
		}
		scale[j], minus[j] = (hi-lo)/15, -lo
	}
	var smax, mmax float64
	for j := range 8 {
		smax, mmax = math.Max(smax, scale[j]), math.Max(mmax, minus[j])
	}
	putHalf(b, smax/63)
	putHalf(b[2:], mmax/63)
	d, dmin := getHalf(b), getHalf(b[2:])
	s := b[4:16]
	var sc, mn [8]int
	for j := range 8 {
		if d > 0 {
			sc[j] = min(63, int(math.Round(scale[j]/d)))
		}
		if dmin > 0 {
			mn[j] = min(63, int(math.Round(minus[j]/dmin)))
		}
		if j < 4 {
			s[j] |= byte(sc[j])
			s[j+4] |= byte(mn[j])
		} else {
			s[j+4] = byte(sc[j]&15 | (mn[j]&15)<<4)
			s[j-4] |= byte(sc[j]>>4) << 6
			s[j] |= byte(mn[j]>>4) << 6
		}
	}
	for e := range 256 {
		j := e / 32
		q := 0
		if step := d * float64(sc[j]); step > 0 {
			q = int(math.Max(0, math.Min(15, math.Round((float64(v[e])+dmin*float64(mn[j]))/step))))
		}
		b[16+32*(j/2)+e%32] |= byte(q) << (4 * (j % 2))
	}
}

// refQ6_K: sixteen sub-blocks of 16 with an int8 scale each, a multiple of
// the block's d; quants are 6-bit, offset by 32.
func refQ6_K(b []byte, v []float32) {
	var scale [16]float64
	var smax float64
	for j := range 16 {
		for _, e := range v[16*j : 16*j+16] {
			scale[j] = math.Max(scale[j], math.Abs(float64(e))/31)
		}
		smax = math.Max(smax, scale[j])
	}
	putHalf(b[208:], smax/127)
	d := getHalf(b[208:])
	for j := range 16 {
		sc := 0
		if d > 0 {
			sc = min(127, int(math.Round(scale[j]/d)))
		}
		b[192+j] = byte(int8(sc))
	}
	for e := range 256 {
		step := d * float64(int8(b[192+e/16]))
		q := 32
		if step > 0 {
			q = 32 + int(math.Max(-32, math.Min(31, math.Round(float64(v[e])/step))))
		}
		n, k, l := e/128, e%128/32, e%32
		lo := 64*n + 32*(k%2) + l
		b[lo] |= byte(q&15) << (4 * (k / 2))
		b[128+32*n+l] |= byte(q>>4) << (2 * k)
	}
}

// refDecode decodes one element e of a block, in float64.
func refDecode(t gguf.Type, b []byte, e int) float64 {
	switch t {
	case gguf.TypeF32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
	case gguf.TypeF16:
		return getHalf(b)
	case gguf.TypeBF16:
		return float64(math.Float32frombits(uint32(binary.LittleEndian.Uint16(b)) << 16))
	case gguf.TypeQ8_0:
		return getHalf(b) * float64(int8(b[2+e]))
	case gguf.TypeQ4_0:
		return getHalf(b) * float64(int(b[2+e%16]>>(4*(e/16))&15)-8)
	case gguf.TypeQ4_1:
		return getHalf(b)*float64(b[4+e%16]>>(4*(e/16))&15) + getHalf(b[2:])
	case gguf.TypeQ4_K:
		j, s := e/32, b[4:16]
		var sc, mn int
		if j < 4 {
			sc, mn = int(s[j]&63), int(s[j+4]&63)
		} else {
			sc = int(s[j+4]&15) | int(s[j-4]>>6)<<4
			mn = int(s[j+4]>>4) | int(s[j]>>6)<<4
		}
		q := int(b[16+32*(j/2)+e%32] >> (4 * (j % 2)) & 15)
		return getHalf(b)*float64(sc)*float64(q) - getHalf(b[2:])*float64(mn)
	case gguf.TypeQ6_K:
		n, k, l := e/128, e%128/32, e%32
		lo := int(b[64*n+32*(k%2)+l] >> (4 * (k / 2)) & 15)
		hi := int(b[128+32*n+l] >> (2 * k) & 3)
		return getHalf(b[208:]) * float64(int8(b[192+e/16])) * float64(lo|hi<<4-32)
	}
	panic("no reference decoder for " + t.String())
}

func refDequantize(t gguf.Type, src []byte, n int) []float64 {
	out := make([]float64, n)
	bs, bb := t.BlockSize(), t.BlockBytes()
	for i := range out {
		out[i] = refDecode(t, src[i/bs*bb:(i/bs+1)*bb], i%bs)
	}
	return out
}

var allTypes = []gguf.Type{
	gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeQ8_0, gguf.TypeQ4_0,
	gguf.TypeQ4_1, gguf.TypeQ4_K, gguf.TypeQ6_K,
}

// quantStep bounds |decode(encode(x)) - x| for one element, relative to the
// largest magnitude in its block.
var quantStep = map[gguf.Type]float64{
	gguf.TypeF32: 0, gguf.TypeF16: 1.0 / 1024, gguf.TypeBF16: 1.0 / 128,
	gguf.TypeQ8_0: 1.0 / 127, gguf.TypeQ4_0: 1.0 / 8, gguf.TypeQ4_1: 2.0 / 15,
	gguf.TypeQ4_K: 2.0 / 15, gguf.TypeQ6_K: 1.0 / 31,
}

func randVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64())
	}
	return v
}

func TestQuantizeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, typ := range []gguf.Type{gguf.TypeF32, gguf.TypeF16, gguf.TypeBF16, gguf.TypeQ8_0, gguf.TypeQ4_0, gguf.TypeQ4_1} {
		t.Run(typ.String(), func(t *testing.T) {
			x := randVec(r, 32*64)
			x[5], x[40] = 0, -7 // a zero and an outlier
			copy(x[64:96], make([]float32, 32))
			got := make([]byte, typ.RowBytes(len(x)))
			if err := Quantize(typ, got, x); err != nil {
				t.Fatal(err)
			}
			if want := refQuantize(typ, x); !bytes.Equal(got, want) {
				t.Fatalf("Quantize differs from the reference encoder")
			}
		})
	}
	if err := Quantize(gguf.TypeQ6_K, make([]byte, 210), make([]float32, 256)); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("Quantize Q6_K = %v, want ErrUnsupportedType", err)
	}
	if err := Quantize(gguf.TypeQ8_0, make([]byte, 33), make([]float32, 32)); !errors.Is(err, ErrShape) {
		t.Errorf("Quantize to a short buffer = %v, want ErrShape", err)
	}
}

func TestDequantizeMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, typ := range allTypes {
		t.Run(typ.String(), func(t *testing.T) {
			x := randVec(r, 256*4)
			x[3] = 9 // an outlier
			enc := refQuantize(typ, x)
			got := make([]float32, len(x))
			if err := Dequantize(typ, got, enc); err != nil {
				t.Fatal(err)
			}
			want := refDequantize(typ, enc, len(x))
			bs := max(typ.BlockSize(), 32)
			for i := range got {
				if d := math.Abs(float64(got[i]) - want[i]); d > 1e-6*math.Abs(want[i]) {
					t.Fatalf("element %d = %g, reference decoder %g", i, got[i], want[i])
				}
				// The encoding is a fair approximation of x.
				var bmax float64
				for _, v := range x[i/bs*bs : (i/bs+1)*bs] {
					bmax = math.Max(bmax, math.Abs(float64(v)))
				}
				if d := math.Abs(want[i] - float64(x[i])); d > quantStep[typ]*bmax*1.01+1e-7 {
					t.Fatalf("element %d: %g encodes as %g", i, x[i], want[i])
				}
			}
		})
	}
	if err := Dequantize(gguf.TypeQ5_0, make([]float32, 32), make([]byte, 22)); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("Dequantize Q5_0 = %v, want ErrUnsupportedType", err)
	}
	if err := Dequantize(gguf.TypeQ4_0, make([]float32, 32), make([]byte, 17)); !errors.Is(err, ErrShape) {
		t.Errorf("Dequantize of a short block = %v, want ErrShape", err)
	}
}

// refMatVec is the float64 product of the decoded matrix with x, and for
// each row the sum of |w*x|, which bounds float32 rounding.
func refMatVec(w Matrix, x []float32) (out, mag []float64) {
	rb := w.RowBytes()
	for r := range w.Rows {
		row := refDequantize(w.Type, w.Data[r*rb:(r+1)*rb], w.Cols)
		var s, m float64
		for c, v := range row {
			s += v * float64(x[c])
			m += math.Abs(v * float64(x[c]))
		}
		out, mag = append(out, s), append(mag, m)
	}
	return out, mag
}

func randMatrix(r *rand.Rand, typ gguf.Type, rows, cols int) Matrix {
	return Matrix{Type: typ, Rows: rows, Cols: cols, Data: refQuantize(typ, randVec(r, rows*cols))}
}

func checkClose(t *testing.T, what string, got []float32, want, mag []float64) {
	t.Helper()
	for i := range got {
		if d := math.Abs(float64(got[i]) - want[i]); d > 1e-5*mag[i]+1e-6 {
			t.Fatalf("%s[%d] = %g, reference %g (|w*x| sum %g)", what, i, got[i], want[i], mag[i])
		}
	}
}

func TestDotRowAndMatVecMatchReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	pool := NewPool(3)
	defer pool.Close()
	for _, typ := range allTypes {
		for _, shape := range [][2]int{{1, 256}, {7, 512}, {64, 256}, {300, 768}} {
			rows, cols := shape[0], shape[1]
			t.Run(fmt.Sprintf("%s/%dx%d", typ, rows, cols), func(t *testing.T) {
				w := randMatrix(r, typ, rows, cols)
				x := randVec(r, cols)
				want, mag := refMatVec(w, x)
				got := make([]float32, rows)
				for i := range got {
					got[i] = DotRow(typ, w.Row(i), x)
				}
				checkClose(t, "DotRow", got, want, mag)
				MatVec(got, w, x)
				checkClose(t, "MatVec", got, want, mag)
				clear(got)
				pool.MatVec(got, w, x)
				checkClose(t, "Pool.MatVec", got, want, mag)
			})
		}
	}
}

func TestMatMulMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	pool := NewPool(2)
	defer pool.Close()
	for _, typ := range allTypes {
		for _, n := range []int{1, 3, 4, 9} {
			for _, shape := range [][2]int{{5, 256}, {130, 512}} {
				rows, cols := shape[0], shape[1]
				t.Run(fmt.Sprintf("%s/%dx%d/n=%d", typ, rows, cols, n), func(t *testing.T) {
					w := randMatrix(r, typ, rows, cols)
					x := randVec(r, n*cols)
					got := make([]float32, n*rows)
					got2 := make([]float32, n*rows)
					MatMul(got, w, x, n)
					pool.MatMul(got2, w, x, n)
					for tok := range n {
						want, mag := refMatVec(w, x[tok*cols:(tok+1)*cols])
						checkClose(t, "MatMul", got[tok*rows:(tok+1)*rows], want, mag)
						checkClose(t, "Pool.MatMul", got2[tok*rows:(tok+1)*rows], want, mag)
					}
				})
			}
		}
	}
}

func TestF32DotOddLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{0, 1, 2, 3, 7, 8, 9, 15, 17, 63} {
		a, b := randVec(r, n), randVec(r, n)
		var want, mag float64
		for i := range a {
			want += float64(a[i]) * float64(b[i])
			mag += math.Abs(float64(a[i]) * float64(b[i]))
		}
		checkClose(t, fmt.Sprintf("Dot/n=%d", n), []float32{Dot(a, b)}, []float64{want}, []float64{mag})
		w := Matrix{Type: gguf.TypeF32, Rows: 1, Cols: n, Data: refQuantize(gguf.TypeF32, a)}
		x := append(append(append(slicesClone(b), b...), b...), b...)
		out := make([]float32, 4)
		if n > 0 {
			MatMul(out, w, x, 4)
			for i, v := range out {
				checkClose(t, fmt.Sprintf("MatMul/n=%d/%d", n, i), []float32{v}, []float64{want}, []float64{mag})
			}
		}
	}
}

func slicesClone(x []float32) []float32 { return append([]float32(nil), x...) }

func TestNewMatrix(t *testing.T) {
	good := &gguf.Tensor{Name: "w", Dims: []uint64{64, 3}, Type: gguf.TypeQ8_0, Data: make([]byte, 3*68)}
	m, err := NewMatrix(good)
	if err != nil || m.Rows != 3 || m.Cols != 64 || m.RowBytes() != 68 {
		t.Fatalf("NewMatrix = %+v, %v", m, err)
	}
	cases := []struct {
		name string
		t    *gguf.Tensor
		want error
	}{
		{"3d", &gguf.Tensor{Name: "a", Dims: []uint64{4, 4, 4}, Type: gguf.TypeF32, Data: make([]byte, 256)}, ErrShape},
		{"short data", &gguf.Tensor{Name: "b", Dims: []uint64{4, 4}, Type: gguf.TypeF32, Data: make([]byte, 60)}, ErrShape},
		{"partial block", &gguf.Tensor{Name: "c", Dims: []uint64{16, 1}, Type: gguf.TypeQ8_0, Data: make([]byte, 17)}, ErrShape},
		{"Q5_1", &gguf.Tensor{Name: "d", Dims: []uint64{32, 1}, Type: gguf.TypeQ5_1, Data: make([]byte, 24)}, ErrUnsupportedType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := NewMatrix(c.t); !errors.Is(err, c.want) {
				t.Errorf("NewMatrix = %v, want %v", err, c.want)
			}
		})
	}
}

func TestDequantizeRow(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	w := randMatrix(r, gguf.TypeQ4_0, 4, 64)
	got := make([]float32, 64)
	w.DequantizeRow(got, 2)
	want := refDequantize(gguf.TypeQ4_0, w.Row(2), 64)
	for i := range got {
		if float64(got[i]) != want[i] {
			t.Fatalf("element %d = %g, want %g", i, got[i], want[i])
		}
	}
}
