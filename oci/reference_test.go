package oci

import (
	"errors"
	"testing"
)

func TestParseReference(t *testing.T) {
	tests := []struct {
		ref      string
		registry string
		wantErr  error
	}{
		{"registry.example.com/models/tiny:v1", "registry.example.com", nil},
		{"127.0.0.1:5000/models/tiny:v1", "127.0.0.1:5000", nil},
		{"localhost/models/tiny:v1", "localhost", nil},
		{"localhost:5000/x@sha256:" + "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "localhost:5000", nil},
		{"registry-1.docker.io/library/ubuntu:22.04", "registry-1.docker.io", nil},
		{"library/ubuntu:22.04", "", ErrShortName},
		{"ollama/llama3:8b", "", ErrShortName},
		{"ubuntu:22.04", "", ErrShortName},
	}
	for _, tc := range tests {
		r, err := ParseReference(tc.ref)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("ParseReference(%q) = %v, want %v", tc.ref, err, tc.wantErr)
			continue
		}
		if err == nil && r.Registry != tc.registry {
			t.Errorf("ParseReference(%q).Registry = %q, want %q", tc.ref, r.Registry, tc.registry)
		}
	}
	if _, err := ParseReference("registry.example.com/Upper/Case:v1"); err == nil {
		t.Error("invalid repository accepted")
	}
}

// FuzzParseReference: no input panics, and every accepted reference names a
// registry host, a repository, and parses back to itself.
func FuzzParseReference(f *testing.F) {
	for _, s := range []string{"registry.example.com/models/tiny:v1", "127.0.0.1:5000/a/b@sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "localhost/x", "library/ubuntu:22.04", "a:b/c:d", "[::1]:5000/x:y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseReference(s)
		if err != nil {
			return
		}
		if r.Registry == "" || r.Repository == "" {
			t.Fatalf("ParseReference(%q) = %+v: empty registry or repository", s, r)
		}
		again, err := ParseReference(r.String())
		if err != nil || again != r {
			t.Fatalf("ParseReference(%q) = %+v, but its String %q parses to %+v, %v", s, r, r.String(), again, err)
		}
	})
}
