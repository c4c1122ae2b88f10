package oci

import (
	"strings"
	"testing"
)

func TestParseLayoutReference(t *testing.T) {
	dgst := "sha256:" + strings.Repeat("ab", 32)
	tests := []struct {
		ref       string
		ok        bool
		path      string
		reference string
		wantErr   string
	}{
		{ref: "registry.example.com/models/tiny:v1"},
		{ref: "oci-layout:///srv/layouts/tiny:v1", ok: true, path: "/srv/layouts/tiny", reference: "v1"},
		{ref: "oci-layout:///srv/layouts/tiny@" + dgst, ok: true, path: "/srv/layouts/tiny", reference: dgst},
		{ref: "oci-layout:///srv/lay:outs/tiny:v1", ok: true, path: "/srv/lay:outs/tiny", reference: "v1"},
		{ref: "oci-layout:///srv/layouts/../tiny/:v1", ok: true, path: "/srv/tiny", reference: "v1"},
		{ref: "oci-layout://srv/layouts/tiny:v1", ok: true, wantErr: "not absolute"},
		{ref: "oci-layout://:v1", ok: true, wantErr: "not absolute"},
		{ref: "oci-layout:///srv/layouts/tiny", ok: true, wantErr: "no tag or digest"},
		{ref: "oci-layout:///srv/lay:outs/tiny", ok: true, wantErr: "no tag or digest"},
		{ref: "oci-layout:///srv/layouts/tiny:", ok: true, wantErr: "no tag or digest"},
		{ref: "oci-layout:///srv/layouts/tiny@sha256:zz", ok: true, wantErr: "digest"},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			path, reference, ok, err := ParseLayoutReference(tc.ref)
			if ok != tc.ok {
				t.Fatalf("ok = %v, want %v", ok, tc.ok)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one saying %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || path != tc.path || reference != tc.reference {
				t.Errorf("= %q, %q, %v; want %q, %q", path, reference, err, tc.path, tc.reference)
			}
		})
	}
}
