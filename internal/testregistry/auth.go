package testregistry

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/crypto/bcrypt"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// AuthMode chooses how the registry authenticates clients.
type AuthMode int

const (
	// AuthNone serves everyone anonymously (Start's registry).
	AuthNone AuthMode = iota
	// AuthHtpasswd answers 401 with a Basic challenge and checks the
	// credentials against a bcrypt htpasswd file written from Options.Users.
	// Distribution serves it over plain HTTP too (it only warns).
	AuthHtpasswd
	// AuthToken answers 401 with a Bearer challenge whose realm is a token
	// server started for the registry: it checks Basic credentials against
	// Options.Users and issues ES256 JWTs granting Options.Actions.
	// Reference: https://distribution.github.io/distribution/spec/auth/token/
	AuthToken
)

// adminUser is the harness's own account, used by Push, Tag and the other
// helpers that write to an authenticated registry directly.
const adminUser = "testregistry-admin"

// Options configure StartWithOptions. The zero value is Start's registry.
type Options struct {
	// Auth is the authentication scheme.
	Auth AuthMode
	// Users maps user names to passwords accepted by the registry (htpasswd)
	// or by its token server.
	Users map[string]string
	// Actions maps a user to the actions (pull, push) its tokens grant on
	// every repository; a user missing here gets pull and push. Requested
	// actions outside the grant are left out of the token, so the registry
	// answers 401 insufficient_scope. Only AuthToken honours it.
	Actions map[string][]string
}

// authSetup is what an authenticated registry needs beside its process.
type authSetup struct {
	yaml      string       // the auth: section of the registry config
	adminPass string       // the harness's password
	tokens    *tokenServer // nil unless AuthToken
}

// setupAuth writes the files opts needs under dir and returns the config
// section; it starts the token server for AuthToken (closed by the caller).
func setupAuth(dir string, opts Options) (*authSetup, error) {
	if opts.Auth == AuthNone {
		return &authSetup{}, nil
	}
	pass, err := randomHex(16)
	if err != nil {
		return nil, err
	}
	users := map[string]string{adminUser: pass}
	for u, p := range opts.Users {
		users[u] = p
	}
	switch opts.Auth {
	case AuthHtpasswd:
		path := filepath.Join(dir, "htpasswd")
		if err := writeHtpasswd(path, users); err != nil {
			return nil, err
		}
		return &authSetup{adminPass: pass, yaml: fmt.Sprintf(`auth:
  htpasswd:
    realm: modelgate-testregistry
    path: %q
`, path)}, nil
	case AuthToken:
		actions := map[string][]string{adminUser: {"pull", "push"}}
		for u, a := range opts.Actions {
			actions[u] = a
		}
		ts, err := newTokenServer(dir, users, actions)
		if err != nil {
			return nil, err
		}
		return &authSetup{adminPass: pass, tokens: ts, yaml: fmt.Sprintf(`auth:
  token:
    realm: %q
    service: %q
    issuer: %q
    rootcertbundle: %q
`, ts.realm(), tokenService, tokenIssuer, ts.bundle)}, nil
	}
	return nil, fmt.Errorf("start registry: unknown auth mode %d", opts.Auth)
}

// writeHtpasswd writes users as bcrypt entries, the only hash Distribution
// accepts.
func writeHtpasswd(path string, users map[string]string) error {
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, u := range names {
		h, err := bcrypt.GenerateFromPassword([]byte(users[u]), bcrypt.MinCost)
		if err != nil {
			return fmt.Errorf("hash password of %s: %w", u, err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("write htpasswd: %w", err)
	}
	return nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// repoClient is the client directRepo uses: the plain harness client, or for
// an authenticated registry an auth.Client logging in as the harness's admin.
func (r *Registry) repoClient() remote.Client {
	if r.auth == nil || r.auth.adminPass == "" {
		return r.client
	}
	cred := auth.Credential{Username: adminUser, Password: r.auth.adminPass}
	return &auth.Client{Client: r.client, Cache: r.authCache, Credential: auth.StaticCredential(r.direct, cred)}
}

// TokenRequests returns how many token requests the registry's token server
// has answered (any outcome); 0 unless it was started with AuthToken.
func (r *Registry) TokenRequests() int {
	if r.auth == nil || r.auth.tokens == nil {
		return 0
	}
	return r.auth.tokens.count()
}
