package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
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

func TestParseReadsRegistryMirrors(t *testing.T) {
	cfg, err := Parse("modelgate.yaml", []byte(withRegistry("    mirrors: [\"127.0.0.1:5001\", mirror.example.com]\n")))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Registries["127.0.0.1:5000"].Mirrors; !slices.Equal(got, []string{"127.0.0.1:5001", "mirror.example.com"}) {
		t.Errorf("mirrors = %q", got)
	}
}

func TestParseRefusesBadMirrors(t *testing.T) {
	tests := []struct {
		name, entry, wantErr string
	}{
		{"URL", "    mirrors: [\"https://mirror.example.com\"]\n",
			`modelgate.yaml:14: registries.127.0.0.1:5000.mirrors[0]: "https://mirror.example.com" is not a registry host[:port]`},
		{"path", "    mirrors:\n      - mirror.example.com\n      - mirror.example.com/v2\n",
			`modelgate.yaml:16: registries.127.0.0.1:5000.mirrors[1]: "mirror.example.com/v2" is not a registry host[:port]`},
		{"empty", "    mirrors: [\"\"]\n",
			`modelgate.yaml:14: registries.127.0.0.1:5000.mirrors[0]: "" is not a registry host[:port]`},
		{"the registry itself", "    mirrors: [\"127.0.0.1:5000\"]\n",
			`modelgate.yaml:14: registries.127.0.0.1:5000.mirrors[0]: "127.0.0.1:5000" is the registry itself`},
		{"duplicate", "    mirrors:\n      - mirror.example.com\n      - \"127.0.0.1:5001\"\n      - mirror.example.com\n",
			`modelgate.yaml:17: registries.127.0.0.1:5000.mirrors[2]: duplicate mirror "mirror.example.com" (first at mirrors[0])`},
		{"not a list", "    mirrors: mirror.example.com\n",
			`cannot unmarshal !!str`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("modelgate.yaml", []byte(withRegistry(tc.entry)))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
			}
			var ce *Error
			if tc.name != "not a list" && !errors.As(err, &ce) {
				t.Errorf("err is not a *config.Error: %T", err)
			}
		})
	}
}
