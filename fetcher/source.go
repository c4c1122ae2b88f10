package fetcher

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/registry/remote"

	modeloci "github.com/modelgate/modelgate/oci"
)

// source is where one pull reads its manifests, config and blobs: a
// registry with its mirrors, or an OCI image layout on disk.
type source interface {
	// read returns the whole of desc, at most MaxManifestBytes (checked by
	// the caller), its size and digest verified; what is "manifest",
	// "index" or "config".
	read(ctx context.Context, what string, desc ocispec.Descriptor) ([]byte, error)
	// download writes the blob desc into the cache, verified while it
	// streams, and returns the bytes received. Callers share one call per
	// digest (see Fetcher.fetchBlob).
	download(ctx context.Context, desc ocispec.Descriptor, watch watchFunc) (int64, error)
}

// openSource returns the source that ref names.
func (f *Fetcher) openSource(ctx context.Context, ref string) (source, error) {
	if dir, _, ok, err := modeloci.ParseLayoutReference(ref); ok {
		if err != nil {
			return nil, err
		}
		return openLayout(ctx, f, dir)
	}
	repos, _, err := f.client.Repositories(ref)
	if err != nil {
		return nil, err
	}
	return &registrySource{f: f, ref: ref, repos: repos}, nil
}

// registrySource reads from a reference's mirrors, then its registry (see
// fromEach). Each read starts from the host that answered the read before
// it, so reads must not run concurrently with each other; downloads may
// run concurrently once the reads are done.
type registrySource struct {
	f     *Fetcher
	ref   string
	repos []*remote.Repository
}

func (s *registrySource) read(ctx context.Context, what string, desc ocispec.Descriptor) ([]byte, error) {
	data, rest, err := fromEach(ctx, s.f.opts.Logger.With("ref", s.ref), s.repos, what, func(repo *remote.Repository) ([]byte, error) {
		var rc io.ReadCloser
		var err error
		if what == "config" {
			rc, err = repo.Blobs().Fetch(ctx, desc)
		} else {
			rc, err = repo.Fetch(ctx, desc)
		}
		if err != nil {
			return nil, classify(err)
		}
		defer rc.Close()
		data, err := content.ReadAll(rc, desc)
		if err != nil {
			return nil, classify(err)
		}
		return data, nil
	})
	if err != nil {
		return nil, err
	}
	s.repos = rest
	return data, nil
}

// download resumes and retries as Fetcher.download describes, from the
// first of repos that has the blob; a host that fails mid-blob leaves its
// bytes for the next to resume from.
func (s *registrySource) download(ctx context.Context, desc ocispec.Descriptor, watch watchFunc) (int64, error) {
	var received int64
	_, _, err := fromEach(ctx, s.f.opts.Logger, s.repos, "blob "+desc.Digest.String(), func(repo *remote.Repository) (struct{}, error) {
		n, err := s.f.download(ctx, repo, desc, watch)
		received += n
		return struct{}{}, err
	})
	return received, err
}

// layoutSource reads an OCI image layout directory, read-only. A local
// read has nothing to resume or retry: a blob is copied whole.
type layoutSource struct {
	f     *Fetcher
	dir   string
	store *oci.ReadOnlyStore
}

// openLayout opens the layout at dir (absolute). A missing directory or
// oci-layout file is ErrNotFound, naming dir.
func openLayout(ctx context.Context, f *Fetcher, dir string) (*layoutSource, error) {
	if _, err := os.Stat(filepath.Join(dir, ocispec.ImageLayoutFile)); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open layout %s: no %s file: %w: %w", dir, ocispec.ImageLayoutFile, ErrNotFound, err)
		}
		return nil, fmt.Errorf("open layout %s: %w", dir, err)
	}
	store, err := oci.NewFromFS(ctx, os.DirFS(dir))
	if err != nil {
		return nil, fmt.Errorf("open layout %s: %w", dir, err)
	}
	return &layoutSource{f: f, dir: dir, store: store}, nil
}

// resolve returns the descriptor reference (a tag or digest) names in the
// layout; one it does not hold is ErrNotFound.
func (s *layoutSource) resolve(ctx context.Context, reference string) (ocispec.Descriptor, error) {
	desc, err := s.store.Resolve(ctx, reference)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("layout %s: %q: %w", s.dir, reference, layoutError(err))
	}
	return desc, nil
}

func (s *layoutSource) read(ctx context.Context, what string, desc ocispec.Descriptor) ([]byte, error) {
	rc, err := s.store.Fetch(ctx, desc)
	if err != nil {
		return nil, fmt.Errorf("layout %s: %w", s.dir, layoutError(err))
	}
	defer rc.Close()
	data, err := content.ReadAll(rc, desc)
	if err != nil {
		return nil, fmt.Errorf("layout %s: %w", s.dir, classify(err))
	}
	return data, nil
}

func (s *layoutSource) download(ctx context.Context, desc ocispec.Descriptor, watch watchFunc) (int64, error) {
	rc, err := s.store.Fetch(ctx, desc)
	if err != nil {
		return 0, fmt.Errorf("layout %s: %w", s.dir, layoutError(err))
	}
	defer rc.Close()
	if err := s.f.cache.WriteBlob(ctx, desc.Digest, desc.Size, watch(rc, desc.Size)); err != nil {
		return 0, fmt.Errorf("layout %s: blob %s: %w", s.dir, desc.Digest, err)
	}
	return desc.Size, nil
}

// layoutError is classify for the layout store: a file the layout lacks is
// ErrNotFound as a tag or blob it lacks is.
func layoutError(err error) error {
	if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return classify(err)
}
