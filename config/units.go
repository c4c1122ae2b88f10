package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ByteSize is a number of bytes written in YAML either as a plain integer or
// with a unit: "512", "64KiB", "10GiB", "1.5GB". Binary units (KiB, MiB, GiB,
// TiB) are powers of 1024, decimal ones (KB, MB, GB, TB) powers of 1000.
type ByteSize int64

var byteUnits = []struct {
	suffix string
	factor float64
}{
	// Longest suffixes first so that "GiB" is not read as "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseByteSize parses a size such as "10GiB" or "1048576".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("parse size: empty value")
	}
	factor := 1.0
	number := s
	for _, u := range byteUnits {
		if strings.HasSuffix(s, u.suffix) {
			factor = u.factor
			number = strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			break
		}
	}
	v, err := strconv.ParseFloat(number, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("parse size %q: want a non-negative number with an optional unit such as 512MiB or 10GiB", s)
	}
	return ByteSize(v * factor), nil
}

// UnmarshalYAML reads a size from a YAML scalar.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String prints the size with the largest binary unit that keeps it exact.
func (b ByteSize) String() string {
	for _, u := range []struct {
		suffix string
		factor int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.factor == 0 {
			return strconv.FormatInt(int64(b)/u.factor, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// Duration is a time.Duration written in Go syntax in YAML ("90s", "1m30s").
type Duration time.Duration

// UnmarshalYAML reads a duration from a YAML scalar.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		return fmt.Errorf("parse duration %q: want Go syntax such as 90s or 1m30s", n.Value)
	}
	if v < 0 {
		return fmt.Errorf("parse duration %q: must not be negative", n.Value)
	}
	*d = Duration(v)
	return nil
}

// String prints the duration in Go syntax without zero tails: "10m", "1h",
// "1m30s", "500ms".
func (d Duration) String() string {
	s := time.Duration(d).String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// MarshalYAML writes the duration as String does, which UnmarshalYAML reads
// back.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Std returns the value as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }
