// Package runtime starts and stops the local inference processes that serve
// models (llama-server, vLLM, TGI, Triton, tinyllm or any command) and
// forwards HTTP requests to them.
//
// A Process is one runtime process for one model directory. Start launches it
// on a free 127.0.0.1 port in its own process group, copies its output into
// the log, and polls its health path until it answers the ready status.
// Forward streams requests to it. Stop sends the profile's stop signal to the
// group and SIGKILL after the stop timeout. The package knows nothing of
// registries or of the gateway's HTTP API.
package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modelgate/modelgate/config"
)

// Profile says how to run one kind of runtime. It is data, not code: the
// built-in engines (config.BuiltinProfile) differ only in these values.
type Profile struct {
	Name       string            // the runtime's name in the configuration
	Command    []string          // argv templates (config.TemplateData fields)
	Env        map[string]string // extra environment, values are templates
	WorkingDir string            // template; "" keeps the gateway's working directory
	// HealthPath is polled with GET until it answers ReadyStatus. Every
	// other answer (llama-server's 503 while loading, Triton's 400) and a
	// refused connection (vLLM, TGI and Triton listen only once loaded)
	// mean "not ready yet"; only the process's exit, StartupTimeout or the
	// caller's context end the wait sooner.
	HealthPath     string
	ReadyStatus    int            // the status that means ready
	StartupTimeout time.Duration  // from start to ready
	StopSignal     syscall.Signal // sent to the process group to stop it
	StopTimeout    time.Duration  // after StopSignal, before SIGKILL
	// MaxConcurrent is how many requests the gateway should forward at
	// once; 0 means no limit. Start and Forward do not enforce it.
	MaxConcurrent int
	// Protocols are the request protocols the runtime speaks
	// (config.Protocol* names); Forward does not check them.
	Protocols []string
	// HealthTimeout bounds each poll of HealthPath, during the start and
	// in Watch (default 5s).
	HealthTimeout time.Duration
	// HealthInterval is how often Watch polls HealthPath (default 10s);
	// HealthFailures polls in a row without the ready status mean the
	// runtime hangs (default 3).
	HealthInterval time.Duration
	HealthFailures int
}

// Defaults of the health watch, for a Profile that leaves them zero
// (config.DefaultHealth* are the documented ones).
const (
	defaultHealthTimeout  = 5 * time.Second
	defaultHealthInterval = 10 * time.Second
	defaultHealthFailures = 3
)

// Spec is what Start needs to run a profile for one model.
type Spec struct {
	Profile   Profile
	Model     string // the model's name: {{.ModelName}}, and in logs and errors
	ModelDir  string // {{.ModelDir}}
	ModelFile string // {{.ModelFile}}
	Logger    *slog.Logger
	// ErrorHandler answers a request that could not be forwarded (the
	// process died, the connection broke). It is not called when the client
	// went away.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
}

// stderrLinesKept is how many of the last stderr lines an error carries.
const stderrLinesKept = 20

// Process is a running runtime. Its methods are safe for concurrent use.
type Process struct {
	spec   Spec
	cmd    *exec.Cmd
	host   string
	port   int
	proxy  *httputil.ReverseProxy
	client *http.Client // health checks
	stderr *lineLogger
	log    *slog.Logger

	stop     context.CancelFunc // sends the stop signal (cmd.Cancel)
	exited   chan struct{}      // closed when the process has exited
	exitErr  error              // set before exited is closed
	stopOnce sync.Once
	inflight sync.WaitGroup
}

// Start launches the runtime and waits until it is ready. It fails with an
// error wrapping ErrExited if the process cannot be started or exits first,
// ErrNotReady if it does not become ready in Profile.StartupTimeout, or ctx's
// error; in every failure the process is stopped before Start returns.
func Start(ctx context.Context, spec Spec) (*Process, error) {
	if spec.Logger == nil {
		spec.Logger = slog.Default()
	}
	if spec.Profile.HealthTimeout <= 0 {
		spec.Profile.HealthTimeout = defaultHealthTimeout
	}
	if spec.Profile.HealthInterval <= 0 {
		spec.Profile.HealthInterval = defaultHealthInterval
	}
	if spec.Profile.HealthFailures <= 0 {
		spec.Profile.HealthFailures = defaultHealthFailures
	}
	port, err := freePort()
	if err != nil {
		return nil, fmt.Errorf("start runtime %s for %s: %w", spec.Profile.Name, spec.Model, err)
	}
	data := config.TemplateData{ModelDir: spec.ModelDir, ModelFile: spec.ModelFile, ModelName: spec.Model, Port: port, Host: "127.0.0.1"}
	argv, env, dir, err := render(spec.Profile, data)
	if err != nil {
		return nil, fmt.Errorf("start runtime %s for %s: %w", spec.Profile.Name, spec.Model, err)
	}
	if dir != "" {
		// exec reports a missing directory as the program missing.
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			if err == nil {
				err = errors.New("not a directory")
			}
			return nil, fmt.Errorf("start runtime %s for %s: %w: working directory %s: %w", spec.Profile.Name, spec.Model, ErrExited, dir, err)
		}
	}
	log := spec.Logger.With("model", spec.Model, "runtime", spec.Profile.Name)

	// The process lives until Stop, not until the caller's context ends.
	procCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	cmd := exec.CommandContext(procCtx, argv[0], argv[1:]...)
	cmd.Dir = dir
	// Environ sets PWD to Dir: the runtime must not see the gateway's.
	cmd.Env = append(cmd.Environ(), env...)
	cmd.SysProcAttr = sysProcAttr()
	cmd.Cancel = func() error {
		// Signal the whole group: runtimes fork workers (vLLM, Triton).
		return syscall.Kill(-cmd.Process.Pid, spec.Profile.StopSignal)
	}
	cmd.WaitDelay = spec.Profile.StopTimeout
	stderr := newLineLogger(log, "stderr", stderrLinesKept)
	cmd.Stdout = newLineLogger(log, "stdout", 0)
	cmd.Stderr = stderr

	p := &Process{
		spec:   spec,
		cmd:    cmd,
		host:   "127.0.0.1",
		port:   port,
		stderr: stderr,
		log:    log,
		stop:   stop,
		exited: make(chan struct{}),
		client: &http.Client{Timeout: spec.Profile.HealthTimeout, Transport: &http.Transport{DisableKeepAlives: true}},
	}
	p.proxy = p.newProxy()

	log.Info("runtime starting", "argv", strings.Join(argv, " "), "dir", dir, "port", port)
	if err := cmd.Start(); err != nil {
		stop()
		return nil, fmt.Errorf("start runtime %s for %s: %w: %w", spec.Profile.Name, spec.Model, ErrExited, err)
	}
	go p.wait()

	if err := p.waitReady(ctx); err != nil {
		p.Stop()
		return nil, err
	}
	log.Info("runtime ready", "pid", cmd.Process.Pid, "port", port)
	return p, nil
}

// wait reaps the process, then kills whatever is left of its group.
func (p *Process) wait() {
	err := p.cmd.Wait()
	// Children the runtime left behind die with the group.
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.exitErr = err
	close(p.exited)
	p.log.Info("runtime exited", "pid", p.cmd.Process.Pid, "status", exitStatus(err))
}

// waitReady polls the health path with backoff until the ready status, the
// process's exit, the startup timeout or ctx's end. The startup timeout
// counts from here, just after the process started: whatever the caller
// waited for before (a pull, a free slot) does not eat into it.
func (p *Process) waitReady(ctx context.Context) error {
	prof := p.spec.Profile
	deadline := time.NewTimer(prof.StartupTimeout)
	defer deadline.Stop()
	healthURL := p.URL() + prof.HealthPath
	delay := 20 * time.Millisecond
	lastStatus := "no answer yet"
	for {
		status, err := p.probe(ctx, healthURL)
		if err == nil && status == prof.ReadyStatus {
			return nil
		}
		if err != nil {
			lastStatus = err.Error()
		} else {
			lastStatus = "status " + strconv.Itoa(status)
		}
		select {
		case <-p.exited:
			return fmt.Errorf("start runtime %s for %s: %w before ready (%s)%s", prof.Name, p.spec.Model, ErrExited, exitStatus(p.exitErr), p.stderrSuffix())
		case <-deadline.C:
			return fmt.Errorf("start runtime %s for %s: %w: %s did not answer %d within %s (last: %s)%s", prof.Name, p.spec.Model, ErrNotReady, prof.HealthPath, prof.ReadyStatus, prof.StartupTimeout, lastStatus, p.stderrSuffix())
		case <-ctx.Done():
			return fmt.Errorf("start runtime %s for %s: %w", prof.Name, p.spec.Model, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}

// Watch polls the health path every HealthInterval while the process runs,
// as a liveness probe does. It returns an error wrapping ErrHung once
// HealthFailures polls in a row got no ready status (no answer within
// HealthTimeout, a refused connection, another status), and nil when ctx
// ends or the process exits. It does not stop the process.
func (p *Process) Watch(ctx context.Context) error {
	prof := p.spec.Profile
	healthURL := p.URL() + prof.HealthPath
	tick := time.NewTimer(prof.HealthInterval)
	defer tick.Stop()
	failures := 0
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.exited:
			return nil
		case <-tick.C:
		}
		status, err := p.probe(ctx, healthURL)
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil && status == prof.ReadyStatus:
			failures = 0
		default:
			failures++
			last := "status " + strconv.Itoa(status)
			if err != nil {
				last = err.Error()
			}
			p.log.Warn("runtime health check failed", "pid", p.PID(), "path", prof.HealthPath, "failures", failures, "of", prof.HealthFailures, "answer", last)
			if failures >= prof.HealthFailures {
				return fmt.Errorf("runtime %s for %s: %w: %s did not answer %d %d times in a row, %s apart (timeout %s; last: %s)",
					prof.Name, p.spec.Model, ErrHung, prof.HealthPath, prof.ReadyStatus, failures, prof.HealthInterval, prof.HealthTimeout, last)
			}
		}
		tick.Reset(prof.HealthInterval)
	}
}

func (p *Process) probe(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

func (p *Process) stderrSuffix() string {
	tail := p.stderr.Tail()
	if len(tail) == 0 {
		return ""
	}
	return "; last stderr lines: " + strings.Join(tail, " | ")
}

// URL is the runtime's base URL, http://127.0.0.1:PORT.
func (p *Process) URL() string { return "http://" + net.JoinHostPort(p.host, strconv.Itoa(p.port)) }

// PID is the runtime's process id (the leader of its process group).
func (p *Process) PID() int { return p.cmd.Process.Pid }

// Port is the 127.0.0.1 port the runtime listens on.
func (p *Process) Port() int { return p.port }

// Exited is closed when the process has exited, for whatever reason.
func (p *Process) Exited() <-chan struct{} { return p.exited }

// Forward proxies r to the runtime, keeping r's path and query, and streams
// the answer back, flushing every chunk. A client that goes away cancels the
// upstream request.
func (p *Process) Forward(w http.ResponseWriter, r *http.Request) {
	p.inflight.Add(1)
	defer p.inflight.Done()
	p.proxy.ServeHTTP(w, r)
}

// Stop stops the process: the stop signal to its group, SIGKILL after the
// stop timeout, and waits until it has exited. Requests still in flight are
// cut; callers that want to drain wait for them first. Safe to call more
// than once.
func (p *Process) Stop() {
	p.stopOnce.Do(func() {
		p.log.Info("runtime stopping", "pid", p.cmd.Process.Pid)
		p.stop()
	})
	<-p.exited
}

// Drain waits until no request is in flight or ctx ends.
func (p *Process) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() { p.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("drain runtime %s for %s: %w", p.spec.Profile.Name, p.spec.Model, ctx.Err())
	}
}

// ExitError describes how the process ended, once Exited is closed, with
// the last stderr lines; it wraps ErrExited.
func (p *Process) ExitError() error {
	select {
	case <-p.exited:
		return fmt.Errorf("runtime %s for %s: %w (%s)%s", p.spec.Profile.Name, p.spec.Model, ErrExited, exitStatus(p.exitErr), p.stderrSuffix())
	default:
		return nil
	}
}

func (p *Process) newProxy() *httputil.ReverseProxy {
	target := &url.URL{Scheme: "http", Host: net.JoinHostPort(p.host, strconv.Itoa(p.port))}
	// One keep-alive transport per runtime, sized for concurrent streams.
	transport := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        100,
		MaxIdleConnsPerHost: 100,
		IdleConnTimeout:     90 * time.Second,
	}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
			pr.SetXForwarded()
		},
		Transport:     transport,
		FlushInterval: -1, // flush every write: SSE must not be buffered
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() != nil {
				return // the client went away; nobody to answer
			}
			select {
			case <-p.exited:
				err = fmt.Errorf("%w: %w", p.ExitError(), err)
			default:
			}
			p.log.Warn("forward failed", "path", r.URL.Path, "error", err)
			if p.spec.ErrorHandler != nil {
				p.spec.ErrorHandler(w, r, err)
				return
			}
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
}

// render executes the profile's templates for one start: the argv, the
// extra environment (sorted, so that logs and tests are stable) and the
// working directory.
func render(prof Profile, data config.TemplateData) (argv, env []string, dir string, err error) {
	if len(prof.Command) == 0 {
		return nil, nil, "", errors.New("empty command")
	}
	for _, t := range prof.Command {
		s, err := config.RenderTemplate(t, data)
		if err != nil {
			return nil, nil, "", err
		}
		argv = append(argv, s)
	}
	for _, k := range slices.Sorted(maps.Keys(prof.Env)) {
		s, err := config.RenderTemplate(prof.Env[k], data)
		if err != nil {
			return nil, nil, "", err
		}
		env = append(env, k+"="+s)
	}
	if prof.WorkingDir != "" {
		if dir, err = config.RenderTemplate(prof.WorkingDir, data); err != nil {
			return nil, nil, "", err
		}
	}
	return argv, env, dir, nil
}

// freePort asks the kernel for a free port on 127.0.0.1. Another process
// may take it before the runtime binds it; the runtime then exits and the
// start fails with ErrExited, to be retried by the next request.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func exitStatus(err error) string {
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "exit status 0"
	case errors.As(err, &ee):
		return ee.ProcessState.String()
	default:
		return err.Error()
	}
}
