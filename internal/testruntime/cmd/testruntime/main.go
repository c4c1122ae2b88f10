// Command testruntime is a small model runtime for tests. It serves a
// llama-server-like HTTP API, reports readiness on /health and can be told to
// misbehave: be slow to load, stay loading until a file exists, never become
// ready, fail while loading, crash after ready, hang (stop answering its
// health path), hold streamed answers until released, or ignore SIGTERM. It
// can also mimic other engines' readiness: another health path
// (--health-path), another status while loading (--loading-status), or no
// listening socket at all until loaded (--listen-after-load, as vLLM, TGI and
// Triton do).
//
// Tests build it with testruntime.Build; it is not part of the gateway.
//
// Endpoints:
//
//	GET  /health   503 {"error":{...,"message":"Loading model"}} until ready, then 200 {"status":"ok"}
//	               (the path is --health-path and 503 is --loading-status; with another
//	               path, GET /health answers 404)
//	GET  /stats    {"requests":N,"cancelled":N,"streams_completed":N,"pid":PID}
//	POST /release  releases every stream waiting after its first event; {"released":N}
//	POST /crash    exits with status 2 without answering
//	POST /hang     from now on the readiness endpoint never answers (it holds each
//	               request until the client gives up), as a deadlocked engine would;
//	               {"hung":true}
//	anything else  echoes the request as JSON, or streams --chunks SSE events when
//	               the body is a JSON object with "stream": true
//
// Only requests to "anything else" are counted in /stats.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// maxBody caps the request body read by the echo and stream handlers.
const maxBody = 16 << 20

// shutdownTimeout bounds the graceful shutdown on SIGTERM or SIGINT.
const shutdownTimeout = 5 * time.Second

type config struct {
	host, modelDir, modelFile string
	port                      int
	startDelay                time.Duration
	neverReady                bool
	exitAtStart               int // -1: off
	chunks                    int
	releaseTimeout            time.Duration
	ignoreSIGTERM             bool
	healthPath                string
	loadingStatus             int
	listenAfterLoad           bool
	readyFile                 string
}

// exitCodeError asks main to exit with the given status and print nothing.
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string { return "exit status " + strconv.Itoa(e.code) }

func main() {
	var cfg config
	fl := flag.NewFlagSet("testruntime", flag.ExitOnError)
	fl.StringVar(&cfg.host, "host", "127.0.0.1", "address to listen on")
	fl.IntVar(&cfg.port, "port", -1, "port to listen on (required; 0 picks a free one)")
	fl.StringVar(&cfg.modelDir, "model-dir", "", "directory whose files are listed in echo answers")
	fl.StringVar(&cfg.modelFile, "model-file", "", "main weights file, hashed at start (may be empty)")
	fl.DurationVar(&cfg.startDelay, "start-delay", 0, "time after listening before /health answers 200")
	fl.BoolVar(&cfg.neverReady, "never-ready", false, "/health always answers 503")
	fl.IntVar(&cfg.exitAtStart, "exit-at-start", -1, "fail loading after --start-delay and exit with this code (-1: off)")
	fl.IntVar(&cfg.chunks, "chunks", 3, "number of SSE events in a streamed answer")
	fl.DurationVar(&cfg.releaseTimeout, "release-timeout", 30*time.Second, "longest a stream waits for POST /release")
	fl.BoolVar(&cfg.ignoreSIGTERM, "ignore-sigterm", false, "ignore SIGTERM")
	fl.StringVar(&cfg.healthPath, "health-path", "/health", "path of the readiness endpoint")
	fl.IntVar(&cfg.loadingStatus, "loading-status", http.StatusServiceUnavailable, "status of the readiness endpoint while loading")
	fl.BoolVar(&cfg.listenAfterLoad, "listen-after-load", false, "listen only once --start-delay has passed (refuse connections while loading)")
	fl.StringVar(&cfg.readyFile, "ready-file", "", "after --start-delay, stay loading until this file exists (polled every 20ms)")
	_ = fl.Parse(os.Args[1:]) // ExitOnError: Parse exits on error.
	if cfg.port < 0 || cfg.port > 65535 || cfg.chunks < 1 || !strings.HasPrefix(cfg.healthPath, "/") {
		fmt.Fprintln(os.Stderr, "testruntime: --port (0-65535) is required, --chunks must be at least 1 and --health-path a path")
		os.Exit(2)
	}

	sigs := []os.Signal{os.Interrupt}
	if cfg.ignoreSIGTERM {
		signal.Ignore(syscall.SIGTERM)
	} else {
		sigs = append(sigs, syscall.SIGTERM)
	}
	ctx, stop := signal.NotifyContext(context.Background(), sigs...)
	err := run(ctx, cfg)
	stop()
	var ec exitCodeError
	switch {
	case errors.As(err, &ec):
		os.Exit(ec.code)
	case err != nil:
		fmt.Fprintf(os.Stderr, "testruntime: %v\n", err)
		os.Exit(1)
	}
}

// run loads the model, serves until ctx is cancelled and then shuts down
// gracefully. It returns an exitCodeError when --exit-at-start fires.
func run(ctx context.Context, cfg config) error {
	fmt.Fprintf(os.Stderr, "testruntime: loading %s\n", cfg.modelFile)
	sum, err := fileSHA256(cfg.modelFile)
	if err != nil {
		return err
	}
	files, err := listFiles(cfg.modelDir)
	if err != nil {
		return err
	}
	if cfg.listenAfterLoad {
		// Load before listening: connections are refused meanwhile.
		if err := sleep(ctx, cfg.startDelay); err != nil {
			return nil
		}
		cfg.startDelay = 0
		if cfg.exitAtStart >= 0 {
			fmt.Fprint(os.Stderr, "fatal: model load failed (test)\n")
			return exitCodeError{cfg.exitAtStart}
		}
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", net.JoinHostPort(cfg.host, strconv.Itoa(cfg.port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	fmt.Fprintf(os.Stdout, "testruntime: listening on %s\n", ln.Addr())

	s := &server{cfg: cfg, sum: sum, files: files, gen: newGeneration()}
	srv := &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	fatal := make(chan int, 1)
	go s.load(ctx, fatal)

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve: %w", err)
	case code := <-fatal:
		_ = srv.Close() // Exiting anyway; nothing to drain.
		return exitCodeError{code}
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// fileSHA256 streams the file at path through sha256; "" hashes to "".
func fileSHA256(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("hash model file: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hash model file %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// listFiles returns the slash-separated paths of the files under dir,
// relative to dir, in lexical order; "" lists nothing.
func listFiles(dir string) ([]string, error) {
	files := []string{}
	if dir == "" {
		return files, nil
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list model dir: %w", err)
	}
	return files, nil
}

// generation is the set of streams waiting for the next POST /release.
type generation struct {
	ch      chan struct{} // closed on release
	waiting int
}

func newGeneration() *generation { return &generation{ch: make(chan struct{})} }

// server holds the runtime's state; its methods are safe for concurrent use.
type server struct {
	cfg   config
	sum   string
	files []string

	ready, hung                   atomic.Bool
	requests, cancelled, finished atomic.Int64

	mu  sync.Mutex
	gen *generation // guarded by mu; replaced on every release
}

// sleep waits d or until ctx ends, whichever is first, and returns ctx's
// error in the second case.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// load waits --start-delay, then either fails (--exit-at-start, reporting the
// code on fatal) or becomes ready unless --never-ready.
func (s *server) load(ctx context.Context, fatal chan<- int) {
	timer := time.NewTimer(s.cfg.startDelay)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return
	case <-timer.C:
	}
	for s.cfg.readyFile != "" {
		if _, err := os.Stat(s.cfg.readyFile); err == nil {
			break
		}
		if sleep(ctx, 20*time.Millisecond) != nil {
			return
		}
	}
	switch {
	case s.cfg.exitAtStart >= 0:
		fmt.Fprint(os.Stderr, "testruntime: reading tensors\ntestruntime: allocating buffers\nfatal: model load failed (test)\n")
		fatal <- s.cfg.exitAtStart
	case !s.cfg.neverReady:
		s.ready.Store(true)
	}
}

func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	if s.cfg.healthPath != "/health" {
		mux.HandleFunc("GET /health", http.NotFound)
	}
	mux.HandleFunc("GET "+s.cfg.healthPath, func(w http.ResponseWriter, r *http.Request) {
		if s.hung.Load() {
			<-r.Context().Done()
			return
		}
		if !s.ready.Load() {
			writeJSON(w, s.cfg.loadingStatus, map[string]any{"error": map[string]any{
				"code": s.cfg.loadingStatus, "message": "Loading model", "type": "unavailable_error"}})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]int64{"requests": s.requests.Load(),
			"cancelled": s.cancelled.Load(), "streams_completed": s.finished.Load(), "pid": int64(os.Getpid())})
	})
	mux.HandleFunc("POST /release", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		g := s.gen
		s.gen = newGeneration()
		n := g.waiting
		s.mu.Unlock()
		close(g.ch)
		writeJSON(w, http.StatusOK, map[string]int{"released": n})
	})
	mux.HandleFunc("POST /crash", func(http.ResponseWriter, *http.Request) { os.Exit(2) })
	mux.HandleFunc("POST /hang", func(w http.ResponseWriter, _ *http.Request) {
		s.hung.Store(true)
		writeJSON(w, http.StatusOK, map[string]bool{"hung": true})
	})
	mux.HandleFunc("/", s.model)
	return mux
}

// model answers every request not routed elsewhere: an SSE stream when the
// body is a JSON object with "stream": true, otherwise an echo of the request.
func (s *server) model(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		status := http.StatusBadRequest
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			status = http.StatusRequestEntityTooLarge
		}
		writeJSON(w, status, map[string]string{"error": fmt.Sprintf("read body: %v", err)})
		return
	}
	var req struct {
		Stream bool `json:"stream"`
	}
	if json.Unmarshal(body, &req) == nil && req.Stream {
		s.stream(w, r)
		return
	}
	headers := map[string]string{}
	for _, k := range []string{"X-Request-Id", "Traceparent"} {
		if v := r.Header.Get(k); v != "" {
			headers[k] = v
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"method": r.Method, "path": r.URL.Path,
		"query": r.URL.RawQuery, "body": string(body), "model_file_sha256": s.sum,
		"model_files": s.files, "pid": os.Getpid(), "headers": headers})
}

// stream writes event 0, waits for POST /release, --release-timeout or the
// client going away, then writes the remaining events and [DONE].
func (s *server) stream(w http.ResponseWriter, r *http.Request) {
	// Join the current generation before event 0 reaches the client, so a
	// client that has seen event 0 knows that /release will count it.
	s.mu.Lock()
	g := s.gen
	g.waiting++
	s.mu.Unlock()
	leave := func() {
		s.mu.Lock()
		if s.gen == g {
			g.waiting--
		}
		s.mu.Unlock()
	}

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	send := func(data string) bool {
		_, err := io.WriteString(w, "data: "+data+"\n\n")
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			s.cancelled.Add(1)
		}
		return err == nil
	}
	event := func(i int) string {
		b, _ := json.Marshal(struct {
			Index  int    `json:"index"`
			SHA256 string `json:"model_file_sha256"`
		}{i, s.sum})
		return string(b)
	}

	if !send(event(0)) {
		leave()
		return
	}
	timer := time.NewTimer(s.cfg.releaseTimeout)
	defer timer.Stop()
	select {
	case <-g.ch:
	case <-timer.C:
		leave()
	case <-r.Context().Done():
		leave()
		s.cancelled.Add(1)
		return
	}
	for i := 1; i < s.cfg.chunks; i++ {
		if !send(event(i)) {
			return
		}
	}
	if send("[DONE]") {
		s.finished.Add(1)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // The client may be gone; nothing to do.
}
