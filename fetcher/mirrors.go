package fetcher

import (
	"context"
	"errors"
	"log/slog"

	"oras.land/oras-go/v2/registry/remote"
)

// fromEach calls read with each of repos in turn (a reference's mirrors,
// then its registry, as oci.Client.Repositories orders them) until one
// answers, and returns that answer and repos from the one that answered
// on, the order to try for the next read of the same pull. A repository
// that answers not found, cannot be reached or denies access is skipped
// with a log record naming its host; any other error (a digest mismatch,
// an unsupported artifact, ctx ending) is returned at once. When every
// repository is skipped, the last one's error is returned: the upstream
// registry's. read's errors must be classified (see classify).
//
// This is containerd's host fall-through (docs/hosts.md in containerd):
// https://github.com/containerd/containerd/blob/main/docs/hosts.md
func fromEach[T any](ctx context.Context, log *slog.Logger, repos []*remote.Repository, what string, read func(*remote.Repository) (T, error)) (T, []*remote.Repository, error) {
	var zero T
	for i, repo := range repos {
		v, err := read(repo)
		if err == nil {
			return v, repos[i:], nil
		}
		if i == len(repos)-1 || ctx.Err() != nil || !skippable(err) {
			return zero, nil, err
		}
		level := slog.LevelWarn
		if errors.Is(err, ErrNotFound) {
			level = slog.LevelInfo
		}
		log.Log(ctx, level, "registry mirror skipped; trying the next host", "what", what, "mirror", repo.Reference.Registry, "next", repos[i+1].Reference.Registry, "error", err)
	}
	return zero, nil, errors.New("fetch: no registry to read from")
}

// skippable reports whether err lets the next host of a reference be tried.
func skippable(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, ErrUnreachable) || errors.Is(err, ErrDenied)
}
