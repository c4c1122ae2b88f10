package llama

import "github.com/modelgate/modelgate/tinyllm/tensor"

// attention is causal grouped-query attention over one layer of a
// Session's cache, as a tensor.Task over (token, head) pairs: query head h
// reads key/value head h/group, and token i (at position p0+i) sees
// positions 0..p0+i.
//
// The cache is transposed, [kvDim][ctx] per layer (row kvHead*headDim+d
// holds dimension d of that head at every position), so that both
// products run along positions in long, branch-free loops: the scores are
// q times the head's headDim x positions block (tensor.VecMatF32) and the
// output is that block times the softmax (tensor.MatVecF32). With the
// small heads of small models this is several times faster than a dot
// product per position.
type attention struct {
	heads, group, headDim int
	qDim, kvDim           int
	scale                 float32 // 1/sqrt(headDim), applied to the queries
	ctx                   int
	scores                []float32 // [thread][ctx]
	q, out                []float32 // [token][qDim]

	// Set for each layer of each forward pass.
	keys, values []float32 // this layer's [kvDim][ctx]
	p0           int
}

// attnMinWork is the work, in multiply-adds, of an attention step below
// which it runs on one thread (see tensor.Pool.MatMul for the reasoning).
const attnMinWork = 1 << 16

func (a *attention) run(pool *tensor.Pool, n int) {
	items := n * a.heads
	work := items * (a.p0 + n) * 2 * a.headDim
	grain := items
	if work >= attnMinWork {
		grain = max(1, items/(4*pool.Threads()))
	}
	pool.Parallel(items, grain, a)
}

// Run implements tensor.Task.
func (a *attention) Run(worker, lo, hi int) {
	hd := a.headDim
	for it := lo; it < hi; it++ {
		i, h := it/a.heads, it%a.heads
		block := (h / a.group) * hd * a.ctx
		q := a.q[i*a.qDim+h*hd : i*a.qDim+(h+1)*hd]
		scores := a.scores[worker*a.ctx : worker*a.ctx+a.p0+i+1]
		tensor.VecMatF32(scores, q, a.keys[block:], a.ctx)
		tensor.Softmax(scores)
		tensor.MatVecF32(a.out[i*a.qDim+h*hd:i*a.qDim+(h+1)*hd], a.values[block:], a.ctx, scores)
	}
}
