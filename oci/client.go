// Package oci holds what modelgate's puller and pusher share about talking to
// OCI registries: one authenticated HTTP client (credentials from the Docker
// configuration, retries with backoff) and repositories opened from
// references with per-registry plain-HTTP settings.
package oci

import (
	"fmt"
	"log/slog"
	"net/http"

	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/retry"
)

// ClientOptions configure a Client.
type ClientOptions struct {
	// PlainHTTP lists registry hosts (host[:port]) spoken to over HTTP.
	PlainHTTP map[string]bool
	// Credentials maps registry hosts (host[:port]) to the user and password
	// to log in with. They take precedence over the Docker configuration for
	// their hosts; other hosts still use the Docker configuration.
	Credentials map[string]Credential
	// UserAgent is sent with every request.
	UserAgent string
	// Logger receives warnings (default slog.Default()).
	Logger *slog.Logger
}

// Client opens repositories on any registry. It is safe for concurrent use;
// one Client caches tokens for all its repositories.
type Client struct {
	http      *auth.Client
	plainHTTP map[string]bool
}

// NewClient returns a Client whose credentials come from opts.Credentials
// for the hosts listed there, and otherwise from the Docker configuration
// (~/.docker/config.json, $DOCKER_CONFIG, and the credential helpers it
// names), as `docker login` and `oras login` write them. Requests
// are retried with exponential backoff on 5xx, 429 and network errors
// (oras-go's retry policy).
func NewClient(opts ClientOptions) *Client {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	c := &auth.Client{Client: retry.DefaultClient, Cache: auth.NewCache(), Header: http.Header{}}
	if opts.UserAgent != "" {
		c.Header.Set("User-Agent", opts.UserAgent)
	}
	var docker auth.CredentialFunc
	if store, err := credentials.NewStoreFromDocker(credentials.StoreOptions{}); err == nil {
		docker = credentials.Credential(store)
	} else {
		opts.Logger.Warn("docker credentials unavailable; registries without configured credentials are used anonymously", "error", err)
	}
	for host, cred := range opts.Credentials {
		opts.Logger.Debug("registry credentials from the configuration", "registry", host, "username", cred.Username)
	}
	c.Credential = credentialFunc(opts.Credentials, docker)
	return &Client{http: c, plainHTTP: opts.PlainHTTP}
}

// Repository parses ref (registry/repository[:tag|@digest]) and opens its
// repository with this client.
func (c *Client) Repository(ref string) (*remote.Repository, registry.Reference, error) {
	parsed, err := ParseReference(ref)
	if err != nil {
		return nil, registry.Reference{}, err
	}
	repo, err := remote.NewRepository(parsed.Registry + "/" + parsed.Repository)
	if err != nil {
		return nil, registry.Reference{}, fmt.Errorf("parse reference %q: %w", ref, err)
	}
	repo.Client = c.http
	repo.PlainHTTP = c.plainHTTP[parsed.Registry]
	return repo, parsed, nil
}
