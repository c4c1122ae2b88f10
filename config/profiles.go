package config

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Request protocols a runtime may speak, as written in protocols:. The
// gateway forwards a route to a model's runtime only when the runtime lists
// the route's protocol; /models/{name}/... reaches every runtime whatever it
// lists.
const (
	// ProtocolOpenAIChat is POST /v1/chat/completions.
	ProtocolOpenAIChat = "openai-chat"
	// ProtocolOpenAICompletions is POST /v1/completions.
	ProtocolOpenAICompletions = "openai-completions"
	// ProtocolOpenAIEmbeddings is POST /v1/embeddings.
	ProtocolOpenAIEmbeddings = "openai-embeddings"
	// ProtocolKServeV1 is KServe's V1 data plane:
	// POST /v1/models/{name}:predict.
	ProtocolKServeV1 = "kserve-v1"
	// ProtocolKServeV2 is the Open Inference Protocol (KServe V2):
	// /v2/health/live|ready, GET /v2/models/{name}[/ready],
	// POST /v2/models/{name}/infer.
	ProtocolKServeV2 = "kserve-v2"
	// ProtocolTGIGenerate is text-generation-inference's own API:
	// POST /generate and /generate_stream.
	ProtocolTGIGenerate = "tgi-generate"
)

// KnownProtocols lists every protocol name protocols: accepts.
func KnownProtocols() []string {
	return []string{ProtocolOpenAIChat, ProtocolOpenAICompletions, ProtocolOpenAIEmbeddings, ProtocolKServeV1, ProtocolKServeV2, ProtocolTGIGenerate}
}

// DefaultProtocols are the protocols of an entry that names no profile and
// lists none: the OpenAI routes, which the gateway forwarded to every
// runtime before runtimes declared protocols.
func DefaultProtocols() []string {
	return []string{ProtocolOpenAIChat, ProtocolOpenAICompletions, ProtocolOpenAIEmbeddings}
}

// builtinProfiles are the runtime profiles a model may name directly
// (runtime: vllm) and an entry may extend (profile: vllm). They are plain
// values: the engines differ in nothing else. Each health rule and flag was
// checked against the engine's own documentation or source;
// docs/runtimes.md cites them. Read them through BuiltinProfile, which
// copies.
var builtinProfiles = map[string]Runtime{
	// llama.cpp's server listens at once; GET /health answers 503
	// {"error":{"message":"Loading model",...}} while the model loads and
	// 200 {"status":"ok"} once it can serve. /v1/embeddings needs
	// --embeddings, which restricts the server to embeddings.
	"llama-server": {
		Command:        []string{"llama-server", "-m", "{{.ModelFile}}", "--host", "{{.Host}}", "--port", "{{.Port}}", "--alias", "{{.ModelName}}"},
		Health:         "/health",
		ReadyStatus:    200,
		StartupTimeout: Duration(5 * time.Minute),
		StopSignal:     "SIGTERM",
		StopTimeout:    Duration(10 * time.Second),
		// Requests beyond its slots (--parallel, auto by default) wait
		// inside llama-server.
		MaxConcurrent:  0,
		Protocols:      []string{ProtocolOpenAIChat, ProtocolOpenAICompletions},
		HealthInterval: Duration(DefaultHealthInterval),
		HealthTimeout:  Duration(DefaultHealthTimeout),
		HealthFailures: DefaultHealthFailures,
	},
	// vLLM binds its port early but serves HTTP only once the engine is
	// built (weights loaded, KV cache sized, CUDA graphs captured):
	// connections are refused until then. GET /health then answers 200,
	// or 503 once the engine has died. vLLM answers 404 to a "model" it
	// does not serve, hence --served-model-name.
	"vllm": {
		Command:        []string{"vllm", "serve", "{{.ModelDir}}", "--host", "{{.Host}}", "--port", "{{.Port}}", "--served-model-name", "{{.ModelName}}"},
		Health:         "/health",
		ReadyStatus:    200,
		StartupTimeout: Duration(10 * time.Minute),
		StopSignal:     "SIGTERM",
		StopTimeout:    Duration(30 * time.Second),
		// vLLM batches up to --max-num-seqs and queues the rest itself.
		MaxConcurrent:  0,
		Protocols:      []string{ProtocolOpenAIChat, ProtocolOpenAICompletions, ProtocolOpenAIEmbeddings},
		HealthInterval: Duration(DefaultHealthInterval),
		HealthTimeout:  Duration(DefaultHealthTimeout),
		HealthFailures: DefaultHealthFailures,
	},
	// text-generation-launcher starts the shards, waits until they have
	// loaded and warmed up, and only then starts the HTTP router:
	// connections are refused until then. GET /health answers 200, or 503
	// when the shards fail their check. Each shard listens on
	// <shard-uds-path>-<rank> and a launcher deletes a stale socket of that
	// name at start, so two models need two paths.
	"tgi": {
		Command:        []string{"text-generation-launcher", "--model-id", "{{.ModelDir}}", "--hostname", "{{.Host}}", "--port", "{{.Port}}", "--shard-uds-path", "/tmp/modelgate-tgi-{{.Port}}"},
		Health:         "/health",
		ReadyStatus:    200,
		StartupTimeout: Duration(10 * time.Minute),
		StopSignal:     "SIGTERM",
		StopTimeout:    Duration(30 * time.Second),
		// TGI's --max-concurrent-requests default: past it TGI answers 429
		// "Model is overloaded", so the gateway keeps the rest queued.
		MaxConcurrent:  128,
		Protocols:      []string{ProtocolOpenAIChat, ProtocolOpenAICompletions, ProtocolTGIGenerate},
		HealthInterval: Duration(DefaultHealthInterval),
		HealthTimeout:  Duration(DefaultHealthTimeout),
		HealthFailures: DefaultHealthFailures,
	},
	// Triton loads every model of the repository before it starts its HTTP
	// endpoints: connections are refused until then. GET /v2/health/ready
	// answers 200 when the server and all its models are ready, 400
	// otherwise. gRPC and metrics would need ports of their own, which a
	// profile cannot be given yet: they are off. After SIGTERM Triton waits
	// up to --exit-timeout-secs (30 s) for inferences in flight.
	"triton": {
		Command:        []string{"tritonserver", "--model-repository={{.ModelDir}}", "--http-address={{.Host}}", "--http-port={{.Port}}", "--allow-grpc=false", "--allow-metrics=false"},
		Health:         "/v2/health/ready",
		ReadyStatus:    200,
		StartupTimeout: Duration(10 * time.Minute),
		StopSignal:     "SIGTERM",
		StopTimeout:    Duration(35 * time.Second),
		MaxConcurrent:  0,
		Protocols:      []string{ProtocolKServeV2},
		HealthInterval: Duration(DefaultHealthInterval),
		HealthTimeout:  Duration(DefaultHealthTimeout),
		HealthFailures: DefaultHealthFailures,
	},
	// Our reference runtime (cmd/tinyllm, docs/tinyllm.md): llama-server's
	// API and readiness (503 while loading, then 200) and one generation at
	// a time, so the gateway holds the rest.
	"tinyllm": {
		Command:        []string{"tinyllm", "-m", "{{.ModelFile}}", "--host", "{{.Host}}", "--port", "{{.Port}}", "--alias", "{{.ModelName}}"},
		Health:         "/health",
		ReadyStatus:    200,
		StartupTimeout: Duration(time.Minute),
		StopSignal:     "SIGTERM",
		StopTimeout:    Duration(10 * time.Second),
		MaxConcurrent:  1,
		Protocols:      []string{ProtocolOpenAIChat, ProtocolOpenAICompletions},
		HealthInterval: Duration(DefaultHealthInterval),
		HealthTimeout:  Duration(DefaultHealthTimeout),
		HealthFailures: DefaultHealthFailures,
	},
}

// BuiltinProfileNames lists the built-in profiles, sorted.
func BuiltinProfileNames() []string { return sortedKeys(builtinProfiles) }

// BuiltinProfile returns a copy of the built-in profile called name, which
// the caller may change.
func BuiltinProfile(name string) (Runtime, bool) {
	r, ok := builtinProfiles[name]
	return r.clone(), ok
}

// clone copies r deeply enough that changing the copy's slices and map
// leaves r alone.
func (r Runtime) clone() Runtime {
	r.Command = slices.Clone(r.Command)
	r.Args = slices.Clone(r.Args)
	r.Env = maps.Clone(r.Env)
	r.Protocols = slices.Clone(r.Protocols)
	return r
}

// extend applies the keys an entry sets (set reports whether the entry's
// YAML has the key) to a copy of the profile base. Every key the entry sets
// replaces the profile's value, the command included, with two exceptions:
// env is merged by variable name (the entry's value wins) and args are
// appended. This is KServe's rule for an InferenceService over its
// ServingRuntime: fields override, args concatenate, env merges by name.
func extend(base, over Runtime, set func(key string) bool) Runtime {
	r := base.clone()
	if set("command") {
		r.Command = slices.Clone(over.Command)
	}
	r.Args = append(r.Args, over.Args...)
	if len(over.Env) > 0 && r.Env == nil {
		r.Env = map[string]string{}
	}
	maps.Copy(r.Env, over.Env)
	if set("working_dir") {
		r.WorkingDir = over.WorkingDir
	}
	if set("health") {
		r.Health = over.Health
	}
	if set("ready_status") {
		r.ReadyStatus = over.ReadyStatus
	}
	if set("startup_timeout") {
		r.StartupTimeout = over.StartupTimeout
	}
	if set("stop_signal") {
		r.StopSignal = over.StopSignal
	}
	if set("stop_timeout") {
		r.StopTimeout = over.StopTimeout
	}
	if set("max_concurrent") {
		r.MaxConcurrent = over.MaxConcurrent
	}
	if set("protocols") {
		r.Protocols = append([]string{}, over.Protocols...) // [] stays empty, not unset
	}
	if set("health_interval") {
		r.HealthInterval = over.HealthInterval
	}
	if set("health_timeout") {
		r.HealthTimeout = over.HealthTimeout
	}
	if set("health_failures") {
		r.HealthFailures = over.HealthFailures
	}
	return r
}

// resolveRuntimes checks the keys each runtimes entry sets, applies it to its
// profile, appends its args to its command and adds the built-in profiles
// that models name without an entry of that name. An entry named like a
// built-in profile but without profile: replaces it.
func (c *Config) resolveRuntimes(p *problems) {
	for _, name := range sortedKeys(c.Runtimes) {
		raw := c.Runtimes[name]
		at := func(key ...any) []any { return append([]any{"runtimes", name}, key...) }
		checkRuntimeKeys(p, at, raw)
		rt := raw
		if raw.Profile != "" {
			base, ok := BuiltinProfile(raw.Profile)
			if !ok {
				p.add(at("profile"), "unknown profile %q (built-in: %s)", raw.Profile, strings.Join(BuiltinProfileNames(), ", "))
				continue
			}
			rt = extend(base, raw, func(key string) bool { return p.has(at(key)...) })
		}
		if len(rt.Command) == 0 {
			p.add(at("command"), "is required (or extend a built-in profile with profile: %s)", strings.Join(BuiltinProfileNames(), "|"))
		}
		rt.Profile = ""
		rt.Command = append(slices.Clone(rt.Command), rt.Args...)
		rt.Args = nil
		if rt.WorkingDir != "" {
			// Relative to the configuration file, as password_file is.
			if dir, err := RenderTemplate(rt.WorkingDir, sampleTemplateData); err == nil && !filepath.IsAbs(dir) {
				rt.WorkingDir = filepath.Join(filepath.Dir(c.File), rt.WorkingDir)
			}
		}
		c.Runtimes[name] = rt
	}
	for _, m := range c.Models {
		if _, defined := c.Runtimes[m.Runtime]; defined {
			continue
		}
		if rt, ok := BuiltinProfile(m.Runtime); ok {
			if c.Runtimes == nil {
				c.Runtimes = map[string]Runtime{}
			}
			c.Runtimes[m.Runtime] = rt
		}
	}
}

// checkRuntimeKeys checks the values an entry sets itself, before it is
// merged with its profile, so that each problem names the key as written.
func checkRuntimeKeys(p *problems, at func(key ...any) []any, r Runtime) {
	for i, arg := range r.Command {
		if _, err := RenderTemplate(arg, sampleTemplateData); err != nil {
			p.add(at("command", i), "%v", err)
		}
	}
	for i, arg := range r.Args {
		if _, err := RenderTemplate(arg, sampleTemplateData); err != nil {
			p.add(at("args", i), "%v", err)
		}
	}
	for _, k := range sortedKeys(r.Env) {
		if _, err := RenderTemplate(r.Env[k], sampleTemplateData); err != nil {
			p.add(at("env", k), "%v", err)
		}
	}
	if r.WorkingDir != "" {
		if _, err := RenderTemplate(r.WorkingDir, sampleTemplateData); err != nil {
			p.add(at("working_dir"), "%v", err)
		}
	}
	if r.Health != "" && !strings.HasPrefix(r.Health, "/") {
		p.add(at("health"), "%q must be a path starting with /", r.Health)
	}
	if r.ReadyStatus != 0 && (r.ReadyStatus < 100 || r.ReadyStatus > 599) {
		p.add(at("ready_status"), "%d is not an HTTP status", r.ReadyStatus)
	}
	if _, ok := Signals[r.StopSignal]; r.StopSignal != "" && !ok {
		p.add(at("stop_signal"), "%q is not one of SIGTERM, SIGINT, SIGQUIT, SIGKILL", r.StopSignal)
	}
	if r.MaxConcurrent < 0 {
		p.add(at("max_concurrent"), "%d: must be 0 (no limit) or more", r.MaxConcurrent)
	}
	if r.HealthFailures < 0 {
		p.add(at("health_failures"), "%d: must be 1 or more", r.HealthFailures)
	}
	first := map[string]int{}
	for i, proto := range r.Protocols {
		if j, dup := first[proto]; dup {
			p.add(at("protocols", i), "duplicate protocol %q (first at protocols[%d])", proto, j)
			continue
		}
		first[proto] = i
		if !slices.Contains(KnownProtocols(), proto) {
			p.add(at("protocols", i), "unknown protocol %q (known: %s)", proto, strings.Join(KnownProtocols(), ", "))
		}
	}
}
