package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"

	"github.com/modelgate/modelgate/bench/internal/benchproc"
)

const (
	// stopGrace is how long a process has to exit after its stop signal
	// before it gets SIGKILL; the gateway stops its runtime within it.
	stopGrace = 10 * time.Second
	// outputKept is how much of a process's output error messages quote.
	outputKept = 4 << 10
)

// childSpec says how to start one process.
type childSpec struct {
	name string // as printed: "modelgate", "nginx", "runtime"
	path string
	args []string
	// logFile, if set, receives the process's stdout and stderr (created or
	// truncated); otherwise only their last outputKept bytes are kept.
	logFile string
	// stopSignal ends the process (SIGTERM if zero); deathSignal is what the
	// kernel sends it if this program dies first (see sysProcAttr).
	stopSignal, deathSignal syscall.Signal
}

// child is one process this program started. start returns it running;
// stop ends it. Its methods are not safe for concurrent use.
type child struct {
	spec   childSpec
	cmd    *exec.Cmd
	begin  time.Time             // just before exec
	tail   *benchproc.TailBuffer // output, when spec.logFile is ""
	log    *os.File              // output, when spec.logFile is set; closed by stop
	cancel func()                // starts the stop signal, SIGKILL sequence
	exited chan struct{}         // closed once the process has exited
	err    error                 // Wait's error, set before exited is closed
}

// startChild starts the process of spec. The process lives until stop or
// ctx's end.
func startChild(ctx context.Context, spec childSpec) (*child, error) {
	if spec.stopSignal == 0 {
		spec.stopSignal = syscall.SIGTERM
	}
	if spec.deathSignal == 0 {
		spec.deathSignal = syscall.SIGKILL
	}
	procCtx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(procCtx, spec.path, spec.args...)
	cmd.SysProcAttr = sysProcAttr(spec.deathSignal)
	// Stop this process only, by its own pid.
	cmd.Cancel = func() error { return cmd.Process.Signal(spec.stopSignal) }
	cmd.WaitDelay = stopGrace
	c := &child{spec: spec, cmd: cmd, cancel: cancel, exited: make(chan struct{})}
	if spec.logFile != "" {
		f, err := os.Create(spec.logFile)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("start %s: %w", spec.name, err)
		}
		c.log = f
		cmd.Stdout, cmd.Stderr = f, f
	} else {
		c.tail = benchproc.NewTailBuffer(outputKept)
		cmd.Stdout, cmd.Stderr = c.tail, c.tail
	}
	c.begin = time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		if c.log != nil {
			c.log.Close()
		}
		return nil, fmt.Errorf("start %s: %w: %w", spec.name, errExited, err)
	}
	go func() {
		c.err = cmd.Wait()
		close(c.exited)
	}()
	return c, nil
}

// pid is the process's id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// waitReady calls ready every poll until it reports true, and returns the
// time from exec to that answer. It fails, wrapping errExited, if the
// process ends first, and wrapping errNotReady if timeout passes first.
func (c *child) waitReady(ctx context.Context, timeout, poll time.Duration, ready func(context.Context) bool) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTimer(0)
	defer tick.Stop()
	for {
		select {
		case <-c.exited:
			return 0, fmt.Errorf("start %s: %w (%v); its output ends with:\n%s", c.spec.name, errExited, c.err, c.output())
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return 0, fmt.Errorf("start %s: %w in %s; its output ends with:\n%s", c.spec.name, errNotReady, timeout, c.output())
			}
			return 0, ctx.Err()
		case <-tick.C:
		}
		if ready(ctx) {
			return time.Since(c.begin), nil
		}
		tick.Reset(poll)
	}
}

// stop sends the stop signal, then SIGKILL after stopGrace, and waits for
// the process to exit. It is safe to call more than once.
func (c *child) stop() {
	c.cancel()
	<-c.exited
	if c.log != nil {
		c.log.Close()
	}
}

// output is the end of the process's output, for error messages.
func (c *child) output() string {
	if c.tail != nil {
		return c.tail.String()
	}
	f, err := os.Open(c.spec.logFile)
	if err != nil {
		return ""
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > outputKept {
		_, _ = f.Seek(fi.Size()-outputKept, io.SeekStart)
	}
	data, _ := io.ReadAll(io.LimitReader(f, outputKept))
	return string(data)
}

// execCommand is a command this program runs to its end; the kernel kills
// it if this program dies first (Linux).
func execCommand(ctx context.Context, path string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.SysProcAttr = sysProcAttr(syscall.SIGKILL)
	return cmd
}
