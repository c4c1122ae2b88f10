package main

import "errors"

var (
	// errNoRegistry means neither docker-registry nor registry is on PATH.
	errNoRegistry = errors.New("no Distribution registry binary on PATH (apt-get install -y docker-registry)")
	// errExited means a process ended before it was ready, or a pull failed.
	errExited = errors.New("process exited")
	// errNotReady means the registry did not answer GET /v2/ in time.
	errNotReady = errors.New("registry not ready")
	// errShortPull means a pull exited cleanly but wrote fewer bytes than the
	// model holds.
	errShortPull = errors.New("pull wrote too few bytes")
	// errBadResponse means the registry, or the proxy in front of it,
	// answered a capacity measurement's request with something other than
	// what was asked for.
	errBadResponse = errors.New("unexpected registry response")
)
