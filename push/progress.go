package push

import "fmt"

// humanSize renders n bytes in binary units with four significant digits
// ("512B", "1.5KiB", "3.814GiB"), the form Docker's tools use for sizes
// (docker/go-units BytesSize).
func humanSize(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	return fmt.Sprintf("%.4g%s", v, units[i])
}
