package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/runtime"
	"github.com/modelgate/modelgate/unpack"
)

// apiError is an error answered to a client, in the OpenAI error shape:
// {"error":{"message":...,"type":...,"code":...}}.
type apiError struct {
	Status     int
	Type       string
	Code       string
	Message    string
	RetryAfter string // seconds, for 503s
}

// errBadRequest and friends are the client's own mistakes.
var (
	errBadRequest      = errors.New("bad request")
	errRequestTooLarge = errors.New("request too large")
	errAdminOff        = errors.New("admin API off")
	errUnauthorized    = errors.New("no admin token")
	errForbidden       = errors.New("wrong admin token")
)

// errorRow is one row of the table in docs/errors.md: an error of the lower
// packages, the status and code the client sees.
type errorRow struct {
	err        error
	status     int
	typ, code  string
	retryAfter string
}

// errorTable maps errors to answers; the first row whose error matches
// (errors.Is) wins. It is the only place that knows HTTP statuses for the
// errors of fetcher/, cache/ and runtime/.
var errorTable = []errorRow{
	{errBadRequest, http.StatusBadRequest, "invalid_request_error", "invalid_request", ""},
	{errAdminOff, http.StatusNotFound, "invalid_request_error", "admin_disabled", ""},
	{errUnauthorized, http.StatusUnauthorized, "invalid_request_error", "unauthorized", ""},
	{errForbidden, http.StatusForbidden, "invalid_request_error", "forbidden", ""},
	{ErrUnknownModel, http.StatusNotFound, "invalid_request_error", "model_not_found", ""},
	{errRequestTooLarge, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large", ""},
	{fetcher.ErrNotFound, http.StatusNotFound, "not_found_error", "artifact_not_found", ""},
	{fetcher.ErrUnreachable, http.StatusServiceUnavailable, "upstream_error", "registry_unavailable", "5"},
	{fetcher.ErrDenied, http.StatusBadGateway, "upstream_error", "registry_denied", ""},
	{cache.ErrDigestMismatch, http.StatusBadGateway, "upstream_error", "digest_mismatch", ""},
	{fetcher.ErrManifestTooLarge, http.StatusBadGateway, "upstream_error", "manifest_too_large", ""},
	{fetcher.ErrUnsupported, http.StatusBadGateway, "upstream_error", "unsupported_artifact", ""},
	{cache.ErrUnsafePath, http.StatusBadGateway, "upstream_error", "unsafe_artifact", ""},
	{unpack.ErrUnsafe, http.StatusBadGateway, "upstream_error", "unsafe_artifact", ""},
	{unpack.ErrTooLarge, http.StatusBadGateway, "upstream_error", "archive_too_large", ""},
	{unpack.ErrCorrupt, http.StatusBadGateway, "upstream_error", "corrupt_archive", ""},
	{cache.ErrTooLarge, http.StatusInsufficientStorage, "server_error", "insufficient_storage", ""},
	{cache.ErrNoSpace, http.StatusInsufficientStorage, "server_error", "cache_full", ""},
	// Before the runtime rows: the message carries the last failure's.
	// Retry-After is the rest of the backoff (see toAPIError).
	{ErrCrashLoop, http.StatusServiceUnavailable, "server_error", "model_failed", "1"},
	{runtime.ErrNotReady, http.StatusGatewayTimeout, "server_error", "runtime_not_ready", ""},
	{runtime.ErrExited, http.StatusInternalServerError, "server_error", "runtime_exited", ""},
	{ErrShuttingDown, http.StatusServiceUnavailable, "server_error", "shutting_down", "1"},
	{context.DeadlineExceeded, http.StatusGatewayTimeout, "server_error", "timeout", ""},
}

// toAPIError turns any error into what the client sees.
func toAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			ae := &apiError{Status: row.status, Type: row.typ, Code: row.code, Message: err.Error(), RetryAfter: row.retryAfter}
			var wait interface{ retryAfter() time.Duration }
			if errors.As(err, &wait) {
				ae.RetryAfter = retryAfterSeconds(wait.retryAfter())
			}
			return ae
		}
	}
	return &apiError{Status: http.StatusInternalServerError, Type: "server_error", Code: "internal_error", Message: err.Error()}
}

func (e *apiError) Error() string { return e.Message }

// write answers the error as JSON.
func (e *apiError) write(w http.ResponseWriter) {
	if e.RetryAfter != "" {
		w.Header().Set("Retry-After", e.RetryAfter)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": e.Message, "type": e.Type, "code": e.Code,
	}})
}

// writeForwardError answers a request the runtime could not serve (the
// process died or the connection broke mid-request): 502 runtime_error.
func writeForwardError(w http.ResponseWriter, _ *http.Request, err error) {
	(&apiError{Status: http.StatusBadGateway, Type: "upstream_error", Code: "runtime_error", Message: "forward to runtime: " + err.Error()}).write(w)
}
