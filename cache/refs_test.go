package cache

import (
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

func TestRememberRefThenLastResolved(t *testing.T) {
	refs := []string{
		"registry.example.com/models/tiny:v1",
		"127.0.0.1:5000/a/b/c:latest",
		"oci-layout:///srv/models/layout dir:v1",
		"registry.example.com/models/tiny@" + digest.FromString("pinned").String(),
	}
	for _, ref := range refs {
		t.Run(ref, func(t *testing.T) {
			c := openTemp(t, 0)
			if _, err := os.Stat(filepath.Join(c.Root(), "refs")); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("refs/ exists before the first record (stat: %v)", err)
			}
			d1, d2 := digest.FromString("one"), digest.FromString("two")
			before := time.Now()
			if err := c.RememberRef(ref, d1); err != nil {
				t.Fatal(err)
			}
			got, at, err := c.LastResolved(ref)
			if err != nil || got != d1 {
				t.Fatalf("LastResolved = %s, %v; want %s", got, err, d1)
			}
			if at.Before(before.Add(-time.Second)) || at.After(time.Now().Add(time.Second)) {
				t.Errorf("resolved at %s, want about now (%s)", at, before)
			}

			// A newer resolve replaces the record, and no temp file stays.
			if err := c.RememberRef(ref, d2); err != nil {
				t.Fatal(err)
			}
			if got, _, err := c.LastResolved(ref); err != nil || got != d2 {
				t.Fatalf("after a second resolve, LastResolved = %s, %v; want %s", got, err, d2)
			}
			entries, err := os.ReadDir(filepath.Join(c.Root(), "refs"))
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 {
				t.Errorf("refs/ holds %d entries, want 1: %v", len(entries), entries)
			}
		})
	}
}

func TestLastResolvedSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	const ref = "registry.example.com/models/tiny:v1"
	d := digest.FromString("model")
	if err := c.RememberRef(ref, d); err != nil {
		t.Fatal(err)
	}
	reopened, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := reopened.LastResolved(ref); err != nil || got != d {
		t.Fatalf("after reopening, LastResolved = %s, %v; want %s", got, err, d)
	}
}

func TestLastResolvedOfUnknownRef(t *testing.T) {
	c := openTemp(t, 0)
	// Before refs/ exists, and after, for another reference.
	if _, _, err := c.LastResolved("registry.example.com/models/tiny:v1"); !errors.Is(err, ErrModelNotFound) {
		t.Fatalf("unknown ref: err = %v, want ErrModelNotFound", err)
	}
	if err := c.RememberRef("registry.example.com/models/tiny:v1", digest.FromString("x")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.LastResolved("registry.example.com/models/tiny:v2"); !errors.Is(err, ErrModelNotFound) {
		t.Fatalf("other tag: err = %v, want ErrModelNotFound", err)
	}
}

func TestLastResolvedRefusesBadRecords(t *testing.T) {
	const ref = "registry.example.com/models/tiny:v1"
	tests := []struct {
		name    string
		content string
		notErr  error // the error must not be this one
		wantErr error // nor anything but this one, when set
	}{
		{name: "not JSON", content: `{"ref":`, notErr: ErrModelNotFound},
		{name: "bad digest", content: `{"ref":"` + ref + `","digest":"sha256:abc","resolved":"2026-01-02T03:04:05Z"}`, notErr: ErrModelNotFound},
		{name: "record of another ref", content: `{"ref":"elsewhere/x:y","digest":"` + digest.FromString("x").String() + `","resolved":"2026-01-02T03:04:05Z"}`, wantErr: ErrModelNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := openTemp(t, 0)
			if err := os.MkdirAll(c.refsDir(), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(c.refPath(ref), []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			d, _, err := c.LastResolved(ref)
			if err == nil {
				t.Fatalf("LastResolved = %s, want an error", d)
			}
			if tc.notErr != nil && errors.Is(err, tc.notErr) {
				t.Errorf("err = %v, must not be %v (a corrupt record is not an unknown ref)", err, tc.notErr)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestRememberRefRefusesInvalidDigest(t *testing.T) {
	c := openTemp(t, 0)
	if err := c.RememberRef("registry.example.com/models/tiny:v1", "sha256:short"); err == nil {
		t.Fatal("RememberRef accepted an invalid digest")
	}
	if _, _, err := c.LastResolved("registry.example.com/models/tiny:v1"); !errors.Is(err, ErrModelNotFound) {
		t.Errorf("after a refused record, err = %v, want ErrModelNotFound", err)
	}
}

// TestRememberRefConcurrentWritersNeverTear: readers racing many writers
// of one reference always read a whole record naming one of the digests
// written.
func TestRememberRefConcurrentWritersNeverTear(t *testing.T) {
	c := openTemp(t, 0)
	const ref = "registry.example.com/models/tiny:v1"
	written := map[digest.Digest]bool{}
	var ds []digest.Digest
	for i := range 8 {
		d := digest.FromString(string(rune('a' + i)))
		written[d] = true
		ds = append(ds, d)
	}
	if err := c.RememberRef(ref, ds[0]); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if err := c.RememberRef(ref, d); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	stop := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-stop:
				return
			default:
			}
			got, _, err := c.LastResolved(ref)
			if err != nil || !written[got] {
				t.Errorf("LastResolved during writes = %s, %v", got, err)
				return
			}
		}
	}()
	wg.Wait()
	close(stop)
	<-readerDone
}
