//go:build !unix

package cache

import (
	"errors"
	"io/fs"
)

// links is unknown here: a blob counts as linked by its models' records
// only.
func links(fs.FileInfo) uint64 { return 1 }

// freeBytes is not measured here; cache.min_free_bytes needs a Unix.
func freeBytes(string) (int64, error) {
	return 0, errors.New("free space is not measured on this system")
}
