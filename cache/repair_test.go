package cache

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// mkfile writes data at path, creating its directory, with mode perm.
func mkfile(t *testing.T, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
}

// age sets the times of path to long before staleTempAge.
func age(t *testing.T, path string) {
	t.Helper()
	old := time.Now().Add(-2 * staleTempAge)
	if err := os.Chtimes(path, old, old); err != nil {
		t.Fatal(err)
	}
}

// holdLock takes the exclusive lock at path as another process would (a
// second open file description conflicts with Repair's own) until the test
// ends.
func holdLock(t *testing.T, path string) {
	t.Helper()
	l, err := tryLock(path, true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.unlock)
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

func TestRepair(t *testing.T) {
	ctx := context.Background()
	model := digest.FromString("manifest of an interrupted commit")
	data := []byte("bytes of a verified blob")
	blobD := digest.FromBytes(data)
	partial := func(c *Cache, d digest.Digest) string { return c.partialPath(d) }
	ingest := func(c *Cache, name string) string { return filepath.Join(c.Root(), "ingest", name) }
	tempDir := func(c *Cache) string { return ingest(c, "model-"+model.Encoded()+"-123456") }

	tests := []struct {
		name string
		// setup makes the leftovers and returns the paths Repair must
		// remove and those it must keep.
		setup func(t *testing.T, c *Cache) (gone, kept []string)
		want  RepairReport
	}{
		{
			name: "interrupted commit's directory",
			setup: func(t *testing.T, c *Cache) ([]string, []string) {
				mkfile(t, filepath.Join(tempDir(c), "sub", "model.bin"), []byte("w"), 0o444)
				return []string{tempDir(c)}, []string{c.commitLockPath(model.Encoded())}
			},
			want: RepairReport{TempDirs: 1},
		},
		{
			name: "directory of a commit in progress elsewhere",
			setup: func(t *testing.T, c *Cache) ([]string, []string) {
				mkfile(t, filepath.Join(tempDir(c), "model.bin"), []byte("w"), 0o644)
				holdLock(t, c.commitLockPath(model.Encoded()))
				return nil, []string{tempDir(c)}
			},
			want: RepairReport{Busy: 1},
		},
		{
			name: "model directory without record",
			setup: func(t *testing.T, c *Cache) ([]string, []string) {
				mkfile(t, filepath.Join(c.modelDir(model), "model.bin"), []byte("w"), 0o644)
				return []string{c.modelDir(model)}, nil
			},
			want: RepairReport{ModelDirs: 1},
		},
		{
			name: "model directory between rename and record of a commit elsewhere",
			setup: func(t *testing.T, c *Cache) ([]string, []string) {
				mkfile(t, filepath.Join(c.modelDir(model), "model.bin"), []byte("w"), 0o644)
				holdLock(t, c.commitLockPath(model.Encoded()))
				return nil, []string{c.modelDir(model)}
			},
			want: RepairReport{Busy: 1},
		},
		{
			name: "model directory without record, pinned by a pull",
			setup: func(t *testing.T, c *Cache) ([]string, []string) {
				mkfile(t, filepath.Join(c.modelDir(model), "model.bin"), []byte("w"), 0o644)
				release, err := c.PinModel(model)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(release)
				return nil, []string{c.modelDir(model)}
			},
			want: RepairReport{Busy: 1},
		},
		{
			name: "model directory being evicted elsewhere",
			setup: func(t *testing.T, c *Cache) ([]string, []string) {
				mkfile(t, filepath.Join(c.modelDir(model), "model.bin"), []byte("w"), 0o644)
				holdLock(t, c.modelLockPath(model))
				return nil, []string{c.modelDir(model)}
			},
			want: RepairReport{Busy: 1},
		},
		{
			name: "record without directory",
			setup: func(t *testing.T, c *Cache) ([]string, []string) {
				mkfile(t, c.modelRecordPath(model), []byte(`{"digest":"`+model.String()+`"}`), 0o644)
				return []string{c.modelRecordPath(model)}, nil
			},
			want: RepairReport{Records: 1},
		},
		{
			name: "complete model",
			setup: func(t *testing.T, c *Cache) ([]string, []string) {
				if err := c.WriteBlob(ctx, blobD, int64(len(data)), bytes.NewReader(data)); err != nil {
					t.Fatal(err)
				}
				// A model's own file may have any name, .tmp included.
				m, err := c.Commit(ctx, model, "r/m:1", []Entry{{Path: "cache.tmp", Digest: blobD, Size: int64(len(data))}}, "cache.tmp")
				if err != nil {
					t.Fatal(err)
				}
				age(t, m.MainFilePath())
				return nil, []string{m.Dir, m.MainFilePath(), c.modelRecordPath(model), c.BlobPath(blobD)}
			},
		},
		{
			name: "partial download of a blob already verified",
			setup: func(t *testing.T, c *Cache) ([]string, []string) {
				if err := c.WriteBlob(ctx, blobD, int64(len(data)), bytes.NewReader(data)); err != nil {
					t.Fatal(err)
				}
				mkfile(t, partial(c, blobD), data[:5], 0o644)
				mkfile(t, c.rangesPath(blobD), []byte(`{}`), 0o644)
				return []string{partial(c, blobD), c.rangesPath(blobD)}, []string{c.BlobPath(blobD), c.ingestLockPath(blobD.Encoded())}
			},
			want: RepairReport{Partials: 1},
		},
		{
			name: "partial download of a verified blob, downloading elsewhere",
			setup: func(t *testing.T, c *Cache) ([]string, []string) {
				if err := c.WriteBlob(ctx, blobD, int64(len(data)), bytes.NewReader(data)); err != nil {
					t.Fatal(err)
				}
				mkfile(t, partial(c, blobD), data[:5], 0o644)
				unlock, err := c.LockBlobIngest(ctx, blobD)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(unlock)
				return nil, []string{partial(c, blobD)}
			},
			want: RepairReport{Busy: 1},
		},
		{
			name: "partial download to resume",
			setup: func(t *testing.T, c *Cache) ([]string, []string) {
				mkfile(t, partial(c, blobD), data[:5], 0o644)
				mkfile(t, c.rangesPath(blobD), []byte(`{}`), 0o644)
				mkfile(t, c.rangesPath(blobD)+".tmp", []byte(`{`), 0o644)
				return []string{c.rangesPath(blobD) + ".tmp"}, []string{partial(c, blobD), c.rangesPath(blobD)}
			},
			want: RepairReport{Resumable: 1, TempFiles: 1},
		},
		{
			name: "record of parts without its partial file",
			setup: func(t *testing.T, c *Cache) ([]string, []string) {
				mkfile(t, c.rangesPath(blobD), []byte(`{}`), 0o644)
				return []string{c.rangesPath(blobD)}, nil
			},
			want: RepairReport{TempFiles: 1},
		},
		{
			name: "temporary files of atomic writes",
			setup: func(t *testing.T, c *Cache) ([]string, []string) {
				old := []string{
					filepath.Join(c.Root(), "models", "sha256", ".tmp-123"),
					filepath.Join(c.Root(), "refs", ".tmp-456"),
					filepath.Join(c.Root(), "index.tmp"),
				}
				for _, p := range old {
					mkfile(t, p, []byte(`{"half":`), 0o600)
					age(t, p)
				}
				// Being written right now, by a writer no lock names.
				fresh := filepath.Join(c.Root(), "models", "sha256", ".tmp-789")
				mkfile(t, fresh, []byte(`{`), 0o600)
				return old, []string{fresh}
			},
			want: RepairReport{TempFiles: 3, Busy: 1},
		},
		{
			name: "lock files and unknown names stay",
			setup: func(t *testing.T, c *Cache) ([]string, []string) {
				kept := []string{
					c.ingestLockPath(blobD.Encoded()),
					c.commitLockPath(model.Encoded()),
					c.modelLockPath(model),
					c.blobLockPath(blobD),
					ingest(c, "notes.txt"),
					ingest(c, "model-not-a-digest-1"),
					ingest(c, "zz.partial"),
				}
				for _, p := range kept {
					mkfile(t, p, nil, 0o644)
				}
				return nil, kept
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := openTemp(t, 0)
			gone, kept := tc.setup(t, c)
			got, err := c.Repair(ctx)
			if err != nil {
				t.Fatalf("Repair: %v", err)
			}
			if got != tc.want {
				t.Errorf("report %+v, want %+v", got, tc.want)
			}
			for _, p := range gone {
				if exists(p) {
					t.Errorf("%s was not removed", p)
				}
			}
			for _, p := range kept {
				if !exists(p) {
					t.Errorf("%s was removed", p)
				}
			}
			// A second run finds nothing more to do.
			again, err := c.Repair(ctx)
			if err != nil || again.Removed() != 0 {
				t.Errorf("second Repair: %+v, %v", again, err)
			}
		})
	}
}

// TestRepairedPartialResumes: a blob made read-only just before its rename
// into blobs/, when the process died there, is a whole partial file that
// the next writer must be able to open, verify and commit.
func TestRepairedPartialResumes(t *testing.T) {
	ctx := context.Background()
	c := openTemp(t, 0)
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096)
	d := digest.FromBytes(data)
	mkfile(t, c.partialPath(d), data[:len(data)/2], 0o444)

	rep, err := c.Repair(ctx)
	if err != nil || rep != (RepairReport{Resumable: 1}) {
		t.Fatalf("Repair = %+v, %v", rep, err)
	}
	if fi, err := os.Stat(c.partialPath(d)); err != nil || fi.Mode().Perm()&0o200 == 0 {
		t.Fatalf("partial file not writable after Repair: %v %v", fi.Mode(), err)
	}
	w, err := c.OpenBlobWriter(d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Offset() != int64(len(data)/2) {
		t.Fatalf("resumes at %d, want %d", w.Offset(), len(data)/2)
	}
	if _, err := w.Append(ctx, bytes.NewReader(data[len(data)/2:])); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if !c.HasBlob(d, int64(len(data))) {
		t.Fatal("blob not committed")
	}
}

// TestRepairBesideCommits runs Repair over and over while commits are in
// flight in the same directory: it must never take a directory being
// assembled, or a model between its rename and its record.
func TestRepairBesideCommits(t *testing.T) {
	ctx := context.Background()
	c := openTemp(t, 0)
	data := []byte("shared weights")
	d := digest.FromBytes(data)
	if err := c.WriteBlob(ctx, d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	// A second Cache on the same directory stands for another process.
	other, err := Open(c.Root(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	const models = 40
	done := make(chan struct{})
	var repairs sync.WaitGroup
	repairs.Add(1)
	var repairErr error
	go func() {
		defer repairs.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := other.Repair(ctx); err != nil {
				repairErr = err
				return
			}
		}
	}()
	var commits sync.WaitGroup
	errs := make(chan error, models)
	for i := range models {
		commits.Add(1)
		go func() {
			defer commits.Done()
			m := digest.FromString(fmt.Sprint("manifest ", i))
			entries := []Entry{{Path: "a/model.bin", Digest: d, Size: int64(len(data))}, {Path: "b/model.bin", Digest: d, Size: int64(len(data))}}
			if _, err := c.Commit(ctx, m, "r/m:1", entries, "a/model.bin"); err != nil {
				errs <- err
			}
		}()
	}
	commits.Wait()
	close(done)
	repairs.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if repairErr != nil {
		t.Fatalf("Repair beside commits: %v", repairErr)
	}
	for i := range models {
		m, err := c.Model(digest.FromString(fmt.Sprint("manifest ", i)))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"a/model.bin", "b/model.bin"} {
			if got, err := os.ReadFile(filepath.Join(m.Dir, f)); err != nil || !bytes.Equal(got, data) {
				t.Errorf("%s/%s: %q, %v", m.Dir, f, got, err)
			}
		}
	}
	rep, err := c.Repair(ctx)
	if err != nil || rep != (RepairReport{}) {
		t.Errorf("Repair after the commits = %+v, %v; want nothing to do", rep, err)
	}
}

func TestRepairStopsWhenContextEnds(t *testing.T) {
	c := openTemp(t, 0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Repair(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Repair = %v, want context.Canceled", err)
	}
}

func TestRepairReportLogs(t *testing.T) {
	var buf bytes.Buffer
	slog.New(slog.NewTextHandler(&buf, nil)).Info("cache repaired", "repair", RepairReport{TempDirs: 1, Partials: 2, Busy: 3})
	for _, want := range []string{"repair.temp_dirs=1", "repair.partials=2", "repair.busy=3", "repair.model_dirs=0"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log line lacks %s: %s", want, buf.String())
		}
	}
}
