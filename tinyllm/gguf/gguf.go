// Package gguf reads GGUF files (versions 2 and 3), the model format of
// llama.cpp: a header of typed metadata, a tensor index, and tensor data at
// an aligned offset. Open maps the file into memory, so tensors are read
// in place without copying and a model of any size opens in constant time.
//
// Format reference: https://github.com/ggml-org/ggml/blob/master/docs/gguf.md
package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"syscall"
)

// ErrFormat means the bytes are not a well-formed GGUF file.
var ErrFormat = errors.New("not a valid GGUF file")

const magic = 0x46554747 // "GGUF" little-endian

// DefaultAlignment is the tensor data alignment when general.alignment is absent.
const DefaultAlignment = 32

// Type is a ggml tensor element type.
type Type uint32

// The tensor types this package knows the layout of.
const (
	TypeF32  Type = 0
	TypeF16  Type = 1
	TypeQ4_0 Type = 2
	TypeQ4_1 Type = 3
	TypeQ5_0 Type = 6
	TypeQ5_1 Type = 7
	TypeQ8_0 Type = 8
	TypeQ8_1 Type = 9
	TypeQ2_K Type = 10
	TypeQ3_K Type = 11
	TypeQ4_K Type = 12
	TypeQ5_K Type = 13
	TypeQ6_K Type = 14
	TypeQ8_K Type = 15
	TypeBF16 Type = 30
)

// typeLayout is (elements per block, bytes per block) for each type.
var typeLayout = map[Type][2]int{
	TypeF32: {1, 4}, TypeF16: {1, 2}, TypeBF16: {1, 2},
	TypeQ4_0: {32, 18}, TypeQ4_1: {32, 20}, TypeQ5_0: {32, 22}, TypeQ5_1: {32, 24},
	TypeQ8_0: {32, 34}, TypeQ8_1: {32, 36},
	TypeQ2_K: {256, 84}, TypeQ3_K: {256, 110}, TypeQ4_K: {256, 144}, TypeQ5_K: {256, 176},
	TypeQ6_K: {256, 210}, TypeQ8_K: {256, 292},
}

var typeNames = map[Type]string{
	TypeF32: "F32", TypeF16: "F16", TypeBF16: "BF16", TypeQ4_0: "Q4_0", TypeQ4_1: "Q4_1",
	TypeQ5_0: "Q5_0", TypeQ5_1: "Q5_1", TypeQ8_0: "Q8_0", TypeQ8_1: "Q8_1", TypeQ2_K: "Q2_K",
	TypeQ3_K: "Q3_K", TypeQ4_K: "Q4_K", TypeQ5_K: "Q5_K", TypeQ6_K: "Q6_K", TypeQ8_K: "Q8_K",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// BlockSize is the number of elements per quantization block (1 for floats).
func (t Type) BlockSize() int { return typeLayout[t][0] }

// BlockBytes is the number of bytes per block.
func (t Type) BlockBytes() int { return typeLayout[t][1] }

// RowBytes is the size in bytes of n elements of type t, or -1 when n is not
// a whole number of blocks or the type is unknown.
func (t Type) RowBytes(n int) int {
	l, ok := typeLayout[t]
	if !ok || n%l[0] != 0 {
		return -1
	}
	return n / l[0] * l[1]
}

// Tensor is one entry of the tensor index.
type Tensor struct {
	Name string
	// Dims are the sizes, fastest-varying first (ggml's ne): a matrix of
	// R rows of C columns has Dims [C, R].
	Dims   []uint64
	Type   Type
	Offset uint64 // from the start of the data section
	// Data is the tensor's bytes, a slice of the mapped file.
	Data []byte
}

// Elements is the number of elements.
func (t *Tensor) Elements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// File is an open GGUF file.
type File struct {
	Version   uint32
	Metadata  map[string]any // values are Go scalars, string, or typed slices ([]string, []float32, []int32, ...)
	Keys      []string       // metadata keys in file order
	Tensors   []*Tensor      // in file order
	Alignment int
	byName    map[string]*Tensor
	mapped    []byte
}

// Open maps the file at path and parses it. Close releases the mapping;
// tensor data must not be used after Close.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open gguf: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("open gguf %s: %w", path, err)
	}
	if fi.Size() == 0 {
		return nil, fmt.Errorf("open gguf %s: empty file: %w", path, ErrFormat)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(fi.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("open gguf %s: mmap: %w", path, err)
	}
	g, err := Parse(data)
	if err != nil {
		syscall.Munmap(data)
		return nil, fmt.Errorf("open gguf %s: %w", path, err)
	}
	g.mapped = data
	return g, nil
}

// Close unmaps the file.
func (g *File) Close() error {
	if g.mapped == nil {
		return nil
	}
	err := syscall.Munmap(g.mapped)
	g.mapped = nil
	return err
}

// Tensor returns the tensor called name.
func (g *File) Tensor(name string) (*Tensor, bool) {
	t, ok := g.byName[name]
	return t, ok
}

// Parse reads a whole GGUF file held in data. The returned tensors' Data
// slices point into data.
func Parse(data []byte) (*File, error) {
	r := &reader{b: data}
	if r.u32() != magic {
		return nil, fmt.Errorf("bad magic: %w", ErrFormat)
	}
	g := &File{Version: r.u32(), Metadata: map[string]any{}, byName: map[string]*Tensor{}}
	if r.err == nil && g.Version != 2 && g.Version != 3 {
		return nil, fmt.Errorf("version %d (want 2 or 3): %w", g.Version, ErrFormat)
	}
	nTensors, nKV := r.u64(), r.u64()
	// Each entry needs at least a few bytes: refuse counts the file cannot hold.
	if r.err == nil && (nTensors > uint64(len(data))/8 || nKV > uint64(len(data))/8) {
		return nil, fmt.Errorf("counts %d tensors, %d keys exceed the file: %w", nTensors, nKV, ErrFormat)
	}
	for i := uint64(0); i < nKV && r.err == nil; i++ {
		key := r.str()
		v := r.value(r.u32(), 0)
		if r.err == nil {
			if _, dup := g.Metadata[key]; !dup {
				g.Keys = append(g.Keys, key)
			}
			g.Metadata[key] = v
		}
	}
	for i := uint64(0); i < nTensors && r.err == nil; i++ {
		t := &Tensor{Name: r.str()}
		nDims := r.u32()
		if nDims > 8 {
			r.fail("tensor %q has %d dimensions", t.Name, nDims)
			break
		}
		for j := uint32(0); j < nDims; j++ {
			t.Dims = append(t.Dims, r.u64())
		}
		t.Type = Type(r.u32())
		t.Offset = r.u64()
		g.Tensors = append(g.Tensors, t)
	}
	if r.err != nil {
		return nil, r.err
	}
	g.Alignment = DefaultAlignment
	if a, ok := g.Uint("general.alignment"); ok {
		if a == 0 || a&(a-1) != 0 || a > 1<<20 {
			return nil, fmt.Errorf("general.alignment %d is not a power of two: %w", a, ErrFormat)
		}
		g.Alignment = int(a)
	}
	start := (r.off + g.Alignment - 1) / g.Alignment * g.Alignment
	for _, t := range g.Tensors {
		if err := g.place(t, data, start); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func (g *File) place(t *Tensor, data []byte, start int) error {
	if _, dup := g.byName[t.Name]; dup {
		return fmt.Errorf("tensor %q appears twice: %w", t.Name, ErrFormat)
	}
	if _, ok := typeLayout[t.Type]; !ok {
		return fmt.Errorf("tensor %q has unknown type %d: %w", t.Name, t.Type, ErrFormat)
	}
	if len(t.Dims) == 0 || t.Dims[0]%uint64(t.Type.BlockSize()) != 0 {
		return fmt.Errorf("tensor %q: dims %v do not fit %s blocks: %w", t.Name, t.Dims, t.Type, ErrFormat)
	}
	n := uint64(1)
	for _, d := range t.Dims {
		if d == 0 || n > math.MaxInt64/d {
			return fmt.Errorf("tensor %q: bad dims %v: %w", t.Name, t.Dims, ErrFormat)
		}
		n *= d
	}
	size := n / uint64(t.Type.BlockSize()) * uint64(t.Type.BlockBytes())
	if t.Offset%uint64(g.Alignment) != 0 {
		return fmt.Errorf("tensor %q: offset %d not aligned to %d: %w", t.Name, t.Offset, g.Alignment, ErrFormat)
	}
	begin := uint64(start) + t.Offset
	if begin < uint64(start) || begin > uint64(len(data)) || size > uint64(len(data))-begin {
		return fmt.Errorf("tensor %q: %d bytes at offset %d run past the end of the file: %w", t.Name, size, t.Offset, ErrFormat)
	}
	t.Data = data[begin : begin+size : begin+size]
	g.byName[t.Name] = t
	return nil
}

// Uint returns an unsigned or non-negative signed integer value.
func (g *File) Uint(key string) (uint64, bool) {
	switch v := g.Metadata[key].(type) {
	case uint8:
		return uint64(v), true
	case uint16:
		return uint64(v), true
	case uint32:
		return uint64(v), true
	case uint64:
		return v, true
	case int8:
		return uint64(v), v >= 0
	case int16:
		return uint64(v), v >= 0
	case int32:
		return uint64(v), v >= 0
	case int64:
		return uint64(v), v >= 0
	}
	return 0, false
}

// Float returns a floating-point (or integer) value.
func (g *File) Float(key string) (float64, bool) {
	switch v := g.Metadata[key].(type) {
	case float32:
		return float64(v), true
	case float64:
		return v, true
	}
	if u, ok := g.Uint(key); ok {
		return float64(u), true
	}
	return 0, false
}

// String returns a string value.
func (g *File) String(key string) (string, bool) {
	v, ok := g.Metadata[key].(string)
	return v, ok
}

// Bool returns a boolean value.
func (g *File) Bool(key string) (bool, bool) {
	v, ok := g.Metadata[key].(bool)
	return v, ok
}

// Value types of the metadata section.
const (
	valUint8 = iota
	valInt8
	valUint16
	valInt16
	valUint32
	valInt32
	valFloat32
	valBool
	valString
	valArray
	valUint64
	valInt64
	valFloat64
)

// reader decodes little-endian values with bounds checks; the first error
// sticks and later reads return zero values.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("at byte %d: %s: %w", r.off, fmt.Sprintf(format, args...), ErrFormat)
	}
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail("need %d bytes, %d left", n, len(r.b)-r.off)
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) u8() uint8 {
	if p := r.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if p := r.take(2); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if p := r.take(4); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if p := r.take(8); p != nil {
		return binary.LittleEndian.Uint64(p)
	}
	return 0
}

func (r *reader) str() string {
	n := r.u64()
	if n > uint64(len(r.b)) {
		r.fail("string of %d bytes", n)
		return ""
	}
	return string(r.take(int(n)))
}

// maxArrayDepth bounds nested arrays (which GGUF allows but no model uses).
const maxArrayDepth = 4

func (r *reader) value(typ uint32, depth int) any {
	switch typ {
	case valUint8:
		return r.u8()
	case valInt8:
		return int8(r.u8())
	case valUint16:
		return r.u16()
	case valInt16:
		return int16(r.u16())
	case valUint32:
		return r.u32()
	case valInt32:
		return int32(r.u32())
	case valFloat32:
		return math.Float32frombits(r.u32())
	case valBool:
		return r.u8() != 0
	case valString:
		return r.str()
	case valUint64:
		return r.u64()
	case valInt64:
		return int64(r.u64())
	case valFloat64:
		return math.Float64frombits(r.u64())
	case valArray:
		if depth >= maxArrayDepth {
			r.fail("arrays nested deeper than %d", maxArrayDepth)
			return nil
		}
		return r.array(depth + 1)
	}
	r.fail("unknown value type %d", typ)
	return nil
}

func (r *reader) array(depth int) any {
	elem, n := r.u32(), r.u64()
	// Every element takes at least one byte.
	if n > uint64(len(r.b)-r.off) {
		r.fail("array of %d elements", n)
		return nil
	}
	switch elem {
	case valString:
		out := make([]string, 0, n)
		for i := uint64(0); i < n && r.err == nil; i++ {
			out = append(out, r.str())
		}
		return out
	case valFloat32:
		out := make([]float32, n)
		for i := range out {
			out[i] = math.Float32frombits(r.u32())
		}
		return out
	case valInt32:
		out := make([]int32, n)
		for i := range out {
			out[i] = int32(r.u32())
		}
		return out
	case valUint32:
		out := make([]uint32, n)
		for i := range out {
			out[i] = r.u32()
		}
		return out
	default:
		out := make([]any, 0, n)
		for i := uint64(0); i < n && r.err == nil; i++ {
			out = append(out, r.value(elem, depth))
		}
		return out
	}
}
