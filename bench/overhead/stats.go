package main

import (
	"math"
	"slices"
	"time"
)

// percentile is the nearest-rank p-th percentile of xs (0 < p <= 100); -1
// for none.
func percentile(xs []time.Duration, p float64) time.Duration {
	if len(xs) == 0 {
		return -1
	}
	s := xs
	if !slices.IsSorted(s) {
		s = slices.Sorted(slices.Values(xs))
	}
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// median is the 50th percentile: for an even count, the lower middle
// sample, so that it is always a measured value.
func median(xs []time.Duration) time.Duration { return percentile(xs, 50) }
