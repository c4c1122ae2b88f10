package push_test

import (
	"bytes"
	"crypto/rand"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelgate/modelgate/internal/testregistry"
	"github.com/modelgate/modelgate/progress"
	"github.com/modelgate/modelgate/push"
)

// TestPushShowsUploadProgress: uploads stream through the progress
// tracker (plain lines per file), and a bar's total leaves out the blobs
// the registry already holds.
func TestPushShowsUploadProgress(t *testing.T) {
	reg := testregistry.Start(t)
	dir := t.TempDir()
	weights := make([]byte, 1<<20)
	rand.Read(weights)
	writeFiles(t, dir, map[string][]byte{"big.gguf": weights, "README.md": []byte("# big\n")})
	ref := reg.Host() + "/models/big:v1"

	var out bytes.Buffer
	// A nanosecond interval writes a line on every read after the first
	// instant: net/http reads a body at most 32 KiB at a time.
	opts := push.Options{Progress: &out, ProgressOptions: progress.Options{Mode: progress.Plain, Interval: time.Nanosecond}}
	if _, err := push.Directory(t.Context(), newClient(reg), dir, ref, opts); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"uploading  big.gguf (1MiB)\n",
		"uploading big.gguf: ",
		" of 1MiB (",
		"uploaded big.gguf: 1MiB in ",
		"pushed 2 files (1MiB): uploaded 2 blobs (1MiB), 0 already in the registry, in ",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// Only README.md changed: the bar counts its 11 bytes, not big.gguf's.
	writeFiles(t, dir, map[string][]byte{"README.md": []byte("# big, v2\n\n")})
	out.Reset()
	opts.ProgressOptions = progress.Options{Mode: progress.Bar}
	res, err := push.Directory(t.Context(), newClient(reg), dir, reg.Host()+"/models/big:v2", opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Uploaded != 1 || res.UploadedBytes != 11 {
		t.Fatalf("second push: %+v", res)
	}
	got := out.String()
	if !strings.Contains(got, "100%") || !strings.Contains(got, "(11/11 B") {
		t.Errorf("bar does not end at 11 of 11 bytes:\n%q", got)
	}
	// Lines start a line of their own: at the start, after a newline, or
	// on the bar's line once cleared ("\r").
	for _, line := range []string{
		"exists     big.gguf (1MiB, already in the registry)\n",
		"uploading  README.md (11B)\n",
		"pushed 2 files (1MiB): uploaded 1 blobs (11B), 1 already in the registry, in ",
	} {
		if !regexp.MustCompile(`(\A|\n|\r)` + regexp.QuoteMeta(line)).MatchString(got) {
			t.Errorf("%q not on a line of its own:\n%q", line, got)
		}
	}
	if !strings.Contains(got, "\npushed 2 files") {
		t.Errorf("the bar's line is not ended before the summary:\n%q", got)
	}
}

func TestPushRefusesUnknownProgressMode(t *testing.T) {
	reg := testregistry.Start(t)
	dir := t.TempDir()
	writeFiles(t, dir, map[string][]byte{"model.gguf": []byte("GGUF")})
	_, err := push.Directory(t.Context(), newClient(reg), dir, reg.Host()+"/models/bad:v1",
		push.Options{ProgressOptions: progress.Options{Mode: "fancy"}})
	if !errors.Is(err, progress.ErrUnknownMode) {
		t.Fatalf("error %v, want ErrUnknownMode", err)
	}
	if reqs := reg.Requests(); len(reqs) != 0 {
		t.Errorf("refused push still talked to the registry: %v", reqs)
	}
}
