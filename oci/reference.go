package oci

import (
	"errors"
	"fmt"
	"strings"

	"oras.land/oras-go/v2/registry"
)

// ErrShortName means a reference names no registry host, as Docker Hub
// short names ("ubuntu:22.04", "library/ubuntu:22.04") do. Docker guesses
// docker.io for them; modelgate does not guess where models come from.
var ErrShortName = errors.New("reference names no registry host")

// ParseReference parses registry/repository[:tag|@digest]. Like Docker, it
// takes the first path component for a registry host only when it contains
// a "." or a ":" or is "localhost"; anything else is a short name, refused
// with ErrShortName and a message that says what to write instead.
func ParseReference(ref string) (registry.Reference, error) {
	host, _, found := strings.Cut(ref, "/")
	if !found || (!strings.ContainsAny(host, ".:") && host != "localhost") {
		return registry.Reference{}, fmt.Errorf("parse reference %q: %w: write the registry explicitly, e.g. registry.example.com/%s (Docker Hub is registry-1.docker.io/library/NAME)", ref, ErrShortName, ref)
	}
	r, err := registry.ParseReference(ref)
	if err != nil {
		return registry.Reference{}, fmt.Errorf("parse reference %q: %w", ref, err)
	}
	return r, nil
}
