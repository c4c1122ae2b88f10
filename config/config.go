// Package config loads and validates modelgate.yaml. Every other package takes
// the plain values it needs from the types here; none reads the file itself.
//
// The file is decoded strictly: an unknown key, a value of the wrong type, a
// runtime that is not defined, a reference that does not parse or a model name
// used twice is refused with the file, the line, the key and what is wrong.
// docs/configuration.md documents every field.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"text/template"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/modelgate/modelgate/oci"
)

// Defaults, applied by Load where the file leaves a field out.
const (
	DefaultListen          = "127.0.0.1:8080"
	DefaultMaxRequestBytes = 16 << 20 // 16 MiB: room for long prompts and embedding batches.
	DefaultShutdownGrace   = 30 * time.Second
	DefaultHealthPath      = "/health"
	DefaultReadyStatus     = 200
	// DefaultStartupTimeout leaves a large model time to load from disk.
	DefaultStartupTimeout = 5 * time.Minute
	DefaultStopSignal     = "SIGTERM"
	DefaultStopTimeout    = 10 * time.Second
	// DefaultFetchConcurrency is how many layers are downloaded at once, as in
	// oras-go's and go-containerregistry's defaults.
	DefaultFetchConcurrency = 4
	// maxPasswordBytes caps a password file: registry passwords and tokens
	// (a JWT, a cloud access token) are far smaller.
	maxPasswordBytes = 64 << 10
	// DefaultMaxManifestBytes matches oras-go's cap on manifests (4 MiB).
	DefaultMaxManifestBytes = 4 << 20
	// DefaultPullStallTimeout fails a pull whose connection delivers no
	// byte for this long (the fetcher's default): a slow link is fine, a
	// dead one is retried.
	DefaultPullStallTimeout = 30 * time.Second
	// DefaultHealthInterval, DefaultHealthTimeout and DefaultHealthFailures
	// watch a running runtime as a Kubernetes liveness probe does (period
	// 10s, failure threshold 3), with a longer timeout than its 1s, since an
	// engine busy generating may answer slowly.
	DefaultHealthInterval = 10 * time.Second
	DefaultHealthTimeout  = 5 * time.Second
	DefaultHealthFailures = 3
	// DefaultUnloadGrace is how long an unload waits for requests in
	// flight, as shutdown_grace does for a shutdown.
	DefaultUnloadGrace = 30 * time.Second
	// DefaultRestartBackoff, DefaultRestartMaxBackoff, DefaultRestartMaxFailures
	// and DefaultRestartWindow: a runtime that fails waits 1s, 2s, 4s...
	// (at most 5m, Kubernetes' CrashLoopBackOff cap) before its next start;
	// 5 failures within 10m (Kubernetes forgets a crash loop after 10m of
	// running) mark the model failed until the backoff ends.
	DefaultRestartBackoff     = time.Second
	DefaultRestartMaxBackoff  = 5 * time.Minute
	DefaultRestartMaxFailures = 5
	DefaultRestartWindow      = 10 * time.Minute
	// maxTokenBytes caps the admin token file, as maxPasswordBytes does.
	maxTokenBytes = 64 << 10
)

// Config is the whole of modelgate.yaml.
type Config struct {
	// Listen is the address the gateway serves on.
	Listen string `yaml:"listen"`
	// MaxRequestBytes caps the body of an OpenAI-style request (the gateway
	// reads it to find the model name).
	MaxRequestBytes ByteSize `yaml:"max_request_bytes"`
	// ShutdownGrace is how long in-flight requests may run after SIGTERM.
	ShutdownGrace Duration `yaml:"shutdown_grace"`
	// Models are the names clients ask for, each bound to a reference.
	Models []Model `yaml:"models"`
	// Runtimes are the process profiles models run under, by name.
	Runtimes map[string]Runtime `yaml:"runtimes"`
	// Cache is the disk cache of blobs and model directories.
	Cache Cache `yaml:"cache"`
	// Registries holds per-registry settings, keyed by host[:port].
	Registries map[string]Registry `yaml:"registries"`
	// Fetch tunes downloads.
	Fetch Fetch `yaml:"fetch"`
	// IdleTTL is the default of Model.IdleTTL: a runtime that has had no
	// request for this long is stopped; 0 (the default) never stops one.
	IdleTTL Duration `yaml:"idle_ttl"`
	// MaxRunning bounds the runtimes running at once, all models together;
	// 0 (the default) means no limit. Starting one more stops the least
	// recently used idle one.
	MaxRunning int `yaml:"max_running"`
	// Groups bound the runtimes running at once among the models that name
	// them (Model.Group), by group name.
	Groups map[string]Group `yaml:"groups"`
	// Restart is the policy for runtimes that crash, hang or fail to start.
	Restart Restart `yaml:"restart"`
	// AdminTokenFile holds the bearer token of the admin API
	// (/admin/models/{name}/load|unload); without it the admin API is off.
	// A relative path is relative to the configuration file's directory.
	AdminTokenFile string `yaml:"admin_token_file"`
	// AdminToken is AdminTokenFile's content, read by Load.
	AdminToken Secret `yaml:"-"`
	// UnloadGrace is how long an unload waits for the requests in flight
	// before it stops the runtime anyway.
	UnloadGrace Duration `yaml:"unload_grace"`

	// File is the path the configuration was read from.
	File string `yaml:"-"`
}

// Model binds a client-visible name to an OCI reference and a runtime.
type Model struct {
	// Name is what clients put in "model" or in /models/{name}/....
	Name string `yaml:"name"`
	// Ref is registry/repository:tag or registry/repository@sha256:....
	Ref string `yaml:"ref"`
	// Runtime names an entry of Config.Runtimes.
	Runtime string `yaml:"runtime"`
	// IdleTTL stops the model's runtime after this long without a request;
	// 0 never stops it. Unset, it is Config.IdleTTL: after Load it is
	// never nil.
	IdleTTL *Duration `yaml:"idle_ttl"`
	// Group names an entry of Config.Groups whose max_running the model
	// counts against; "" means none.
	Group string `yaml:"group"`
	// Preload starts the model when the gateway starts, in the background.
	Preload bool `yaml:"preload"`
}

// Group bounds the runtimes of its member models.
type Group struct {
	// MaxRunning is how many of the group's models may run at once; 0
	// means no limit.
	MaxRunning int `yaml:"max_running"`
}

// Restart is the policy for runtimes that fail: exit on their own, stop
// answering their health path, or fail to become ready.
type Restart struct {
	// Backoff is the wait before the start that follows a first failure;
	// it doubles with each failure within Window, up to MaxBackoff.
	Backoff    Duration `yaml:"backoff"`
	MaxBackoff Duration `yaml:"max_backoff"`
	// MaxFailures failures within Window mark the model failed: requests
	// are answered 503 with Retry-After until the backoff ends.
	MaxFailures int      `yaml:"max_failures"`
	Window      Duration `yaml:"window"`
}

// Runtime is a process profile: how to start a runtime for a model, how to
// tell when it is ready and what it serves. An entry under runtimes: either
// stands alone (an arbitrary command) or extends a built-in profile named by
// Profile (see profiles.go and docs/runtimes.md for the merge rule). After
// Load every Runtime is resolved: Profile and Args are empty, Command holds
// the whole argv and every default is filled in.
type Runtime struct {
	// Profile names the built-in profile this entry starts from; "" means
	// none (Command is then required).
	Profile string `yaml:"profile,omitempty"`
	// Command is the argv, each element a Go template with the fields
	// {{.ModelDir}}, {{.ModelFile}}, {{.ModelName}}, {{.Port}} and {{.Host}}.
	// Set in an entry that extends a profile, it replaces the profile's
	// command as a whole.
	Command []string `yaml:"command,flow"`
	// Args are appended to Command (the profile's, or the entry's own):
	// the way to add engine flags without restating the command.
	Args []string `yaml:"args,omitempty,flow"`
	// Env adds environment variables (values are templates too). An entry
	// that extends a profile adds to the profile's variables, replacing
	// those of the same name.
	Env map[string]string `yaml:"env,omitempty"`
	// WorkingDir is the process's working directory (a template); a
	// relative path is relative to the configuration file's directory; ""
	// keeps the gateway's own.
	WorkingDir string `yaml:"working_dir,omitempty"`
	// Health is the path polled with GET until it answers ReadyStatus.
	Health string `yaml:"health"`
	// ReadyStatus is the HTTP status that means ready. Any other status,
	// and a refused connection, mean "not ready yet": polling goes on until
	// StartupTimeout or the process's exit.
	ReadyStatus int `yaml:"ready_status"`
	// StartupTimeout bounds the time from start to ready.
	StartupTimeout Duration `yaml:"startup_timeout"`
	// StopSignal is sent to the process group to stop it (SIGTERM or SIGINT).
	StopSignal string `yaml:"stop_signal"`
	// StopTimeout is how long to wait after StopSignal before SIGKILL.
	StopTimeout Duration `yaml:"stop_timeout"`
	// MaxConcurrent is how many requests the gateway forwards to one
	// process at once; 0 means no limit (the engine queues).
	MaxConcurrent int `yaml:"max_concurrent"`
	// Protocols are the request protocols the runtime speaks (Protocol*
	// names). Unset in an entry without a profile, it is
	// DefaultProtocols.
	Protocols []string `yaml:"protocols,flow"`
	// HealthInterval is how often the health path is polled while the
	// runtime runs; HealthFailures polls in a row that get no ready answer
	// within HealthTimeout (which also bounds each poll during the start)
	// mean the runtime hangs: it is killed and restarted.
	HealthInterval Duration `yaml:"health_interval"`
	HealthTimeout  Duration `yaml:"health_timeout"`
	HealthFailures int      `yaml:"health_failures"`
}

// Cache configures the disk cache.
type Cache struct {
	// Dir is the cache root (blobs/, models/, ingest/ under it).
	Dir string `yaml:"dir"`
	// MaxBytes is the byte budget; 0 means no limit.
	MaxBytes ByteSize `yaml:"max_bytes"`
	// MinFreeBytes is the free space kept on the cache's file system,
	// evicting as for MaxBytes; 0 means none.
	MinFreeBytes ByteSize `yaml:"min_free_bytes"`
	// Sync fsyncs each blob before it becomes visible (default true);
	// false suits a cache that does not outlive its pod (an emptyDir).
	Sync *bool `yaml:"sync"`
}

// SyncBlobs reports whether blobs are fsynced: Sync, true when unset.
func (c Cache) SyncBlobs() bool { return c.Sync == nil || *c.Sync }

// Registry holds the settings of one registry host.
type Registry struct {
	// PlainHTTP talks HTTP instead of HTTPS (local and test registries).
	PlainHTTP bool `yaml:"plain_http"`
	// Username logs in to this registry instead of the Docker configuration's
	// credentials; it requires PasswordFile.
	Username string `yaml:"username"`
	// PasswordFile is the file holding Username's password (one trailing
	// newline is trimmed); a relative path is relative to the configuration
	// file's directory. The password itself never appears in modelgate.yaml.
	PasswordFile string `yaml:"password_file"`
	// Password is PasswordFile's content, read by Load.
	Password Secret `yaml:"-"`
	// Mirrors are hosts (host[:port]) that serve this registry's
	// repositories under the same paths, tried in order before it for
	// every manifest and blob, as containerd's hosts.toml mirrors are. A
	// mirror's own entry in Registries, if any, gives its plain_http and
	// credentials.
	Mirrors []string `yaml:"mirrors"`
}

// Secret is a string that prints, formats and logs as "REDACTED"; convert it
// with string() where the value itself is needed.
type Secret string

// String returns "REDACTED".
func (Secret) String() string { return "REDACTED" }

// GoString returns "REDACTED", for %#v.
func (Secret) GoString() string { return "REDACTED" }

// LogValue logs "REDACTED".
func (Secret) LogValue() slog.Value { return slog.StringValue("REDACTED") }

// Fetch tunes the puller.
type Fetch struct {
	// Concurrency is how many layers download at once.
	Concurrency int `yaml:"concurrency"`
	// MaxManifestBytes refuses larger manifests before reading them.
	MaxManifestBytes ByteSize `yaml:"max_manifest_bytes"`
	// MaxBytesPerSecond caps each pull's download rate; 0 means no cap.
	MaxBytesPerSecond ByteSize `yaml:"max_bytes_per_second"`
	// PullStallTimeout fails a download connection that delivers no byte
	// for this long (it is retried, resuming). A pull has no other
	// deadline: a large model may take as long as it takes.
	PullStallTimeout Duration `yaml:"pull_stall_timeout"`
}

// TemplateData holds the values a runtime command template may use.
type TemplateData struct {
	ModelDir  string // the model directory in the cache
	ModelFile string // the main weights file (the largest, or the one the format marks)
	ModelName string // the model's name in the configuration (what clients send as "model")
	Port      int    // the port the runtime must listen on
	Host      string // the host the runtime must bind (always 127.0.0.1)
}

// Load reads, decodes strictly, fills defaults and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load on bytes already read; name is used in error messages.
func Parse(name string, data []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cfg := &Config{File: name}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p := &problems{file: name, root: &root}
	cfg.resolveRuntimes(p)
	cfg.applyDefaults()
	cfg.validate(p)
	if err := p.err(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = Duration(DefaultShutdownGrace)
	}
	for name, rt := range c.Runtimes {
		if rt.Health == "" {
			rt.Health = DefaultHealthPath
		}
		if rt.ReadyStatus == 0 {
			rt.ReadyStatus = DefaultReadyStatus
		}
		if rt.StartupTimeout == 0 {
			rt.StartupTimeout = Duration(DefaultStartupTimeout)
		}
		if rt.StopSignal == "" {
			rt.StopSignal = DefaultStopSignal
		}
		if rt.StopTimeout == 0 {
			rt.StopTimeout = Duration(DefaultStopTimeout)
		}
		if rt.Protocols == nil {
			rt.Protocols = DefaultProtocols()
		}
		if rt.HealthInterval == 0 {
			rt.HealthInterval = Duration(DefaultHealthInterval)
		}
		if rt.HealthTimeout == 0 {
			rt.HealthTimeout = Duration(DefaultHealthTimeout)
		}
		if rt.HealthFailures == 0 {
			rt.HealthFailures = DefaultHealthFailures
		}
		c.Runtimes[name] = rt
	}
	for i := range c.Models {
		if c.Models[i].IdleTTL == nil {
			ttl := c.IdleTTL
			c.Models[i].IdleTTL = &ttl
		}
	}
	if c.UnloadGrace == 0 {
		c.UnloadGrace = Duration(DefaultUnloadGrace)
	}
	if c.Restart.Backoff == 0 {
		c.Restart.Backoff = Duration(DefaultRestartBackoff)
	}
	if c.Restart.MaxBackoff == 0 {
		c.Restart.MaxBackoff = Duration(max(DefaultRestartMaxBackoff, c.Restart.Backoff.Std()))
	}
	if c.Restart.MaxFailures == 0 {
		c.Restart.MaxFailures = DefaultRestartMaxFailures
	}
	if c.Restart.Window == 0 {
		c.Restart.Window = Duration(DefaultRestartWindow)
	}
	if c.Fetch.PullStallTimeout == 0 {
		c.Fetch.PullStallTimeout = Duration(DefaultPullStallTimeout)
	}
	if c.Cache.Dir == "" {
		c.Cache.Dir = defaultCacheDir()
	}
	if c.Fetch.Concurrency == 0 {
		c.Fetch.Concurrency = DefaultFetchConcurrency
	}
	if c.Fetch.MaxManifestBytes == 0 {
		c.Fetch.MaxManifestBytes = DefaultMaxManifestBytes
	}
}

// defaultCacheDir is $XDG_CACHE_HOME/modelgate (~/.cache/modelgate), falling
// back to /var/cache/modelgate where the user has no cache directory.
func defaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "modelgate")
	}
	return "/var/cache/modelgate"
}

// modelNamePattern keeps names usable as one path segment of /models/{name}/.
var modelNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]*$`)

// Signals maps the stop_signal names accepted in the file to signals.
var Signals = map[string]syscall.Signal{"SIGTERM": syscall.SIGTERM, "SIGINT": syscall.SIGINT, "SIGQUIT": syscall.SIGQUIT, "SIGKILL": syscall.SIGKILL}

// validate checks what resolveRuntimes has not: the models, registries and
// download settings.
func (c *Config) validate(p *problems) {
	fail := p.add
	if len(c.Models) == 0 {
		fail([]any{"models"}, "at least one model is required")
	}
	seen := map[string]int{}
	for i, m := range c.Models {
		switch {
		case m.Name == "":
			fail([]any{"models", i, "name"}, "is required")
		case !modelNamePattern.MatchString(m.Name):
			fail([]any{"models", i, "name"}, "%q is not a valid model name (letters, digits and . _ : - only, no slash)", m.Name)
		}
		if first, dup := seen[m.Name]; dup && m.Name != "" {
			fail([]any{"models", i, "name"}, "duplicate model name %q (first defined at models[%d])", m.Name, first)
		} else {
			seen[m.Name] = i
		}
		if err := checkReference(m.Ref); err != nil {
			fail([]any{"models", i, "ref"}, "%v", err)
		}
		if m.Runtime == "" {
			fail([]any{"models", i, "runtime"}, "is required")
		} else if _, ok := c.Runtimes[m.Runtime]; !ok {
			defined := "none"
			if len(c.Runtimes) > 0 {
				defined = strings.Join(c.runtimeNames(), ", ")
			}
			fail([]any{"models", i, "runtime"}, "runtime %q is not defined under runtimes (defined: %s) and is not a built-in profile (%s)", m.Runtime, defined, strings.Join(BuiltinProfileNames(), ", "))
		}
	}
	for _, host := range sortedKeys(c.Registries) {
		if !isHost(host) {
			fail([]any{"registries", host}, "%q is not a registry host[:port]", host)
		}
		reg := c.Registries[host]
		first := map[string]int{}
		for i, m := range reg.Mirrors {
			path := []any{"registries", host, "mirrors", i}
			if j, dup := first[m]; dup {
				fail(path, "duplicate mirror %q (first at mirrors[%d])", m, j)
				continue
			}
			first[m] = i
			switch {
			case !isHost(m):
				fail(path, "%q is not a registry host[:port] (no scheme, no path)", m)
			case m == host:
				fail(path, "%q is the registry itself, not a mirror", m)
			}
		}
		switch {
		case reg.Username != "" && reg.PasswordFile == "":
			fail([]any{"registries", host, "username"}, "needs password_file (the password is never written in this file)")
		case reg.Username == "" && reg.PasswordFile != "":
			fail([]any{"registries", host, "password_file"}, "needs username")
		case reg.PasswordFile != "":
			pw, err := c.readSecret(reg.PasswordFile, "password", maxPasswordBytes)
			if err != nil {
				fail([]any{"registries", host, "password_file"}, "%v", err)
				break
			}
			reg.Password = pw
			c.Registries[host] = reg
		}
	}
	if c.Fetch.Concurrency < 0 {
		fail([]any{"fetch", "concurrency"}, "must be positive")
	}
	c.validateLifecycle(p)
}

// validateLifecycle checks the keys that say when runtimes run: groups,
// max_running, preloads, the restart policy and the admin token.
func (c *Config) validateLifecycle(p *problems) {
	fail := p.add
	if c.MaxRunning < 0 {
		fail([]any{"max_running"}, "%d: must be 0 (no limit) or more", c.MaxRunning)
	}
	for _, name := range sortedKeys(c.Groups) {
		if !modelNamePattern.MatchString(name) {
			fail([]any{"groups", name}, "%q is not a valid group name (letters, digits and . _ : - only)", name)
		}
		if n := c.Groups[name].MaxRunning; n < 0 {
			fail([]any{"groups", name, "max_running"}, "%d: must be 0 (no limit) or more", n)
		}
	}
	preloads, groupPreloads := 0, map[string]int{}
	for i, m := range c.Models {
		if m.Group != "" {
			if _, ok := c.Groups[m.Group]; !ok {
				defined := "none"
				if len(c.Groups) > 0 {
					defined = strings.Join(sortedKeys(c.Groups), ", ")
				}
				fail([]any{"models", i, "group"}, "group %q is not defined under groups (defined: %s)", m.Group, defined)
			}
		}
		if !m.Preload {
			continue
		}
		preloads++
		if c.MaxRunning > 0 && preloads > c.MaxRunning {
			fail([]any{"models", i, "preload"}, "%d models preload but max_running is %d: they would stop each other", preloads, c.MaxRunning)
		}
		if m.Group != "" {
			groupPreloads[m.Group]++
			if g, ok := c.Groups[m.Group]; ok && g.MaxRunning > 0 && groupPreloads[m.Group] > g.MaxRunning {
				fail([]any{"models", i, "preload"}, "%d models of group %q preload but its max_running is %d: they would stop each other", groupPreloads[m.Group], m.Group, g.MaxRunning)
			}
		}
	}
	if c.Restart.MaxFailures < 0 {
		fail([]any{"restart", "max_failures"}, "%d: must be 1 or more", c.Restart.MaxFailures)
	}
	if c.Restart.MaxBackoff < c.Restart.Backoff {
		fail([]any{"restart", "max_backoff"}, "%s is shorter than restart.backoff (%s)", c.Restart.MaxBackoff, c.Restart.Backoff)
	}
	if c.AdminTokenFile != "" {
		tok, err := c.readSecret(c.AdminTokenFile, "admin token", maxTokenBytes)
		if err != nil {
			fail([]any{"admin_token_file"}, "%v", err)
		} else {
			c.AdminToken = tok
		}
	}
}

// isHost reports whether s looks like a registry host[:port]: not empty,
// no scheme, path or space.
func isHost(s string) bool {
	return s != "" && !strings.ContainsAny(s, "/ ")
}

// readSecret reads a secret file (what is "password" or "admin token"),
// relative to the configuration file's directory, and trims one trailing
// newline (\n or \r\n). Its errors name the file, never its content.
func (c *Config) readSecret(path, what string, maxBytes int64) (Secret, error) {
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(c.File), path)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxBytes+1))
	if err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	if int64(len(data)) > maxBytes {
		return "", fmt.Errorf("%s file %s is larger than %d bytes", what, path, maxBytes)
	}
	secret := strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r")
	if secret == "" {
		return "", fmt.Errorf("%s file %s is empty", what, path)
	}
	return Secret(secret), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (c *Config) runtimeNames() []string {
	names := make([]string, 0, len(c.Runtimes))
	for n := range c.Runtimes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// checkReference accepts registry/repository:tag, registry/repository@digest
// and the oci-layout:///abs/path:tag or @digest of an image layout on disk
// (whose directory is checked at pull time, not here).
func checkReference(ref string) error {
	if ref == "" {
		return errors.New("is required")
	}
	if _, _, ok, err := oci.ParseLayoutReference(ref); ok {
		return err
	}
	r, err := oci.ParseReference(ref)
	if errors.Is(err, oci.ErrShortName) {
		return fmt.Errorf("%q names no registry host: write it in full, e.g. registry.example.com/%s (Docker Hub is registry-1.docker.io/library/NAME)", ref, ref)
	}
	if err != nil {
		return fmt.Errorf("%q is not a valid reference (want registry/repository:tag or registry/repository@sha256:...): %w", ref, err)
	}
	if r.Reference == "" {
		return fmt.Errorf("%q names no tag or digest: add :TAG or @sha256:DIGEST", ref)
	}
	return nil
}

var sampleTemplateData = TemplateData{ModelDir: "/cache/models/sha256/0", ModelFile: "/cache/models/sha256/0/model.gguf", ModelName: "model", Port: 1, Host: "127.0.0.1"}

// RenderTemplate executes one command or env template with data.
func RenderTemplate(text string, data TemplateData) (string, error) {
	t, err := template.New("arg").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("template %q: %w", text, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("template %q (fields: .ModelDir .ModelFile .ModelName .Port .Host): %w", text, err)
	}
	return b.String(), nil
}
