// Command tinyllm is modelgate's reference runtime: a small, real llama
// inference server in pure Go that speaks llama.cpp's llama-server HTTP API,
// so that the quick start, the demo and the end-to-end tests run on any
// machine. Production deployments use llama-server, vLLM and the others.
//
//	tinyllm -m model.gguf [--host 127.0.0.1] [--port 8080] [-c CTX] [-t THREADS] [--alias NAME]
//
// It listens at once and answers /health with 503 "Loading model" until the
// model is loaded, then 200; a model that cannot be loaded ends the process
// with status 1 and the reason on stderr.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/modelgate/modelgate/tinyllm/engine"
	"github.com/modelgate/modelgate/tinyllm/server"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tinyllm:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("tinyllm", flag.ContinueOnError)
	var model, host, alias string
	var port, ctxSize, threads int
	for _, name := range []string{"m", "model"} {
		fs.StringVar(&model, name, "", "GGUF model file (required)")
	}
	fs.StringVar(&host, "host", "127.0.0.1", "address to listen on")
	fs.IntVar(&port, "port", 8080, "port to listen on")
	for _, name := range []string{"c", "ctx-size"} {
		fs.IntVar(&ctxSize, name, 0, "context size in tokens (0: the model's)")
	}
	for _, name := range []string{"t", "threads"} {
		fs.IntVar(&threads, name, runtime.NumCPU(), "threads for matrix products")
	}
	fs.StringVar(&alias, "alias", "", "model name reported by the API (default: the file name)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if model == "" {
		fs.Usage()
		return errors.New("-m MODEL.gguf is required")
	}
	if alias == "" {
		alias = strings.TrimSuffix(filepath.Base(model), ".gguf")
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	// Watch for signals before listening: a supervisor may stop the process
	// as soon as the port answers, and SIGTERM must then shut down cleanly
	// rather than kill it.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	srv := server.New(alias, log)
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	httpServer := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- httpServer.Serve(l) }()
	log.Info("listening, loading model", "addr", l.Addr().String(), "model", model, "threads", threads)

	loaded := make(chan error, 1)
	go func() {
		start := time.Now()
		e, err := engine.Load(model, engine.Options{ContextSize: ctxSize, Threads: threads})
		if err != nil {
			srv.SetLoadError(err)
			loaded <- err
			return
		}
		srv.SetEngine(e)
		log.Info("model loaded", "seconds", time.Since(start).Seconds(), "n_ctx", e.ContextSize(), "n_vocab", e.Tokenizer().VocabSize())
		loaded <- nil
	}()

	select {
	case err := <-loaded:
		if err != nil {
			httpServer.Close()
			return err
		}
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	}
	select {
	case <-ctx.Done():
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := httpServer.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}
