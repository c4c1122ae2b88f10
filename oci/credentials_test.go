package oci_test

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelgate/modelgate/internal/testregistry"
	"github.com/modelgate/modelgate/oci"
)

const credPassword = "oci-test-password-5d1c"

func TestCredentialNeverShowsPassword(t *testing.T) {
	c := oci.Credential{Username: "robot", Password: credPassword}
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("login", "credential", c)
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c), fmt.Sprintf("%v", map[string]oci.Credential{"h": c}), logged.String()} {
		if strings.Contains(s, credPassword) {
			t.Errorf("password shown: %s", s)
		}
		if !strings.Contains(s, "robot") {
			t.Errorf("user name missing: %s", s)
		}
	}
}

// TestClientCredentialPrecedence resolves a tag on a registry with htpasswd
// authentication, the credentials coming from ClientOptions.Credentials, the
// Docker configuration, or both.
func TestClientCredentialPrecedence(t *testing.T) {
	reg := testregistry.StartWithOptions(t, testregistry.Options{
		Auth:  testregistry.AuthHtpasswd,
		Users: map[string]string{"robot": credPassword},
	})
	desc := reg.Push(t, "models/tiny", "v1", []testregistry.Layer{{Title: "m.bin", Data: []byte("w")}})
	tests := []struct {
		name       string
		configured string // password in ClientOptions.Credentials; "" for none
		docker     string // password in $DOCKER_CONFIG; "" for none
		wantOK     bool
	}{
		{"configured", credPassword, "", true},
		{"docker config", "", credPassword, true},
		{"configured wins over docker config", credPassword, "wrong", true},
		{"configured wrong, docker right", "wrong", credPassword, false},
		{"none", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.docker != "" {
				auth := base64.StdEncoding.EncodeToString([]byte("robot:" + tc.docker))
				if err := os.WriteFile(filepath.Join(dir, "config.json"), fmt.Appendf(nil, `{"auths":{%q:{"auth":%q}}}`, reg.Host(), auth), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("DOCKER_CONFIG", dir)
			opts := oci.ClientOptions{PlainHTTP: map[string]bool{reg.Host(): true}}
			if tc.configured != "" {
				opts.Credentials = map[string]oci.Credential{reg.Host(): {Username: "robot", Password: tc.configured}}
			}
			var logged bytes.Buffer
			opts.Logger = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
			repo, _, err := oci.NewClient(opts).Repository(reg.Host() + "/models/tiny:v1")
			if err != nil {
				t.Fatal(err)
			}
			got, err := repo.Resolve(t.Context(), "v1")
			if tc.wantOK && (err != nil || got.Digest != desc.Digest) {
				t.Fatalf("resolve = %v, %v; want %s", got.Digest, err, desc.Digest)
			}
			if !tc.wantOK && err == nil {
				t.Fatal("resolve succeeded, want it refused")
			}
			if err != nil && strings.Contains(err.Error(), credPassword) || strings.Contains(logged.String(), credPassword) {
				t.Errorf("password shown: err %v, log %s", err, logged.String())
			}
		})
	}
}
