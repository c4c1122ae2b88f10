// Package tensor holds the numerical kernels of tinyllm: conversions of
// ggml tensor types to float32, dot products of encoded rows with float32
// vectors, matrix-vector and matrix-matrix products spread over a pool of
// threads, and the element-wise operations of a transformer (RMSNorm,
// softmax, SiLU/SwiGLU, rotary position embedding).
//
// Supported tensor types: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K and Q6_K
// (dequantization and dot products); Quantize writes F32, F16, BF16, Q8_0,
// Q4_0 and Q4_1. Block layouts follow ggml (ggml-common.h).
//
// Everything is plain Go: the hot loops are unrolled, re-sliced so that the
// compiler drops bounds checks, and allocate nothing. Functions that take
// output slices write into them; none keeps a reference.
package tensor

import (
	"fmt"

	"github.com/modelgate/modelgate/tinyllm/gguf"
)

var _ = littleEndian // see endian.go

// Matrix is a row-major matrix of encoded rows: Rows rows of Cols
// elements of Type, in Data (Rows * Type.RowBytes(Cols) bytes), usually a
// GGUF tensor mapped in memory. A Matrix is a value; it does not own Data.
type Matrix struct {
	Type       gguf.Type
	Rows, Cols int
	Data       []byte
}

// NewMatrix views a one- or two-dimensional GGUF tensor as a Matrix: ggml
// dims [cols, rows] (a vector is one row). Errors wrap ErrUnsupportedType
// or ErrShape.
func NewMatrix(t *gguf.Tensor) (Matrix, error) {
	if !Supported(t.Type) {
		return Matrix{}, fmt.Errorf("tensor %s: type %s: %w", t.Name, t.Type, ErrUnsupportedType)
	}
	if len(t.Dims) < 1 || len(t.Dims) > 2 {
		return Matrix{}, fmt.Errorf("tensor %s: dims %v are not a matrix: %w", t.Name, t.Dims, ErrShape)
	}
	rows := uint64(1)
	if len(t.Dims) == 2 {
		rows = t.Dims[1]
	}
	m := Matrix{Type: t.Type, Rows: int(rows), Cols: int(t.Dims[0]), Data: t.Data}
	if err := m.check(); err != nil {
		return Matrix{}, fmt.Errorf("tensor %s: %w", t.Name, err)
	}
	return m, nil
}

func (m Matrix) check() error {
	rb := m.Type.RowBytes(m.Cols)
	if m.Rows <= 0 || m.Cols <= 0 || rb < 0 || len(m.Data) != m.Rows*rb {
		return fmt.Errorf("%d x %d %s in %d bytes: %w", m.Rows, m.Cols, m.Type, len(m.Data), ErrShape)
	}
	return nil
}

// RowBytes is the encoded size of one row.
func (m Matrix) RowBytes() int { return m.Type.RowBytes(m.Cols) }

// Row returns the encoded bytes of row r.
func (m Matrix) Row(r int) []byte {
	rb := m.RowBytes()
	return m.Data[r*rb : (r+1)*rb : (r+1)*rb]
}

// DequantizeRow decodes row r into dst (Cols elements): an embedding
// lookup.
func (m Matrix) DequantizeRow(dst []float32, r int) {
	dequant(m.Type, dst[:m.Cols], m.Row(r))
}
