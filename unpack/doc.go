// Package unpack extracts tar archives (plain, gzip or zstd) into a model
// directory safely: no entry lands outside the directory (".." components,
// absolute paths, symbolic and hard links pointing out, links through
// symbolic links), device files, FIFOs and sockets are refused, and the
// bytes and entries written are capped.
package unpack
