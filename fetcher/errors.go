package fetcher

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"

	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"github.com/modelgate/modelgate/cache"
)

// Errors a pull can end with, each wrapped with the reference and the cause.
// Digest mismatches wrap cache.ErrDigestMismatch.
var (
	// ErrNotFound means the registry has no such tag, digest or repository,
	// or an oci-layout:// reference names no layout, tag or digest on disk.
	ErrNotFound = errors.New("not found in the registry")
	// ErrUnreachable means the registry could not be reached, or the
	// connection broke or stalled mid-transfer.
	ErrUnreachable = errors.New("registry unreachable")
	// ErrDenied means the registry refused the credentials (401 or 403).
	ErrDenied = errors.New("registry denied access")
	// ErrManifestTooLarge means the manifest exceeds the configured cap.
	ErrManifestTooLarge = errors.New("manifest too large")
	// ErrUnsupported means the artifact is of a kind the fetcher cannot lay
	// out as a model directory.
	ErrUnsupported = errors.New("unsupported artifact")
)

// classify maps an error from oras-go or the network to one of the errors
// above (or cache.ErrDigestMismatch), keeping the original in the chain.
func classify(err error) error {
	var resp *errcode.ErrorResponse
	var opErr *net.OpError
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, errdef.ErrNotFound):
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.As(err, &resp) && resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	case errors.As(err, &resp) && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
		return fmt.Errorf("%w: %w", ErrDenied, err)
	case errors.Is(err, auth.ErrBasicCredentialNotFound):
		// A registry asking for Basic credentials that we do not have.
		return fmt.Errorf("%w: %w", ErrDenied, err)
	case errors.Is(err, content.ErrMismatchedDigest), errors.Is(err, content.ErrTrailingData):
		return fmt.Errorf("%w: %w", cache.ErrDigestMismatch, err)
	case errors.As(err, &opErr), errors.As(err, &dnsErr), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) && netErr.Timeout() {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	return err
}
