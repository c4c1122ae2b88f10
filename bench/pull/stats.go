package main

import (
	"math"
	"slices"
	"time"
)

// median is the middle of xs (the mean of the two middle values for an
// even count); NaN for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Sorted(slices.Values(xs))
	mid := len(s) / 2
	if len(s)%2 == 1 {
		return s[mid]
	}
	return (s[mid-1] + s[mid]) / 2
}

// walls is the wall times of es in seconds.
func walls(es []exit) []float64 {
	out := make([]float64, len(es))
	for i, e := range es {
		out[i] = e.wall.Seconds()
	}
	return out
}

// medianWall is the median wall time of es.
func medianWall(es []exit) time.Duration {
	return time.Duration(median(walls(es)) * float64(time.Second))
}

// peakRSS is the highest peak RSS of es, bytes.
func peakRSS(es []exit) int64 {
	var m int64
	for _, e := range es {
		m = max(m, e.maxRSS)
	}
	return m
}
