package main

import "errors"

var (
	// errExited means a server process ended before it was healthy.
	errExited = errors.New("server exited")
	// errNotHealthy means a server did not answer /health with 200 in time.
	errNotHealthy = errors.New("server not healthy")
	// errBadResponse means a server answered a request with something
	// other than a 200 and a decodable body.
	errBadResponse = errors.New("bad response")
)
