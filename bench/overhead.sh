#!/usr/bin/env bash
# Benchmarks what modelgate adds in front of a runtime and rewrites the
# "Gateway overhead, cold start and start-up" section of docs/benchmarks.md:
# the one command that regenerates it. It builds modelgate, the test runtime
# (internal/testruntime) and the benchmark program, installs nginx with
# apt-get if it is missing (Debian package nginx), and runs bench/overhead
# (see its doc comment): the same runtime process directly, through
# `modelgate serve` and through nginx at 1, 16 and 64 clients, streaming
# time to first byte, warm-disk cold starts and start-up with 1,000
# configured models. Everything listens on 127.0.0.1; a full run takes about
# a minute on 2 cores.
#
# Usage: bench/overhead.sh [bench/overhead flags]   e.g. -write '' to only print,
#        -quick -write '' for a check in seconds
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nginx >/dev/null 2>&1 && ! [ -x /usr/sbin/nginx ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq nginx >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/modelgate" ./cmd/modelgate
go build -o "$work/testruntime" ./internal/testruntime/cmd/testruntime
go build -o "$work/overhead" ./bench/overhead
"$work/overhead" \
  -modelgate "$work/modelgate" \
  -testruntime "$work/testruntime" \
  -write docs/benchmarks.md \
  -record-command "bench/overhead.sh${*:+ $*}" \
  "$@"
