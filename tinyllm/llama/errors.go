package llama

import "errors"

var (
	// ErrInvalidModel means the GGUF file lacks a tensor or metadata key a
	// llama model needs, or has one of the wrong shape or value.
	ErrInvalidModel = errors.New("invalid llama model")

	// ErrUnsupported means the file is well formed but uses a feature this
	// package does not implement: another architecture, a tensor type
	// without kernels (it also wraps tensor.ErrUnsupportedType then), or a
	// rope scaling scheme.
	ErrUnsupported = errors.New("unsupported model")

	// ErrContextFull means a Session has no room for the tokens: Truncate
	// or Reset it, or start one with a larger context.
	ErrContextFull = errors.New("context full")

	// ErrToken means a token id is outside the vocabulary, or no tokens
	// were given.
	ErrToken = errors.New("invalid token")
)
