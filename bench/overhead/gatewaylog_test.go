package main

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestFindRecords(t *testing.T) {
	log := `{"time":"2026-11-25T04:54:01.000000001Z","level":"INFO","msg":"modelgate listening","addr":"127.0.0.1:1"}
testruntime: a line that is not JSON
{"time":"2026-11-25T04:54:01.5Z","level":"INFO","msg":"runtime ready","model":"other","port":1111}
{"time":"2026-11-25T04:54:02.25Z","level":"INFO","msg":"runtime ready","model":"bench","runtime":"testruntime","pid":7,"port":2222}
{"time":"2026-11-25T04:54:03Z","level":"INFO","msg":"runtime ready","model":"bench","port":3333}
`
	path := filepath.Join(t.TempDir(), "gw.log")
	if err := os.WriteFile(path, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, err := findRecords(path, "bench", msgReady)
	if err != nil {
		t.Fatal(err)
	}
	r := recs[msgReady]
	if r.Port != 2222 || !r.Time.Equal(time.Date(2026, 11, 25, 4, 54, 2, 250e6, time.UTC)) {
		t.Errorf("got %+v, want the first record for bench", r)
	}
	if _, err := findRecords(path, "bench", msgReady, msgStarting); !errors.Is(err, errNoLogRecord) {
		t.Errorf("missing record: got %v, want errNoLogRecord", err)
	}
}
