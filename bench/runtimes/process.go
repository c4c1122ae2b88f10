package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"time"

	"github.com/modelgate/modelgate/bench/internal/benchproc"
)

const (
	// stopGrace is how long a server has to exit after SIGTERM before it
	// gets SIGKILL.
	stopGrace = 5 * time.Second
	// healthPoll is the pause between /health probes while a server loads:
	// the resolution of the load time, short enough against llama-server's
	// and tinyllm's load times, long enough not to steal a core from them.
	healthPoll = 2 * time.Millisecond
	// outputKept is how much of a server's output is kept for error messages.
	outputKept = 4 << 10
)

// server is one running runtime process. start returns it healthy; stop
// ends it. Its methods are not safe for concurrent use.
type server struct {
	prog   program
	cmd    *exec.Cmd
	client *client
	output *benchproc.TailBuffer // the process's stdout and stderr, last outputKept bytes
	cancel func()                // starts the SIGTERM, SIGKILL sequence
	exited chan struct{}         // closed once the process has exited
	err    error                 // Wait's error, set before exited is closed
}

// start launches prog on a free 127.0.0.1 port and returns it once GET
// /health answers 200, with the time from exec to that answer. On any error
// the process is stopped before start returns; the error wraps errExited if
// the process ended first, errNotHealthy if timeout passed first.
func start(ctx context.Context, prog program, timeout time.Duration) (*server, time.Duration, error) {
	port, err := benchproc.FreePort()
	if err != nil {
		return nil, 0, fmt.Errorf("start %s: %w", prog.name, err)
	}
	procCtx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(procCtx, prog.path, prog.args(port)...)
	cmd.SysProcAttr = sysProcAttr()
	// Stop this process only, by its own pid: SIGTERM, SIGKILL after stopGrace.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	out := benchproc.NewTailBuffer(outputKept)
	cmd.Stdout, cmd.Stderr = out, out
	s := &server{
		prog:   prog,
		cmd:    cmd,
		client: newClient(fmt.Sprintf("http://127.0.0.1:%d", port)),
		output: out,
		cancel: cancel,
		exited: make(chan struct{}),
	}

	begin := time.Now()
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, 0, fmt.Errorf("start %s: %w: %w", prog.name, errExited, err)
	}
	go func() {
		s.err = cmd.Wait()
		close(s.exited)
	}()
	if err := s.waitHealthy(ctx, timeout); err != nil {
		s.stop()
		return nil, 0, fmt.Errorf("start %s: %w", prog.name, err)
	}
	return s, time.Since(begin), nil
}

// waitHealthy polls /health until it answers 200, the process exits, timeout
// passes or ctx ends.
func (s *server) waitHealthy(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTimer(0)
	defer tick.Stop()
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("%w (%v); its output ends with:\n%s", errExited, s.err, s.output.String())
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w in %s; its output ends with:\n%s", errNotHealthy, timeout, s.output.String())
			}
			return ctx.Err()
		case <-tick.C:
		}
		if s.client.healthy(ctx) {
			return nil
		}
		tick.Reset(healthPoll)
	}
}

// stop sends SIGTERM, then SIGKILL after stopGrace, and waits for the
// process to exit. It is safe to call more than once.
func (s *server) stop() {
	s.cancel()
	<-s.exited
	s.client.close()
}
