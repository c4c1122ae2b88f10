#!/usr/bin/env bash
# Builds llama.cpp's llama-server, the peer tinyllm is benchmarked against.
# llama.cpp's source ships inside the npm package node-llama-cpp as a git
# bundle; this fetches it with npm, checks it out and builds only the server
# target with cmake (15-40 minutes on 2 cores, so never in CI).
#
# Usage: bench/build-llama-server.sh [OUTDIR]   (default ~/.cache/modelgate-bench)
# Prints the path of the llama-server binary on its last line.
set -euo pipefail
out=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/modelgate-bench}
version=3.21.1
bin="$out/llama.cpp/build/bin/llama-server"
if [ -x "$bin" ]; then echo "$bin"; exit 0; fi
command -v cmake >/dev/null || { echo "installing cmake" >&2; apt-get install -y -qq cmake >/dev/null; }
mkdir -p "$out"
cd "$out"
if [ ! -f "node-llama-cpp-$version.tgz" ]; then
  echo "fetching node-llama-cpp@$version (it carries llama.cpp's source)" >&2
  npm pack --silent "node-llama-cpp@$version" >/dev/null
fi
if [ ! -d llama.cpp ]; then
  tar -xzf "node-llama-cpp-$version.tgz" package/llama/gitRelease.bundle
  git clone -q package/llama/gitRelease.bundle llama.cpp
fi
cd llama.cpp
echo "llama.cpp at $(git rev-parse --short HEAD); building llama-server (this takes a while)" >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF >&2
cmake --build build --target llama-server -j "$(nproc)" >&2
echo "$bin"
