package cache

import "errors"

var (
	// ErrDigestMismatch means bytes did not hash to the digest they were
	// fetched by, or their length differed from the descriptor's size. The
	// bytes are deleted; nothing is laid out.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrModelNotFound means no complete model directory exists for a digest.
	ErrModelNotFound = errors.New("model not in cache")
	// ErrTooLarge means a model cannot fit in the cache's byte budget.
	ErrTooLarge = errors.New("model larger than the cache budget")
	// ErrUnsafePath means a file path in an artifact would land outside the
	// model directory.
	ErrUnsafePath = errors.New("unsafe file path")
)
