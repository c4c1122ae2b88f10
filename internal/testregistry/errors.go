package testregistry

import "errors"

var (
	// errNoBinary is returned when no registry executable can be found.
	errNoBinary = errors.New("find registry binary: not installed")
	// errExited is returned when the registry process exits before it
	// answers GET /v2/, typically because its port was taken meanwhile.
	errExited = errors.New("registry process exited before becoming ready")
)
