package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
)

// The ref memory: refs/<sha256 of the reference, hex>.json records the
// manifest digest a reference last resolved to, so that a gateway whose
// registry is down can still serve what it has (docs/cache.md, "Offline
// restarts"). A reference is hashed for the file name because tags and
// oci-layout:// paths hold characters a file name cannot.

// refRecord is the content of one refs/ file.
type refRecord struct {
	Ref      string        `json:"ref"`
	Digest   digest.Digest `json:"digest"`
	Resolved time.Time     `json:"resolved"`
}

func (c *Cache) refsDir() string { return filepath.Join(c.root, "refs") }

func (c *Cache) refPath(ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(c.refsDir(), hex.EncodeToString(sum[:])+".json")
}

// RememberRef records that ref resolved to manifest digest d now, replacing
// what was recorded before. The record is written atomically (temp file,
// fsync, rename, directory sync): a reader, in this process or another
// sharing the directory, sees the old record or the new one, never a torn
// one; of two concurrent writers, the last rename wins. Safe for concurrent
// use.
func (c *Cache) RememberRef(ref string, d digest.Digest) error {
	if err := d.Validate(); err != nil {
		return fmt.Errorf("remember ref %s: %w", ref, err)
	}
	if err := os.MkdirAll(c.refsDir(), 0o755); err != nil {
		return fmt.Errorf("remember ref %s: %w", ref, err)
	}
	rec := refRecord{Ref: ref, Digest: d, Resolved: time.Now().UTC()}
	if err := writeFileAtomic(c.refPath(ref), rec); err != nil {
		return fmt.Errorf("remember ref %s: %w", ref, err)
	}
	return nil
}

// LastResolved returns the digest ref resolved to when RememberRef last
// recorded it, and when. A reference never recorded is an error wrapping
// ErrModelNotFound; a record that cannot be read or parsed is another error.
// It says nothing about whether the model of that digest is in the cache:
// ask Model.
func (c *Cache) LastResolved(ref string) (digest.Digest, time.Time, error) {
	data, err := os.ReadFile(c.refPath(ref))
	if errors.Is(err, fs.ErrNotExist) {
		return "", time.Time{}, fmt.Errorf("last resolved %s: never recorded: %w", ref, ErrModelNotFound)
	}
	if err != nil {
		return "", time.Time{}, fmt.Errorf("last resolved %s: %w", ref, err)
	}
	var rec refRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return "", time.Time{}, fmt.Errorf("last resolved %s: corrupt record: %w", ref, err)
	}
	if rec.Ref != ref {
		// Only a hand-edited or foreign file gets here (SHA-256 does not
		// collide): it is not this reference's record.
		return "", time.Time{}, fmt.Errorf("last resolved %s: record names %q: %w", ref, rec.Ref, ErrModelNotFound)
	}
	if err := rec.Digest.Validate(); err != nil {
		return "", time.Time{}, fmt.Errorf("last resolved %s: corrupt record: %w", ref, err)
	}
	return rec.Digest, rec.Resolved, nil
}
