package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"time"
)

// maxLogLine caps one line of the gateway's log; a longer one fails the
// read (the gateway's records are a few hundred bytes).
const maxLogLine = 1 << 20

// logRecord is the part of a record of the gateway's JSON log
// (--log-format json, log/slog's JSONHandler) that the benchmark reads.
type logRecord struct {
	Time  time.Time `json:"time"`
	Msg   string    `json:"msg"`
	Model string    `json:"model"`
	Port  int       `json:"port"`
}

// Messages of the gateway's log the benchmark reads (gateway/fleet.go and
// runtime/process.go): the cache lookup or pull done, just before the
// runtime's exec, and its health check passed.
const (
	msgInCache  = "model in cache"
	msgStarting = "runtime starting"
	msgReady    = "runtime ready"
)

// findRecords returns, for each of msgs, the first record of the log at
// path with that message for model, stopping once all are found. It fails
// wrapping errNoLogRecord if any is missing.
func findRecords(path, model string, msgs ...string) (map[string]logRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read gateway log: %w", err)
	}
	defer f.Close()
	want := map[string]bool{}
	for _, m := range msgs {
		want[m] = true
	}
	found := map[string]logRecord{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), maxLogLine)
	for sc.Scan() && len(found) < len(want) {
		var r logRecord
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.Model != model || !want[r.Msg] {
			continue
		}
		if _, ok := found[r.Msg]; !ok {
			found[r.Msg] = r
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read gateway log %s: %w", path, err)
	}
	for _, m := range msgs {
		if _, ok := found[m]; !ok {
			return nil, fmt.Errorf("read gateway log %s: %w: %q for model %q", path, errNoLogRecord, m, model)
		}
	}
	return found, nil
}
