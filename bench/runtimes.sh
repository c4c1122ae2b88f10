#!/usr/bin/env bash
# Benchmarks tinyllm against llama.cpp's llama-server and rewrites the
# "tinyllm vs llama.cpp" section of docs/benchmarks.md: the one command that
# regenerates it. It builds tinyllm and the benchmark program, gets
# llama-server with bench/build-llama-server.sh (15-40 minutes the first time,
# so never in CI) and runs bench/runtimes (see its doc comment).
#
# Usage: bench/runtimes.sh [bench/runtimes flags]   e.g. -runs 9, -write '' to only print
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/tinyllm" ./cmd/tinyllm
go build -o "$work/runtimes" ./bench/runtimes
llama_server=$(bench/build-llama-server.sh | tail -n 1)
"$work/runtimes" \
  -tinyllm "$work/tinyllm" \
  -llama-server "$llama_server" \
  -model examples/stories260K/model.gguf \
  -write docs/benchmarks.md \
  -record-command "bench/runtimes.sh${*:+ $*}" \
  "$@"
