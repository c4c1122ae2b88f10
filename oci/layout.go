package oci

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
)

// LayoutScheme prefixes a reference to an OCI image layout on disk
// (https://github.com/opencontainers/image-spec/blob/main/image-layout.md)
// instead of a registry: oci-layout:///abs/path:tag or
// oci-layout:///abs/path@sha256:DIGEST.
const LayoutScheme = "oci-layout://"

// ParseLayoutReference splits an oci-layout:// reference into the layout's
// directory and the tag or digest inside it. ok is false, with a nil error,
// when ref does not start with LayoutScheme (a registry reference). The
// directory must be absolute and the tag or digest present; whether the
// directory exists and holds an oci-layout file is checked when it is read,
// not here.
func ParseLayoutReference(ref string) (path, reference string, ok bool, err error) {
	rest, ok := strings.CutPrefix(ref, LayoutScheme)
	if !ok {
		return "", "", false, nil
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		path, reference = rest[:i], rest[i+1:]
		if _, err := digest.Parse(reference); err != nil {
			return "", "", true, fmt.Errorf("parse layout reference %q: digest %q: %w", ref, reference, err)
		}
	} else if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
		path, reference = rest[:i], rest[i+1:]
	} else {
		path = rest
	}
	if !filepath.IsAbs(path) {
		return "", "", true, fmt.Errorf("parse layout reference %q: layout path %q is not absolute: write oci-layout:///ABSOLUTE/PATH:TAG", ref, path)
	}
	if reference == "" {
		return "", "", true, fmt.Errorf("parse layout reference %q: no tag or digest: add :TAG or @sha256:DIGEST", ref)
	}
	return filepath.Clean(path), reference, true, nil
}
