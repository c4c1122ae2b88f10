package cache

import (
	"context"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
)

// prefixHasher hashes a file written in parts, in any order, while it is
// being written. The hash covers the prefix of the file whose bytes have
// all been written (the parts before it complete, and the part it is in
// written from its start up to the mark), and follows it two ways:
//
//   - inline: bytes written exactly at the end of the hashed prefix are
//     hashed by the writer, from the buffer it just wrote (no copy back);
//     one stream, the common case on a fast link, is hashed this way whole;
//   - catching up: a goroutine hashes, read back from the file (the page
//     cache, for bytes just written), what the prefix gained from parts
//     written ahead of it, when they join it.
//
// When the last part is done the hash of the whole file is ready moments
// later instead of after a full re-read. Bytes are hashed as they reached
// the file (the writer hashes what it wrote, the goroutine what it reads),
// and bytes an earlier attempt or process left are hashed from the file.
type prefixHasher struct {
	f        *os.File
	size     int64
	partSize int64

	// hashMu is held while hashing; hashed and h change only under it
	// (and hashed is read under mu too, by mark and wait).
	hashMu sync.Mutex
	h      hash.Hash

	mu     sync.Mutex
	filled []int64 // per part: bytes written contiguously from its start
	hashed int64   // bytes of the file hashed so far
	err    error   // a read of the file failed

	kick     chan struct{} // the prefix may have grown (buffered, never blocks)
	stop     chan struct{} // closed to end the goroutine
	finished chan struct{} // closed when the goroutine ends
}

func newPrefixHasher(f *os.File, size, partSize int64, h hash.Hash, parts int) *prefixHasher {
	p := &prefixHasher{
		f: f, size: size, partSize: partSize, h: h,
		filled:   make([]int64, parts),
		kick:     make(chan struct{}, 1),
		stop:     make(chan struct{}),
		finished: make(chan struct{}),
	}
	go p.run()
	return p
}

// partLen is the length of part i.
func (p *prefixHasher) partLen(i int) int64 {
	return min(p.partSize, p.size-int64(i)*p.partSize)
}

// written records that part i holds its bytes from its start up to
// from+len(data), data being the bytes just written at from (nil when they
// are not at hand). A mark that is not contiguous with what the part has is
// ignored (the part is rewritten from its start by a later attempt). When
// data lands exactly at the end of the hashed prefix, it is hashed here.
func (p *prefixHasher) written(i int, from int64, n int64, data []byte) {
	start := int64(i) * p.partSize
	p.mu.Lock()
	if from <= p.filled[i] && from+n > p.filled[i] {
		p.filled[i] = from + n
	}
	atFrontier := data != nil && p.hashed == start+from
	p.mu.Unlock()
	if atFrontier && p.hashMu.TryLock() {
		// Checked again under hashMu: the goroutine may have moved on.
		if p.hashed == start+from {
			p.h.Write(data)
			p.mu.Lock()
			p.hashed += int64(len(data))
			p.mu.Unlock()
		}
		p.hashMu.Unlock()
	}
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// complete records part i as wholly written (a part a record says is done).
func (p *prefixHasher) complete(i int) { p.written(i, 0, p.partLen(i), nil) }

// mark returns the end of the prefix whose bytes are all written, and the
// end of the prefix hashed.
func (p *prefixHasher) mark() (mark, hashed int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := int(p.hashed / p.partSize)
	for i < len(p.filled) && p.filled[i] == p.partLen(i) {
		i++
	}
	if i == len(p.filled) {
		return p.size, p.hashed
	}
	return int64(i)*p.partSize + p.filled[i], p.hashed
}

func (p *prefixHasher) run() {
	defer close(p.finished)
	buf := make([]byte, ingestBufSize)
	for {
		if err := p.catchUp(buf); err != nil {
			p.mu.Lock()
			p.err = err
			p.mu.Unlock()
			return
		}
		if _, hashed := p.mark(); hashed == p.size {
			return
		}
		select {
		case <-p.kick:
		case <-p.stop:
			return
		}
	}
}

// catchUp hashes, read back from the file, the written prefix not hashed
// yet.
func (p *prefixHasher) catchUp(buf []byte) error {
	p.hashMu.Lock()
	defer p.hashMu.Unlock()
	for {
		mark, hashed := p.mark()
		if hashed >= mark {
			return nil
		}
		n := min(int64(len(buf)), mark-hashed)
		if _, err := p.f.ReadAt(buf[:n], hashed); err != nil {
			return fmt.Errorf("hash ingest: read at %d: %w", hashed, err)
		}
		p.h.Write(buf[:n])
		p.mu.Lock()
		p.hashed += n
		p.mu.Unlock()
	}
}

// wait returns when the whole file is hashed, with the number of bytes
// hashed, or when ctx ends.
func (p *prefixHasher) wait(ctx context.Context) (int64, error) {
	select {
	case <-p.finished:
	case <-ctx.Done():
		return 0, context.Cause(ctx)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err != nil {
		return p.hashed, p.err
	}
	if p.hashed != p.size {
		return p.hashed, fmt.Errorf("hash ingest: %d of %d bytes written: %w", p.hashed, p.size, io.ErrUnexpectedEOF)
	}
	return p.hashed, nil
}

// sum returns the hash of the whole file; call it after wait succeeded.
func (p *prefixHasher) sum() hash.Hash {
	p.hashMu.Lock()
	defer p.hashMu.Unlock()
	return p.h
}

// close ends the goroutine and waits for it, so that the file can be closed.
func (p *prefixHasher) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.finished
}
