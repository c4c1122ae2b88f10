//go:build !unix

package cache

import "os"

// flock is a no-op where flock(2) does not exist: one process owns the
// cache directory there.
func flock(*os.File, bool, bool) error { return nil }
