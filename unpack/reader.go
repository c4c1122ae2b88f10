package unpack

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// maxZstdWindow bounds the memory a zstd frame may ask the decoder for.
// 128 MiB is the reference zstd CLI's default decompression limit
// (--long=27, https://github.com/facebook/zstd/blob/dev/programs/zstd.1.md);
// "zstd --ultra -22" stays within it, a hostile 3 TB window does not.
const maxZstdWindow = 1 << 27

// maxTrailer bounds what is read after the tar end-of-archive marker of a
// compressed stream to reach the compressor's trailer and verify its
// checksum (tar writers pad to a record, 10 KiB for GNU tar). A longer tail
// is left unread and unverified rather than read without bound.
const maxTrailer = 1 << 20

// headerAllowance is the decompressed bytes allowed per entry beyond its
// data: the header block, PAX records (names are at most maxNameLen) and
// padding.
const headerAllowance = 16 << 10

// streamLimit bounds the decompressed stream as a whole. The byte budgets
// bound the data of entries; this also bounds what archive/tar reads
// without returning an entry (PAX and GNU headers, each up to 1 MiB), which
// a small zstd bomb could otherwise repeat for hours.
func streamLimit(o Options) int64 {
	return 2*o.MaxBytes + int64(o.MaxEntries+1)*headerAllowance + maxTrailer
}

// limitReader fails with ErrTooLarge once more than n bytes are read.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("%w: decompressed stream longer than its limit", ErrTooLarge)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}

// sourceReader is the caller's reader: it checks the context before each
// read and remembers the reader's own failure, so that a network error is
// reported as such and not as a corrupt archive.
type sourceReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.err = err
	}
	return n, err
}

// readError classifies an error met while reading the archive: the
// context's error, the source's own error, or else ErrCorrupt.
func (s *sourceReader) readError(err error) error {
	if cerr := s.ctx.Err(); cerr != nil {
		return cerr
	}
	if errors.Is(err, ErrTooLarge) {
		return err
	}
	if s.err != nil {
		return s.err
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: %w", ErrCorrupt, err)
}

// decompressor returns the decompressed stream of src and the function that
// releases it. The zstd decoder runs without goroutines (concurrency 1) so
// that it reads src only when read.
func decompressor(src io.Reader, c Compression) (io.Reader, func(), error) {
	switch c {
	case None:
		return src, func() {}, nil
	case Gzip:
		zr, err := gzip.NewReader(src)
		if err != nil {
			return nil, nil, err
		}
		return zr, func() { _ = zr.Close() }, nil
	case Zstd:
		zr, err := zstd.NewReader(src,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, nil, err
		}
		return zr, zr.Close, nil
	default:
		return nil, nil, fmt.Errorf("unknown compression %q", string(c))
	}
}

// ctxReader checks the context before each read of an entry's data, so that
// a long copy out of a highly compressed stream stops when it is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
