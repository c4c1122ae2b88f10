//go:build !crashpoints

package cache

// crashpoint marks a line where the crash tests kill the process (see
// crashpoint_on.go, built with -tags crashpoints). In a normal build it does
// nothing and costs nothing.
func crashpoint(string) {}
