package tensor

import "math"

// f16Table maps every IEEE 754 half-precision bit pattern to its float32
// value: 256 KiB, filled once at start-up.
var f16Table [1 << 16]float32

func init() {
	for h := range f16Table {
		f16Table[h] = f16ToF32Slow(uint16(h))
	}
}

// F16ToF32 converts an IEEE 754 half-precision value (as its bits) to
// float32. The conversion is exact.
func F16ToF32(h uint16) float32 { return f16Table[h] }

// f16ToF32Slow converts by bit manipulation: it fills f16Table.
func f16ToF32Slow(h uint16) float32 {
	sign := uint32(h&0x8000) << 16
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch {
	case exp == 0x1f: // infinity or NaN: keep the payload
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case exp == 0 && mant == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: mant * 2^-24, exact in float32
		v := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(sign | math.Float32bits(v))
	}
	return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
}

// F32ToF16 converts a float32 to IEEE 754 half precision (as its bits),
// rounding to nearest with ties to even, as the F16C instruction and ggml
// do. Values beyond the half range become infinities; NaNs stay NaNs.
func F32ToF16(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23) & 0xff
	mant := b & 0x7fffff
	if exp == 0xff {
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	}
	e := exp - 127 + 15
	if e >= 0x1f {
		return sign | 0x7c00
	}
	if e <= 0 { // half subnormal (or zero): units of 2^-24
		if e < -10 {
			return sign
		}
		m := mant | 0x800000
		shift := uint(14 - e)
		r := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || rem == half && r&1 == 1 {
			r++
		}
		return sign | uint16(r)
	}
	r := uint32(e)<<10 | mant>>13
	rem := mant & 0x1fff
	if rem > 0x1000 || rem == 0x1000 && r&1 == 1 {
		r++ // a carry into the exponent is correct, up to infinity
	}
	return sign | uint16(r)
}

// BF16ToF32 converts a bfloat16 value (as its bits) to float32, exactly.
func BF16ToF32(h uint16) float32 { return math.Float32frombits(uint32(h) << 16) }
