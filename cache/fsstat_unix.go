//go:build unix

package cache

import (
	"io/fs"
	"syscall"

	"golang.org/x/sys/unix"
)

// links is the hard-link count of a file: 1 for a blob that no model
// directory links.
func links(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

// freeBytes is the space an unprivileged writer may still use on the file
// system of path.
func freeBytes(path string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}
