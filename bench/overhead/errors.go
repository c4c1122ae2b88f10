package main

import "errors"

var (
	// errExited means a process ended before it was ready.
	errExited = errors.New("process exited")
	// errNotReady means a process did not answer its readiness probe in
	// time.
	errNotReady = errors.New("process not ready")
	// errBadResponse means a server answered a request with something other
	// than a 200 and a complete body (for a stream: up to its [DONE]).
	errBadResponse = errors.New("bad response")
	// errNoLogRecord means the gateway's log lacks a record the benchmark
	// needs (the runtime's port, a cold start's phases).
	errNoLogRecord = errors.New("record not in the gateway's log")
)
