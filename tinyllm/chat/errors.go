package chat

import "errors"

// ErrRaised means the template refused the conversation by calling
// raise_exception, usually because of its roles (a system message the model
// does not support, turns that do not alternate): the client's request is
// at fault, not the model. The message the template gave follows it in the
// error text.
var ErrRaised = errors.New("raise_exception")

// Error is a chat template's failure to parse or to render.
type Error struct {
	// Template names the template: "tokenizer.chat_template of <model>"
	// for one read from a GGUF file, or the start of its source.
	Template string
	// Op is "parse" or "apply".
	Op  string
	Err error
}

func (e *Error) Error() string {
	return e.Op + " chat template " + e.Template + ": " + e.Err.Error()
}

// Unwrap returns the underlying error, which wraps ErrRaised when the
// template called raise_exception.
func (e *Error) Unwrap() error { return e.Err }
