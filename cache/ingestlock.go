package cache

import (
	"context"
	"path/filepath"

	"github.com/opencontainers/go-digest"
)

// LockBlobIngest takes the exclusive lock on the download of blob d
// (ingest/<hex>.lock), waiting while another process, or another pull of
// this one, holds it, until ctx ends. The holder alone writes
// ingest/<hex>.partial; the others find the blob present when they get the
// lock, so two processes pulling one model download each blob once.
func (c *Cache) LockBlobIngest(ctx context.Context, d digest.Digest) (unlock func(), err error) {
	l, err := lock(ctx, filepath.Join(c.root, "ingest", d.Encoded()+".lock"), true)
	if err != nil {
		return nil, err
	}
	return l.unlock, nil
}

// lockModelCommit takes the exclusive lock on the commit of model d
// (ingest/model-<hex>.lock): the holder alone assembles its directory.
func (c *Cache) lockModelCommit(ctx context.Context, d digest.Digest) (*fileLock, error) {
	return lock(ctx, filepath.Join(c.root, "ingest", "model-"+d.Encoded()+".lock"), true)
}
