// Package sample picks the next token from a model's logits: greedy at
// temperature 0, otherwise top-k, then temperature, then top-p (nucleus)
// sampling with a seeded random source, in llama.cpp's order.
package sample

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Params are the sampling settings of one request. The defaults (Defaults)
// are llama-server's.
type Params struct {
	// Temperature scales the logits; 0 or less means greedy (argmax).
	Temperature float64
	// TopK keeps the K most likely tokens; 0 or less keeps all.
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probabilities
	// add up to at least TopP; 1 or more keeps all.
	TopP float64
	// Seed makes sampling repeatable. A negative seed picks a random one.
	Seed int64
}

// Defaults are llama-server's defaults for parameters a request leaves out.
var Defaults = Params{Temperature: 0.8, TopK: 40, TopP: 0.95, Seed: -1}

// Sampler draws tokens for one request. It is not safe for concurrent use.
type Sampler struct {
	p     Params
	rng   *rand.Rand
	cands []candidate
}

type candidate struct {
	id   int32
	prob float64
}

// New returns a sampler for p.
func New(p Params) *Sampler {
	seed := uint64(p.Seed)
	if p.Seed < 0 {
		seed = rand.Uint64()
	}
	return &Sampler{p: p, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Greedy reports whether the sampler always takes the most likely token.
func (s *Sampler) Greedy() bool { return s.p.Temperature <= 0 || s.p.TopK == 1 }

// Sample returns the next token id for logits (one value per vocabulary
// entry). logits is not modified.
func (s *Sampler) Sample(logits []float32) int32 {
	if s.Greedy() {
		return Argmax(logits)
	}
	c := s.cands[:0]
	for i, l := range logits {
		c = append(c, candidate{int32(i), float64(l)})
	}
	// Sort by logit, most likely first; ties by id so that results do not
	// depend on the sort's stability.
	sort.Slice(c, func(i, j int) bool {
		if c[i].prob != c[j].prob {
			return c[i].prob > c[j].prob
		}
		return c[i].id < c[j].id
	})
	if s.p.TopK > 0 && s.p.TopK < len(c) {
		c = c[:s.p.TopK]
	}
	// Softmax at the temperature, over the kept candidates.
	maxLogit := c[0].prob
	var sum float64
	for i := range c {
		c[i].prob = math.Exp((c[i].prob - maxLogit) / s.p.Temperature)
		sum += c[i].prob
	}
	for i := range c {
		c[i].prob /= sum
	}
	if s.p.TopP > 0 && s.p.TopP < 1 {
		var cum float64
		for i := range c {
			cum += c[i].prob
			if cum >= s.p.TopP {
				c = c[:i+1]
				break
			}
		}
		// Renormalise what is left.
		sum = 0
		for _, x := range c {
			sum += x.prob
		}
		for i := range c {
			c[i].prob /= sum
		}
	}
	s.cands = c[:0]
	r := s.rng.Float64()
	for _, x := range c {
		r -= x.prob
		if r < 0 {
			return x.id
		}
	}
	return c[len(c)-1].id
}

// Argmax returns the index of the largest logit (the lowest on ties).
func Argmax(logits []float32) int32 {
	best := 0
	for i, l := range logits {
		if l > logits[best] {
			best = i
		}
	}
	return int32(best)
}
