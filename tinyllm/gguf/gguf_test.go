package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

const demoModel = "../../examples/stories260K/model.gguf"

func TestOpenDemoModel(t *testing.T) {
	g, err := Open(demoModel)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Version != 3 || len(g.Tensors) != 48 {
		t.Errorf("version %d, %d tensors", g.Version, len(g.Tensors))
	}
	if arch, _ := g.String("general.architecture"); arch != "llama" {
		t.Errorf("architecture %q", arch)
	}
	if n, _ := g.Uint("llama.embedding_length"); n != 64 {
		t.Errorf("embedding_length %d", n)
	}
	if toks, _ := g.Metadata["tokenizer.ggml.tokens"].([]string); len(toks) != 512 || toks[1] != "<s>" {
		t.Errorf("tokens %d", len(toks))
	}
	emb, ok := g.Tensor("token_embd.weight")
	if !ok || !slices.Equal(emb.Dims, []uint64{64, 512}) || emb.Type != TypeF32 || len(emb.Data) != 64*512*4 {
		t.Fatalf("token_embd.weight = %+v", emb)
	}
}

// TestParseVersion2: GGUF v2 has v3's layout (v3 only added big-endian
// files, which carry their version byte-swapped and are refused).
func TestParseVersion2(t *testing.T) {
	good, err := os.ReadFile(demoModel)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Parse(patch(good, 4, 2))
	if err != nil {
		t.Fatalf("v2: %v", err)
	}
	if g.Version != 2 || len(g.Tensors) != 48 {
		t.Errorf("v2 parsed as version %d with %d tensors", g.Version, len(g.Tensors))
	}
	if _, err := Parse(patch(good, 4, 3<<24)); !errors.Is(err, ErrFormat) {
		t.Errorf("big-endian v3 = %v, want ErrFormat", err)
	}
}

func TestWriteThenParseRoundTrips(t *testing.T) {
	f32 := make([]byte, 4*32*2)
	for i := 0; i < 64; i++ {
		binary.LittleEndian.PutUint32(f32[4*i:], math.Float32bits(float32(i)/3))
	}
	q8 := bytes.Repeat([]byte{7}, TypeQ8_0.RowBytes(64))
	meta := []KV{
		{"general.architecture", "llama"}, {"u8", uint8(3)}, {"i64", int64(-5)}, {"f64", 2.5}, {"b", true},
		{"strs", []string{"a", "", "ç"}}, {"f32s", []float32{1, -2}}, {"i32s", []int32{-1, 4}}, {"u32s", []uint32{9}},
	}
	var buf bytes.Buffer
	if err := Write(&buf, meta, []TensorData{
		{Name: "a", Dims: []uint64{32, 2}, Type: TypeF32, Data: f32},
		{Name: "q", Dims: []uint64{64}, Type: TypeQ8_0, Data: q8},
	}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "m.gguf")
	os.WriteFile(path, buf.Bytes(), 0o644)
	g, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, kv := range meta {
		got := g.Metadata[kv.Key]
		if !equalAny(got, kv.Value) {
			t.Errorf("%s = %#v, want %#v", kv.Key, got, kv.Value)
		}
	}
	if a, _ := g.Tensor("a"); !bytes.Equal(a.Data, f32) {
		t.Error("tensor a data differs")
	}
	if q, _ := g.Tensor("q"); !bytes.Equal(q.Data, q8) || q.Type != TypeQ8_0 {
		t.Error("tensor q differs")
	}
	if u, ok := g.Uint("i64"); ok {
		t.Errorf("negative int read as uint %d", u)
	}
}

func equalAny(a, b any) bool {
	switch x := a.(type) {
	case []string:
		return slices.Equal(x, b.([]string))
	case []float32:
		return slices.Equal(x, b.([]float32))
	case []int32:
		return slices.Equal(x, b.([]int32))
	case []uint32:
		return slices.Equal(x, b.([]uint32))
	}
	return a == b
}

func TestParseRefusesMalformedFiles(t *testing.T) {
	good, err := os.ReadFile(demoModel)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":          {},
		"bad magic":      append([]byte("GGML"), good[4:]...),
		"version 1":      patch(good, 4, 1),
		"truncated head": good[:100],
		"truncated data": good[:len(good)-10],
		"huge counts":    patch64(good, 8, 1<<60),
	}
	for name, data := range cases {
		if _, err := Parse(data); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: Parse = %v, want ErrFormat", name, err)
		}
	}
}

func patch(b []byte, off int, v uint32) []byte {
	c := slices.Clone(b)
	binary.LittleEndian.PutUint32(c[off:], v)
	return c
}

func patch64(b []byte, off int, v uint64) []byte {
	c := slices.Clone(b)
	binary.LittleEndian.PutUint64(c[off:], v)
	return c
}

// FuzzParse: no input makes Parse panic, hang or allocate without bound,
// and every tensor it accepts lies inside the input.
func FuzzParse(f *testing.F) {
	if good, err := os.ReadFile(demoModel); err == nil {
		f.Add(good[:4096])
	}
	var buf bytes.Buffer
	_ = Write(&buf, []KV{{"k", []string{"x"}}}, []TensorData{{Name: "t", Dims: []uint64{32}, Type: TypeQ4_0, Data: make([]byte, 18)}})
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Parse(data)
		if err != nil {
			return
		}
		for _, tn := range g.Tensors {
			if uint64(len(tn.Data)) != tn.Elements()/uint64(tn.Type.BlockSize())*uint64(tn.Type.BlockBytes()) {
				t.Fatalf("tensor %s: %d bytes for %d elements of %s", tn.Name, len(tn.Data), tn.Elements(), tn.Type)
			}
		}
	})
}
