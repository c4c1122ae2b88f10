package main

import (
	"math"
	"testing"
)

func TestMedianAndPercentile(t *testing.T) {
	tests := []struct {
		name     string
		xs       []float64
		med, p90 float64
	}{
		{"one", []float64{3}, 3, 3},
		{"odd", []float64{5, 1, 3}, 3, 5},
		{"even", []float64{4, 1, 3, 2}, 2.5, 4},
		{"ten", []float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 5.5, 9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := median(tt.xs); got != tt.med {
				t.Errorf("median = %v, want %v", got, tt.med)
			}
			if got := percentile(tt.xs, 90); got != tt.p90 {
				t.Errorf("p90 = %v, want %v", got, tt.p90)
			}
		})
	}
	if !math.IsNaN(median(nil)) || !math.IsNaN(percentile(nil, 90)) {
		t.Error("no samples: want NaN")
	}
}
