package cache

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
)

func openTemp(t *testing.T, maxBytes int64) *Cache {
	t.Helper()
	c, err := Open(t.TempDir(), Options{MaxBytes: maxBytes})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWriteBlobVerifiesBeforeItBecomesVisible(t *testing.T) {
	ctx := context.Background()
	data := []byte("weights of a very small model")
	d := digest.FromBytes(data)
	tests := []struct {
		name    string
		body    []byte
		size    int64
		wantErr error
	}{
		{"good", data, int64(len(data)), nil},
		{"wrong bytes same length", bytes.ToUpper(data), int64(len(data)), ErrDigestMismatch},
		{"short body", data[:5], int64(len(data)), ErrDigestMismatch},
		{"long body", append(append([]byte{}, data...), 'x'), int64(len(data)), ErrDigestMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := openTemp(t, 0)
			err := c.WriteBlob(ctx, d, tc.size, bytes.NewReader(tc.body))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("WriteBlob = %v, want %v", err, tc.wantErr)
			}
			if got := c.HasBlob(d, int64(len(data))); got != (tc.wantErr == nil) {
				t.Errorf("HasBlob = %v after %v", got, err)
			}
			if left, _ := filepath.Glob(filepath.Join(c.Root(), "ingest", "*")); len(left) != 0 {
				t.Errorf("ingest left %v", left)
			}
			if tc.wantErr == nil {
				got, err := os.ReadFile(c.BlobPath(d))
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("blob content %q, %v", got, err)
				}
				if fi, _ := os.Stat(c.BlobPath(d)); fi.Mode().Perm()&0o222 != 0 {
					t.Errorf("blob is writable: %v", fi.Mode())
				}
			}
		})
	}
}

func TestWriteBlobStopsWhenContextEnds(t *testing.T) {
	c := openTemp(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	data := []byte("x")
	if err := c.WriteBlob(ctx, digest.FromBytes(data), 1, bytes.NewReader(data)); !errors.Is(err, context.Canceled) {
		t.Fatalf("WriteBlob = %v, want context.Canceled", err)
	}
}

func TestCommitLinksSharedBlobsOnce(t *testing.T) {
	ctx := context.Background()
	c := openTemp(t, 0)
	weights, tok := []byte("shared weights"), []byte("tokenizer")
	for _, b := range [][]byte{weights, tok} {
		if err := c.WriteBlob(ctx, digest.FromBytes(b), int64(len(b)), bytes.NewReader(b)); err != nil {
			t.Fatal(err)
		}
	}
	files := []Entry{
		{Path: "model.gguf", Digest: digest.FromBytes(weights), Size: int64(len(weights))},
		{Path: "tok/tokenizer.json", Digest: digest.FromBytes(tok), Size: int64(len(tok))},
	}
	m1, err := c.Commit(ctx, digest.FromString("manifest one"), "r/a:1", files, "model.gguf")
	if err != nil {
		t.Fatal(err)
	}
	m2, err := c.Commit(ctx, digest.FromString("manifest two"), "r/b:1", files[:1], "model.gguf")
	if err != nil {
		t.Fatal(err)
	}
	blob, _ := os.Stat(c.BlobPath(digest.FromBytes(weights)))
	for _, m := range []*Model{m1, m2} {
		fi, err := os.Stat(m.MainFilePath())
		if err != nil || !os.SameFile(fi, blob) {
			t.Errorf("%s: main file is not the blob (err %v)", m.Dir, err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(m1.Dir, "tok", "tokenizer.json")); !bytes.Equal(got, tok) {
		t.Errorf("nested file content %q", got)
	}

	// Read back from disk, as a restarted gateway would.
	again, err := c.Model(m1.Digest)
	if err != nil {
		t.Fatal(err)
	}
	if again.Dir != m1.Dir || again.Size != int64(len(weights)+len(tok)) || len(again.Files) != 2 || again.Refs[0] != "r/a:1" {
		t.Errorf("record read back = %+v", again)
	}
}

func TestModelWithoutRecordIsNotPresent(t *testing.T) {
	c := openTemp(t, 0)
	d := digest.FromString("m")
	if err := os.MkdirAll(c.modelDir(d), 0o755); err != nil {
		t.Fatal(err)
	}
	// A directory left by an interrupted commit, with no record.
	if _, err := c.Model(d); !errors.Is(err, ErrModelNotFound) {
		t.Fatalf("Model = %v, want ErrModelNotFound", err)
	}
}

func TestCommitRefusesUnsafePaths(t *testing.T) {
	c := openTemp(t, 0)
	data := []byte("x")
	if err := c.WriteBlob(context.Background(), digest.FromBytes(data), 1, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"../escape", "/etc/passwd", "a/../../b", "", ".", "a//b", "./a"} {
		_, err := c.Commit(context.Background(), digest.FromString(p), "r/a:1", []Entry{{Path: p, Digest: digest.FromBytes(data), Size: 1}}, "")
		if !errors.Is(err, ErrUnsafePath) {
			t.Errorf("path %q: Commit = %v, want ErrUnsafePath", p, err)
		}
	}
	for _, p := range []string{"model.gguf", "a/b/c.json", "weird name..txt"} {
		if err := CheckPath(p); err != nil {
			t.Errorf("CheckPath(%q) = %v", p, err)
		}
	}
}

func TestCheckFits(t *testing.T) {
	if err := openTemp(t, 100).CheckFits(101); !errors.Is(err, ErrTooLarge) {
		t.Errorf("CheckFits over budget = %v", err)
	}
	if err := openTemp(t, 100).CheckFits(100); err != nil {
		t.Errorf("CheckFits at budget = %v", err)
	}
	if err := openTemp(t, 0).CheckFits(1 << 50); err != nil {
		t.Errorf("CheckFits without budget = %v", err)
	}
}
