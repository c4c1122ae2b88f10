package oci

import (
	"context"
	"log/slog"

	"oras.land/oras-go/v2/registry/remote/auth"
)

// Credential is a user name and password for one registry, as modelgate.yaml
// configures them. Its String, GoString and LogValue never show the password,
// so a Credential printed or logged by mistake leaks nothing.
type Credential struct {
	Username string
	Password string
}

// String shows the user name only.
func (c Credential) String() string { return "user " + c.Username + " (password redacted)" }

// GoString is String, for %#v.
func (c Credential) GoString() string { return c.String() }

// LogValue logs the user name only.
func (c Credential) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", c.Username), slog.String("password", "REDACTED"))
}

// credentialFunc returns oras-go's credential lookup: a configured
// credential for the host wins; other hosts fall back to docker (nil: none,
// anonymous). oras-go calls it with the registry's host[:port] for the
// registry's own Basic challenges and for the token server of its Bearer
// challenges alike.
func credentialFunc(configured map[string]Credential, docker auth.CredentialFunc) auth.CredentialFunc {
	static := make(map[string]auth.Credential, len(configured))
	for host, c := range configured {
		static[host] = auth.Credential{Username: c.Username, Password: c.Password}
	}
	return func(ctx context.Context, hostport string) (auth.Credential, error) {
		if c, ok := static[hostport]; ok {
			return c, nil
		}
		if docker == nil {
			return auth.EmptyCredential, nil
		}
		return docker(ctx, hostport)
	}
}
