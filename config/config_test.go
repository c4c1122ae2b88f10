package config

import (
	"strings"
	"testing"
	"time"
)

const valid = `listen: 127.0.0.1:8080
models:
  - name: tiny
    ref: 127.0.0.1:5000/models/tiny:v1
    runtime: py
runtimes:
  py:
    command: ["python3", "rt.py", "--model", "{{.ModelDir}}", "--port", "{{.Port}}"]
    health: /health
    startup_timeout: 1m
cache: {dir: /var/cache/modelgate, max_bytes: 10GiB}
registries:
  "127.0.0.1:5000": {plain_http: true}
`

func TestParseValidConfigAppliesDefaults(t *testing.T) {
	cfg, err := Parse("modelgate.yaml", []byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cache.MaxBytes != 10<<30 {
		t.Errorf("max_bytes = %d, want 10GiB", cfg.Cache.MaxBytes)
	}
	rt := cfg.Runtimes["py"]
	if rt.StartupTimeout.Std() != time.Minute || rt.ReadyStatus != 200 || rt.StopSignal != "SIGTERM" || rt.StopTimeout.Std() != DefaultStopTimeout {
		t.Errorf("runtime = %+v", rt)
	}
	if !cfg.Registries["127.0.0.1:5000"].PlainHTTP {
		t.Error("plain_http not read")
	}
	if !cfg.Cache.SyncBlobs() {
		t.Error("cache.sync unset, want blobs synced")
	}
	if cfg.MaxRequestBytes != DefaultMaxRequestBytes || cfg.Fetch.Concurrency != DefaultFetchConcurrency || cfg.ShutdownGrace.Std() != DefaultShutdownGrace {
		t.Errorf("defaults not applied: %+v", cfg)
	}
}

func TestParseCacheOptions(t *testing.T) {
	cfg, err := Parse("modelgate.yaml", []byte(strings.Replace(valid, "max_bytes: 10GiB}", "max_bytes: 10GiB, min_free_bytes: 2GiB, sync: false}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cache.SyncBlobs() {
		t.Error("cache.sync: false read as true")
	}
	if cfg.Cache.MinFreeBytes != 2<<30 {
		t.Errorf("min_free_bytes = %d, want 2GiB", cfg.Cache.MinFreeBytes)
	}
}

func TestParseAcceptsLayoutReference(t *testing.T) {
	// The layout directory is checked at pull time, not here: it need not
	// exist when the configuration is read.
	for _, ref := range []string{"oci-layout:///srv/layouts/tiny:v1", "oci-layout:///srv/layouts/tiny@sha256:" + strings.Repeat("ab", 32)} {
		cfg, err := Parse("modelgate.yaml", []byte(strings.Replace(valid, "127.0.0.1:5000/models/tiny:v1", ref, 1)))
		if err != nil {
			t.Fatalf("%s: %v", ref, err)
		}
		if cfg.Models[0].Ref != ref {
			t.Errorf("ref = %q, want %q", cfg.Models[0].Ref, ref)
		}
	}
}

func TestParseRefusesWithFileLineKeyAndReason(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		wantErr string
	}{
		{"unknown top-level key", func(s string) string { return s + "colour: blue\n" },
			`modelgate.yaml: yaml: unmarshal errors:` + "\n" + `  line 14: field colour not found in type config.Config`},
		{"unknown nested key", func(s string) string {
			return strings.Replace(s, "    runtime: py\n", "    runtime: py\n    gpu: 1\n", 1)
		},
			`line 6: field gpu not found in type config.Model`},
		{"missing runtime", func(s string) string { return strings.Replace(s, "runtime: py", "runtime: vlm", 1) },
			`modelgate.yaml:5: models[0].runtime: runtime "vlm" is not defined under runtimes (defined: py) and is not a built-in profile (llama-server, tgi, tinyllm, triton, vllm)`},
		{"bad reference", func(s string) string {
			return strings.Replace(s, "127.0.0.1:5000/models/tiny:v1", "r.example.com/UPPER/Case:v1", 1)
		},
			`modelgate.yaml:4: models[0].ref: "r.example.com/UPPER/Case:v1" is not a valid reference`},
		{"relative layout path", func(s string) string {
			return strings.Replace(s, "127.0.0.1:5000/models/tiny:v1", "oci-layout://models/tiny:v1", 1)
		},
			`modelgate.yaml:4: models[0].ref: parse layout reference "oci-layout://models/tiny:v1": layout path "models/tiny" is not absolute`},
		{"layout without tag", func(s string) string {
			return strings.Replace(s, "127.0.0.1:5000/models/tiny:v1", "oci-layout:///srv/layouts/tiny", 1)
		},
			`modelgate.yaml:4: models[0].ref: parse layout reference "oci-layout:///srv/layouts/tiny": no tag or digest`},
		{"docker hub short name", func(s string) string {
			return strings.Replace(s, "127.0.0.1:5000/models/tiny:v1", "library/ubuntu:22.04", 1)
		},
			`modelgate.yaml:4: models[0].ref: "library/ubuntu:22.04" names no registry host`},
		{"reference without tag", func(s string) string { return strings.Replace(s, "models/tiny:v1", "models/tiny", 1) },
			`modelgate.yaml:4: models[0].ref: "127.0.0.1:5000/models/tiny" names no tag or digest`},
		{"duplicate model name", func(s string) string {
			return strings.Replace(s, "runtimes:", "  - name: tiny\n    ref: r.io/a/b:c\n    runtime: py\nruntimes:", 1)
		}, `modelgate.yaml:6: models[1].name: duplicate model name "tiny" (first defined at models[0])`},
		{"bad size", func(s string) string { return strings.Replace(s, "10GiB", "ten gigs", 1) },
			`parse size "ten gigs"`},
		{"bad duration", func(s string) string {
			return strings.Replace(s, "startup_timeout: 1m", "startup_timeout: 1 minute", 1)
		},
			`parse duration "1 minute"`},
		{"unknown template field", func(s string) string { return strings.Replace(s, "{{.Port}}", "{{.Prot}}", 1) },
			`modelgate.yaml:8: runtimes.py.command[5]: template "{{.Prot}}"`},
		{"bad stop signal", func(s string) string {
			return strings.Replace(s, "health: /health", "health: /health\n    stop_signal: SIGFOO", 1)
		},
			`modelgate.yaml:10: runtimes.py.stop_signal: "SIGFOO" is not one of`},
		{"no models", func(s string) string { return s[:strings.Index(s, "models:")] + s[strings.Index(s, "runtimes:"):] },
			`modelgate.yaml: models: at least one model is required`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("modelgate.yaml", []byte(tc.edit(valid)))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tc.wantErr)
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"512": 512, "64KiB": 64 << 10, "10GiB": 10 << 30, "1.5GB": 1_500_000_000, "2 MiB": 2 << 20, "1TiB": 1 << 40, "3K": 3 << 10} {
		got, err := ParseByteSize(in)
		if err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GiB", "-1", "10XB", "ten"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
	if s := ByteSize(10 << 30).String(); s != "10GiB" {
		t.Errorf("String() = %q", s)
	}
}
