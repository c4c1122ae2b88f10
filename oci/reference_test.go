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
