package tensor

import (
	"unsafe"

	"github.com/modelgate/modelgate/tinyllm/gguf"
)

// dots holds, by gguf.Type, the dot product of one encoded row with x
// (len(x) elements); nil means the type is unsupported.
var dots = [gguf.TypeBF16 + 1]func(row []byte, x []float32) float32{
	gguf.TypeF32:  func(row []byte, x []float32) float32 { return dotF32(f32s(row), x) },
	gguf.TypeF16:  dotF16,
	gguf.TypeBF16: dotBF16,
	gguf.TypeQ8_0: dotQ8_0,
	gguf.TypeQ4_0: dotQ4_0,
	gguf.TypeQ4_1: dotQ4_1,
	gguf.TypeQ4_K: dotQ4_K,
	gguf.TypeQ6_K: dotQ6_K,
}

// dequant decodes src, of a supported type t, into dst. It calls each
// decoder directly rather than through a table, so that the
// compiler can see dst does not escape and a stack buffer stays on the
// stack.
func dequant(t gguf.Type, dst []float32, src []byte) {
	switch t {
	case gguf.TypeF32:
		dequantF32(dst, src)
	case gguf.TypeF16:
		dequantF16(dst, src)
	case gguf.TypeBF16:
		dequantBF16(dst, src)
	case gguf.TypeQ8_0:
		dequantQ8_0(dst, src)
	case gguf.TypeQ4_0:
		dequantQ4_0(dst, src)
	case gguf.TypeQ4_1:
		dequantQ4_1(dst, src)
	case gguf.TypeQ4_K:
		dequantQ4_K(dst, src)
	case gguf.TypeQ6_K:
		dequantQ6_K(dst, src)
	default:
		panic("tensor: dequantize unsupported type " + t.String())
	}
}

// f32s views little-endian float32 bytes in place. The hosts Go supports
// for this package (amd64, arm64 and the other little-endian ports) read
// them directly; see endian.go.
func f32s(b []byte) []float32 {
	if len(b) < 4 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/4)
}

// u16s views little-endian uint16 bytes in place.
func u16s(b []byte) []uint16 {
	if len(b) < 2 {
		return nil
	}
	return unsafe.Slice((*uint16)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/2)
}

// Dot returns the dot product of a and b, which must have the same length.
func Dot(a, b []float32) float32 {
	if len(a) != len(b) {
		panic("tensor: Dot of slices of different lengths")
	}
	return dotF32(a, b)
}

// DotRow returns the dot product of row, len(x) elements encoded as type
// t, with x. It panics if t is unsupported or row is not len(x) elements.
func DotRow(t gguf.Type, row []byte, x []float32) float32 {
	if !Supported(t) || t.RowBytes(len(x)) != len(row) {
		panic("tensor: DotRow of a row that does not fit x")
	}
	return dots[t](row, x)
}

// dotF32 is the hot loop of every F32 matrix-vector product. Scalar code
// is bound by its two loads per element; four independent sums are enough
// to hide the latency of the adds, and indexing (rather than re-slicing
// the tails) keeps the loop free of bounds checks and pointer masking.
func dotF32(a, b []float32) float32 {
	n := len(a)
	b = b[:n:n]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i <= n-4; i += 4 {
		x, y := a[i:i+4:i+4], b[i:i+4:i+4]
		s0 += x[0] * y[0]
		s1 += x[1] * y[1]
		s2 += x[2] * y[2]
		s3 += x[3] * y[3]
	}
	for ; i < n; i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s2) + (s1 + s3)
}

// dot4F32 returns the dot products of w with four vectors at once, so that
// each element of w is loaded once for four tokens: five loads per four
// multiply-adds instead of eight.
func dot4F32(w, x0, x1, x2, x3 []float32) (float32, float32, float32, float32) {
	n := len(w)
	x0, x1, x2, x3 = x0[:n:n], x1[:n:n], x2[:n:n], x3[:n:n]
	// One sum per vector, fed pairs of products: eight sums would not fit
	// the fifteen vector registers beside their operands, and the
	// compiler's spills would sit on the dependency chains.
	var s0, s1, s2, s3 float32
	i := 0
	for ; i <= n-2; i += 2 {
		w2 := w[i : i+2 : i+2]
		a, b := w2[0], w2[1]
		y0, y1, y2, y3 := x0[i:i+2:i+2], x1[i:i+2:i+2], x2[i:i+2:i+2], x3[i:i+2:i+2]
		s0 += a*y0[0] + b*y0[1]
		s1 += a*y1[0] + b*y1[1]
		s2 += a*y2[0] + b*y2[1]
		s3 += a*y3[0] + b*y3[1]
	}
	if i < n {
		a := w[i]
		s0 += a * x0[i]
		s1 += a * x1[i]
		s2 += a * x2[i]
		s3 += a * x3[i]
	}
	return s0, s1, s2, s3
}

func dotF16(row []byte, x []float32) float32 {
	h := u16s(row)
	h = h[:len(x)]
	tab := &f16Table
	var s0, s1, s2, s3 float32
	for len(h) >= 4 && len(x) >= 4 {
		a, y := h[:4:4], x[:4:4]
		s0 += tab[a[0]] * y[0]
		s1 += tab[a[1]] * y[1]
		s2 += tab[a[2]] * y[2]
		s3 += tab[a[3]] * y[3]
		h, x = h[4:], x[4:]
	}
	for i, v := range h {
		s0 += tab[v] * x[i]
	}
	return (s0 + s2) + (s1 + s3)
}

func dotBF16(row []byte, x []float32) float32 {
	h := u16s(row)
	h = h[:len(x)]
	var s0, s1, s2, s3 float32
	for len(h) >= 4 && len(x) >= 4 {
		a, y := h[:4:4], x[:4:4]
		s0 += BF16ToF32(a[0]) * y[0]
		s1 += BF16ToF32(a[1]) * y[1]
		s2 += BF16ToF32(a[2]) * y[2]
		s3 += BF16ToF32(a[3]) * y[3]
		h, x = h[4:], x[4:]
	}
	for i, v := range h {
		s0 += BF16ToF32(v) * x[i]
	}
	return (s0 + s2) + (s1 + s3)
}

// Lookup tables that turn quant bytes into float32 with one load, which
// is faster than the integer-to-float conversion instruction.
var (
	i8Table     [256]float32    // byte -> float32(int8(b))
	nibbleTable [256][2]float32 // byte -> (low nibble - 8, high nibble - 8)
	uNibble     [256][2]float32 // byte -> (low nibble, high nibble)
)

func init() {
	for b := range 256 {
		i8Table[b] = float32(int8(b))
		nibbleTable[b] = [2]float32{float32(b&15) - 8, float32(b>>4) - 8}
		uNibble[b] = [2]float32{float32(b & 15), float32(b >> 4)}
	}
}

func dotQ8_0(row []byte, x []float32) float32 {
	tab := &i8Table
	var sum float32
	for len(row) >= q8_0Bytes && len(x) >= 32 {
		b, y := row[:q8_0Bytes:q8_0Bytes], x[:32:32]
		q := b[2:34:34]
		var s0, s1, s2, s3 float32
		for j := 0; j < 32; j += 4 {
			q4, y4 := q[j:j+4:j+4], y[j:j+4:j+4]
			s0 += tab[q4[0]] * y4[0]
			s1 += tab[q4[1]] * y4[1]
			s2 += tab[q4[2]] * y4[2]
			s3 += tab[q4[3]] * y4[3]
		}
		sum += half(b) * ((s0 + s2) + (s1 + s3))
		row, x = row[q8_0Bytes:], x[32:]
	}
	return sum
}

func dotQ4_0(row []byte, x []float32) float32 {
	tab := &nibbleTable
	var sum float32
	for len(row) >= q4_0Bytes && len(x) >= 32 {
		b, y := row[:q4_0Bytes:q4_0Bytes], x[:32:32]
		q := b[2:18:18]
		lo, hi := y[:16:16], y[16:32:32]
		var s0, s1, s2, s3 float32
		for j := 0; j < 16; j += 2 {
			q2, l2, h2 := q[j:j+2:j+2], lo[j:j+2:j+2], hi[j:j+2:j+2]
			v0, v1 := &tab[q2[0]], &tab[q2[1]]
			s0 += v0[0] * l2[0]
			s1 += v0[1] * h2[0]
			s2 += v1[0] * l2[1]
			s3 += v1[1] * h2[1]
		}
		sum += half(b) * ((s0 + s2) + (s1 + s3))
		row, x = row[q4_0Bytes:], x[32:]
	}
	return sum
}

func dotQ4_1(row []byte, x []float32) float32 {
	tab := &uNibble
	var sum float32
	for len(row) >= q4_1Bytes && len(x) >= 32 {
		b, y := row[:q4_1Bytes:q4_1Bytes], x[:32:32]
		q := b[4:20:20]
		lo, hi := y[:16:16], y[16:32:32]
		var s0, s1, s2, s3, sy float32
		for j := 0; j < 16; j += 2 {
			q2, l2, h2 := q[j:j+2:j+2], lo[j:j+2:j+2], hi[j:j+2:j+2]
			v0, v1 := &tab[q2[0]], &tab[q2[1]]
			s0 += v0[0] * l2[0]
			s1 += v0[1] * h2[0]
			s2 += v1[0] * l2[1]
			s3 += v1[1] * h2[1]
			sy += (l2[0] + h2[0]) + (l2[1] + h2[1])
		}
		sum += half(b)*((s0+s2)+(s1+s3)) + half(b[2:])*sy
		row, x = row[q4_1Bytes:], x[32:]
	}
	return sum
}

// dotQ4_K and dotQ6_K decode one 256-element super-block at a time onto
// the stack and take an F32 dot product of it.
func dotQ4_K(row []byte, x []float32) float32 {
	var tmp [256]float32
	var sum float32
	for len(row) >= q4_KBytes && len(x) >= 256 {
		dequantQ4_K(tmp[:], row[:q4_KBytes])
		sum += dotF32(tmp[:], x[:256])
		row, x = row[q4_KBytes:], x[256:]
	}
	return sum
}

func dotQ6_K(row []byte, x []float32) float32 {
	var tmp [256]float32
	var sum float32
	for len(row) >= q6_KBytes && len(x) >= 256 {
		dequantQ6_K(tmp[:], row[:q6_KBytes])
		sum += dotF32(tmp[:], x[:256])
		row, x = row[q6_KBytes:], x[256:]
	}
	return sum
}
