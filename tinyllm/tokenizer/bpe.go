package tokenizer

import (
	"container/heap"
	"strings"
	"unicode/utf8"
)

// byteRune maps each byte to the printable code point that stands for it in
// a byte-level BPE vocabulary, and runeByte maps back (-1: not a byte's
// code point). The mapping is GPT-2's bytes_to_unicode: the printable
// Latin-1 bytes stand for themselves and the other bytes, in order, take the
// code points from U+0100 on.
var (
	byteRune [256]rune
	runeByte [0x144]int16
)

func init() {
	for i := range runeByte {
		runeByte[i] = -1
	}
	next := rune(0x100)
	for b := range 256 {
		if ('!' <= b && b <= '~') || (0xA1 <= b && b <= 0xAC) || (0xAE <= b && b <= 0xFF) {
			byteRune[b] = rune(b)
		} else {
			byteRune[b] = next
			next++
		}
		runeByte[byteRune[b]] = int16(b)
	}
}

// encodeByteLevel maps the bytes of s to their code points.
func encodeByteLevel(s string) string {
	var b strings.Builder
	b.Grow(2 * len(s))
	for i := 0; i < len(s); i++ {
		b.WriteRune(byteRune[s[i]])
	}
	return b.String()
}

// decodeByteLevel maps the code points of a byte-level token back to bytes.
// A code point outside the mapping is kept as its UTF-8 (llama.cpp writes
// a "[UNK_BYTE_0x..]" marker there instead).
func decodeByteLevel(s string) []byte {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		if r >= 0 && int(r) < len(runeByte) && runeByte[r] >= 0 {
			out = append(out, byte(runeByte[r]))
		} else {
			out = utf8.AppendRune(out, r)
		}
	}
	return out
}

type bpeBigram struct {
	left, right int
	rank        int
	size        int
}

// bpeQueue pops the lowest rank first, the leftmost on ties.
type bpeQueue []bpeBigram

func (q bpeQueue) Len() int { return len(q) }
func (q bpeQueue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].left < q[j].left
}
func (q bpeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *bpeQueue) Push(x any)   { *q = append(*q, x.(bpeBigram)) }
func (q *bpeQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// encodeBPE appends the byte-level BPE tokens of text to out, following
// llama.cpp's llm_tokenizer_bpe_session.
func (t *Tokenizer) encodeBPE(text string, out []int32) []int32 {
	for _, word := range t.pre.split(text) {
		out = t.encodeWord(encodeByteLevel(word), out)
	}
	return out
}

// encodeWord merges the code points of one byte-level encoded word.
func (t *Tokenizer) encodeWord(w string, out []int32) []int32 {
	if t.pre.ignoreMerges {
		if id, ok := t.ids[w]; ok {
			return append(out, id)
		}
	}
	syms := make([]symbol, 0, len(w)/2)
	for off := 0; off < len(w); {
		_, n := utf8.DecodeRuneInString(w[off:])
		syms = append(syms, symbol{start: off, end: off + n, prev: len(syms) - 1, next: len(syms) + 1})
		off += n
	}
	if len(syms) == 0 {
		return out
	}
	syms[len(syms)-1].next = -1

	q := &bpeQueue{}
	tryAdd := func(left, right int) {
		if left < 0 || right < 0 {
			return
		}
		l, r := syms[left], syms[right]
		rank, ok := t.ranks[w[l.start:l.end]+" "+w[r.start:r.end]]
		if !ok {
			return
		}
		heap.Push(q, bpeBigram{left: left, right: right, rank: rank, size: r.end - l.start})
	}
	for i := 1; i < len(syms); i++ {
		tryAdd(i-1, i)
	}
	for q.Len() > 0 {
		b := heap.Pop(q).(bpeBigram)
		l, r := &syms[b.left], &syms[b.right]
		if l.start == l.end || r.start == r.end || (l.end-l.start)+(r.end-r.start) != b.size {
			continue // stale: one side changed since the pair was queued
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
		piece := w[syms[i].start:syms[i].end]
		if id, ok := t.ids[piece]; ok {
			out = append(out, id)
			continue
		}
		// Not a token: fall back to one token per code point and drop
		// code points the vocabulary lacks, as llama.cpp does.
		for _, r := range piece {
			if id, ok := t.ids[string(r)]; ok {
				out = append(out, id)
			}
		}
	}
	return out
}
