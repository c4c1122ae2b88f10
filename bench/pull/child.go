package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/modelgate/modelgate/bench/internal/benchproc"
)

// exit is what one child process cost.
type exit struct {
	wall   time.Duration // from exec to exit
	maxRSS int64         // peak resident set, bytes (getrusage ru_maxrss)
	output string        // the last outputKept bytes of stdout and stderr
}

// runChild runs bin with args in dir until it exits, at most timeout, under
// this program as its measuring wrapper (see rusageFlag), and returns its
// wall time and peak RSS. When ctx ends or timeout passes the wrapper gets
// SIGTERM, passes it on, and both get SIGKILL after stopGrace. A non-zero
// exit wraps errExited and quotes the end of the child's output.
func runChild(ctx context.Context, timeout time.Duration, dir, bin string, args ...string) (exit, error) {
	self, err := os.Executable()
	if err != nil {
		return exit{}, fmt.Errorf("find this program: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	rd, wr, err := os.Pipe()
	if err != nil {
		return exit{}, err
	}
	defer rd.Close()
	cmd := exec.CommandContext(ctx, self, append([]string{rusageFlag, bin}, args...)...)
	cmd.Dir = dir
	cmd.SysProcAttr = sysProcAttr()
	cmd.ExtraFiles = []*os.File{wr} // rusageFD
	// Stop this process only, by its own pid: SIGTERM, SIGKILL after stopGrace.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopGrace
	out := benchproc.NewTailBuffer(outputKept)
	cmd.Stdout, cmd.Stderr = out, out
	name := commandName(bin, args)
	if err := cmd.Start(); err != nil {
		wr.Close()
		return exit{}, fmt.Errorf("run %s: %w", name, err)
	}
	wr.Close()
	var res childResult
	decErr := json.NewDecoder(io.LimitReader(rd, 4<<10)).Decode(&res)
	err = cmd.Wait()
	e := exit{wall: time.Duration(res.WallNS), maxRSS: res.MaxRSSKiB << 10, output: out.String()}
	if err == nil && decErr != nil {
		err = fmt.Errorf("read the wrapper's result: %w", decErr)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", err, ctx.Err())
		}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %w", errExited, err)
		}
		return e, fmt.Errorf("run %s: %w; its output ends with:\n%s", name, err, e.output)
	}
	return e, nil
}

// commandName is the binary and its first argument, for messages.
func commandName(bin string, args []string) string {
	parts := []string{bin}
	if len(args) > 0 {
		parts = append(parts, args[0])
	}
	return strings.Join(parts, " ")
}
