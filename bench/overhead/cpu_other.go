//go:build !linux

package main

import "time"

// processCPU cannot tell outside Linux.
func processCPU(int, bool) (time.Duration, bool) { return 0, false }
