package llama

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/modelgate/modelgate/tinyllm/gguf"
	"github.com/modelgate/modelgate/tinyllm/tensor"
)

// synth is a small random llama model, written with gguf.Write in any
// tensor type so that tests can compare encodings of the same weights.
type synth struct {
	c       Config
	meta    []gguf.KV
	names   []string
	dims    map[string][]uint64
	weights map[string][]float32
}

// synthConfig has grouped-query attention, a partial rope and widths that
// are whole Q8_0/Q4_0 blocks.
var synthConfig = Config{
	Dim: 64, Layers: 2, FFNDim: 96, Heads: 4, KVHeads: 2, HeadDim: 16, RopeDim: 8,
	RopeBase: 10000, NormEps: 1e-5, Context: 64, VocabSize: 96,
}

func newSynth(seed uint64, c Config, tied bool) *synth {
	r := rand.New(rand.NewPCG(seed, 1))
	s := &synth{c: c, dims: map[string][]uint64{}, weights: map[string][]float32{}}
	s.meta = []gguf.KV{
		{Key: "general.architecture", Value: "llama"},
		{Key: "llama.embedding_length", Value: uint32(c.Dim)},
		{Key: "llama.block_count", Value: uint32(c.Layers)},
		{Key: "llama.feed_forward_length", Value: uint32(c.FFNDim)},
		{Key: "llama.attention.head_count", Value: uint32(c.Heads)},
		{Key: "llama.attention.head_count_kv", Value: uint32(c.KVHeads)},
		{Key: "llama.rope.dimension_count", Value: uint32(c.RopeDim)},
		{Key: "llama.attention.layer_norm_rms_epsilon", Value: c.NormEps},
		{Key: "llama.context_length", Value: uint32(c.Context)},
	}
	add := func(name string, scale float64, offset float32, dims ...int) {
		n := 1
		for _, d := range dims {
			s.dims[name] = append(s.dims[name], uint64(d))
			n *= d
		}
		w := make([]float32, n)
		for i := range w {
			w[i] = offset + float32(r.NormFloat64()*scale)
		}
		s.names = append(s.names, name)
		s.weights[name] = w
	}
	qDim, kvDim := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	add("token_embd.weight", 1, 0, c.Dim, c.VocabSize)
	add("output_norm.weight", 0.1, 1, c.Dim)
	if !tied {
		add("output.weight", 1/math.Sqrt(float64(c.Dim)), 0, c.Dim, c.VocabSize)
	}
	for l := range c.Layers {
		p := fmt.Sprintf("blk.%d.", l)
		add(p+"attn_norm.weight", 0.1, 1, c.Dim)
		add(p+"attn_q.weight", 1/math.Sqrt(float64(c.Dim)), 0, c.Dim, qDim)
		add(p+"attn_k.weight", 1/math.Sqrt(float64(c.Dim)), 0, c.Dim, kvDim)
		add(p+"attn_v.weight", 1/math.Sqrt(float64(c.Dim)), 0, c.Dim, kvDim)
		add(p+"attn_output.weight", 1/math.Sqrt(float64(qDim)), 0, qDim, c.Dim)
		add(p+"ffn_norm.weight", 0.1, 1, c.Dim)
		add(p+"ffn_gate.weight", 1/math.Sqrt(float64(c.Dim)), 0, c.Dim, c.FFNDim)
		add(p+"ffn_up.weight", 1/math.Sqrt(float64(c.Dim)), 0, c.Dim, c.FFNDim)
		add(p+"ffn_down.weight", 1/math.Sqrt(float64(c.FFNDim)), 0, c.FFNDim, c.Dim)
	}
	return s
}

// write encodes the matrices as typ (vectors stay F32), lets edit change
// the file's contents, and returns the path of the file.
func (s *synth) write(t testing.TB, typ gguf.Type, edit func(meta *[]gguf.KV, tensors *[]gguf.TensorData)) string {
	t.Helper()
	meta := append([]gguf.KV(nil), s.meta...)
	var tensors []gguf.TensorData
	for _, name := range s.names {
		w, dims := s.weights[name], s.dims[name]
		tt := gguf.TypeF32
		if len(dims) == 2 {
			tt = typ
		}
		data := make([]byte, tt.RowBytes(len(w)))
		if err := tensor.Quantize(tt, data, w); err != nil {
			t.Fatal(err)
		}
		tensors = append(tensors, gguf.TensorData{Name: name, Dims: dims, Type: tt, Data: data})
	}
	if edit != nil {
		edit(&meta, &tensors)
	}
	var buf bytes.Buffer
	if err := gguf.Write(&buf, meta, tensors); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "model.gguf")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func openModel(t testing.TB, path string, opts Options) (*gguf.File, *Model) {
	t.Helper()
	g, err := gguf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	m, err := Load(g, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return g, m
}

var synthTokens = []int32{1, 17, 42, 5, 95, 0, 33, 33, 60, 2, 71, 8}

// evalAll returns the logits after each token, fed one at a time.
func evalAll(t testing.TB, m *Model, tokens []int32) [][]float32 {
	t.Helper()
	s := m.NewSession(0)
	var out [][]float32
	for _, tok := range tokens {
		l, err := s.Eval([]int32{tok})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, append([]float32(nil), l...))
	}
	return out
}

// TestQuantizedModelsMatchF32 runs one random model stored as F32, F16,
// Q8_0 and Q4_0: each agrees with the float64 reference pass over its own
// (decoded) weights to float32 rounding, and with the F32 model to within
// what its quantization costs.
func TestQuantizedModelsMatchF32(t *testing.T) {
	s := newSynth(1, synthConfig, false)
	_, f32 := openModel(t, s.write(t, gguf.TypeF32, nil), Options{Threads: 1})
	want := evalAll(t, f32, synthTokens)
	for _, c := range []struct {
		typ gguf.Type
		tol float64 // relative RMS difference from the F32 logits
	}{
		{gguf.TypeF32, 0},
		{gguf.TypeF16, 0.002},
		{gguf.TypeQ8_0, 0.02},
		{gguf.TypeQ4_0, 0.3},
	} {
		t.Run(c.typ.String(), func(t *testing.T) {
			g, m := openModel(t, s.write(t, c.typ, nil), Options{Threads: 2})
			got := evalAll(t, m, synthTokens)
			ref := newRefModel(t, g, m.Config).logits(synthTokens)
			var vsRef, diff2, norm2 float64
			for i := range got {
				vsRef = math.Max(vsRef, maxDiff(got[i], ref[i]))
				for j := range got[i] {
					d := float64(got[i][j] - want[i][j])
					diff2 += d * d
					norm2 += float64(want[i][j]) * float64(want[i][j])
				}
			}
			rel := math.Sqrt(diff2 / norm2)
			t.Logf("max logit difference from the float64 reference %.2g; relative RMS difference from F32 %.2g", vsRef, rel)
			if vsRef > 1e-4 {
				t.Errorf("logits differ from the float64 reference by %g", vsRef)
			}
			if rel > c.tol {
				t.Errorf("logits differ from the F32 model by %.3g (relative RMS), more than %g", rel, c.tol)
			}
		})
	}
}

// TestTiedOutputAndRopeFreqs covers a model without output.weight (the
// output projection is the token embedding) and with Llama 3 rope
// frequency factors.
func TestTiedOutputAndRopeFreqs(t *testing.T) {
	s := newSynth(2, synthConfig, true)
	path := s.write(t, gguf.TypeQ8_0, func(meta *[]gguf.KV, tensors *[]gguf.TensorData) {
		f := []float32{1, 1.5, 4, 8}
		data := make([]byte, 16)
		if err := tensor.Quantize(gguf.TypeF32, data, f); err != nil {
			t.Fatal(err)
		}
		*tensors = append(*tensors, gguf.TensorData{Name: "rope_freqs.weight", Dims: []uint64{4}, Type: gguf.TypeF32, Data: data})
	})
	g, m := openModel(t, path, Options{})
	got := evalAll(t, m, synthTokens)
	ref := newRefModel(t, g, m.Config).logits(synthTokens)
	for i := range got {
		if d := maxDiff(got[i], ref[i]); d > 1e-4 {
			t.Fatalf("position %d: logits differ from the reference by %g", i, d)
		}
	}
}

func TestLoadReadsConfig(t *testing.T) {
	m := loadDemo(t, Options{ContextSize: 100})
	want := Config{
		Dim: 64, Layers: 5, FFNDim: 172, Heads: 8, KVHeads: 4, HeadDim: 8, RopeDim: 8,
		RopeBase: 10000, NormEps: 1e-5, Context: 2048, VocabSize: 512,
	}
	if m.Config != want {
		t.Errorf("Config = %+v, want %+v", m.Config, want)
	}
	if m.ContextSize() != 100 {
		t.Errorf("ContextSize = %d, want 100", m.ContextSize())
	}
	if m := loadDemo(t, Options{}); m.ContextSize() != 2048 {
		t.Errorf("default ContextSize = %d, want 2048", m.ContextSize())
	}
}

func TestLoadRefusesBadModels(t *testing.T) {
	s := newSynth(3, synthConfig, false)
	setMeta := func(key string, v any) func(*[]gguf.KV, *[]gguf.TensorData) {
		return func(meta *[]gguf.KV, _ *[]gguf.TensorData) {
			for i := range *meta {
				if (*meta)[i].Key == key {
					(*meta)[i].Value = v
					return
				}
			}
			*meta = append(*meta, gguf.KV{Key: key, Value: v})
		}
	}
	dropMeta := func(key string) func(*[]gguf.KV, *[]gguf.TensorData) {
		return func(meta *[]gguf.KV, _ *[]gguf.TensorData) {
			for i := range *meta {
				if (*meta)[i].Key == key {
					*meta = append((*meta)[:i], (*meta)[i+1:]...)
					return
				}
			}
		}
	}
	editTensor := func(name string, f func(*gguf.TensorData)) func(*[]gguf.KV, *[]gguf.TensorData) {
		return func(_ *[]gguf.KV, tensors *[]gguf.TensorData) {
			for i := range *tensors {
				if (*tensors)[i].Name == name {
					f(&(*tensors)[i])
					return
				}
			}
			t.Fatalf("no tensor %s", name)
		}
	}
	dropTensor := func(name string) func(*[]gguf.KV, *[]gguf.TensorData) {
		return func(_ *[]gguf.KV, tensors *[]gguf.TensorData) {
			for i := range *tensors {
				if (*tensors)[i].Name == name {
					*tensors = append((*tensors)[:i], (*tensors)[i+1:]...)
					return
				}
			}
		}
	}
	cases := []struct {
		name    string
		typ     gguf.Type
		edit    func(*[]gguf.KV, *[]gguf.TensorData)
		want    error
		mention string
	}{
		{"architecture", gguf.TypeF32, setMeta("general.architecture", "gpt2"), ErrUnsupported, "gpt2"},
		{"no block count", gguf.TypeF32, dropMeta("llama.block_count"), ErrInvalidModel, "llama.block_count"},
		{"no epsilon", gguf.TypeF32, dropMeta("llama.attention.layer_norm_rms_epsilon"), ErrInvalidModel, "layer_norm_rms_epsilon"},
		{"heads", gguf.TypeF32, setMeta("llama.attention.head_count_kv", uint32(3)), ErrInvalidModel, "head_count_kv"},
		{"rope scaling", gguf.TypeF32, setMeta("llama.rope.scaling.type", "yarn"), ErrUnsupported, "yarn"},
		{"missing tensor", gguf.TypeF32, dropTensor("blk.1.ffn_up.weight"), ErrInvalidModel, "blk.1.ffn_up.weight"},
		{"missing norm", gguf.TypeF32, dropTensor("blk.0.attn_norm.weight"), ErrInvalidModel, "blk.0.attn_norm.weight"},
		{"wrong shape", gguf.TypeF32, editTensor("blk.0.attn_k.weight", func(d *gguf.TensorData) {
			d.Dims = []uint64{32, 64}
		}), ErrInvalidModel, "blk.0.attn_k.weight"},
		{"wrong norm shape", gguf.TypeF32, editTensor("output_norm.weight", func(d *gguf.TensorData) {
			d.Dims = []uint64{32, 2}
		}), ErrInvalidModel, "output_norm.weight"},
		{"unsupported type", gguf.TypeF32, editTensor("blk.1.attn_v.weight", func(d *gguf.TensorData) {
			d.Type, d.Data = gguf.TypeQ5_0, make([]byte, gguf.TypeQ5_0.RowBytes(64*32))
		}), tensor.ErrUnsupportedType, "blk.1.attn_v.weight"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			g, err := gguf.Open(s.write(t, c.typ, c.edit))
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			m, err := Load(g, Options{})
			if err == nil {
				m.Close()
				t.Fatal("Load succeeded")
			}
			if !errors.Is(err, c.want) || !bytes.Contains([]byte(err.Error()), []byte(c.mention)) {
				t.Errorf("Load = %v, want %v naming %q", err, c.want, c.mention)
			}
		})
	}
}
