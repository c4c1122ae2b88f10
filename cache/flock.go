package cache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// fileLock is an advisory lock (flock(2)) on one file of the cache. Locks
// are held by open file descriptions: two fileLocks on one path conflict
// even within one process, and the kernel drops them when their process
// dies, so a crash never leaves a stale lock. The lock files themselves may
// stay on disk; they hold nothing.
type fileLock struct {
	f *os.File
}

// errLocked means a non-blocking lock found the file locked by someone
// else.
var errLocked = errors.New("locked by another user of the cache")

// lockPollInterval is how often a blocking lock retries: flock cannot be
// interrupted by a context, so waiting is a loop of non-blocking tries.
const lockPollInterval = 50 * time.Millisecond

// tryLock opens (creating it if needed) path and locks it, shared or
// exclusive, without waiting: errLocked when it is held in a conflicting
// way.
func tryLock(path string, exclusive bool) (*fileLock, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := flock(f, exclusive, false); err != nil {
		f.Close()
		if errors.Is(err, errLocked) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &fileLock{f: f}, nil
}

// lock is tryLock that waits until the lock is free or ctx ends.
func lock(ctx context.Context, path string, exclusive bool) (*fileLock, error) {
	for {
		l, err := tryLock(path, exclusive)
		if !errors.Is(err, errLocked) {
			return l, err
		}
		t := time.NewTimer(lockPollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("lock %s: %w", path, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// unlock releases the lock. It is safe on nil.
func (l *fileLock) unlock() {
	if l == nil || l.f == nil {
		return
	}
	_ = l.f.Close() // closing the description drops the flock
	l.f = nil
}
