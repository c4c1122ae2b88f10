package unpack

import (
	"errors"
	"fmt"
)

// The errors Extract returns, wrapped with the entry they concern
// ("unpack entry \"a/../../x\": unsafe path: ..."); test with errors.Is.
// Errors of the reader passed to Extract, of the destination's file system
// and of the context are returned wrapped as they are, never as ErrCorrupt.
var (
	// ErrUnsafe means an entry was refused because it could land or point
	// outside the destination: an absolute or escaping name, a name through
	// a symbolic link, a symbolic link leaving the destination, a hard link
	// to outside or to a missing or non-regular file, a device, a FIFO, an
	// unknown entry type, or a path already there that the entry may not
	// replace. Nothing of the refused entry is written.
	ErrUnsafe = errors.New("unsafe path")
	// ErrTooLarge means the archive exceeded Options.MaxBytes or
	// Options.MaxEntries. A file too large for the remaining byte budget
	// (by its header) is refused before any of it is written.
	ErrTooLarge = errors.New("archive too large")
	// ErrCorrupt means the stream is not a valid tar, gzip or zstd stream
	// (bad header, bad checksum, truncated).
	ErrCorrupt = errors.New("corrupt archive")
)

// unsafef returns an ErrUnsafe error with a reason.
func unsafef(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsafe, fmt.Sprintf(format, args...))
}

// entryError names the entry an error concerns.
func entryError(name string, err error) error {
	return fmt.Errorf("unpack entry %q: %w", name, err)
}
