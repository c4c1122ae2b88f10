// Package progress reports the byte progress of transfers (the blobs of a
// push or a pull) on a writer, usually stderr.
//
// A Tracker follows every transfer of one operation. Each transfer's stream
// is wrapped with Tracker.Reader, which counts the bytes as the consumer
// (oras-go, net/http) reads them. How progress is shown depends on Mode:
//
//   - Bar, the default on a terminal: one bar for the whole operation, with
//     bytes done and expected, rate, elapsed time and ETA, and the name of the
//     file in flight. One bar, not one per transfer: a bar is drawn by
//     rewriting the current line ("\r"), so several bars on one writer would
//     overwrite each other's line, and github.com/schollz/progressbar/v3 has
//     no multi-line support; an aggregate bar renders correctly however many
//     transfers run at once, and its ETA is the one that matters (the whole
//     operation's).
//
//   - Plain, the default elsewhere (CI, a log file): at most one line per
//     transfer every Options.Interval, and a final line for a transfer that
//     got one, so a short transfer adds nothing to the log (sample below).
//
//   - None: no byte progress.
//
// Plain lines:
//
//	uploading model.gguf: 197MiB of 300MiB (65%), 15MiB/s, ETA 7s
//	uploading model.gguf: 273MiB of 300MiB (90%), 15MiB/s, ETA 2s
//	uploaded model.gguf: 300MiB in 22s, 13.7MiB/s
//
// Lines of the caller's own (a file skipped, found, started) go through
// Tracker.Logf, which writes them whole and keeps them clear of the bar.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
)

// DefaultInterval is the least time between two plain lines of one transfer
// when Options.Interval is 0: often enough that a stalled upload shows in a
// CI log within seconds, rare enough that a ten-minute push of four files
// logs a few hundred lines, not thousands.
const DefaultInterval = 5 * time.Second

// barRefresh is the least time between two redraws of the bar: ten a
// second looks live, while redrawing on every 32 KiB read would write to
// the terminal tens of thousands of times a second.
const barRefresh = 100 * time.Millisecond

// Mode says how a Tracker shows progress. Its zero value means Auto. *Mode
// is a flag.Value.
type Mode string

// Modes.
const (
	// Auto is Bar when the writer is a terminal (an *os.File for which
	// golang.org/x/term.IsTerminal holds, and $TERM is not "dumb"), Plain
	// otherwise.
	Auto Mode = "auto"
	// Bar draws one progress bar for all transfers.
	Bar Mode = "bar"
	// Plain writes a line per transfer at most every Options.Interval.
	Plain Mode = "plain"
	// None shows no byte progress; Logf lines are still written.
	None Mode = "none"
)

// ParseMode returns the Mode named s: auto, bar, plain or none.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case Auto, Bar, Plain, None:
		return m, nil
	}
	return "", fmt.Errorf("%q (want auto, bar, plain or none): %w", s, ErrUnknownMode)
}

// String returns the mode's name ("" for the zero Mode).
func (m Mode) String() string { return string(m) }

// Set parses s into m, for flag.Var.
func (m *Mode) Set(s string) error {
	v, err := ParseMode(s)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// Verbs name a transfer's direction in what a Tracker writes: "uploading
// NAME: ..." while it runs, "uploaded NAME: ..." once done.
type Verbs struct {
	Ongoing, Done string
}

// Verbs of the usual transfers.
var (
	Transfer = Verbs{Ongoing: "transferring", Done: "transferred"} // the default
	Upload   = Verbs{Ongoing: "uploading", Done: "uploaded"}
	Download = Verbs{Ongoing: "downloading", Done: "downloaded"}
)

// Options configure a Tracker. Zero values take the documented defaults.
type Options struct {
	// Mode is how progress is shown (default Auto).
	Mode Mode
	// Interval is the least time between two plain lines of one transfer
	// (default DefaultInterval). A transfer that ends before its first
	// line is due writes no line at all.
	Interval time.Duration
	// Verbs name the transfers (default Transfer).
	Verbs Verbs
}

// display is how a Tracker shows progress. Every method is called with
// Tracker.mu held, so a display needs no locking of its own.
type display interface {
	// start and end bracket a transfer; end is called once, when the
	// transfer has read its size or reached EOF.
	start(tr *transfer)
	end(tr *transfer, now time.Time)
	// advance follows n more bytes read by tr.
	advance(tr *transfer, n int64, now time.Time)
	// total follows a change of the expected bytes of all transfers.
	total(total int64)
	// line writes one whole line (ending with "\n").
	line(s string)
	// done stops the display for good.
	done()
}

// Tracker counts the bytes of concurrent transfers and shows their
// progress. Its methods are safe for concurrent use, and so are the readers
// it returns, with one another (each is read by one goroutine). Call Done when the transfers are over (successful or
// not) so a bar ends its line before whatever is written next.
type Tracker struct {
	now func() time.Time

	mu          sync.Mutex
	disp        display
	expected    int64 // total bytes expected, as given to New and AddTotal
	transferred int64 // bytes read through every reader
	finished    bool  // Done was called
}

// New returns a Tracker that writes to w (nil discards) and expects total
// bytes from all its transfers together (AddTotal changes it). An unknown
// opts.Mode is refused with an error wrapping ErrUnknownMode.
func New(w io.Writer, total int64, opts Options) (*Tracker, error) {
	return newTracker(w, total, opts, time.Now)
}

// newTracker is New with a clock, which times rates, ETAs and intervals.
func newTracker(w io.Writer, total int64, opts Options, now func() time.Time) (*Tracker, error) {
	if w == nil {
		w = io.Discard
	}
	mode := opts.Mode
	if mode == "" {
		mode = Auto
	}
	if _, err := ParseMode(string(mode)); err != nil {
		return nil, fmt.Errorf("progress: mode %w", err)
	}
	if mode == Auto {
		mode = Plain
		if isTerminal(w) {
			mode = Bar
		}
	}
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if opts.Verbs == (Verbs{}) {
		opts.Verbs = Transfer
	}
	t := &Tracker{now: now, expected: total}
	switch mode {
	case Bar:
		t.disp = &barDisplay{w: w, verbs: opts.Verbs, expected: total}
	case Plain:
		t.disp = &plainDisplay{w: w, verbs: opts.Verbs, interval: opts.Interval}
	default:
		t.disp = lineDisplay{w: w}
	}
	return t, nil
}

// isTerminal reports whether w is a terminal that understands "\r".
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd())) && os.Getenv("TERM") != "dumb"
}

// Reader returns a reader of r that counts what is read from it as the
// transfer name of size bytes (-1 if unknown). The transfer ends when size
// bytes have been read or r returns io.EOF. The returned reader, like r,
// is meant for one goroutine at a time; readers of one Tracker may be read
// concurrently. Closing r stays the caller's business.
func (t *Tracker) Reader(name string, r io.Reader, size int64) io.Reader {
	tr := &transfer{t: t, r: r, name: name, size: size}
	t.mu.Lock()
	defer t.mu.Unlock()
	tr.started = t.now()
	tr.lastLine = tr.started
	if t.finished {
		tr.ended = true
		return tr
	}
	t.disp.start(tr)
	if size == 0 {
		t.endLocked(tr, tr.started)
	}
	return tr
}

// AddTotal adds delta (which may be negative) to the bytes expected from
// all transfers: a transfer found unnecessary (a blob the registry already
// holds) is taken out of the total with AddTotal(-size).
func (t *Tracker) AddTotal(delta int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.expected += delta
	if !t.finished {
		t.disp.total(t.expected)
	}
}

// Logf writes one line, formatted as fmt.Sprintf does, with a newline added
// if it lacks one. Lines are written whole, one at a time; on a terminal
// the bar is cleared first and redrawn below. Write errors are ignored:
// progress is advisory.
func (t *Tracker) Logf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.disp.line(s)
}

// Transferred returns the bytes read so far through all the readers of t.
func (t *Tracker) Transferred() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.transferred
}

// Done stops showing progress: a bar is left as last drawn and its line
// ended. Readers keep counting (Transferred) but show nothing more; Logf
// still writes. Done may be called more than once.
func (t *Tracker) Done() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.finished {
		return
	}
	t.finished = true
	t.disp.done()
}

// count follows n bytes read by tr and the error r returned with them.
func (t *Tracker) count(tr *transfer, n int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tr.read += int64(n)
	t.transferred += int64(n)
	if tr.ended || t.finished {
		return
	}
	now := t.now()
	if n > 0 {
		t.disp.advance(tr, int64(n), now)
	}
	if err == io.EOF || (tr.size >= 0 && tr.read >= tr.size) {
		t.endLocked(tr, now)
	}
}

// endLocked ends tr; t.mu is held.
func (t *Tracker) endLocked(tr *transfer, now time.Time) {
	tr.ended = true
	t.disp.end(tr, now)
}

// transfer is one stream counted by a Tracker. Its fields but t, r, name
// and size are guarded by t.mu.
type transfer struct {
	t    *Tracker
	r    io.Reader
	name string
	size int64 // -1 if unknown

	read          int64
	started       time.Time
	lastLine      time.Time // of the last plain line, or the start
	lastLineBytes int64     // read at lastLine
	lines         int       // plain progress lines written
	ended         bool
}

func (tr *transfer) Read(p []byte) (int, error) {
	n, err := tr.r.Read(p)
	tr.t.count(tr, n, err)
	return n, err
}

// lineDisplay shows no progress; it only writes Logf lines.
type lineDisplay struct{ w io.Writer }

func (d lineDisplay) start(*transfer)                     {}
func (d lineDisplay) end(*transfer, time.Time)            {}
func (d lineDisplay) advance(*transfer, int64, time.Time) {}
func (d lineDisplay) total(int64)                         {}
func (d lineDisplay) line(s string)                       { io.WriteString(d.w, s) }
func (d lineDisplay) done()                               {}
