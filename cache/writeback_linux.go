package cache

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing the bytes [off, off+n) of
// f to disk, without waiting for them (sync_file_range with
// SYNC_FILE_RANGE_WRITE). A download writes gigabytes faster than the
// kernel's background writeback begins (at 10% of memory dirty), so without
// it the fsync of Commit would write the whole blob after the last byte
// arrived; with it the disk works while the network does, and the fsync
// finds little left. It is a hint: errors are ignored, and the fsync still
// decides what is durable.
func startWriteback(f *os.File, off, n int64) {
	if n <= 0 {
		return
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SyncFileRange(int(fd), off, n, unix.SYNC_FILE_RANGE_WRITE)
	})
}
