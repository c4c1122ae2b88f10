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
}

// Server is the gateway's HTTP server.
type Server struct {
	echo    *echo.Echo
	fleet   *Fleet
	maxBody int64
	log     *slog.Logger
}

// DigestHeader carries the manifest digest of the model that answered.
const DigestHeader = "X-Model-Digest"

// New builds the server and its routes.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{echo: echo.New(), fleet: opts.Fleet, maxBody: opts.MaxRequestBytes, log: opts.Logger}
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
	e.GET("/v1/models", s.listModels)
	for _, p := range []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings"} {
		e.POST(p, s.openAI)
	}
	e.Any("/models/:name", s.byPath)
	e.Any("/models/:name/*", s.byPath)
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

func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// modelEntry is one model in GET /v1/models: the OpenAI list shape (id,
// object, created, owned_by), with modelgate's own fields beside the
// standard ones (docs/cache.md, "Offline restarts").
type modelEntry struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"` // when the served model entered the cache, Unix seconds; 0 when none runs
	OwnedBy string `json:"owned_by"`
	Ref     string `json:"ref"`
	State   State  `json:"state"`
	Digest  string `json:"digest,omitempty"` // manifest digest served now
	// ResolvedAt is when Ref was resolved to Digest (absent for a digest
	// reference served from the cache).
	ResolvedAt *time.Time `json:"resolved_at,omitempty"`
	// Offline is true when the registry was unreachable at the start and
	// Digest is what Ref last resolved to, served from the cache;
	// OfflineReason is the registry's error.
	Offline       bool   `json:"offline"`
	OfflineReason string `json:"offline_reason,omitempty"`
	Error         string `json:"error,omitempty"` // of the last failed start
}

func (s *Server) listModels(c echo.Context) error {
	data := []modelEntry{}
	for _, m := range s.fleet.Models() {
		st := m.Status()
		e := modelEntry{ID: m.Name(), Object: "model", OwnedBy: "modelgate", Ref: m.Ref(), State: st.State, Digest: st.Digest.String(), Offline: st.Origin.Offline}
		if !st.Created.IsZero() {
			e.Created = st.Created.Unix()
		}
		if at := st.Origin.ResolvedAt; !at.IsZero() {
			at = at.UTC()
			e.ResolvedAt = &at
		}
		if st.Origin.Cause != nil {
			e.OfflineReason = st.Origin.Cause.Error()
		}
		if st.Err != nil {
			e.Error = st.Err.Error()
		}
		data = append(data, e)
	}
	return c.JSON(http.StatusOK, map[string]any{"object": "list", "data": data})
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
	b, err := m.Acquire(r.Context())
	if err != nil {
		return err
	}
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
