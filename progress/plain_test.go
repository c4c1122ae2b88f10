package progress

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"
)

// clock is a fake clock the test moves by hand; the tracker reads it under
// its lock, from the goroutine that reads, which is the test's own here.
type clock struct{ now time.Time }

func newClock() *clock {
	return &clock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *clock) read() time.Time         { return c.now }
func (c *clock) advance(d time.Duration) { c.now = c.now.Add(d) }

// zeros returns a reader of n zero bytes that allocates nothing.
func zeros(n int64) io.Reader { return io.LimitReader(zeroReader{}, n) }

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// readExactly reads n bytes from r in one Read call.
func readExactly(t *testing.T, r io.Reader, n int) {
	t.Helper()
	got, err := r.Read(make([]byte, n))
	if got != n || err != nil {
		t.Fatalf("read %d bytes, %v; want %d", got, err, n)
	}
}

func lines(s string) []string { return strings.SplitAfter(s, "\n") }

func TestPlainLinesAtMostEveryInterval(t *testing.T) {
	const MiB = 1 << 20
	c := newClock()
	var out bytes.Buffer
	tk, err := newTracker(&out, 10*MiB, Options{Mode: Plain, Verbs: Upload}, c.read)
	if err != nil {
		t.Fatal(err)
	}
	r := tk.Reader("model.gguf", zeros(10*MiB), 10*MiB)
	short := tk.Reader("config.json", zeros(100), 100)

	c.advance(time.Second)
	readExactly(t, r, MiB) // 1s in: no line yet
	readExactly(t, short, 100)
	tk.Logf("exists     LICENSE (%s, already in the registry)", "11B")
	c.advance(4 * time.Second)
	readExactly(t, r, MiB) // 5s: a line; 2MiB in 5s
	readExactly(t, r, MiB) // same instant: no line
	c.advance(time.Second)
	readExactly(t, r, MiB) // 6s: only 1s since the last line
	c.advance(4 * time.Second)
	readExactly(t, r, 2*MiB) // 10s: a line; 4MiB in 5s
	c.advance(2 * time.Second)
	readExactly(t, r, 4*MiB) // 12s: all read, the final line
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read past the end: %d, %v", n, err)
	}
	tk.Done()
	tk.Logf("pushed")

	want := []string{
		"exists     LICENSE (11B, already in the registry)\n",
		"uploading model.gguf: 2MiB of 10MiB (20%), 410KiB/s, ETA 20s\n",
		"uploading model.gguf: 6MiB of 10MiB (60%), 819KiB/s, ETA 5s\n",
		"uploaded model.gguf: 10MiB in 12s, 853KiB/s\n",
		"pushed\n",
		"",
	}
	if got := lines(out.String()); strings.Join(got, "") != strings.Join(want, "") {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), strings.Join(want, ""))
	}
	if got := tk.Transferred(); got != 10*MiB+100 {
		t.Errorf("Transferred %d, want %d", got, 10*MiB+100)
	}
}

func TestPlainUnknownSizeEndsAtEOF(t *testing.T) {
	c := newClock()
	var out bytes.Buffer
	tk, err := newTracker(&out, 0, Options{Mode: Plain, Interval: time.Second, Verbs: Download}, c.read)
	if err != nil {
		t.Fatal(err)
	}
	r := tk.Reader("blob", zeros(3000), -1)
	c.advance(1500 * time.Millisecond)
	readExactly(t, r, 2000)
	c.advance(500 * time.Millisecond)
	readExactly(t, r, 1000)
	if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("read past the end: %d, %v", n, err)
	}
	want := "downloading blob: 1.95KiB, 1.3KiB/s\n" +
		"downloaded blob: 2.93KiB in 2s, 1.46KiB/s\n"
	if out.String() != want {
		t.Errorf("output:\n%s\nwant:\n%s", out.String(), want)
	}
}

func TestPlainAfterDoneOnlyCounts(t *testing.T) {
	c := newClock()
	var out bytes.Buffer
	tk, err := newTracker(&out, 100, Options{Mode: Plain, Interval: time.Second}, c.read)
	if err != nil {
		t.Fatal(err)
	}
	r := tk.Reader("a", zeros(100), 100)
	c.advance(time.Second)
	readExactly(t, r, 10)
	tk.Done()
	tk.Done()
	c.advance(time.Second)
	readExactly(t, r, 90)
	late := tk.Reader("b", zeros(5), 5)
	readExactly(t, late, 5)
	want := "transferring a: 10B of 100B (10%), 10B/s, ETA 9s\n"
	if out.String() != want {
		t.Errorf("output %q, want %q", out.String(), want)
	}
	if got := tk.Transferred(); got != 105 {
		t.Errorf("Transferred %d, want 105", got)
	}
}

func TestFormat(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{0, "0B"}, {1023, "1023B"}, {1024, "1KiB"}, {1536, "1.5KiB"}, {10 * 1024, "10KiB"},
		{87_382, "85.3KiB"}, {512 << 20, "512MiB"}, {1288490189, "1.2GiB"}, {1 << 40, "1TiB"},
		{1023 * 1024, "1023KiB"}, {1 << 62, "4EiB"},
	} {
		if got := formatBytes(tt.n); got != tt.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
	for _, tt := range []struct {
		remaining int64
		rate      float64
		want      string
	}{
		{800, 100, "8s"}, {12_500, 100, "2m5s"}, {49, 100, "0s"}, {1, 0, "unknown"}, {1 << 62, 1, "over 100h"},
	} {
		if got := formatETA(tt.remaining, tt.rate); got != tt.want {
			t.Errorf("formatETA(%d, %v) = %q, want %q", tt.remaining, tt.rate, got, tt.want)
		}
	}
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{1440 * time.Millisecond, "1.4s"}, {14_400 * time.Millisecond, "14s"}, {125 * time.Second, "2m5s"},
	} {
		if got := formatElapsed(tt.d); got != tt.want {
			t.Errorf("formatElapsed(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
