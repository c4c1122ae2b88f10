package fetcher_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/modelgate/modelgate/cache"
	"github.com/modelgate/modelgate/config"
	"github.com/modelgate/modelgate/fetcher"
	"github.com/modelgate/modelgate/internal/testregistry"
	"github.com/modelgate/modelgate/oci"
)

const (
	authUser     = "robot"
	authPassword = "pw-7f3a9c1e-never-logged"
)

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// authRig is a registry with authentication, a model pushed to it, and the
// log every fetcher of the test writes to.
type authRig struct {
	reg *testregistry.Registry
	ref string
	log *syncBuffer
}

func newAuthRig(t *testing.T, mode testregistry.AuthMode) *authRig {
	t.Helper()
	reg := testregistry.StartWithOptions(t, testregistry.Options{
		Auth:    mode,
		Users:   map[string]string{authUser: authPassword, "pusher": "pusher-password"},
		Actions: map[string][]string{"pusher": {"push"}},
	})
	reg.Push(t, "models/private", "v1", []testregistry.Layer{{Title: "model.gguf", Data: []byte("private weights")}})
	t.Setenv("DOCKER_CONFIG", t.TempDir()) // no ambient credentials
	return &authRig{reg: reg, ref: reg.Host() + "/models/private:v1", log: &syncBuffer{}}
}

// fetcherFromConfig builds the fetcher the way cmd/modelgate does: registry
// settings from modelgate.yaml, the password from password_file.
func (r *authRig) fetcherFromConfig(t *testing.T, user, password string) *fetcher.Fetcher {
	t.Helper()
	dir := t.TempDir()
	entry := "    plain_http: true\n"
	if user != "" {
		if err := os.WriteFile(filepath.Join(dir, "registry.pass"), []byte(password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		entry += "    username: " + user + "\n    password_file: registry.pass\n"
	}
	yaml := fmt.Sprintf("models:\n  - {name: m, ref: %q, runtime: rt}\nruntimes:\n  rt: {command: [\"true\"]}\nregistries:\n  %q:\n%s", r.ref, r.reg.Host(), entry)
	cfg, err := config.Parse(filepath.Join(dir, "modelgate.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	plain := map[string]bool{}
	creds := map[string]oci.Credential{}
	for host, reg := range cfg.Registries {
		plain[host] = reg.PlainHTTP
		if reg.Username != "" {
			creds[host] = oci.Credential{Username: reg.Username, Password: string(reg.Password)}
		}
	}
	return r.fetcher(t, oci.ClientOptions{PlainHTTP: plain, Credentials: creds})
}

func (r *authRig) fetcher(t *testing.T, opts oci.ClientOptions) *fetcher.Fetcher {
	t.Helper()
	c, err := cache.Open(t.TempDir(), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts.Logger = log
	return fetcher.New(c, fetcher.Options{Client: oci.NewClient(opts), Logger: log})
}

// checkNoSecret fails if err or the log shows a password.
func (r *authRig) checkNoSecret(t *testing.T, err error) {
	t.Helper()
	for _, secret := range []string{authPassword, "pusher-password", "wrong-" + authPassword} {
		if err != nil && strings.Contains(err.Error(), secret) {
			t.Errorf("error shows a password: %v", err)
		}
		if strings.Contains(r.log.String(), secret) {
			t.Errorf("log shows a password:\n%s", r.log.String())
		}
	}
}

func writeDockerConfig(t *testing.T, host, user, password string) {
	t.Helper()
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	data := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, host, auth)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
}

func TestAuthPullWithConfiguredCredentials(t *testing.T) {
	for _, mode := range []struct {
		name string
		mode testregistry.AuthMode
	}{{"Htpasswd", testregistry.AuthHtpasswd}, {"Token", testregistry.AuthToken}} {
		t.Run(mode.name, func(t *testing.T) {
			rig := newAuthRig(t, mode.mode)
			// Wrong credentials in the Docker config: the configured ones win.
			writeDockerConfig(t, rig.reg.Host(), authUser, "wrong-"+authPassword)
			before := rig.reg.TokenRequests()
			res, err := rig.fetcherFromConfig(t, authUser, authPassword).Pull(context.Background(), rig.ref)
			rig.checkNoSecret(t, err)
			if err != nil {
				t.Fatalf("pull with credentials from modelgate.yaml: %v", err)
			}
			if res.Model.MainFile != "model.gguf" {
				t.Errorf("pulled %+v", res.Model)
			}
			if mode.mode == testregistry.AuthToken && rig.reg.TokenRequests() == before {
				t.Error("pull went through no token request")
			}
		})
	}
}

func TestAuthPullDenied(t *testing.T) {
	for _, mode := range []struct {
		name string
		mode testregistry.AuthMode
	}{{"Htpasswd", testregistry.AuthHtpasswd}, {"Token", testregistry.AuthToken}} {
		t.Run(mode.name+"/WrongPassword", func(t *testing.T) {
			rig := newAuthRig(t, mode.mode)
			_, err := rig.fetcherFromConfig(t, authUser, "wrong-"+authPassword).Pull(context.Background(), rig.ref)
			if !errors.Is(err, fetcher.ErrDenied) {
				t.Fatalf("pull with a wrong password: %v, want ErrDenied", err)
			}
			if !strings.Contains(err.Error(), rig.reg.Host()) {
				t.Errorf("error does not name the registry %s: %v", rig.reg.Host(), err)
			}
			rig.checkNoSecret(t, err)
		})
	}
	t.Run("Token/ScopeWithoutPull", func(t *testing.T) {
		rig := newAuthRig(t, testregistry.AuthToken)
		_, err := rig.fetcherFromConfig(t, "pusher", "pusher-password").Pull(context.Background(), rig.ref)
		if !errors.Is(err, fetcher.ErrDenied) {
			t.Fatalf("pull with a token lacking pull: %v, want ErrDenied", err)
		}
		if rig.reg.TokenRequests() == 0 {
			t.Error("no token requested")
		}
		rig.checkNoSecret(t, err)
	})
	for _, mode := range []struct {
		name string
		mode testregistry.AuthMode
	}{{"Htpasswd", testregistry.AuthHtpasswd}, {"Token", testregistry.AuthToken}} {
		t.Run(mode.name+"/Anonymous", func(t *testing.T) {
			rig := newAuthRig(t, mode.mode)
			_, err := rig.fetcherFromConfig(t, "", "").Pull(context.Background(), rig.ref)
			if !errors.Is(err, fetcher.ErrDenied) {
				t.Fatalf("anonymous pull: %v, want ErrDenied", err)
			}
		})
	}
}

func TestAuthPullWithDockerConfigCredentials(t *testing.T) {
	for _, mode := range []struct {
		name string
		mode testregistry.AuthMode
	}{{"Htpasswd", testregistry.AuthHtpasswd}, {"Token", testregistry.AuthToken}} {
		t.Run(mode.name, func(t *testing.T) {
			rig := newAuthRig(t, mode.mode)
			writeDockerConfig(t, rig.reg.Host(), authUser, authPassword)
			f := rig.fetcherFromConfig(t, "", "") // plain_http only: credentials from DOCKER_CONFIG
			if _, err := f.Pull(context.Background(), rig.ref); err != nil {
				t.Fatalf("pull with credentials from $DOCKER_CONFIG: %v", err)
			}
			rig.checkNoSecret(t, nil)
		})
	}
}
