package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"time"
)

// rusageFlag, as the first argument, makes this program the measuring
// wrapper of a pull: `pull -rusage-child BIN ARGS...`.
//
// Why a wrapper: on Linux a process's ru_maxrss starts from the peak RSS of
// the memory it had before exec, and os/exec starts children with
// vfork(CLONE_VM), whose memory before exec is the parent's. A pull started
// straight from this program would report at least this program's own peak
// (tens of MiB with the proxy's buffers). Started from a fresh, small wrapper
// it reports at least the wrapper's (a few MiB of Go runtime: the floor of
// every RSS in the report, below both clients' real peaks).
const rusageFlag = "-rusage-child"

// rusageFD is the descriptor the wrapper writes its childResult to (the
// first of ExtraFiles).
const rusageFD = 3

// childResult is what the wrapper reports about the pull it ran.
type childResult struct {
	WallNS    int64 `json:"wall_ns"`     // exec to exit
	MaxRSSKiB int64 `json:"max_rss_kib"` // ru_maxrss converted to KiB
	ExitCode  int   `json:"exit_code"`   // -1 when killed by a signal
}

// rusageChild is the wrapper's main: it runs args[0] with args[1:], with
// this process's stdout and stderr, passes SIGTERM and SIGINT on, writes a
// childResult to rusageFD and exits with the child's status.
func rusageChild(args []string) int {
	if len(args) == 0 {
		fmt.Fprintln(os.Stderr, "pull "+rusageFlag+": no command")
		return 2
	}
	out := os.NewFile(rusageFD, "rusage")
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = sysProcAttr()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, "pull "+rusageFlag+":", err)
		return 2
	}
	go func() {
		for s := range sigs {
			_ = cmd.Process.Signal(s)
		}
	}()
	err := cmd.Wait()
	res := childResult{WallNS: int64(time.Since(begin)), ExitCode: cmd.ProcessState.ExitCode()}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		res.MaxRSSKiB = maxRSSBytes(int64(ru.Maxrss)) >> 10
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, "pull "+rusageFlag+":", err)
	}
	if out != nil {
		_ = json.NewEncoder(out).Encode(res)
		out.Close()
	}
	if res.ExitCode < 0 {
		return 1
	}
	return res.ExitCode
}
