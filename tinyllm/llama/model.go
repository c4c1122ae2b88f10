// Package llama runs the forward pass of the llama architecture (Llama 1,
// 2 and 3, TinyLlama, llama2.c models and their GGUF conversions) on the
// CPU: grouped-query attention with rotary position embedding, RMSNorm and
// a SwiGLU feed-forward block, over weights read in place from a GGUF file.
//
// Load reads the hyperparameters and finds the tensors; a Session holds one
// sequence's key/value cache and computes logits with Eval. Activations,
// the cache and attention are float32 and the order of operations follows
// llama.cpp's CPU code where it matters (see package tensor): greedy
// decoding of the demo model matches llama.cpp token for token (see
// greedy_test.go). llama.cpp keeps its cache in F16 and, for quantized
// weights, quantizes activations to 8 bits, so on other models the logits
// agree to within those roundings rather than exactly.
package llama

import (
	"fmt"
	"runtime"

	"github.com/modelgate/modelgate/tinyllm/gguf"
	"github.com/modelgate/modelgate/tinyllm/tensor"
)

// Config is the shape of a llama model, read from GGUF metadata (keys
// "llama.*") and from the token embedding's dims.
type Config struct {
	Dim      int // embedding_length: width of the residual stream
	Layers   int // block_count
	FFNDim   int // feed_forward_length: width of the SwiGLU hidden layer
	Heads    int // attention.head_count: query heads
	KVHeads  int // attention.head_count_kv: key/value heads (default Heads)
	HeadDim  int // attention.key_length (default Dim/Heads)
	RopeDim  int // rope.dimension_count: rotated dims per head (default HeadDim)
	RopeBase float32
	NormEps  float32 // attention.layer_norm_rms_epsilon
	// Context is the training context, in tokens (context_length).
	Context   int
	VocabSize int // rows of token_embd.weight
}

// Options tune a loaded model. The zero value is valid.
type Options struct {
	// Threads is the number of threads for the matrix products of a
	// forward pass, the calling goroutine included; 0 means
	// runtime.GOMAXPROCS(0). Products too small to gain run on one thread.
	Threads int
	// ContextSize is the context of a Session, in tokens, when NewSession
	// is given none, and the largest it may have; 0 means the model's
	// training context, Config.Context.
	ContextSize int
}

// Model is a llama model whose weights stay in the GGUF file's memory
// mapping. It is safe for concurrent use by its Sessions; the file must
// stay open until the Model is closed.
type Model struct {
	Config  Config
	ctx     int
	pool    *tensor.Pool
	embed   tensor.Matrix
	outNorm []float32
	output  tensor.Matrix
	freqs   []float32 // rope_freqs.weight, or nil
	layers  []layer
}

type layer struct {
	attnNorm, ffnNorm []float32
	wq, wk, wv, wo    tensor.Matrix
	gate, up, down    tensor.Matrix
}

// Load builds a Model over the tensors of g, an open GGUF file of
// architecture "llama". Nothing is copied but the normalization vectors.
// Errors wrap ErrInvalidModel, naming the key or tensor at fault, or
// ErrUnsupported.
func Load(g *gguf.File, opts Options) (*Model, error) {
	cfg, err := readConfig(g)
	if err != nil {
		return nil, fmt.Errorf("load llama: %w", err)
	}
	m := &Model{Config: cfg, ctx: opts.ContextSize}
	if m.ctx <= 0 {
		m.ctx = cfg.Context
	}
	if err := m.loadTensors(g); err != nil {
		return nil, fmt.Errorf("load llama: %w", err)
	}
	threads := opts.Threads
	if threads <= 0 {
		threads = runtime.GOMAXPROCS(0)
	}
	m.pool = tensor.NewPool(threads)
	// A Model dropped without Close still stops its threads.
	runtime.AddCleanup(m, func(p *tensor.Pool) { p.Close() }, m.pool)
	return m, nil
}

// Close stops the model's threads (a Model that becomes unreachable stops
// them too). Sessions must not be used after Close, and the GGUF file
// should be closed only after it. Close does not close the file.
func (m *Model) Close() error {
	m.pool.Close()
	return nil
}

// ContextSize is the context of a Session started with NewSession(0), and
// the largest any may have.
func (m *Model) ContextSize() int { return m.ctx }

func readConfig(g *gguf.File) (Config, error) {
	var c Config
	if arch, _ := g.String("general.architecture"); arch != "llama" {
		return c, fmt.Errorf("general.architecture %q, want \"llama\": %w", arch, ErrUnsupported)
	}
	need := func(key string, dst *int) error {
		v, ok := g.Uint(key)
		if !ok || v == 0 || v > 1<<24 {
			return fmt.Errorf("metadata %s missing or out of range: %w", key, ErrInvalidModel)
		}
		*dst = int(v)
		return nil
	}
	for _, k := range []struct {
		key string
		dst *int
	}{
		{"llama.embedding_length", &c.Dim},
		{"llama.block_count", &c.Layers},
		{"llama.feed_forward_length", &c.FFNDim},
		{"llama.attention.head_count", &c.Heads},
		{"llama.context_length", &c.Context},
	} {
		if err := need(k.key, k.dst); err != nil {
			return c, err
		}
	}
	c.KVHeads, c.HeadDim = c.Heads, c.Dim/c.Heads
	optional := map[string]*int{
		"llama.attention.head_count_kv": &c.KVHeads,
		"llama.attention.key_length":    &c.HeadDim,
	}
	for key, dst := range optional {
		if _, ok := g.Metadata[key]; ok {
			if err := need(key, dst); err != nil {
				return c, err
			}
		}
	}
	c.RopeDim = c.HeadDim
	if _, ok := g.Metadata["llama.rope.dimension_count"]; ok {
		if err := need("llama.rope.dimension_count", &c.RopeDim); err != nil {
			return c, err
		}
	}
	if v, ok := g.Uint("llama.attention.value_length"); ok && int(v) != c.HeadDim {
		return c, fmt.Errorf("value_length %d differs from key_length %d: %w", v, c.HeadDim, ErrUnsupported)
	}
	if c.Heads%c.KVHeads != 0 {
		return c, fmt.Errorf("head_count %d is not a multiple of head_count_kv %d: %w", c.Heads, c.KVHeads, ErrInvalidModel)
	}
	if c.RopeDim%2 != 0 || c.RopeDim > c.HeadDim {
		return c, fmt.Errorf("rope.dimension_count %d does not fit heads of %d: %w", c.RopeDim, c.HeadDim, ErrInvalidModel)
	}
	eps, ok := g.Float("llama.attention.layer_norm_rms_epsilon")
	if !ok || !(eps > 0 && eps < 1) {
		return c, fmt.Errorf("metadata llama.attention.layer_norm_rms_epsilon missing or out of range: %w", ErrInvalidModel)
	}
	c.NormEps = float32(eps)
	c.RopeBase = 10000
	if v, ok := g.Float("llama.rope.freq_base"); ok {
		if !(v > 1) {
			return c, fmt.Errorf("metadata llama.rope.freq_base %g: %w", v, ErrInvalidModel)
		}
		c.RopeBase = float32(v)
	}
	if s, ok := g.String("llama.rope.scaling.type"); ok && s != "none" {
		return c, fmt.Errorf("rope scaling %q: %w", s, ErrUnsupported)
	}
	if f, ok := g.Float("llama.rope.scale_linear"); ok && f != 1 {
		return c, fmt.Errorf("linear rope scaling %g: %w", f, ErrUnsupported)
	}
	emb, ok := g.Tensor("token_embd.weight")
	if !ok || len(emb.Dims) != 2 {
		return c, fmt.Errorf("tensor token_embd.weight missing or not a matrix: %w", ErrInvalidModel)
	}
	c.VocabSize = int(emb.Dims[1])
	return c, nil
}

func (m *Model) loadTensors(g *gguf.File) error {
	c := m.Config
	qDim, kvDim := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	var err error
	matrix := func(name string, rows, cols int) tensor.Matrix {
		if err != nil {
			return tensor.Matrix{}
		}
		t, ok := g.Tensor(name)
		if !ok {
			err = fmt.Errorf("tensor %s missing: %w", name, ErrInvalidModel)
			return tensor.Matrix{}
		}
		w, e := tensor.NewMatrix(t)
		switch {
		case e != nil && !tensor.Supported(t.Type):
			err = fmt.Errorf("%w: %w", e, ErrUnsupported)
		case e != nil:
			err = fmt.Errorf("%w: %w", e, ErrInvalidModel)
		case len(t.Dims) != 2 || w.Rows != rows || w.Cols != cols:
			err = fmt.Errorf("tensor %s has dims %v, want [%d %d]: %w", name, t.Dims, cols, rows, ErrInvalidModel)
		}
		return w
	}
	vector := func(name string, n int) []float32 {
		if err != nil {
			return nil
		}
		t, ok := g.Tensor(name)
		if !ok {
			err = fmt.Errorf("tensor %s missing: %w", name, ErrInvalidModel)
			return nil
		}
		if len(t.Dims) != 1 || t.Dims[0] != uint64(n) {
			err = fmt.Errorf("tensor %s has dims %v, want [%d]: %w", name, t.Dims, n, ErrInvalidModel)
			return nil
		}
		v := make([]float32, n)
		if e := tensor.Dequantize(t.Type, v, t.Data); e != nil {
			err = fmt.Errorf("tensor %s: %w: %w", name, e, ErrUnsupported)
		}
		return v
	}
	m.embed = matrix("token_embd.weight", c.VocabSize, c.Dim)
	m.outNorm = vector("output_norm.weight", c.Dim)
	if _, ok := g.Tensor("output.weight"); ok {
		m.output = matrix("output.weight", c.VocabSize, c.Dim)
	} else {
		m.output = m.embed // tied embeddings
	}
	if _, ok := g.Tensor("rope_freqs.weight"); ok {
		m.freqs = vector("rope_freqs.weight", c.RopeDim/2)
	}
	m.layers = make([]layer, c.Layers)
	for i := range m.layers {
		p := fmt.Sprintf("blk.%d.", i)
		m.layers[i] = layer{
			attnNorm: vector(p+"attn_norm.weight", c.Dim),
			wq:       matrix(p+"attn_q.weight", qDim, c.Dim),
			wk:       matrix(p+"attn_k.weight", kvDim, c.Dim),
			wv:       matrix(p+"attn_v.weight", kvDim, c.Dim),
			wo:       matrix(p+"attn_output.weight", c.Dim, qDim),
			ffnNorm:  vector(p+"ffn_norm.weight", c.Dim),
			gate:     matrix(p+"ffn_gate.weight", c.FFNDim, c.Dim),
			up:       matrix(p+"ffn_up.weight", c.FFNDim, c.Dim),
			down:     matrix(p+"ffn_down.weight", c.Dim, c.FFNDim),
		}
	}
	return err
}
