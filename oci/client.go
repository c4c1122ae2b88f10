// Package oci holds what modelgate's puller and pusher share about talking to
// OCI registries: one authenticated HTTP client (credentials from the Docker
// configuration, retries with backoff) and repositories opened from
// references with per-registry plain-HTTP settings.
package oci

import (
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
	// Mirrors maps an upstream registry host (host[:port]) to the mirror
	// hosts tried before it, in order, as containerd's hosts.toml does. A
	// mirror's own plain-HTTP setting and credentials are those listed
	// for its host in PlainHTTP and Credentials.
	Mirrors map[string][]string
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
	mirrors   map[string][]string
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
	return &Client{http: c, plainHTTP: opts.PlainHTTP, mirrors: opts.Mirrors}
}

// Repository parses ref (registry/repository[:tag|@digest]) and opens its
// repository with this client.
func (c *Client) Repository(ref string) (*remote.Repository, registry.Reference, error) {
	parsed, err := ParseReference(ref)
	if err != nil {
		return nil, registry.Reference{}, err
	}
	return c.open(parsed, parsed.Registry), parsed, nil
}

// Repositories is Repository for reading: it returns ref's repository on
// each mirror configured for ref's registry, in order, then on the
// registry itself (always the last element). They share the repository
// path and reference; only the registry host differs. The returned
// reference is ref's own, upstream host included.
func (c *Client) Repositories(ref string) ([]*remote.Repository, registry.Reference, error) {
	parsed, err := ParseReference(ref)
	if err != nil {
		return nil, registry.Reference{}, err
	}
	mirrors := c.mirrors[parsed.Registry]
	repos := make([]*remote.Repository, 0, len(mirrors)+1)
	for _, host := range mirrors {
		repos = append(repos, c.open(parsed, host))
	}
	return append(repos, c.open(parsed, parsed.Registry)), parsed, nil
}

// open returns ref's repository (its tag or digest dropped) on host, with
// this client and host's plain-HTTP setting.
func (c *Client) open(ref registry.Reference, host string) *remote.Repository {
	ref.Registry, ref.Reference = host, ""
	return &remote.Repository{Client: c.http, Reference: ref, PlainHTTP: c.plainHTTP[host]}
}
