package tensor

import "errors"

// ErrUnsupportedType means a tensor's element type has no kernel here.
// The supported types are listed in the package documentation.
var ErrUnsupportedType = errors.New("unsupported tensor type")

// ErrShape means a tensor's dimensions or byte length do not fit the
// operation.
var ErrShape = errors.New("bad tensor shape")
