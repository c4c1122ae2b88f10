package progress

import (
	"fmt"
	"io"
	"strconv"
	"time"
)

// plainDisplay writes a line per transfer at most every interval, and a
// final line for each transfer that wrote one. Lines are written as bytes
// arrive, so a transfer that stalls writes nothing until it moves again.
type plainDisplay struct {
	w        io.Writer
	verbs    Verbs
	interval time.Duration
}

func (d *plainDisplay) start(*transfer) {}

func (d *plainDisplay) advance(tr *transfer, _ int64, now time.Time) {
	if now.Sub(tr.lastLine) < d.interval || (tr.size >= 0 && tr.read >= tr.size) {
		return // not due, or the final line follows
	}
	line := fmt.Sprintf("%s %s: %s", d.verbs.Ongoing, tr.name, formatBytes(tr.read))
	rate := bytesPerSecond(tr.read-tr.lastLineBytes, now.Sub(tr.lastLine))
	if tr.size >= 0 {
		line += fmt.Sprintf(" of %s (%d%%)", formatBytes(tr.size), tr.read*100/max(tr.size, 1))
	}
	line += ", " + formatRate(rate)
	if tr.size >= 0 {
		line += ", ETA " + formatETA(tr.size-tr.read, rate)
	}
	io.WriteString(d.w, line+"\n")
	tr.lines++
	tr.lastLine, tr.lastLineBytes = now, tr.read
}

func (d *plainDisplay) end(tr *transfer, now time.Time) {
	if tr.lines == 0 {
		return
	}
	took := now.Sub(tr.started)
	fmt.Fprintf(d.w, "%s %s: %s in %s, %s\n", d.verbs.Done, tr.name, formatBytes(tr.read),
		formatElapsed(took), formatRate(bytesPerSecond(tr.read, took)))
}

func (d *plainDisplay) total(int64)   {}
func (d *plainDisplay) line(s string) { io.WriteString(d.w, s) }
func (d *plainDisplay) done()         {}

func bytesPerSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// formatBytes renders n in binary units with at most three significant
// digits, trailing zeros dropped: "512B", "85.3KiB", "1.2GiB".
func formatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}
	v, i := float64(n), 0
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if i == 0 {
		return strconv.FormatInt(n, 10) + "B"
	}
	decimals := 2
	switch {
	case v >= 100:
		decimals = 0
	case v >= 10:
		decimals = 1
	}
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if decimals > 0 {
		for s[len(s)-1] == '0' {
			s = s[:len(s)-1]
		}
		if s[len(s)-1] == '.' {
			s = s[:len(s)-1]
		}
	}
	return s + units[i]
}

func formatRate(bytesPerSec float64) string {
	return formatBytes(int64(bytesPerSec)) + "/s"
}

// maxETA caps the ETA shown ("over 100h"): beyond it the estimate means
// little, and a longer time.Duration might overflow.
const maxETA = 100 * time.Hour

// formatETA renders the time left to move remaining bytes at rate, in whole
// seconds ("8s", "2m5s"), or "unknown" with no rate to go by.
func formatETA(remaining int64, rate float64) string {
	if rate <= 0 {
		return "unknown"
	}
	secs := float64(remaining) / rate
	if secs > maxETA.Seconds() {
		return "over 100h"
	}
	return time.Duration(secs * float64(time.Second)).Round(time.Second).String()
}

// formatElapsed renders d to a tenth of a second below ten seconds ("1.4s"),
// to the second above ("14s", "2m5s").
func formatElapsed(d time.Duration) string {
	if d < 10*time.Second {
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}
