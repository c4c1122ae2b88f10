package main

import "testing"

func TestRowRatio(t *testing.T) {
	tests := []struct {
		name  string
		r     row
		ratio float64
		met   bool
	}{
		{"time, tinyllm faster", row{unit: "ms", tiny: 10, llama: 40}, 0.25, true},
		{"time, tinyllm 4x slower", row{unit: "ms", tiny: 40, llama: 10}, 4, false},
		{"throughput, tinyllm faster", row{unit: "tok/s", rate: true, tiny: 2000, llama: 1000}, 0.5, true},
		{"throughput, tinyllm 3x slower", row{unit: "tok/s", rate: true, tiny: 1000, llama: 3000}, 3, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.r.ratio(); got != tt.ratio {
				t.Errorf("ratio = %v, want %v", got, tt.ratio)
			}
			if got := tt.r.met(); got != tt.met {
				t.Errorf("met = %v, want %v", got, tt.met)
			}
		})
	}
}

func TestNumber(t *testing.T) {
	tests := []struct {
		v    float64
		unit string
		want string
	}{
		{11643.4, "tok/s", "11,643"},
		{1234567, "ms", "1,234,567"},
		{74.24, "ms", "74.2"},
		{1.854, "ms", "1.85"},
		{0.5, "ms", "0.500"},
	}
	for _, tt := range tests {
		if got := number(tt.v, tt.unit); got != tt.want {
			t.Errorf("number(%v, %q) = %q, want %q", tt.v, tt.unit, got, tt.want)
		}
	}
}
