package engine

import (
	"errors"
	"fmt"
)

// ErrContextExceeded means the prompt does not fit in the context. Generate
// returns it inside a *ContextExceededError.
var ErrContextExceeded = errors.New("the request exceeds the available context size")

// ContextExceededError is a prompt of PromptTokens tokens refused by a
// context of ContextSize: the prompt must leave room for at least one
// generated token, as in llama-server. It wraps ErrContextExceeded.
type ContextExceededError struct {
	PromptTokens int
	ContextSize  int
}

// Error is llama-server's wording (tools/server/server-context.cpp), which
// clients parse for the two numbers.
func (e *ContextExceededError) Error() string {
	return fmt.Sprintf("request (%d tokens) exceeds the available context size (%d tokens), try increasing it", e.PromptTokens, e.ContextSize)
}

// Unwrap returns ErrContextExceeded.
func (e *ContextExceededError) Unwrap() error { return ErrContextExceeded }
