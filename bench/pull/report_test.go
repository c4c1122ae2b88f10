package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestThrottledMiss(t *testing.T) {
	tests := []struct {
		name                      string
		ratio, orasMiBs, capacity float64
		want                      string
	}{
		{"reachable", 2, 50, 230, "ratio 2.00 < 4"},
		{"exactly at capacity", 2, 57.5, 230, "ratio 2.00 < 4"},
		{"unreachable", 1.59, 126, 230, "ratio 1.59 < 4 (unreachable here: 4 x oras = 504 MiB/s > path capacity writing and hashing 230 MiB/s)"},
		{"not measured", 1.59, 126, math.NaN(), "ratio 1.59 < 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := throttledMiss(tt.ratio, tt.orasMiBs, tt.capacity); got != tt.want {
				t.Errorf("throttledMiss(%v, %v, %v) = %q, want %q", tt.ratio, tt.orasMiBs, tt.capacity, got, tt.want)
			}
		})
	}
}

// pulls is one exit per wall time, in seconds, each with rss bytes.
func pulls(rss int64, seconds ...float64) []exit {
	var out []exit
	for _, s := range seconds {
		out = append(out, exit{wall: time.Duration(s * float64(time.Second)), maxRSS: rss})
	}
	return out
}

func TestReportLines(t *testing.T) {
	single := model{name: "single", repo: "bench/single", files: 1, bytes: 100 << 20}
	res := results{
		limit: limit{disk: []float64{500}, sha: []float64{400}},
		// Judged against the working capacity, 230; the discard one, 660,
		// would make every throttled target look reachable.
		capacity: capacity{discard: []float64{650, 660, 700}, working: []float64{220, 230, 240}},
		rows: []row{
			// 200 MiB/s against 100: 2x, 4 x 100 = 400 is past the path's 230.
			{scenario: scenarioThrottled, model: single, oras: pulls(10<<20, 1), modelgate: pulls(12<<20, 0.5), modelgateNoSync: pulls(12<<20, 0.4)},
			// 100 MiB/s against 50: 2x, 4 x 50 = 200 would fit.
			{scenario: scenarioThrottled, model: single, oras: pulls(10<<20, 2), modelgate: pulls(12<<20, 1), modelgateNoSync: pulls(12<<20, 1)},
			// 200 MiB/s against 40 (2.5 s): 5x.
			{scenario: scenarioThrottled, model: single, oras: pulls(10<<20, 2.5), modelgate: pulls(12<<20, 0.5), modelgateNoSync: pulls(12<<20, 0.5)},
			// 400 MiB/s against 200, 100% of the limit, but 40 MiB of RSS.
			{scenario: scenarioLoopback, model: single, oras: pulls(10<<20, 0.5), modelgate: pulls(40<<20, 0.25), modelgateNoSync: pulls(12<<20, 0.2)},
		},
	}
	r := report{cfg: benchConfig{rate: 50 << 20, runs: 3}, mach: machine{cores: 2}, res: res}
	tests := []struct {
		targets, ofPath, ofLimit string
		noSyncRatio              float64
	}{
		{"no: ratio 2.00 < 4 (unreachable here: 4 x oras = 400 MiB/s > path capacity writing and hashing 230 MiB/s)", "87%", "–", 2.5},
		{"no: ratio 2.00 < 4", "43%", "–", 2},
		{"yes", "87%", "–", 5},
		{"no: RSS 40 MiB ≥ 32 MiB", "–", "100%", 2.5},
	}
	lines := r.lines()
	if len(lines) != len(tests) {
		t.Fatalf("lines: got %d, want %d", len(lines), len(tests))
	}
	for i, tt := range tests {
		l := lines[i]
		if l.targets != tt.targets || l.ofPathCell() != tt.ofPath || l.ofLimitCell() != tt.ofLimit || l.noSyncRatio != tt.noSyncRatio {
			t.Errorf("line %d: targets %q, %% of path %s, %% of limit %s, ratio (sync off) %v; want %q, %s, %s, %v",
				i, l.targets, l.ofPathCell(), l.ofLimitCell(), l.noSyncRatio, tt.targets, tt.ofPath, tt.ofLimit, tt.noSyncRatio)
		}
	}

	text, md := r.text(), r.markdown()
	for _, want := range []string{
		"throttled path capacity, writing and hashing: 230 MiB/s (16 concurrent ranged GETs",
		"one fsync; median of 3; the basis of % of path)",
		"throttled path capacity, bodies discarded: 660 MiB/s (the same 16 GETs, bodies read and discarded; median of 3; information)",
		"% of path", "sync off MiB/s", "ratio (sync off)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	for _, want := range []string{
		"- Throttled path capacity, writing and hashing, measured in this run: **230 MiB/s**, 16 concurrent ranged GETs",
		"% of path and the throttled targets' reachability are judged against it",
		"- Throttled path capacity, bodies discarded, measured in this run: 660 MiB/s, the same 16 GETs",
		"% of path: modelgate's MiB/s over the throttled path's capacity writing and hashing.",
		"carry 230 MiB/s (35% of that), fsync included",
		"| % of path | modelgate sync off | Ratio (sync off) |",
		"| 87% | 0.40 s, 250 MiB/s | 2.50 |",
		"`cache.sync: false` is meant for caches that do not outlive the pod",
		"no client that writes, hashes and syncs what it pulls could reach it on this machine",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// Every table row has as many cells as the header.
	var cells []int
	for _, ln := range strings.Split(md, "\n") {
		if strings.HasPrefix(ln, "| ") || strings.HasPrefix(ln, "|-") {
			cells = append(cells, strings.Count(ln, "|"))
		}
	}
	for i, n := range cells {
		if n != cells[0] {
			t.Errorf("markdown table row %d has %d pipes, the header %d", i, n, cells[0])
		}
	}
}
