package llama

import (
	"math"
	"strconv"
	"testing"

	"github.com/modelgate/modelgate/tinyllm/gguf"
	"github.com/modelgate/modelgate/tinyllm/tensor"
)

// refModel is a plain float64 llama forward pass, written for clarity
// rather than speed, to check the optimized one against. It recomputes
// every position from scratch.
type refModel struct {
	c       Config
	tensors map[string][]float64 // decoded, row-major
	tied    bool
}

func newRefModel(t testing.TB, g *gguf.File, c Config) *refModel {
	t.Helper()
	r := &refModel{c: c, tensors: map[string][]float64{}}
	for _, tn := range g.Tensors {
		f := make([]float32, tn.Elements())
		if err := tensor.Dequantize(tn.Type, f, tn.Data); err != nil {
			t.Fatalf("%s: %v", tn.Name, err)
		}
		d := make([]float64, len(f))
		for i, v := range f {
			d[i] = float64(v)
		}
		r.tensors[tn.Name] = d
	}
	if _, ok := r.tensors["output.weight"]; !ok {
		r.tied = true
	}
	return r
}

// matVec multiplies the rows x len(x) matrix called name by x.
func (r *refModel) matVec(name string, x []float64) []float64 {
	w := r.tensors[name]
	out := make([]float64, len(w)/len(x))
	for i := range out {
		for j, v := range x {
			out[i] += w[i*len(x)+j] * v
		}
	}
	return out
}

func (r *refModel) rmsNorm(x []float64, name string) []float64 {
	var ss float64
	for _, v := range x {
		ss += v * v
	}
	s := 1 / math.Sqrt(ss/float64(len(x))+float64(r.c.NormEps))
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = v * s * r.tensors[name][i]
	}
	return out
}

func (r *refModel) rope(x []float64, pos int) {
	c := r.c
	for h := 0; h < len(x); h += c.HeadDim {
		for i := 0; i < c.RopeDim/2; i++ {
			theta := float64(pos) * math.Pow(float64(c.RopeBase), -2*float64(i)/float64(c.RopeDim))
			if f, ok := r.tensors["rope_freqs.weight"]; ok {
				theta /= f[i]
			}
			a, b := x[h+2*i], x[h+2*i+1]
			x[h+2*i] = a*math.Cos(theta) - b*math.Sin(theta)
			x[h+2*i+1] = a*math.Sin(theta) + b*math.Cos(theta)
		}
	}
}

// logits returns the logits after each of tokens, evaluated from position 0.
func (r *refModel) logits(tokens []int32) [][]float64 {
	c := r.c
	hd := c.HeadDim
	xs := make([][]float64, len(tokens))
	for i, tok := range tokens {
		xs[i] = append([]float64(nil), r.tensors["token_embd.weight"][int(tok)*c.Dim:(int(tok)+1)*c.Dim]...)
	}
	for l := range c.Layers {
		p := "blk." + strconv.Itoa(l) + "."
		keys, values := make([][]float64, len(tokens)), make([][]float64, len(tokens))
		queries := make([][]float64, len(tokens))
		for i, x := range xs {
			h := r.rmsNorm(x, p+"attn_norm.weight")
			queries[i] = r.matVec(p+"attn_q.weight", h)
			keys[i] = r.matVec(p+"attn_k.weight", h)
			values[i] = r.matVec(p+"attn_v.weight", h)
			r.rope(queries[i], i)
			r.rope(keys[i], i)
		}
		for i, x := range xs {
			att := make([]float64, c.Heads*hd)
			for h := range c.Heads {
				kvh := h / (c.Heads / c.KVHeads)
				scores := make([]float64, i+1)
				mx := math.Inf(-1)
				for t := range scores {
					for d := range hd {
						scores[t] += queries[i][h*hd+d] * keys[t][kvh*hd+d]
					}
					scores[t] /= math.Sqrt(float64(hd))
					mx = math.Max(mx, scores[t])
				}
				var sum float64
				for t := range scores {
					scores[t] = math.Exp(scores[t] - mx)
					sum += scores[t]
				}
				for t := range scores {
					for d := range hd {
						att[h*hd+d] += scores[t] / sum * values[t][kvh*hd+d]
					}
				}
			}
			o := r.matVec(p+"attn_output.weight", att)
			for j := range x {
				x[j] += o[j]
			}
			h := r.rmsNorm(x, p+"ffn_norm.weight")
			gate, up := r.matVec(p+"ffn_gate.weight", h), r.matVec(p+"ffn_up.weight", h)
			for j, g := range gate {
				gate[j] = g / (1 + math.Exp(-g)) * up[j]
			}
			d := r.matVec(p+"ffn_down.weight", gate)
			for j := range x {
				x[j] += d[j]
			}
		}
	}
	out := make([][]float64, len(xs))
	name := "output.weight"
	if r.tied {
		name = "token_embd.weight"
	}
	for i, x := range xs {
		out[i] = r.matVec(name, r.rmsNorm(x, "output_norm.weight"))
	}
	return out
}

// maxDiff is the largest |a[i] - b[i]|.
func maxDiff(a []float32, b []float64) float64 {
	var d float64
	for i := range b {
		d = math.Max(d, math.Abs(float64(a[i])-b[i]))
	}
	return d
}

// TestForwardMatchesFloat64Reference compares the logits of the demo
// model, after every token of a prompt and its greedy completion, with a
// plain float64 forward pass.
func TestForwardMatchesFloat64Reference(t *testing.T) {
	g, err := gguf.Open(demoModel)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	m, err := Load(g, Options{Threads: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	c := readGreedyCases(t)[0]
	tokens := append(append([]int32(nil), c.PromptTokens...), c.CompletionTokens...)
	want := newRefModel(t, g, m.Config).logits(tokens)
	s := m.NewSession(0)
	var worst float64
	for i, tok := range tokens {
		got, err := s.Eval([]int32{tok})
		if err != nil {
			t.Fatal(err)
		}
		worst = math.Max(worst, maxDiff(got, want[i]))
	}
	// Prompt batches give the same logits as single tokens, up to float32
	// rounding.
	s.Reset()
	got, err := s.Eval(tokens)
	if err != nil {
		t.Fatal(err)
	}
	worst = math.Max(worst, maxDiff(got, want[len(tokens)-1]))
	t.Logf("max |logit - float64 reference| over %d positions: %.2g", len(tokens), worst)
	if worst > 1e-4 {
		t.Errorf("logits differ from the float64 reference by up to %g", worst)
	}
}
