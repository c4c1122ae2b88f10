package progress

import "errors"

// ErrUnknownMode means a Mode is not one of Auto, Bar, Plain or None.
// New and ParseMode wrap it with the value refused.
var ErrUnknownMode = errors.New("unknown progress mode")
