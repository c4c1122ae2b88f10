#!/usr/bin/env bash
# Benchmarks `modelgate pull` against `oras pull` and rewrites the
# "Pulls: modelgate vs oras pull" section of docs/benchmarks.md: the one
# command that regenerates it. It builds modelgate and the benchmark program,
# installs oras v1.3.6 into ~/.cache/modelgate-bench/bin if it is missing, and
# runs bench/pull (see its doc comment). It needs docker-registry
# (apt-get install -y docker-registry) and about 3x the model sizes of free
# disk under $TMPDIR (6 GiB at the defaults); a full run takes 15-30 minutes.
#
# Usage: bench/pull.sh [bench/pull flags]   e.g. -runs 5, -write '' to only print,
#        -runs 1 -single 256MiB -layer-size 16MiB for a quick run
set -euo pipefail
cd "$(dirname "$0")/.."
oras_version=v1.3.6
cache=${XDG_CACHE_HOME:-$HOME/.cache}/modelgate-bench/bin
oras=$cache/oras
if ! [ -x "$oras" ] || ! "$oras" version 2>/dev/null | grep -q "^Version: *${oras_version#v}$"; then
  mkdir -p "$cache"
  GOBIN=$cache go install "oras.land/oras/cmd/oras@$oras_version"
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/modelgate" ./cmd/modelgate
go build -o "$work/pull" ./bench/pull
"$work/pull" \
  -modelgate "$work/modelgate" \
  -oras "$oras" \
  -write docs/benchmarks.md \
  -record-command "bench/pull.sh${*:+ $*}" \
  "$@"
