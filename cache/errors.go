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
	// ErrNoSpace means the file system of the cache ran out of space (or
	// of quota: ENOSPC, EDQUOT) while a pull wrote to it. Nothing that was
	// not verified and complete becomes visible; the partial file of the
	// blob being written stays in ingest/ for a resume once space is freed.
	ErrNoSpace = errors.New("cache full")
)
