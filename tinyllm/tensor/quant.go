package tensor

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/modelgate/modelgate/tinyllm/gguf"
)

// Block layouts, as ggml defines them in ggml-common.h
// (https://github.com/ggml-org/ggml/blob/master/src/ggml-common.h).
// All scales are IEEE half precision, little-endian.
const (
	// Q8_0: d, then 32 int8 quants; x = d*q.
	q8_0Bytes = 2 + 32
	// Q4_0: d, then 16 bytes; element j (0..15) is the low nibble of byte j,
	// element j+16 the high nibble; x = d*(q-8).
	q4_0Bytes = 2 + 16
	// Q4_1: d, m, then 16 bytes of nibbles as in Q4_0; x = d*q + m.
	q4_1Bytes = 2 + 2 + 16
	// Q4_K: 256 elements in 8 sub-blocks of 32; d, dmin, 12 bytes of
	// 6-bit sub-block scales and mins, then 128 bytes of nibbles.
	q4_KBytes = 2 + 2 + 12 + 128
	// Q6_K: 256 elements in 16 sub-blocks of 16; 128 bytes of low nibbles,
	// 64 bytes of high 2-bit pairs, 16 int8 sub-block scales, then d.
	q6_KBytes = 128 + 64 + 16 + 2
)

// Supported reports whether t has dequantization and dot-product kernels:
// F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K.
func Supported(t gguf.Type) bool {
	return int(t) < len(dots) && dots[t] != nil
}

// Dequantize decodes src, a whole number of blocks of type t, into dst,
// which must hold exactly the elements src encodes.
func Dequantize(t gguf.Type, dst []float32, src []byte) error {
	if !Supported(t) {
		return fmt.Errorf("dequantize %s: %w", t, ErrUnsupportedType)
	}
	if t.RowBytes(len(dst)) != len(src) {
		return fmt.Errorf("dequantize %s: %d bytes for %d elements: %w", t, len(src), len(dst), ErrShape)
	}
	dequant(t, dst, src)
	return nil
}

// Quantize encodes src into dst as type t, with ggml's reference
// quantizers (quantize_row_*_ref) so that the bytes match what llama.cpp
// writes. Types: F32, F16, BF16, Q8_0, Q4_0 and Q4_1. len(src) must be a
// whole number of blocks and len(dst) exactly the encoded size.
func Quantize(t gguf.Type, dst []byte, src []float32) error {
	if t.RowBytes(len(src)) != len(dst) {
		return fmt.Errorf("quantize %s: %d bytes for %d elements: %w", t, len(dst), len(src), ErrShape)
	}
	switch t {
	case gguf.TypeF32:
		for i, v := range src {
			binary.LittleEndian.PutUint32(dst[4*i:], math.Float32bits(v))
		}
	case gguf.TypeF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], F32ToF16(v))
		}
	case gguf.TypeBF16:
		for i, v := range src {
			binary.LittleEndian.PutUint16(dst[2*i:], f32ToBF16(v))
		}
	case gguf.TypeQ8_0:
		for i := 0; i < len(src)/32; i++ {
			quantizeQ8_0(dst[i*q8_0Bytes:(i+1)*q8_0Bytes], src[i*32:(i+1)*32])
		}
	case gguf.TypeQ4_0:
		for i := 0; i < len(src)/32; i++ {
			quantizeQ4_0(dst[i*q4_0Bytes:(i+1)*q4_0Bytes], src[i*32:(i+1)*32])
		}
	case gguf.TypeQ4_1:
		for i := 0; i < len(src)/32; i++ {
			quantizeQ4_1(dst[i*q4_1Bytes:(i+1)*q4_1Bytes], src[i*32:(i+1)*32])
		}
	default:
		return fmt.Errorf("quantize %s: %w", t, ErrUnsupportedType)
	}
	return nil
}

// f32ToBF16 rounds to nearest even, as ggml's GGML_FP32_TO_BF16 does.
func f32ToBF16(f float32) uint16 {
	b := math.Float32bits(f)
	if b&0x7fffffff > 0x7f800000 { // NaN: force quiet
		return uint16(b>>16) | 64
	}
	return uint16((b + (0x7fff + (b>>16)&1)) >> 16)
}

// roundAway rounds half away from zero, like C's roundf.
func roundAway(x float32) int {
	return int(math.Round(float64(x)))
}

func quantizeQ8_0(dst []byte, x []float32) {
	var amax float32
	for _, v := range x {
		amax = max(amax, abs32(v))
	}
	d := amax / 127
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(dst, F32ToF16(d))
	for j, v := range x {
		dst[2+j] = byte(int8(roundAway(v * id)))
	}
}

func quantizeQ4_0(dst []byte, x []float32) {
	var amax, vmax float32 // largest magnitude, and the value that has it
	for _, v := range x {
		if abs32(v) > amax {
			amax, vmax = abs32(v), v
		}
	}
	d := vmax / -8
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(dst, F32ToF16(d))
	for j := 0; j < 16; j++ {
		// C truncates (int8_t)(x + 8.5f) toward zero; the sum is > 0 here.
		lo := min(15, int(int8(x[j]*id+8.5)))
		hi := min(15, int(int8(x[j+16]*id+8.5)))
		dst[2+j] = byte(lo) | byte(hi)<<4
	}
}

func quantizeQ4_1(dst []byte, x []float32) {
	vmin, vmax := x[0], x[0]
	for _, v := range x[1:] {
		vmin, vmax = min(vmin, v), max(vmax, v)
	}
	d := (vmax - vmin) / 15
	var id float32
	if d != 0 {
		id = 1 / d
	}
	binary.LittleEndian.PutUint16(dst, F32ToF16(d))
	binary.LittleEndian.PutUint16(dst[2:], F32ToF16(vmin))
	for j := 0; j < 16; j++ {
		lo := min(15, int(int8((x[j]-vmin)*id+0.5)))
		hi := min(15, int(int8((x[j+16]-vmin)*id+0.5)))
		dst[4+j] = byte(lo) | byte(hi)<<4
	}
}

func abs32(x float32) float32 { return math.Float32frombits(math.Float32bits(x) &^ (1 << 31)) }

func half(b []byte) float32 { return f16Table[binary.LittleEndian.Uint16(b)] }

func dequantF32(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:]))
	}
}

func dequantF16(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = f16Table[binary.LittleEndian.Uint16(src[2*i:])]
	}
}

func dequantBF16(dst []float32, src []byte) {
	for i := range dst {
		dst[i] = BF16ToF32(binary.LittleEndian.Uint16(src[2*i:]))
	}
}

func dequantQ8_0(dst []float32, src []byte) {
	for len(dst) >= 32 && len(src) >= q8_0Bytes {
		b, y := src[:q8_0Bytes:q8_0Bytes], dst[:32:32]
		d := half(b)
		for j := range y {
			y[j] = d * float32(int8(b[2+j]))
		}
		src, dst = src[q8_0Bytes:], dst[32:]
	}
}

func dequantQ4_0(dst []float32, src []byte) {
	for len(dst) >= 32 && len(src) >= q4_0Bytes {
		b, y := src[:q4_0Bytes:q4_0Bytes], dst[:32:32]
		d := half(b)
		q := b[2:18:18]
		for j := 0; j < 16; j++ {
			y[j] = d * float32(int(q[j]&15)-8)
			y[j+16] = d * float32(int(q[j]>>4)-8)
		}
		src, dst = src[q4_0Bytes:], dst[32:]
	}
}

func dequantQ4_1(dst []float32, src []byte) {
	for len(dst) >= 32 && len(src) >= q4_1Bytes {
		b, y := src[:q4_1Bytes:q4_1Bytes], dst[:32:32]
		d, m := half(b), half(b[2:])
		q := b[4:20:20]
		for j := 0; j < 16; j++ {
			y[j] = d*float32(q[j]&15) + m
			y[j+16] = d*float32(q[j]>>4) + m
		}
		src, dst = src[q4_1Bytes:], dst[32:]
	}
}

// q4KScaleMin unpacks the 6-bit scale and min of sub-block j (0..7) from
// the 12 packed bytes of a Q4_K (or Q5_K) block: ggml's get_scale_min_k4.
func q4KScaleMin(j int, s []byte) (sc, m uint8) {
	s = s[:12:12]
	if j < 4 {
		return s[j] & 63, s[j+4] & 63
	}
	return s[j+4]&0xf | (s[j-4]>>6)<<4, s[j+4]>>4 | (s[j]>>6)<<4
}

func dequantQ4_K(dst []float32, src []byte) {
	for len(dst) >= 256 && len(src) >= q4_KBytes {
		b, y := src[:q4_KBytes:q4_KBytes], dst[:256:256]
		d, dmin := half(b), half(b[2:])
		scales, q := b[4:16:16], b[16:144:144]
		for g := 0; g < 4; g++ { // 64 elements: two sub-blocks share 32 bytes
			sc1, m1 := q4KScaleMin(2*g, scales)
			sc2, m2 := q4KScaleMin(2*g+1, scales)
			d1, mm1 := d*float32(sc1), dmin*float32(m1)
			d2, mm2 := d*float32(sc2), dmin*float32(m2)
			qq, yy := q[32*g:32*g+32:32*g+32], y[64*g:64*g+64:64*g+64]
			for l := 0; l < 32; l++ {
				yy[l] = d1*float32(qq[l]&15) - mm1
				yy[l+32] = d2*float32(qq[l]>>4) - mm2
			}
		}
		src, dst = src[q4_KBytes:], dst[256:]
	}
}

func dequantQ6_K(dst []float32, src []byte) {
	for len(dst) >= 256 && len(src) >= q6_KBytes {
		b, y := src[:q6_KBytes:q6_KBytes], dst[:256:256]
		d := half(b[208:])
		for n := 0; n < 2; n++ { // two halves of 128 elements
			ql, qh := b[64*n:64*n+64:64*n+64], b[128+32*n:128+32*n+32:128+32*n+32]
			sc := b[192+8*n : 192+8*n+8 : 192+8*n+8]
			yy := y[128*n : 128*n+128 : 128*n+128]
			for l := 0; l < 32; l++ {
				is := l / 16
				q1 := int(ql[l]&15|(qh[l]&3)<<4) - 32
				q2 := int(ql[l+32]&15|(qh[l]>>2&3)<<4) - 32
				q3 := int(ql[l]>>4|(qh[l]>>4&3)<<4) - 32
				q4 := int(ql[l+32]>>4|(qh[l]>>6&3)<<4) - 32
				yy[l] = d * float32(int8(sc[is])) * float32(q1)
				yy[l+32] = d * float32(int8(sc[is+2])) * float32(q2)
				yy[l+64] = d * float32(int8(sc[is+4])) * float32(q3)
				yy[l+96] = d * float32(int8(sc[is+6])) * float32(q4)
			}
		}
		src, dst = src[q6_KBytes:], dst[256:]
	}
}
