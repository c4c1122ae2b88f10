package tensor

// MatVecF32 and VecMatF32 multiply by a float32 matrix held in a slice with
// rows stride elements apart, of which only a prefix of each row is used:
// attention over a cache laid out as [dim][position], where the positions
// filled so far are a prefix of each row.

// MatVecF32 sets out[r] = sum over c < len(x) of a[r*stride+c] * x[c], for
// r < len(out). Four rows are taken at a time, sharing the loads of x.
func MatVecF32(out, a []float32, stride int, x []float32) {
	n := len(x)
	r := 0
	for ; r+4 <= len(out); r += 4 {
		o := out[r : r+4 : r+4]
		o[0], o[1], o[2], o[3] = dot4F32(x,
			a[r*stride:r*stride+n],
			a[(r+1)*stride:(r+1)*stride+n],
			a[(r+2)*stride:(r+2)*stride+n],
			a[(r+3)*stride:(r+3)*stride+n])
	}
	for ; r < len(out); r++ {
		out[r] = dotF32(a[r*stride:r*stride+n], x)
	}
}

// VecMatF32 sets out[c] = sum over r < len(x) of x[r] * a[r*stride+c], for
// c < len(out): the product of the row vector x with the matrix. Four rows
// are folded in per pass over out.
func VecMatF32(out, x, a []float32, stride int) {
	n := len(out)
	clear(out)
	r := 0
	for ; r+4 <= len(x); r += 4 {
		x4 := x[r : r+4 : r+4]
		x0, x1, x2, x3 := x4[0], x4[1], x4[2], x4[3]
		a0 := a[r*stride:][:n:n]
		a1 := a[(r+1)*stride:][:n:n]
		a2 := a[(r+2)*stride:][:n:n]
		a3 := a[(r+3)*stride:][:n:n]
		o := out[:n:n]
		for c := range o {
			o[c] += (x0*a0[c] + x1*a1[c]) + (x2*a2[c] + x3*a3[c])
		}
	}
	for ; r < len(x); r++ {
		AXPY(out, x[r], a[r*stride:r*stride+n])
	}
}
