package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// withRegistry replaces the registries section of valid by one entry.
func withRegistry(entry string) string {
	i := strings.Index(valid, "registries:\n")
	return valid[:i] + "registries:\n  \"127.0.0.1:5000\":\n" + entry
}

func TestParseReadsRegistryPasswordFile(t *testing.T) {
	dir := t.TempDir()
	const password = "s3cr3t-p@ss"
	if err := os.WriteFile(filepath.Join(dir, "reg.pass"), []byte(password+"\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, file string }{
		{"absolute", filepath.Join(dir, "reg.pass")},
		{"relative to the config file", "reg.pass"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Parse(filepath.Join(dir, "modelgate.yaml"), []byte(withRegistry(
				fmt.Sprintf("    plain_http: true\n    username: robot\n    password_file: %q\n", tc.file))))
			if err != nil {
				t.Fatal(err)
			}
			reg := cfg.Registries["127.0.0.1:5000"]
			if reg.Username != "robot" || string(reg.Password) != password || !reg.PlainHTTP {
				t.Errorf("registry = username %q, password of %d bytes, plain_http %v", reg.Username, len(reg.Password), reg.PlainHTTP)
			}
			var logged strings.Builder
			slog.New(slog.NewTextHandler(&logged, nil)).Info("config", "registry", reg, "password", reg.Password)
			for _, s := range []string{fmt.Sprint(reg), fmt.Sprintf("%+v", reg), fmt.Sprintf("%#v", cfg.Registries), logged.String()} {
				if strings.Contains(s, password) {
					t.Errorf("password printed: %s", s)
				}
			}
		})
	}
}

func TestParseRefusesRegistryCredentials(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	tests := []struct {
		name, entry, wantErr string
	}{
		{"username without password_file", "    username: robot\n",
			`modelgate.yaml:14: registries.127.0.0.1:5000.username: needs password_file`},
		{"password_file without username", "    password_file: /run/secrets/reg\n",
			`modelgate.yaml:14: registries.127.0.0.1:5000.password_file: needs username`},
		{"unreadable password_file", "    username: robot\n    password_file: " + missing + "\n",
			`modelgate.yaml:15: registries.127.0.0.1:5000.password_file: read password: open ` + missing},
		{"empty password_file", "    username: robot\n    password_file: " + empty + "\n",
			`modelgate.yaml:15: registries.127.0.0.1:5000.password_file: password file ` + empty + ` is empty`},
		{"password in the YAML", "    username: robot\n    password: hunter2\n",
			`field password not found in type config.Registry`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("modelgate.yaml", []byte(withRegistry(tc.entry)))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			var ce *Error
			if !strings.Contains(tc.name, "YAML") && !errors.As(err, &ce) {
				t.Errorf("err is not a *config.Error: %T", err)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}
