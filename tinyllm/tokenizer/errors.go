package tokenizer

import "errors"

// ErrUnsupported means the GGUF file asks for a tokenizer model or a
// pre-tokenizer this package does not implement.
var ErrUnsupported = errors.New("unsupported tokenizer")

// ErrVocab means the vocabulary metadata in the GGUF file is missing or
// inconsistent (for example scores of a different length than tokens).
var ErrVocab = errors.New("bad tokenizer vocabulary")
