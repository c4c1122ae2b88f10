package gguf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
)

// KV is one metadata entry for Write.
type KV struct {
	Key   string
	Value any // uint8..uint64, int8..int64, float32, float64, bool, string, or a slice of those
}

// TensorData is one tensor for Write: its raw bytes in the given type.
type TensorData struct {
	Name string
	Dims []uint64 // fastest-varying first
	Type Type
	Data []byte
}

// Write encodes a GGUF v3 file with the default alignment. It exists for
// tests and tools that need small synthetic models.
func Write(w io.Writer, meta []KV, tensors []TensorData) error {
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	str := func(s string) { le(uint64(len(s))); b.WriteString(s) }
	le(uint32(magic))
	le(uint32(3))
	le(uint64(len(tensors)))
	le(uint64(len(meta)))
	for _, kv := range meta {
		str(kv.Key)
		if err := writeValue(&b, kv.Value, true); err != nil {
			return fmt.Errorf("write gguf: key %s: %w", kv.Key, err)
		}
	}
	var offset uint64
	for _, t := range tensors {
		str(t.Name)
		le(uint32(len(t.Dims)))
		for _, d := range t.Dims {
			le(d)
		}
		le(uint32(t.Type))
		le(offset)
		offset += align(uint64(len(t.Data)))
	}
	b.Write(make([]byte, align(uint64(b.Len()))-uint64(b.Len())))
	for _, t := range tensors {
		b.Write(t.Data)
		b.Write(make([]byte, align(uint64(len(t.Data)))-uint64(len(t.Data))))
	}
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("write gguf: %w", err)
	}
	return nil
}

func align(n uint64) uint64 { return (n + DefaultAlignment - 1) / DefaultAlignment * DefaultAlignment }

func writeValue(b *bytes.Buffer, v any, withType bool) error {
	le := func(x any) { _ = binary.Write(b, binary.LittleEndian, x) }
	typ := func(t uint32) {
		if withType {
			le(t)
		}
	}
	switch x := v.(type) {
	case uint8:
		typ(valUint8)
		le(x)
	case int8:
		typ(valInt8)
		le(x)
	case uint16:
		typ(valUint16)
		le(x)
	case int16:
		typ(valInt16)
		le(x)
	case uint32:
		typ(valUint32)
		le(x)
	case int32:
		typ(valInt32)
		le(x)
	case float32:
		typ(valFloat32)
		le(math.Float32bits(x))
	case bool:
		typ(valBool)
		if x {
			le(uint8(1))
		} else {
			le(uint8(0))
		}
	case string:
		typ(valString)
		le(uint64(len(x)))
		b.WriteString(x)
	case uint64:
		typ(valUint64)
		le(x)
	case int64:
		typ(valInt64)
		le(x)
	case float64:
		typ(valFloat64)
		le(math.Float64bits(x))
	case []string:
		typ(valArray)
		le(uint32(valString))
		le(uint64(len(x)))
		for _, s := range x {
			_ = writeValue(b, s, false)
		}
	case []float32:
		typ(valArray)
		le(uint32(valFloat32))
		le(uint64(len(x)))
		for _, f := range x {
			le(math.Float32bits(f))
		}
	case []int32:
		typ(valArray)
		le(uint32(valInt32))
		le(uint64(len(x)))
		le(x)
	case []uint32:
		typ(valArray)
		le(uint32(valUint32))
		le(uint64(len(x)))
		le(x)
	default:
		return fmt.Errorf("unsupported metadata type %T", v)
	}
	return nil
}
