package tensor

import "github.com/modelgate/modelgate/tinyllm/gguf"

// MatVec sets out[r] = dot(row r of w, x) for every row: len(out) must be
// w.Rows and len(x) w.Cols. It runs on the calling goroutine; Pool.MatVec
// spreads large products over threads. It panics on mismatched lengths or
// an unsupported type, as an index out of range would.
func MatVec(out []float32, w Matrix, x []float32) {
	checkMul(out, w, x, 1)
	matVecRows(out, w, x, 0, w.Rows)
}

// MatMul multiplies w by n vectors at once: x holds n rows of w.Cols
// elements and out n rows of w.Rows, out[t*w.Rows+r] = dot(row r of w,
// x[t*w.Cols:]). It reads each weight row once per four vectors, which
// makes it faster than n calls of MatVec. It runs on the calling
// goroutine; see Pool.MatMul.
func MatMul(out []float32, w Matrix, x []float32, n int) {
	checkMul(out, w, x, n)
	matMulRows(out, w, x, n, 0, w.Rows)
}

func checkMul(out []float32, w Matrix, x []float32, n int) {
	if !Supported(w.Type) {
		panic("tensor: multiply by a matrix of unsupported type " + w.Type.String())
	}
	if n < 1 || len(out) != n*w.Rows || len(x) != n*w.Cols || len(w.Data) != w.Rows*w.RowBytes() {
		panic("tensor: multiply with mismatched lengths")
	}
}

// matVecRows computes rows [lo, hi) of a matrix-vector product.
func matVecRows(out []float32, w Matrix, x []float32, lo, hi int) {
	out = out[lo:hi]
	if w.Type == gguf.TypeF32 {
		// Four rows at a time share the loads of x: dot4F32 is symmetric.
		wf := f32s(w.Data[lo*4*w.Cols : hi*4*w.Cols])
		c := w.Cols
		r := 0
		for ; r+4 <= len(out); r += 4 {
			o := out[r : r+4 : r+4]
			o[0], o[1], o[2], o[3] = dot4F32(x, wf[r*c:(r+1)*c], wf[(r+1)*c:(r+2)*c], wf[(r+2)*c:(r+3)*c], wf[(r+3)*c:(r+4)*c])
		}
		for ; r < len(out); r++ {
			out[r] = dotF32(wf[r*c:(r+1)*c:(r+1)*c], x)
		}
		return
	}
	dot := dots[w.Type]
	rb := w.RowBytes()
	data := w.Data[lo*rb : hi*rb]
	for r := range out {
		out[r] = dot(data[r*rb:(r+1)*rb:(r+1)*rb], x)
	}
}

// rowTile is how many weight rows matMulRows keeps hot while it walks the
// vectors: 16 rows of 4096 F32 columns is 256 KiB.
const rowTile = 16

// matMulRows computes rows [lo, hi) of a matrix-matrix product: tiles of
// rows, and within a tile four vectors at a time.
func matMulRows(out []float32, w Matrix, x []float32, n, lo, hi int) {
	rows, cols := w.Rows, w.Cols
	if w.Type != gguf.TypeF32 {
		matMulRowsDequant(out, w, x, n, lo, hi)
		return
	}
	for r0 := lo; r0 < hi; r0 += rowTile {
		r1 := min(r0+rowTile, hi)
		t := 0
		for ; t+4 <= n; t += 4 {
			x0 := x[t*cols : (t+1)*cols]
			x1 := x[(t+1)*cols : (t+2)*cols]
			x2 := x[(t+2)*cols : (t+3)*cols]
			x3 := x[(t+3)*cols : (t+4)*cols]
			o := out[t*rows : (t+4)*rows]
			for r := r0; r < r1; r++ {
				wr := f32s(w.Data[r*4*cols : (r+1)*4*cols])
				o[r], o[rows+r], o[2*rows+r], o[3*rows+r] = dot4F32(wr, x0, x1, x2, x3)
			}
		}
		for ; t < n; t++ {
			matVecRows(out[t*rows:(t+1)*rows], w, x[t*cols:(t+1)*cols], r0, r1)
		}
	}
}

// matMulRowsDequant is matMulRows for encoded types: each row is decoded
// in pieces of up to 256 elements onto the stack, once per four vectors.
func matMulRowsDequant(out []float32, w Matrix, x []float32, n, lo, hi int) {
	rows, cols := w.Rows, w.Cols
	rb := w.RowBytes()
	piece := 256
	if cols < piece {
		piece = cols
	}
	pieceBytes := w.Type.RowBytes(piece)
	var tmp [256]float32
	for r0 := lo; r0 < hi; r0 += rowTile {
		r1 := min(r0+rowTile, hi)
		t := 0
		for ; t+4 <= n; t += 4 {
			o := out[t*rows : (t+4)*rows]
			for r := r0; r < r1; r++ {
				row := w.Data[r*rb : (r+1)*rb]
				var s0, s1, s2, s3 float32
				for c := 0; c < cols; c += piece {
					m := min(piece, cols-c)
					b := w.Type.RowBytes(m)
					if m == piece {
						b = pieceBytes
					}
					dequant(w.Type, tmp[:m], row[:b])
					row = row[b:]
					a0, a1, a2, a3 := dot4F32(tmp[:m],
						x[t*cols+c:t*cols+c+m],
						x[(t+1)*cols+c:(t+1)*cols+c+m],
						x[(t+2)*cols+c:(t+2)*cols+c+m],
						x[(t+3)*cols+c:(t+3)*cols+c+m])
					s0, s1, s2, s3 = s0+a0, s1+a1, s2+a2, s3+a3
				}
				o[r], o[rows+r], o[2*rows+r], o[3*rows+r] = s0, s1, s2, s3
			}
		}
		for ; t < n; t++ {
			matVecRows(out[t*rows:(t+1)*rows], w, x[t*cols:(t+1)*cols], r0, r1)
		}
	}
}
