package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"os"
	"time"
)

// limitChunk is the buffer both limit measurements work through: written
// again and again to the file, hashed again and again in memory.
const limitChunk = 64 << 20

// limit is the machine's own ceiling for a pull, measured in the run: a pull
// must write every byte to disk and hash it with SHA-256, so neither client
// can beat the slower of the two (on one core: a blob's hash is sequential).
type limit struct {
	disk []float64 // MiB/s writing limitSize bytes to a new file with fsync, per sample
	sha  []float64 // MiB/s hashing limitSize bytes on one goroutine, per sample
}

// mibPerSec is the limit: the lower of the two medians.
func (l limit) mibPerSec() float64 { return min(median(l.disk), median(l.sha)) }

// measureLimit takes n samples of each, alternately, writing into dir (the
// directory the pulls write to).
func measureLimit(ctx context.Context, dir string, size int64, n int) (limit, error) {
	buf := make([]byte, limitChunk)
	rng := rand.NewChaCha8([32]byte{'l', 'i', 'm', 'i', 't'})
	_, _ = rng.Read(buf)
	var l limit
	for range n {
		if err := ctx.Err(); err != nil {
			return limit{}, err
		}
		d, err := diskWrite(dir, buf, size)
		if err != nil {
			return limit{}, fmt.Errorf("measure disk write: %w", err)
		}
		l.disk = append(l.disk, mibPerSec(size, d))
		l.sha = append(l.sha, mibPerSec(size, hashTime(buf, size)))
	}
	return l, nil
}

// diskWrite times writing size bytes of buf, repeated, to a new file in dir
// and fsyncing it; the file is removed after.
func diskWrite(dir string, buf []byte, size int64) (time.Duration, error) {
	f, err := os.CreateTemp(dir, "limit-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	begin := time.Now()
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		if _, err := f.Write(buf[:n]); err != nil {
			return 0, err
		}
		left -= n
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return time.Since(begin), nil
}

// hashTime times SHA-256 over size bytes of buf, repeated, on the calling
// goroutine.
func hashTime(buf []byte, size int64) time.Duration {
	h := sha256.New()
	begin := time.Now()
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		h.Write(buf[:n])
		left -= n
	}
	_ = h.Sum(nil)
	return time.Since(begin)
}
