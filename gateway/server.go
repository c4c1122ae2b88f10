// Package gateway is modelgate's HTTP front: it maps each request to a
// configured model (by the "model" field of an OpenAI-style body or by the
// /models/{name}/ path), brings the model up on first use (resolve, pull,
// start the runtime) and streams the request to its runtime.
//
// It is the only package that knows HTTP statuses (errors.go maps the
// errors of the other packages) and the only one that sees echo.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
)

// Options configure a Server.
type Options struct {
	Fleet *Fleet
	// MaxRequestBytes caps the bodies the gateway reads to find the model.
	MaxRequestBytes int64
	Logger          *slog.Logger
	// AdminToken is the bearer token of the admin API
	// (/admin/models/{name}/load|unload); "" turns the admin API off.
	AdminToken string
	// UnloadGrace is how long an unload waits for requests in flight
	// (default 30s).
	UnloadGrace time.Duration
}

// defaultUnloadGrace is config.DefaultUnloadGrace.
const defaultUnloadGrace = 30 * time.Second

// Server is the gateway's HTTP server.
type Server struct {
	echo        *echo.Echo
	fleet       *Fleet
	maxBody     int64
	log         *slog.Logger
	adminToken  string
	unloadGrace time.Duration
	// shuttingDown is set when Shutdown begins: /readyz answers 503 to
	// the connections still open.
	shuttingDown atomic.Bool
}

// DigestHeader carries the manifest digest of the model that answered.
const DigestHeader = "X-Model-Digest"

// New builds the server and its routes.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.UnloadGrace <= 0 {
		opts.UnloadGrace = defaultUnloadGrace
	}
	s := &Server{echo: echo.New(), fleet: opts.Fleet, maxBody: opts.MaxRequestBytes, log: opts.Logger, adminToken: opts.AdminToken, unloadGrace: opts.UnloadGrace}
	e := s.echo
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleEchoError
	// Every request gets an X-Request-Id (the client's own if it sent one),
	// answered to the client and forwarded to the runtime.
	e.Use(middleware.RequestIDWithConfig(middleware.RequestIDConfig{
		RequestIDHandler: func(c echo.Context, id string) { c.Request().Header.Set(echo.HeaderXRequestID, id) },
	}))
	e.Use(middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogStatus: true, LogURI: true, LogMethod: true, LogLatency: true, LogRequestID: true,
		LogValuesFunc: func(_ echo.Context, v middleware.RequestLoggerValues) error {
			s.log.Info("request", "method", v.Method, "uri", v.URI, "status", v.Status, "latency_ms", v.Latency.Milliseconds(), "request_id", v.RequestID)
			return nil
		},
	}))

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	e.GET("/v1/models", s.listModels)
	for _, p := range []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings"} {
		e.POST(p, s.openAI)
	}
	// GET /models/{name}, exactly, is the model's status; every other
	// method on it, and anything below /models/{name}/ (GET /models/{name}/
	// included), reaches the runtime.
	e.Any("/models/:name", s.byPath)
	e.GET("/models/:name", s.modelStatus)
	e.Any("/models/:name/*", s.byPath)
	e.POST("/admin/models/:name/load", s.adminLoad)
	e.POST("/admin/models/:name/unload", s.adminUnload)
	return s
}

// Handler is the server as an http.Handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.echo }

// Serve serves on l until Shutdown. It returns nil after a clean shutdown.
func (s *Server) Serve(l net.Listener) error {
	s.echo.Listener = l
	s.echo.Server.ReadHeaderTimeout = 10 * time.Second
	s.echo.Server.IdleTimeout = 2 * time.Minute
	if err := s.echo.Start(""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

// Shutdown stops accepting connections, lets in-flight requests finish
// until ctx ends, then stops every runtime. It returns ctx's error if
// requests were still running when it ended.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shuttingDown.Store(true)
	err := s.echo.Shutdown(ctx)
	if err != nil {
		// Grace is over: cut the remaining connections.
		_ = s.echo.Close()
	}
	s.fleet.Stop()
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// healthz is liveness: the gateway answers. It does not wait for preloads
// or any model (a Kubernetes liveness probe must not restart a gateway
// whose model is still loading).
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz is readiness: 200 once every preload model has been ready once
// (at once without preloads), 503 before, and 503 again once the gateway
// is shutting down. A model that stops later (idle_ttl, a crash) does not
// make the gateway unready: the next request starts it again.
func (s *Server) readyz(c echo.Context) error {
	ready, waiting := s.fleet.Ready()
	switch {
	case s.shuttingDown.Load() || (!ready && len(waiting) == 0):
		c.Response().Header().Set("Retry-After", "1")
		return c.JSON(http.StatusServiceUnavailable, map[string]any{"status": "shutting_down"})
	case ready:
		return c.JSON(http.StatusOK, map[string]any{"status": "ready"})
	default:
		c.Response().Header().Set("Retry-After", "1")
		return c.JSON(http.StatusServiceUnavailable, map[string]any{"status": "preloading", "waiting": waiting})
	}
}

// modelEntry is one model in GET /v1/models and GET /models/{name}: the
// OpenAI model shape (id, object, created, owned_by), with modelgate's own
// fields beside the standard ones (docs/lifecycle.md, docs/cache.md).
type modelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"` // when the served model entered the cache, Unix seconds; 0 when none runs
	OwnedBy string `json:"owned_by"`
	Ref     string `json:"ref"`
	State   State  `json:"state"`
	// Since is when the model entered State.
	Since  time.Time `json:"since"`
	Digest string    `json:"digest,omitempty"` // manifest digest served now
	// PID and Port are the running runtime's (absent when none runs).
	PID      int        `json:"pid,omitempty"`
	Port     int        `json:"port,omitempty"`
	InFlight int        `json:"in_flight"`
	LastUsed *time.Time `json:"last_used,omitempty"`
	// ResolvedAt is when Ref was resolved to Digest (absent for a digest
	// reference served from the cache).
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	// Offline is true when the registry was unreachable at the start and
	// Digest is what Ref last resolved to, served from the cache;
	// OfflineReason is the registry's error.
	Offline       bool   `json:"offline"`
	OfflineReason string `json:"offline_reason,omitempty"`
	// Error is why the model is failed (only while it is).
	Error string `json:"error,omitempty"`
	// LastError is the last failure, kept after the model recovers.
	LastError   string     `json:"last_error,omitempty"`
	LastErrorAt *time.Time `json:"last_error_at,omitempty"`
	Restarts    int        `json:"restarts"`
	// Failures are the runtime failures within the restart window;
	// RetryAt is when the restart backoff ends; CrashLoop is true while
	// requests are refused until then.
	Failures  int        `json:"failures"`
	RetryAt   *time.Time `json:"retry_at,omitempty"`
	CrashLoop bool       `json:"crash_loop"`
	// The model's lifecycle configuration.
	IdleTTL string `json:"idle_ttl"` // "0s": never stopped for idleness
	Group   string `json:"group,omitempty"`
	Preload bool   `json:"preload"`
}

func entryOf(m *Model) modelEntry {
	st := m.Status()
	spec := m.Spec()
	e := modelEntry{ID: m.Name(), Object: "model", OwnedBy: "modelgate", Ref: m.Ref(), State: st.State, Since: st.Since.UTC(),
		Digest: st.Digest.String(), PID: st.PID, Port: st.Port, InFlight: st.InFlight, Offline: st.Origin.Offline,
		Restarts: st.Restarts, Failures: st.Failures, CrashLoop: st.CrashLoop,
		IdleTTL: spec.IdleTTL.String(), Group: spec.Group, Preload: spec.Preload}
	if !st.Created.IsZero() {
		e.Created = st.Created.Unix()
	}
	e.LastUsed = utcOrNil(st.LastUsed)
	e.ResolvedAt = utcOrNil(st.Origin.ResolvedAt)
	e.LastErrorAt = utcOrNil(st.LastErrAt)
	e.RetryAt = utcOrNil(st.RetryAt)
	if st.Origin.Cause != nil {
		e.OfflineReason = st.Origin.Cause.Error()
	}
	if st.Err != nil {
		e.Error = st.Err.Error()
	}
	if st.LastErr != nil {
		e.LastError = st.LastErr.Error()
	}
	return e
}

func utcOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

func (s *Server) listModels(c echo.Context) error {
	data := []modelEntry{}
	for _, m := range s.fleet.Models() {
		data = append(data, entryOf(m))
	}
	return c.JSON(http.StatusOK, map[string]any{"object": "list", "data": data})
}

// modelStatus serves GET /models/{name}: one entry of GET /v1/models.
func (s *Server) modelStatus(c echo.Context) error {
	m, err := s.fleet.Model(c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, entryOf(m))
}

// openAI serves the OpenAI-style routes: the model is the body's "model".
func (s *Server) openAI(c echo.Context) error {
	r := c.Request()
	body, err := io.ReadAll(io.LimitReader(r.Body, s.maxBody+1))
	if err != nil {
		return fmt.Errorf("read request body: %w", err)
	}
	if int64(len(body)) > s.maxBody {
		return fmt.Errorf("request body exceeds %d bytes: %w", s.maxBody, errRequestTooLarge)
	}
	var fields struct {
		Model string `json:"model"`
	}
	if err := json.Unmarshal(body, &fields); err != nil {
		return fmt.Errorf("request body is not a JSON object: %w: %w", errBadRequest, err)
	}
	if fields.Model == "" {
		return fmt.Errorf("request body has no \"model\" field: %w", errBadRequest)
	}
	// Forward the body byte for byte.
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return s.forward(c, fields.Model, r)
}

// byPath serves /models/{name}/{rest...}, forwarded as /{rest...}.
func (s *Server) byPath(c echo.Context) error {
	name := c.Param("name")
	r := c.Request()
	rest := strings.TrimPrefix(r.URL.Path, "/models/"+name)
	if !strings.HasPrefix(rest, "/") {
		rest = "/" + rest
	}
	out := r.Clone(r.Context())
	out.URL.Path, out.URL.RawPath = rest, ""
	return s.forward(c, name, out)
}

func (s *Server) forward(c echo.Context, name string, r *http.Request) error {
	m, err := s.fleet.Model(name)
	if err != nil {
		return err
	}
	b, release, err := m.Acquire(r.Context())
	if err != nil {
		return err
	}
	defer release()
	c.Response().Header().Set(DigestHeader, b.Digest.String())
	b.Process.Forward(c.Response(), r)
	return nil
}

// handleEchoError answers every error a handler returns, and echo's own
// (unknown route, wrong method), in the OpenAI error shape.
func (s *Server) handleEchoError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	if errors.Is(err, context.Canceled) && c.Request().Context().Err() != nil {
		return // the client went away
	}
	var he *echo.HTTPError
	var ae *apiError
	if errors.As(err, &he) {
		ae = &apiError{Status: he.Code, Type: "invalid_request_error", Code: strings.ReplaceAll(strings.ToLower(http.StatusText(he.Code)), " ", "_"), Message: fmt.Sprint(he.Message)}
	} else {
		ae = toAPIError(err)
	}
	if ae.Status >= 500 {
		s.log.Error("request failed", "method", c.Request().Method, "path", c.Request().URL.Path, "status", ae.Status, "error", err)
	}
	ae.write(c.Response())
}
