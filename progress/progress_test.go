package progress_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelgate/modelgate/progress"
)

// chunkyReader returns at most a pseudo-random number of bytes per Read, so
// that concurrent readers interleave in odd sizes.
type chunkyReader struct {
	r   io.Reader
	rng *rand.Rand
}

func (c *chunkyReader) Read(p []byte) (int, error) {
	n := 1 + c.rng.IntN(min(len(p), 70_000))
	return c.r.Read(p[:n])
}

// TestCountingIsExactUnderConcurrency reads many streams at once through
// one tracker, in every mode, and checks that every byte is counted once
// and passed through unchanged. Run with -race.
func TestCountingIsExactUnderConcurrency(t *testing.T) {
	const streams = 16
	for _, mode := range []progress.Mode{progress.Plain, progress.Bar, progress.None} {
		t.Run(string(mode), func(t *testing.T) {
			sizes := make([]int64, streams)
			var total int64
			for i := range sizes {
				sizes[i] = int64(i*37_000 + i)
				total += sizes[i]
			}
			var out bytes.Buffer
			// A tiny interval writes plain lines all along.
			tk, err := progress.New(&out, total+1000, progress.Options{Mode: mode, Interval: time.Nanosecond})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for i, size := range sizes {
				wg.Go(func() {
					data := make([]byte, size)
					rng := rand.New(rand.NewPCG(uint64(i), 1))
					for j := range data {
						data[j] = byte(rng.Uint32())
					}
					src := &chunkyReader{r: bytes.NewReader(data), rng: rng}
					h := sha256.New()
					n, err := io.Copy(h, tk.Reader(fmt.Sprintf("file-%02d.bin", i), src, size))
					if err != nil || n != size {
						t.Errorf("stream %d: copied %d, %v; want %d", i, n, err, size)
					}
					if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
						t.Errorf("stream %d: bytes changed on the way", i)
					}
					tk.Logf("uploading  file-%02d.bin", i)
				})
				wg.Go(func() { tk.AddTotal(-1000 / streams) })
			}
			wg.Wait()
			tk.Done()
			if got := tk.Transferred(); got != total {
				t.Errorf("Transferred %d, want %d", got, total)
			}
			for i := range streams {
				if !strings.Contains(out.String(), fmt.Sprintf("uploading  file-%02d.bin\n", i)) {
					t.Errorf("line of stream %d lost:\n%s", i, out.String())
				}
			}
		})
	}
}

func TestBarDoneMidwayEndsTheLine(t *testing.T) {
	var out bytes.Buffer
	tk, err := progress.New(&out, 100, progress.Options{Mode: progress.Bar})
	if err != nil {
		t.Fatal(err)
	}
	r := tk.Reader("big.bin", strings.NewReader(strings.Repeat("x", 100)), 100)
	if _, err := io.ReadFull(r, make([]byte, 40)); err != nil {
		t.Fatal(err)
	}
	tk.Done() // the upload failed
	got := out.String()
	if !strings.Contains(got, "40%") || strings.Contains(got, "100%") || !strings.HasSuffix(got, "\n") {
		t.Errorf("bar not left at 40%% with its line ended: %q", got)
	}
}

func TestBarDrawsNothingWithoutBytes(t *testing.T) {
	var out bytes.Buffer
	tk, err := progress.New(&out, 10, progress.Options{Mode: progress.Bar})
	if err != nil {
		t.Fatal(err)
	}
	tk.AddTotal(-10)
	tk.Logf("exists     a.bin")
	tk.Reader("empty", strings.NewReader(""), 0)
	tk.Done()
	if out.String() != "exists     a.bin\n" {
		t.Errorf("output %q, want only the line", out.String())
	}
}

func TestNoneWritesOnlyLines(t *testing.T) {
	var out bytes.Buffer
	tk, err := progress.New(&out, 10, progress.Options{Mode: progress.None, Interval: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	r := tk.Reader("a", iotestSlow(strings.NewReader("0123456789")), 10)
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatal(err)
	}
	tk.Logf("done %d", 1)
	tk.Done()
	if out.String() != "done 1\n" {
		t.Errorf("output %q", out.String())
	}
}

// iotestSlow reads one byte at a time, a nanosecond or more apart.
func iotestSlow(r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		time.Sleep(time.Nanosecond)
		return r.Read(p[:1])
	})
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestAutoIsPlainOffTerminal: a buffer or a regular file is no terminal, so
// Auto writes plain lines.
func TestAutoIsPlainOffTerminal(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "log")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var buf bytes.Buffer
	for name, w := range map[string]io.Writer{"buffer": &buf, "file": f} {
		t.Run(name, func(t *testing.T) {
			tk, err := progress.New(w, 10, progress.Options{Interval: time.Nanosecond, Verbs: progress.Upload})
			if err != nil {
				t.Fatal(err)
			}
			r := tk.Reader("a.bin", iotestSlow(strings.NewReader("0123456789")), 10)
			if _, err := io.Copy(io.Discard, r); err != nil {
				t.Fatal(err)
			}
			tk.Done()
		})
	}
	data, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	for _, got := range []string{buf.String(), string(data)} {
		if !strings.Contains(got, "uploading a.bin: 1B of 10B (10%), ") || !strings.Contains(got, "uploaded a.bin: 10B in ") || strings.Contains(got, "\r") {
			t.Errorf("not plain lines: %q", got)
		}
	}
}

func TestModes(t *testing.T) {
	for _, s := range []string{"auto", "bar", "plain", "none"} {
		if m, err := progress.ParseMode(s); err != nil || m.String() != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := progress.ParseMode("fancy"); !errors.Is(err, progress.ErrUnknownMode) {
		t.Errorf("ParseMode(fancy): %v", err)
	}
	if _, err := progress.New(io.Discard, 0, progress.Options{Mode: "fancy"}); !errors.Is(err, progress.ErrUnknownMode) {
		t.Errorf("New with mode fancy: %v", err)
	}

	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	mode := progress.Auto
	fs.Var(&mode, "progress", "")
	if err := fs.Parse([]string{"--progress=plain"}); err != nil || mode != progress.Plain {
		t.Errorf("--progress=plain: %q, %v", mode, err)
	}
	if err := fs.Parse([]string{"--progress", "loud"}); err == nil || !strings.Contains(err.Error(), `"loud" (want auto, bar, plain or none)`) {
		t.Errorf("--progress loud: %v", err)
	}
}
