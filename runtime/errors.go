package runtime

import "errors"

var (
	// ErrExited means the runtime process could not be started or exited
	// before it became ready. The error's message carries the exit status
	// and the last lines the process wrote to stderr.
	ErrExited = errors.New("runtime exited")
	// ErrNotReady means the runtime did not answer its health path with the
	// ready status within its startup timeout.
	ErrNotReady = errors.New("runtime not ready")
	// ErrHung means a running runtime stopped answering its health path
	// (Process.Watch).
	ErrHung = errors.New("runtime hung")
	// ErrStopped means the process was stopped while a caller waited for it.
	ErrStopped = errors.New("runtime stopped")
)
