package tokenizer

// Detokenizer turns a stream of generated token ids into text that can be
// sent as soon as it is complete: a UTF-8 character split over several byte
// tokens is held back until its last byte arrives. Bytes that can never
// form a valid character are passed through as they are, so the
// concatenation of everything Add and Flush return equals Decode of all the
// ids. A Detokenizer is not safe for concurrent use.
type Detokenizer struct {
	t       *Tokenizer
	pending []byte
}

// NewDetokenizer starts an empty stream.
func (t *Tokenizer) NewDetokenizer() *Detokenizer {
	return &Detokenizer{t: t}
}

// Add appends the piece of id and returns the text that is now complete,
// possibly "".
func (d *Detokenizer) Add(id int32) string {
	d.pending = append(d.pending, d.t.Piece(id)...)
	n := completeLen(d.pending)
	out := string(d.pending[:n])
	d.pending = append(d.pending[:0], d.pending[n:]...)
	return out
}

// Flush returns whatever is held back, even an incomplete character, and
// empties the stream.
func (d *Detokenizer) Flush() string {
	out := string(d.pending)
	d.pending = d.pending[:0]
	return out
}

// completeLen is the length of the prefix of b that does not end inside a
// UTF-8 sequence that later bytes could still complete.
func completeLen(b []byte) int {
	// A sequence is at most 4 bytes: look for its lead byte among the last 3.
	for back := 1; back <= 3 && back <= len(b); back++ {
		c := b[len(b)-back]
		if c < 0x80 {
			return len(b) // ASCII: nothing open
		}
		if c < 0xC0 {
			continue // continuation byte: the lead is further back
		}
		if utf8Len(c) > back && openSequence(b[len(b)-back:]) {
			return len(b) - back
		}
		return len(b)
	}
	return len(b)
}

// openSequence reports whether p, a lead byte and fewer continuation bytes
// than it announces, is the start of a valid UTF-8 encoding (RFC 3629,
// section 4: no overlong forms, no surrogates, nothing above U+10FFFF).
func openSequence(p []byte) bool {
	if p[0] < 0xC2 || p[0] > 0xF4 {
		return false
	}
	lo, hi := byte(0x80), byte(0xBF)
	switch p[0] {
	case 0xE0:
		lo = 0xA0
	case 0xED:
		hi = 0x9F
	case 0xF0:
		lo = 0x90
	case 0xF4:
		hi = 0x8F
	}
	for i, c := range p[1:] {
		if i > 0 {
			lo, hi = 0x80, 0xBF
		}
		if c < lo || c > hi {
			return false
		}
	}
	return true
}
