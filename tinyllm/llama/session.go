package llama

import (
	"fmt"
	"math"

	"github.com/modelgate/modelgate/tinyllm/tensor"
)

// batch is how many prompt tokens one forward pass processes together:
// their matrix products read each weight row once per four tokens, and
// their threads wake once per product rather than once per token.
const batch = 32

// Session is one sequence being evaluated: its position, its key/value
// cache (float32, Layers x KVHeads*HeadDim x context, for keys and for
// values) and scratch buffers, all allocated by NewSession. A Session is
// not safe for concurrent use; Sessions of one Model may run concurrently.
type Session struct {
	m   *Model
	ctx int
	pos int

	keys, values []float32 // [layer][kvDim][ctx]: see attention

	// Scratch for up to batch tokens, token-major.
	x      []float32 // residual stream, [batch][Dim]
	xb     []float32 // normalized input of a sub-block, [batch][Dim]
	proj   []float32 // output of a projection back to Dim, [batch][Dim]
	q      []float32 // queries, [batch][Heads*HeadDim]
	k, v   []float32 // new keys and values, [batch][KVHeads*HeadDim]
	att    []float32 // attention output, [batch][Heads*HeadDim]
	gate   []float32 // [batch][FFNDim]
	up     []float32 // [batch][FFNDim]
	cos    []float32 // rope angles, [batch][RopeDim/2]
	sin    []float32
	logits []float32 // [VocabSize]
	attn   attention
}

// NewSession starts an empty sequence with room for ctx tokens; ctx <= 0,
// or more than Model.ContextSize, means Model.ContextSize.
func (m *Model) NewSession(ctx int) *Session {
	if ctx <= 0 || ctx > m.ctx {
		ctx = m.ctx
	}
	c := m.Config
	qDim, kvDim := c.Heads*c.HeadDim, c.KVHeads*c.HeadDim
	s := &Session{
		m:      m,
		ctx:    ctx,
		keys:   make([]float32, c.Layers*ctx*kvDim),
		values: make([]float32, c.Layers*ctx*kvDim),
		x:      make([]float32, batch*c.Dim),
		xb:     make([]float32, batch*c.Dim),
		proj:   make([]float32, batch*c.Dim),
		q:      make([]float32, batch*qDim),
		k:      make([]float32, batch*kvDim),
		v:      make([]float32, batch*kvDim),
		att:    make([]float32, batch*qDim),
		gate:   make([]float32, batch*c.FFNDim),
		up:     make([]float32, batch*c.FFNDim),
		cos:    make([]float32, batch*c.RopeDim/2),
		sin:    make([]float32, batch*c.RopeDim/2),
		logits: make([]float32, c.VocabSize),
	}
	s.attn = attention{
		heads:   c.Heads,
		group:   c.Heads / c.KVHeads,
		headDim: c.HeadDim,
		qDim:    qDim,
		kvDim:   kvDim,
		scale:   float32(1 / math.Sqrt(float64(c.HeadDim))),
		scores:  make([]float32, m.pool.Threads()*ctx),
		ctx:     ctx,
		out:     s.att,
		q:       s.q,
	}
	return s
}

// Pos is the number of tokens in the sequence: the position the next
// token will take.
func (s *Session) Pos() int { return s.pos }

// ContextSize is the most tokens the sequence can hold.
func (s *Session) ContextSize() int { return s.ctx }

// Reset empties the sequence.
func (s *Session) Reset() { s.pos = 0 }

// Truncate drops the positions n and beyond, keeping the cache of the
// first n tokens so that a prompt sharing them continues from there. It
// does nothing when n >= Pos.
func (s *Session) Truncate(n int) {
	s.pos = min(s.pos, max(n, 0))
}

// Eval appends tokens to the sequence and returns the logits that follow
// the last one: VocabSize scores, valid until the next call. Errors wrap
// ErrToken (an id outside the vocabulary, or no tokens) or ErrContextFull
// (the tokens do not fit); the sequence is unchanged then.
func (s *Session) Eval(tokens []int32) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, fmt.Errorf("eval: no tokens: %w", ErrToken)
	}
	for _, t := range tokens {
		if t < 0 || int(t) >= s.m.Config.VocabSize {
			return nil, fmt.Errorf("eval: token %d outside a vocabulary of %d: %w", t, s.m.Config.VocabSize, ErrToken)
		}
	}
	if len(tokens) > s.ctx-s.pos {
		return nil, fmt.Errorf("eval: %d tokens at position %d of a %d-token context: %w", len(tokens), s.pos, s.ctx, ErrContextFull)
	}
	for len(tokens) > 0 {
		n := min(len(tokens), batch)
		s.forward(tokens[:n], n == len(tokens))
		tokens = tokens[n:]
	}
	return s.logits, nil
}

// forward runs tokens (at most batch) through the model at the next
// positions and, if logits is set, computes the logits of the last one.
func (s *Session) forward(tokens []int32, logits bool) {
	m, c := s.m, s.m.Config
	n, p0 := len(tokens), s.pos
	dim, ff := c.Dim, c.FFNDim
	qDim, kvDim := s.attn.qDim, s.attn.kvDim
	half := c.RopeDim / 2
	x, xb, proj := s.x[:n*dim], s.xb[:n*dim], s.proj[:n*dim]
	q, att := s.q[:n*qDim], s.att[:n*qDim]
	gate, up := s.gate[:n*ff], s.up[:n*ff]

	for i, t := range tokens {
		m.embed.DequantizeRow(x[i*dim:(i+1)*dim], int(t))
		tensor.RopeAngles(s.cos[i*half:(i+1)*half], s.sin[i*half:(i+1)*half], p0+i, c.RopeBase, m.freqs)
	}
	for l := range m.layers {
		ly := &m.layers[l]
		// Attention.
		for i := range n {
			tensor.RMSNorm(xb[i*dim:(i+1)*dim], x[i*dim:(i+1)*dim], ly.attnNorm, c.NormEps)
		}
		k, v := s.k[:n*kvDim], s.v[:n*kvDim]
		m.pool.MatMul(q, ly.wq, xb, n)
		m.pool.MatMul(k, ly.wk, xb, n)
		m.pool.MatMul(v, ly.wv, xb, n)
		for i := range n {
			cos, sin := s.cos[i*half:(i+1)*half], s.sin[i*half:(i+1)*half]
			tensor.Rope(q[i*qDim:(i+1)*qDim], c.HeadDim, cos, sin)
			tensor.Rope(k[i*kvDim:(i+1)*kvDim], c.HeadDim, cos, sin)
		}
		tensor.Scale(q, s.attn.scale) // once per query, not once per score
		layerCache := l * kvDim * s.ctx
		keys := s.keys[layerCache : layerCache+kvDim*s.ctx]
		values := s.values[layerCache : layerCache+kvDim*s.ctx]
		for j := range kvDim {
			row := j*s.ctx + p0
			kr, vr := keys[row:row+n], values[row:row+n]
			for i := range n {
				kr[i], vr[i] = k[i*kvDim+j], v[i*kvDim+j]
			}
		}
		s.attn.keys, s.attn.values, s.attn.p0 = keys, values, p0
		s.attn.run(m.pool, n)
		m.pool.MatMul(proj, ly.wo, att, n)
		tensor.Add(x, proj)

		// Feed-forward.
		for i := range n {
			tensor.RMSNorm(xb[i*dim:(i+1)*dim], x[i*dim:(i+1)*dim], ly.ffnNorm, c.NormEps)
		}
		m.pool.MatMul(gate, ly.gate, xb, n)
		m.pool.MatMul(up, ly.up, xb, n)
		tensor.SwiGLU(gate, up)
		m.pool.MatMul(proj, ly.down, gate, n)
		tensor.Add(x, proj)
	}
	s.pos += n
	if logits {
		last := xb[:dim]
		tensor.RMSNorm(last, x[(n-1)*dim:n*dim], m.outNorm, c.NormEps)
		m.pool.MatVec(s.logits, m.output, last)
	}
}
