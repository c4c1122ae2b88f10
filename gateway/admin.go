package gateway

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// The admin API: POST /admin/models/{name}/load and /unload, off unless
// an admin token is configured (admin_token_file), each request carrying
// it as "Authorization: Bearer TOKEN". docs/lifecycle.md describes it.

// adminResult is the answer of a load or an unload: the model's entry as
// GET /models/{name} shows it, after the action.
type adminResult struct {
	Action string     `json:"action"`
	Model  modelEntry `json:"model"`
	// Cut counts the requests an unload cut at the end of its grace.
	Cut int `json:"cut,omitempty"`
}

// adminLoad starts the model, as a request would, and answers once it is
// ready: 200 with its status, or the start's error.
func (s *Server) adminLoad(c echo.Context) error {
	m, err := s.adminModel(c)
	if err != nil {
		return err
	}
	if err := m.Load(c.Request().Context()); err != nil {
		return err
	}
	s.log.Info("model loaded by the admin API", "model", m.Name())
	return c.JSON(http.StatusOK, adminResult{Action: "load", Model: entryOf(m)})
}

// adminUnload drains the model's runtime (requests in flight get the
// unload grace to finish) and stops it; 200 with its status once it has
// exited. A model without a runtime is answered 200 as it is.
func (s *Server) adminUnload(c echo.Context) error {
	m, err := s.adminModel(c)
	if err != nil {
		return err
	}
	r, err := m.Unload(c.Request().Context(), s.unloadGrace)
	if err != nil {
		return err
	}
	if r.Stopped {
		s.log.Info("model unloaded by the admin API", "model", m.Name(), "cut", r.Cut)
	}
	return c.JSON(http.StatusOK, adminResult{Action: "unload", Model: entryOf(m), Cut: r.Cut})
}

// adminModel authorizes an admin request, then finds its model. The model
// is looked up only after the token is checked, so that the admin API
// tells nothing of the configuration to a caller without it.
func (s *Server) adminModel(c echo.Context) (*Model, error) {
	if s.adminToken == "" {
		return nil, fmt.Errorf("the admin API is off: set admin_token_file in modelgate.yaml to turn it on: %w", errAdminOff)
	}
	scheme, token, _ := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="modelgate admin"`)
		return nil, fmt.Errorf("the admin API needs \"Authorization: Bearer TOKEN\": %w", errUnauthorized)
	}
	if !sameToken(token, s.adminToken) {
		return nil, fmt.Errorf("the admin token is not the one configured: %w", errForbidden)
	}
	return s.fleet.Model(c.Param("name"))
}

// sameToken compares two tokens in time that depends on neither (hashes
// of equal length, compared in constant time).
func sameToken(a, b string) bool {
	ha, hb := sha256.Sum256([]byte(a)), sha256.Sum256([]byte(b))
	return subtle.ConstantTimeCompare(ha[:], hb[:]) == 1
}
