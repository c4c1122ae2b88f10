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
// being written: a goroutine follows the prefix of the file whose bytes have
// all been written (the parts before it complete, and the part it is in
// written from its start up to the mark) and hashes it, read back from the
// file (the page cache, for bytes just written). When the last part is done,
// the hash of the whole file is ready moments later instead of a full
// re-read after the download.
//
// The bytes are still hashed from the file, never from what the network
// gave: what is verified is what a reader of the blob will get.
type prefixHasher struct {
	f        *os.File
	size     int64
	partSize int64
	h        hash.Hash

	mu     sync.Mutex
	filled []int64 // per part: bytes written contiguously from its start
	hashed int64   // bytes of the file hashed so far (guarded by mu for readers)
	err    error   // a read of the file failed

	kick     chan struct{} // a part advanced (buffered, never blocks)
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
// start+n. A mark that is not contiguous with what the part has is ignored
// (the part is rewritten from its start by a later attempt).
func (p *prefixHasher) written(i int, from, n int64) {
	p.mu.Lock()
	if from <= p.filled[i] && from+n > p.filled[i] {
		p.filled[i] = from + n
	}
	p.mu.Unlock()
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// complete records part i as wholly written (a part a record says is done).
func (p *prefixHasher) complete(i int) { p.written(i, 0, p.partLen(i)) }

// mark returns the end of the prefix whose bytes are all written.
func (p *prefixHasher) mark() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	i := int(p.hashed / p.partSize)
	for i < len(p.filled) && p.filled[i] == p.partLen(i) {
		i++
	}
	if i == len(p.filled) {
		return p.size
	}
	return int64(i)*p.partSize + p.filled[i]
}

func (p *prefixHasher) run() {
	defer close(p.finished)
	buf := make([]byte, ingestBufSize)
	for {
		for {
			mark := p.mark()
			if p.hashed >= mark {
				break
			}
			n := min(int64(len(buf)), mark-p.hashed)
			if _, err := p.f.ReadAt(buf[:n], p.hashed); err != nil {
				p.mu.Lock()
				p.err = fmt.Errorf("hash ingest: read at %d: %w", p.hashed, err)
				p.mu.Unlock()
				return
			}
			p.h.Write(buf[:n])
			p.mu.Lock()
			p.hashed += n
			p.mu.Unlock()
		}
		if p.hashed == p.size {
			return
		}
		select {
		case <-p.kick:
		case <-p.stop:
			return
		}
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

// close ends the goroutine and waits for it, so that the file can be closed.
func (p *prefixHasher) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	<-p.finished
}
