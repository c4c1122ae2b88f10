//go:build 386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm

package tensor

// The kernels read F32 and F16 tensor bytes in place, as host-order
// values: GGUF is little-endian, and so are the hosts this file builds for.
// On a big-endian host the package does not build, rather than compute
// wrong numbers.
const littleEndian = true
