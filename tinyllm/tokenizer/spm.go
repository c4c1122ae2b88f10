package tokenizer

import (
	"container/heap"
	"strings"
)

// spmSpace is SentencePiece's stand-in for a space, U+2581.
const spmSpace = "▁"

// utf8Len is the length of the UTF-8 sequence a lead byte announces, by its
// high nibble, as llama.cpp's unicode_len_utf8 reads it: a stray
// continuation byte counts as one character.
func utf8Len(b byte) int {
	return [16]int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4}[b>>4]
}

// symbol is a run of s[start:end] in a linked list of symbols; a symbol
// merged into its left neighbour has start == end.
type symbol struct {
	start, end int
	prev, next int
}

type spmBigram struct {
	left, right int
	score       float32
	size        int
}

// spmQueue pops the highest score first, the leftmost on ties.
type spmQueue []spmBigram

func (q spmQueue) Len() int { return len(q) }
func (q spmQueue) Less(i, j int) bool {
	if q[i].score != q[j].score {
		return q[i].score > q[j].score
	}
	return q[i].left < q[j].left
}
func (q spmQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *spmQueue) Push(x any)   { *q = append(*q, x.(spmBigram)) }
func (q *spmQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// encodeSPM appends the SentencePiece BPE tokens of text to out, following
// llama.cpp's llm_tokenizer_spm_session.
func (t *Tokenizer) encodeSPM(text string, out []int32) []int32 {
	s := strings.ReplaceAll(text, " ", spmSpace)
	if s == "" {
		return out
	}
	syms := make([]symbol, 0, len(s))
	for off := 0; off < len(s); {
		n := min(utf8Len(s[off]), len(s)-off)
		syms = append(syms, symbol{start: off, end: off + n, prev: len(syms) - 1, next: len(syms) + 1})
		off += n
	}
	syms[len(syms)-1].next = -1

	q := &spmQueue{}
	tryAdd := func(left, right int) {
		if left < 0 || right < 0 {
			return
		}
		piece := s[syms[left].start:syms[right].end]
		id, ok := t.ids[piece]
		if !ok {
			return
		}
		heap.Push(q, spmBigram{left: left, right: right, score: t.scores[id], size: len(piece)})
	}
	for i := 1; i < len(syms); i++ {
		tryAdd(i-1, i)
	}
	for q.Len() > 0 {
		b := heap.Pop(q).(spmBigram)
		l, r := &syms[b.left], &syms[b.right]
		// Skip a pair whose symbols changed since it was queued: merging
		// only ever grows the left symbol, so a stale pair has another size.
		if l.start == l.end || r.start == r.end || (l.end-l.start)+(r.end-r.start) != b.size {
			continue
		}
		l.end = r.end
		r.start = r.end
		l.next = r.next
		if r.next >= 0 {
			syms[r.next].prev = b.left
		}
		tryAdd(l.prev, b.left)
		tryAdd(b.left, l.next)
	}

	for i := 0; i >= 0; i = syms[i].next {
		piece := s[syms[i].start:syms[i].end]
		if id, ok := t.ids[piece]; ok {
			out = append(out, id)
			continue
		}
		for j := 0; j < len(piece); j++ {
			if id := t.byteTokens[piece[j]]; id >= 0 {
				out = append(out, id)
			}
		}
	}
	return out
}
