package testregistry_test

import (
	"errors"
	"net/http"
	"testing"

	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/modelgate/modelgate/internal/testregistry"
)

func TestAuthModes(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode testregistry.AuthMode
	}{{"Htpasswd", testregistry.AuthHtpasswd}, {"Token", testregistry.AuthToken}} {
		t.Run(tc.name, func(t *testing.T) {
			reg := testregistry.StartWithOptions(t, testregistry.Options{
				Auth:    tc.mode,
				Users:   map[string]string{"alice": "alice-secret", "bob": "bob-secret"},
				Actions: map[string][]string{"bob": {"push"}},
			})
			desc := reg.Push(t, "models/tiny", "v1", []testregistry.Layer{{Title: "m.bin", Data: []byte("weights")}})
			hc := &http.Client{Transport: &http.Transport{}}
			t.Cleanup(hc.CloseIdleConnections)
			resolve := func(user, pass string) error {
				repo := frontRepo(t, reg, hc, "models/tiny")
				c := &auth.Client{Client: hc, Cache: auth.NewCache()}
				if user != "" {
					c.Credential = auth.StaticCredential(reg.Host(), auth.Credential{Username: user, Password: pass})
				}
				repo.Client = c
				got, err := repo.Resolve(t.Context(), "v1")
				if err == nil && got.Digest != desc.Digest {
					t.Errorf("resolved %s, want %s", got.Digest, desc.Digest)
				}
				return err
			}
			if err := resolve("alice", "alice-secret"); err != nil {
				t.Fatalf("resolve with credentials: %v", err)
			}
			for _, bad := range []struct{ user, pass string }{{"", ""}, {"alice", "wrong"}} {
				// Without credentials, oras-go refuses a Basic challenge itself.
				if err := resolve(bad.user, bad.pass); !isStatus(err, http.StatusUnauthorized) && !errors.Is(err, auth.ErrBasicCredentialNotFound) {
					t.Errorf("resolve as %q/%q: %v, want 401", bad.user, bad.pass, err)
				}
			}
			if tc.mode == testregistry.AuthToken {
				if err := resolve("bob", "bob-secret"); !isStatus(err, http.StatusUnauthorized) && !isStatus(err, http.StatusForbidden) {
					t.Errorf("resolve without pull grant: %v, want 401 or 403", err)
				}
				if reg.TokenRequests() == 0 {
					t.Error("no token requests counted")
				}
			}
		})
	}
}

func isStatus(err error, status int) bool {
	var resp *errcode.ErrorResponse
	return errors.As(err, &resp) && resp.StatusCode == status
}
