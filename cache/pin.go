package cache

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/opencontainers/go-digest"
)

// Pins keep models and blobs from eviction while they are in use: a model
// whose runtime runs or that a request holds, the blobs an in-flight pull
// will lay out. A pin is a shared flock on the object's lock file
// (locks/models/<hex>, locks/blobs/<hex>); an eviction takes the lock
// exclusively without waiting and skips what it cannot take. So pins work
// across every process that shares the cache directory, and a process that
// dies drops its pins with it. Within a process, pins are counted: one
// descriptor per pinned object, however many holders.
type pins struct {
	mu   sync.Mutex
	held map[string]*pinned // by lock path
}

type pinned struct {
	lock  *fileLock
	count int
}

func (c *Cache) modelLockPath(d digest.Digest) string {
	return filepath.Join(c.root, "locks", "models", d.Encoded())
}

func (c *Cache) blobLockPath(d digest.Digest) string {
	return filepath.Join(c.root, "locks", "blobs", d.Encoded())
}

// PinModel keeps model d from eviction, by this process and any other
// sharing the directory, until release is called (once). It does not check
// that the model is present: a pull pins the model it is about to commit.
func (c *Cache) PinModel(d digest.Digest) (release func(), err error) {
	if err := d.Validate(); err != nil {
		return nil, fmt.Errorf("pin model %s: %w", d, err)
	}
	return c.pins.pin(c.modelLockPath(d))
}

// PinBlobs keeps blobs ds from eviction until release is called (once): a
// pull pins the blobs of its model before it checks which ones it has, so
// that none vanishes between that check and the layout.
func (c *Cache) PinBlobs(ds []digest.Digest) (release func(), err error) {
	var releases []func()
	releaseAll := func() {
		for _, r := range releases {
			r()
		}
	}
	for _, d := range ds {
		if err := d.Validate(); err != nil {
			releaseAll()
			return nil, fmt.Errorf("pin blob %s: %w", d, err)
		}
		r, err := c.pins.pin(c.blobLockPath(d))
		if err != nil {
			releaseAll()
			return nil, err
		}
		releases = append(releases, r)
	}
	return releaseAll, nil
}

// pin takes (or counts one more holder of) the shared lock on path. A pin
// waits for an eviction that holds the lock right now (a few unlinks), not
// for other pins.
func (p *pins) pin(path string) (func(), error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held == nil {
		p.held = map[string]*pinned{}
	}
	h := p.held[path]
	if h == nil {
		l, err := lock(context.Background(), path, false)
		if err != nil {
			return nil, fmt.Errorf("pin: %w", err)
		}
		h = &pinned{lock: l}
		p.held[path] = h
	}
	h.count++
	var once sync.Once
	return func() { once.Do(func() { p.unpin(path) }) }, nil
}

func (p *pins) unpin(path string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.held[path]
	if h == nil {
		return
	}
	if h.count--; h.count == 0 {
		h.lock.unlock()
		delete(p.held, path)
	}
}

// pinnedHere reports whether this process holds a pin on path.
func (p *pins) pinnedHere(path string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.held[path] != nil
}
