package progress

import (
	"io"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// Bar layout. The bar line must fit the terminal, or it wraps and "\r"
// redraws only its last row: progressbar shrinks the bar itself to fit
// (down to nothing), and the description gets what a bar of barWidth and
// typical figures leave.
const (
	// barWidth is the bar's width, in cells, where the terminal has room.
	barWidth = 25
	// descReserve is the width left to the rest of the line: " 42% " and
	// the bar (32 cells), and figures such as
	// " (512 MiB/1.2 GiB, 85 MiB/s) [6s:8s]" (36 cells).
	descReserve = 68
	// minDescWidth and maxDescWidth bound the description (the file in
	// flight), in cells.
	minDescWidth, maxDescWidth = 16, 40
	// defaultTermWidth is assumed when the writer's width is unknown.
	defaultTermWidth = 80
)

// barDisplay draws one progressbar.ProgressBar for all the transfers of a
// Tracker: total bytes, rate, elapsed time, ETA, and as description the file
// in flight most recently started ("+N" when N more run beside it).
//
// The bar is created on the first byte, so that Logf lines written before
// (files found in the registry, skipped) print as they are, and so that
// nothing at all is drawn when nothing is transferred. Every call comes
// with Tracker.mu held, which is also what makes the unlocked
// ProgressBar.Clear safe: no other goroutine touches the bar. Redraws are
// throttled here (barRefresh) rather than by progressbar, so that a Logf
// line can clear the bar and redraw it at once.
type barDisplay struct {
	w        io.Writer
	verbs    Verbs
	expected int64

	bar       *progressbar.ProgressBar // nil until the first byte
	shown     bool                     // bar has been drawn
	descWidth int
	pending   int64 // bytes read and not yet added to bar
	lastDraw  time.Time
	active    []*transfer // running transfers, in start order
	stopped   bool        // done was called
}

func (d *barDisplay) start(tr *transfer) {
	d.active = append(d.active, tr)
	d.describe()
}

func (d *barDisplay) end(tr *transfer, now time.Time) {
	for i, a := range d.active {
		if a == tr {
			d.active = append(d.active[:i], d.active[i+1:]...)
			break
		}
	}
	shown := d.shown
	d.flush(now) // describes, if it draws for the first time
	if shown {
		d.describe()
	}
}

func (d *barDisplay) advance(_ *transfer, n int64, now time.Time) {
	d.pending += n
	if d.bar == nil {
		if d.expected <= 0 {
			return
		}
		d.create(now)
	}
	if now.Sub(d.lastDraw) >= barRefresh {
		d.flush(now)
	}
}

func (d *barDisplay) total(total int64) {
	d.expected = total
	if !d.drawing() {
		return
	}
	if d.shown && d.pending > 0 {
		d.bar.Add64(d.pending)
		d.pending = 0
	}
	d.bar.ChangeMax64(total) // redraws, and finishes the bar if nothing is left
	d.shown = true
}

func (d *barDisplay) line(s string) {
	if !d.drawing() || !d.shown {
		io.WriteString(d.w, s)
		return
	}
	d.bar.Clear()
	io.WriteString(d.w, s)
	d.bar.Add64(0) // redraw below the line
}

func (d *barDisplay) done() {
	if d.drawing() {
		if d.pending > 0 || !d.shown {
			d.bar.Add64(d.pending) // draws the last state
			d.pending = 0
		}
		if !d.bar.IsFinished() {
			d.bar.Exit() // keeps the bar as drawn and ends its line
		}
	}
	d.stopped = true
}

// drawing reports whether the bar is on screen and still redrawn.
func (d *barDisplay) drawing() bool {
	return d.bar != nil && !d.stopped && !d.bar.IsFinished()
}

// create makes the bar, sized for the writer's terminal, and starts its
// clock. It is first drawn barRefresh later: a rate measured over the first
// read alone would be absurd (gigabytes a second).
func (d *barDisplay) create(now time.Time) {
	width := defaultTermWidth
	if f, ok := d.w.(*os.File); ok {
		if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 0 {
			width = w
		}
	}
	d.descWidth = min(max(width-descReserve, minDescWidth), maxDescWidth)
	d.bar = progressbar.NewOptions64(d.expected,
		progressbar.OptionSetWriter(d.w),
		progressbar.OptionSetDescription(d.description()),
		progressbar.OptionSetWidth(barWidth),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionShowTotalBytes(true),
		progressbar.OptionUseIECUnits(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		// Every Add64 redraws; flush throttles.
		progressbar.OptionThrottle(0),
		progressbar.OptionOnCompletion(func() { io.WriteString(d.w, "\n") }),
	)
	d.bar.StartWithoutRender()
	d.lastDraw = now
}

// flush adds the pending bytes to the bar, which redraws it.
func (d *barDisplay) flush(now time.Time) {
	if !d.drawing() {
		return
	}
	d.bar.Add64(d.pending)
	d.pending = 0
	d.lastDraw = now
	if !d.shown {
		d.shown = true
		d.describe() // the transfers started since create
	}
}

// describe shows the transfer in flight as the bar's description.
func (d *barDisplay) describe() {
	if d.drawing() && d.shown {
		d.bar.Describe(d.description())
	}
}

// description is the name of the latest transfer still running (or the
// verb, between transfers), with "+N" for the N others running, cut from
// the left to descWidth cells and padded to it, so that the bar does not
// move as files come and go.
func (d *barDisplay) description() string {
	label, more := d.verbs.Ongoing, ""
	if n := len(d.active); n > 0 {
		label = d.active[n-1].name
		if n > 1 {
			more = " +" + strconv.Itoa(n-1)
		}
	}
	room := d.descWidth - 1 - utf8.RuneCountInString(more) // a space after
	if n := utf8.RuneCountInString(label); n > room {
		r := []rune(label)
		label = "…" + string(r[n-room+1:])
	}
	s := label + more
	return s + strings.Repeat(" ", max(d.descWidth-utf8.RuneCountInString(s), 1))
}
