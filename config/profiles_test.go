package config

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// withRuntimes is a configuration with one model on runtime and the given
// runtimes: section (which may be empty).
func withRuntimes(runtime, runtimes string) string {
	return "models:\n  - {name: tiny, ref: r.example.com/m/tiny:v1, runtime: " + runtime + "}\n" + runtimes
}

func TestBuiltinProfilesAreComplete(t *testing.T) {
	names := BuiltinProfileNames()
	if want := []string{"llama-server", "tgi", "tinyllm", "triton", "vllm"}; !slices.Equal(names, want) {
		t.Fatalf("built-in profiles = %q, want %q", names, want)
	}
	for _, name := range names {
		rt, _ := BuiltinProfile(name)
		t.Run(name, func(t *testing.T) {
			// A built-in is a complete value: no default fills it in, and a
			// copy of it (modelgate profiles) behaves the same.
			if len(rt.Command) == 0 || rt.Health == "" || rt.ReadyStatus == 0 || rt.StartupTimeout == 0 ||
				rt.StopSignal == "" || rt.StopTimeout == 0 || len(rt.Protocols) == 0 || rt.Profile != "" || rt.Args != nil {
				t.Errorf("incomplete: %+v", rt)
			}
			p := &problems{file: "builtin", root: &yaml.Node{}}
			checkRuntimeKeys(p, func(key ...any) []any { return append([]any{"runtimes", name}, key...) }, rt)
			if err := p.err(); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestModelNamesABuiltinProfile(t *testing.T) {
	for _, name := range BuiltinProfileNames() {
		t.Run(name, func(t *testing.T) {
			cfg, err := Parse("modelgate.yaml", []byte(withRuntimes(name, "")))
			if err != nil {
				t.Fatal(err)
			}
			want, _ := BuiltinProfile(name)
			if got := cfg.Runtimes[name]; !reflect.DeepEqual(got, want) {
				t.Errorf("runtime %s =\n%+v\nwant the built-in\n%+v", name, got, want)
			}
		})
	}
}

// TestBuiltinProfilesRenderCommand renders each built-in's argv for one
// model: the command line each engine will be started with.
func TestBuiltinProfilesRenderCommand(t *testing.T) {
	data := TemplateData{ModelDir: "/c/models/sha256/ab", ModelFile: "/c/models/sha256/ab/model.gguf", ModelName: "tiny", Port: 41234, Host: "127.0.0.1"}
	golden := map[string][]string{
		"llama-server": {"llama-server", "-m", "/c/models/sha256/ab/model.gguf", "--host", "127.0.0.1", "--port", "41234", "--alias", "tiny"},
		"vllm":         {"vllm", "serve", "/c/models/sha256/ab", "--host", "127.0.0.1", "--port", "41234", "--served-model-name", "tiny"},
		"tgi": {"text-generation-launcher", "--model-id", "/c/models/sha256/ab", "--hostname", "127.0.0.1", "--port", "41234",
			"--shard-uds-path", "/tmp/modelgate-tgi-41234"},
		"triton": {"tritonserver", "--model-repository=/c/models/sha256/ab", "--http-address=127.0.0.1", "--http-port=41234",
			"--allow-grpc=false", "--allow-metrics=false"},
		"tinyllm": {"tinyllm", "-m", "/c/models/sha256/ab/model.gguf", "--host", "127.0.0.1", "--port", "41234", "--alias", "tiny"},
	}
	for _, name := range BuiltinProfileNames() {
		rt, _ := BuiltinProfile(name)
		if got := render(t, rt.Command, data); !slices.Equal(got, golden[name]) {
			t.Errorf("%s argv:\n%q\nwant\n%q", name, got, golden[name])
		}
	}
}

func render(t *testing.T, argv []string, data TemplateData) []string {
	t.Helper()
	var out []string
	for _, a := range argv {
		s, err := RenderTemplate(a, data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

func TestProfileOverrides(t *testing.T) {
	cfg, err := Parse("/etc/modelgate/modelgate.yaml", []byte(`models:
  - {name: big, ref: r.example.com/m/big:v1, runtime: big}
  - {name: gen, ref: r.example.com/m/gen:v1, runtime: gen}
  - {name: emb, ref: r.example.com/m/emb:v1, runtime: emb}
  - {name: own, ref: r.example.com/m/own:v1, runtime: vllm}
runtimes:
  big:
    profile: vllm
    args: ["--max-model-len", "8192", "--tensor-parallel-size", "2"]
    env: {VLLM_NO_USAGE_STATS: "1", CUDA_VISIBLE_DEVICES: "0,1"}
    health: /v1/models
    startup_timeout: 20m
    working_dir: "{{.ModelDir}}"
  gen:
    profile: tgi
    command: ["/opt/tgi/bin/text-generation-launcher", "--model-id", "{{.ModelDir}}", "--port", "{{.Port}}"]
    args: ["--max-concurrent-requests", "512"]
    max_concurrent: 0
    protocols: [tgi-generate]
    working_dir: scripts
  emb:
    profile: llama-server
    args: ["--embeddings"]
    protocols: [openai-embeddings]
  vllm:
    command: ["/opt/vllm-wrapper", "{{.ModelDir}}", "{{.Port}}"]
`))
	if err != nil {
		t.Fatal(err)
	}
	vllm, _ := BuiltinProfile("vllm")
	big := cfg.Runtimes["big"]
	if want := append(slices.Clone(vllm.Command), "--max-model-len", "8192", "--tensor-parallel-size", "2"); !slices.Equal(big.Command, want) {
		t.Errorf("big: args not appended to the profile's command: %q", big.Command)
	}
	if !maps.Equal(big.Env, map[string]string{"VLLM_NO_USAGE_STATS": "1", "CUDA_VISIBLE_DEVICES": "0,1"}) || big.WorkingDir != "{{.ModelDir}}" {
		t.Errorf("big: env %v, working_dir %q", big.Env, big.WorkingDir)
	}
	if big.Health != "/v1/models" || big.StartupTimeout.Std() != 20*time.Minute {
		t.Errorf("big: scalars not overridden: health %q, startup_timeout %v", big.Health, big.StartupTimeout)
	}
	if big.StopTimeout != vllm.StopTimeout || big.ReadyStatus != 200 || !slices.Equal(big.Protocols, vllm.Protocols) || big.Profile != "" || big.Args != nil {
		t.Errorf("big: keys it does not set must be vllm's: %+v", big)
	}

	gen := cfg.Runtimes["gen"]
	if want := []string{"/opt/tgi/bin/text-generation-launcher", "--model-id", "{{.ModelDir}}", "--port", "{{.Port}}", "--max-concurrent-requests", "512"}; !slices.Equal(gen.Command, want) {
		t.Errorf("gen: command not replaced as a whole, args not appended to it: %q", gen.Command)
	}
	if gen.MaxConcurrent != 0 || !slices.Equal(gen.Protocols, []string{"tgi-generate"}) || gen.WorkingDir != "/etc/modelgate/scripts" {
		t.Errorf("gen: max_concurrent %d (an explicit 0 overrides tgi's 128), protocols %q, working_dir %q", gen.MaxConcurrent, gen.Protocols, gen.WorkingDir)
	}

	if emb := cfg.Runtimes["emb"]; emb.Command[len(emb.Command)-1] != "--embeddings" || !slices.Equal(emb.Protocols, []string{"openai-embeddings"}) {
		t.Errorf("emb = %+v", emb)
	}

	// An entry named like a built-in, without profile:, replaces it: a
	// command of its own, with the documented defaults.
	own := cfg.Runtimes["vllm"]
	if own.Command[0] != "/opt/vllm-wrapper" || own.StartupTimeout.Std() != DefaultStartupTimeout || !slices.Equal(own.Protocols, DefaultProtocols()) {
		t.Errorf("entry vllm without profile = %+v", own)
	}
}

func TestExtendMergeRule(t *testing.T) {
	base := Runtime{Command: []string{"engine", "--port", "{{.Port}}"}, Args: []string{"--base"}, Env: map[string]string{"A": "1", "B": "2"},
		Health: "/health", ReadyStatus: 200, MaxConcurrent: 8, Protocols: []string{ProtocolOpenAIChat}}
	over := Runtime{Args: []string{"--more"}, Env: map[string]string{"B": "two", "C": "3"}, ReadyStatus: 204, Protocols: []string{}}
	set := func(keys ...string) func(string) bool { return func(k string) bool { return slices.Contains(keys, k) } }
	got := extend(base, over, set("args", "env", "ready_status", "protocols"))
	want := Runtime{Command: []string{"engine", "--port", "{{.Port}}"}, Args: []string{"--base", "--more"}, Env: map[string]string{"A": "1", "B": "two", "C": "3"},
		Health: "/health", ReadyStatus: 204, MaxConcurrent: 8, Protocols: []string{}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("extend =\n%+v\nwant\n%+v", got, want)
	}
	if base.Env["B"] != "2" || len(base.Args) != 1 {
		t.Errorf("extend changed the profile itself: %+v", base)
	}
	// A key the entry does not set keeps the profile's value, even when the
	// entry's zero value differs from it.
	if got := extend(base, Runtime{}, set()); got.MaxConcurrent != 8 || !slices.Equal(got.Protocols, base.Protocols) {
		t.Errorf("unset keys overrode the profile: %+v", got)
	}
}

func TestBuiltinProfileIsACopy(t *testing.T) {
	a, _ := BuiltinProfile("vllm")
	a.Command[0] = "changed"
	a.Protocols[0] = "changed"
	if b, _ := BuiltinProfile("vllm"); b.Command[0] != "vllm" || b.Protocols[0] != ProtocolOpenAIChat {
		t.Errorf("changing a copy changed the built-in: %+v", b)
	}
}

func TestProfileRefusals(t *testing.T) {
	tests := []struct {
		name     string
		runtimes string
		want     []string
	}{
		{"unknown profile", "runtimes:\n  rt:\n    profile: vlm\n",
			[]string{`modelgate.yaml:5: runtimes.rt.profile: unknown profile "vlm" (built-in: llama-server, tgi, tinyllm, triton, vllm)`}},
		{"unknown and duplicate protocols", "runtimes:\n  rt:\n    profile: vllm\n    protocols: [openai-chat, grpc, openai-chat]\n",
			[]string{
				`modelgate.yaml:6: runtimes.rt.protocols[1]: unknown protocol "grpc" (known: openai-chat, openai-completions, openai-embeddings, kserve-v1, kserve-v2, tgi-generate)`,
				`modelgate.yaml:6: runtimes.rt.protocols[2]: duplicate protocol "openai-chat" (first at protocols[0])`,
			}},
		{"template error in args", "runtimes:\n  rt:\n    profile: vllm\n    args:\n      - --max-model-len\n      - \"{{.Context}}\"\n",
			[]string{`modelgate.yaml:8: runtimes.rt.args[1]: template "{{.Context}}" (fields: .ModelDir .ModelFile .ModelName .Port .Host)`}},
		{"template error in working_dir", "runtimes:\n  rt:\n    profile: vllm\n    working_dir: \"{{.Dir}}\"\n",
			[]string{`modelgate.yaml:6: runtimes.rt.working_dir: template "{{.Dir}}"`}},
		{"negative max_concurrent", "runtimes:\n  rt:\n    profile: tgi\n    max_concurrent: -1\n",
			[]string{`modelgate.yaml:6: runtimes.rt.max_concurrent: -1: must be 0 (no limit) or more`}},
		{"no command and no profile", "runtimes:\n  rt:\n    args: [--verbose]\n",
			[]string{`modelgate.yaml:4: runtimes.rt.command: is required (or extend a built-in profile with profile: llama-server|tgi|tinyllm|triton|vllm)`}},
		{"command emptied", "runtimes:\n  rt:\n    profile: tinyllm\n    command: []\n",
			[]string{`modelgate.yaml:6: runtimes.rt.command: is required`}},
		{"bad health and ready status", "runtimes:\n  rt:\n    profile: triton\n    health: v2/health/ready\n    ready_status: 2000\n",
			[]string{
				`modelgate.yaml:6: runtimes.rt.health: "v2/health/ready" must be a path starting with /`,
				`modelgate.yaml:7: runtimes.rt.ready_status: 2000 is not an HTTP status`,
			}},
		{"unknown key", "runtimes:\n  rt:\n    profile: vllm\n    extra_args: [--x]\n",
			[]string{`line 6: field extra_args not found in type config.Runtime`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("modelgate.yaml", []byte(withRuntimes("rt", tc.runtimes)))
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain:\n%s", err, w)
				}
			}
		})
	}
}

func TestModelOnUnknownRuntimeListsBuiltins(t *testing.T) {
	_, err := Parse("modelgate.yaml", []byte(withRuntimes("llama.cpp", "")))
	want := `modelgate.yaml:2: models[0].runtime: runtime "llama.cpp" is not defined under runtimes (defined: none) and is not a built-in profile (llama-server, tgi, tinyllm, triton, vllm)`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}

// TestEmptyProtocolsMeansPassthroughOnly: protocols: [] is kept, not
// defaulted: such a runtime is reached only through /models/{name}/....
func TestEmptyProtocolsMeansPassthroughOnly(t *testing.T) {
	cfg, err := Parse("modelgate.yaml", []byte(withRuntimes("rt", "runtimes:\n  rt: {command: [engine], protocols: []}\n  ext: {profile: vllm, protocols: []}\n")))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"rt", "ext"} {
		if p := cfg.Runtimes[name].Protocols; p == nil || len(p) != 0 {
			t.Errorf("%s: protocols = %#v, want empty", name, p)
		}
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	_, err := Parse("modelgate.yaml", []byte(`models:
  - {name: a, ref: r.example.com/m/a:v1, runtime: nope}
  - {name: b, ref: r.example.com/m/b:v1, runtime: rt}
runtimes:
  rt: {profile: vlm}
  other: {profile: tgi, max_concurrent: -5, protocols: [grpc]}
`))
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`modelgate.yaml:2: models[0].runtime: runtime "nope" is not defined`,
		`modelgate.yaml:5: runtimes.rt.profile: unknown profile "vlm"`,
		`modelgate.yaml:6: runtimes.other.max_concurrent: -5`,
		`modelgate.yaml:6: runtimes.other.protocols[0]: unknown protocol "grpc"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error:\n%v\nwant it to contain:\n%s", err, want)
		}
	}
	if strings.Contains(err.Error(), "models[1]") {
		t.Errorf("a model on a runtime whose profile is unknown got a second error:\n%v", err)
	}
}

// TestMergeKeysCountAsSet: keys an entry gets through a YAML merge key
// (<<: *anchor) override the profile as if written in the entry.
func TestMergeKeysCountAsSet(t *testing.T) {
	cfg, err := Parse("modelgate.yaml", []byte(withRuntimes("b", `runtimes:
  a: &long {profile: vllm, startup_timeout: 20m, max_concurrent: 0}
  b:
    <<: *long
    profile: tgi
`)))
	if err != nil {
		t.Fatal(err)
	}
	if b := cfg.Runtimes["b"]; b.StartupTimeout.Std() != 20*time.Minute || b.MaxConcurrent != 0 || b.Command[0] != "text-generation-launcher" {
		t.Errorf("b = %+v", b)
	}
}
