#!/usr/bin/env bash
# make demo: the whole of modelgate on one machine, with a real model.
#
# Builds modelgate, tinyllm and a chat client; checks the demo model; starts
# a local OCI registry (CNCF Distribution, installed with `go install` if none
# is on PATH); pushes examples/stories260K with `modelgate push`; starts
# `modelgate serve`; sends a streamed chat request and prints the answer as
# it streams; then leaves the gateway running until Ctrl-C, which stops
# everything this script started. State lives in .demo/ so that the second
# run is fast (registry storage and model cache are kept).
#
# Ports: REGISTRY_PORT (default 5050) and PORT (default 8080), on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
state=$root/.demo
registry_port=${REGISTRY_PORT:-5050}
port=${PORT:-8080}
ref=127.0.0.1:$registry_port/demo/stories260k:v1
pids=()

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
die() { printf '\033[31mdemo: %s\033[0m\n' "$*" >&2; exit 1; }
cleanup() {
  trap - EXIT INT TERM
  if [ ${#pids[@]} -gt 0 ]; then
    step "Stopping what the demo started"
    for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[i]}" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() { # PORT WHAT PID
  for _ in $(seq 1 300); do
    port_open "$1" && return 0
    kill -0 "$3" 2>/dev/null || die "$2 exited; see $state/$2.log"
    sleep 0.1
  done
  die "$2 did not open port $1 in 30s; see $state/$2.log"
}

mkdir -p "$state" bin
for p in "$registry_port" "$port"; do
  port_open "$p" && die "127.0.0.1:$p is in use (another demo still running?). Stop it, or set REGISTRY_PORT / PORT."
done

step "Building modelgate, tinyllm and the chat client into bin/"
go build -o bin/modelgate ./cmd/modelgate
go build -o bin/tinyllm ./cmd/tinyllm
go build -o bin/chat ./examples/chat
bin/modelgate version

step "Checking the demo model (examples/stories260K, sha256)"
want=$(cut -d' ' -f1 examples/stories260K/model.gguf.sha256)
got=$( (sha256sum examples/stories260K/model.gguf 2>/dev/null || shasum -a 256 examples/stories260K/model.gguf) | cut -d' ' -f1)
[ "$got" = "$want" ] || die "examples/stories260K/model.gguf has sha256 $got, want $want"
echo "model.gguf sha256 $got OK"

step "Starting a local OCI registry (CNCF Distribution) on 127.0.0.1:$registry_port"
registry=$(command -v docker-registry || command -v registry || true)
if [ -z "$registry" ] && [ -x bin/registry ]; then registry=$root/bin/registry; fi
if [ -z "$registry" ]; then
  echo "no registry on PATH: installing Distribution v3 with go install (a few minutes, once)"
  GOBIN=$root/bin go install github.com/distribution/distribution/v3/cmd/registry@v3.1.2
  registry=$root/bin/registry
fi
cat > "$state/registry.yml" <<YAML
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $state/registry}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$registry_port, secret: modelgate-demo}
YAML
"$registry" serve "$state/registry.yml" > "$state/registry.log" 2>&1 &
pids+=($!)
wait_port "$registry_port" registry $!
echo "registry $registry running (pid ${pids[0]}), storage in .demo/registry"

step "Pushing examples/stories260K to $ref with modelgate push"
bin/modelgate push --plain-http examples/stories260K "$ref"

step "Starting modelgate serve on 127.0.0.1:$port"
cat > "$state/modelgate.yaml" <<YAML
listen: 127.0.0.1:$port
models:
  - name: stories260k
    ref: $ref
    runtime: tinyllm
runtimes:
  tinyllm:
    command: ["$root/bin/tinyllm", "-m", "{{.ModelFile}}", "--host", "{{.Host}}", "--port", "{{.Port}}", "--alias", "stories260k"]
    health: /health
    startup_timeout: 1m
cache: {dir: $state/cache, max_bytes: 1GiB}
registries:
  "127.0.0.1:$registry_port": {plain_http: true}
YAML
echo "configuration: .demo/modelgate.yaml; log: .demo/modelgate.log"
bin/modelgate serve --config "$state/modelgate.yaml" > "$state/modelgate.log" 2>&1 &
pids+=($!)
gateway=$!
wait_port "$port" modelgate "$gateway"

step "Streaming a chat answer (the first request is a cold start: resolve, pull, start tinyllm)"
bin/chat -url "http://127.0.0.1:$port" -model stories260k -max-tokens 120 "Once upon a time"
echo "The gateway's log of that request (all of it: .demo/modelgate.log):"
grep -E 'msg="(pull started|pull finished|model in cache|runtime starting|runtime ready)' "$state/modelgate.log" |
  sed -E 's/^time=[^ ]+ level=[A-Z]+ msg="([^"]*)"(.*)$/  \1:\2/' | cut -c1-200

step "modelgate is serving at http://127.0.0.1:$port (Ctrl-C stops it and the registry)"
cat <<TRY
Try:
  curl -N http://127.0.0.1:$port/v1/chat/completions -H 'Content-Type: application/json' \\
    -d '{"model":"stories260k","stream":true,"messages":[{"role":"user","content":"The cat"}]}'
  curl http://127.0.0.1:$port/v1/completions -H 'Content-Type: application/json' \\
    -d '{"model":"stories260k","prompt":"Lily and Tom went to the park","max_tokens":40,"temperature":0}'
  curl http://127.0.0.1:$port/models/stories260k/completion -d '{"prompt":"One day","n_predict":32}'
  curl http://127.0.0.1:$port/v1/models
  bin/chat -url http://127.0.0.1:$port -temperature 0.8 "The little dog"
TRY
wait "$gateway"
