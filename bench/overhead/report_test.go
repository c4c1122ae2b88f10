package main

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestFormat(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{fmtDur(-1), "n/a"},
		{fmtDur(123456 * time.Nanosecond), "0.123 ms"},
		{fmtDur(2345 * time.Microsecond), "2.35 ms"},
		{fmtDur(55400 * time.Microsecond), "55.4 ms"},
		{fmtDur(123 * time.Millisecond), "123 ms"},
		{fmtAdded(-50 * time.Microsecond), "-0.050 ms"},
		{fmtAdded(16700 * time.Microsecond), "+16.7 ms"},
		{thousands(1234567), "1,234,567"},
		{thousands(-1000), "-1,000"},
		{thousands(999), "999"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestShareAndRotate(t *testing.T) {
	total := 0
	for r := range 3 {
		total += share(10, 3, r)
	}
	if total != 10 || share(10, 3, 0) != 4 || share(10, 3, 2) != 3 {
		t.Errorf("share(10, 3, ·) = %d, %d, %d", share(10, 3, 0), share(10, 3, 1), share(10, 3, 2))
	}
	if got := fmt.Sprint(rotate([]int{1, 2, 3}, 4)); got != "[2 3 1]" {
		t.Errorf("rotate by 4 = %s, want [2 3 1]", got)
	}
}

func TestCellCPUKnownOnlyIfEveryRunKnew(t *testing.T) {
	var c cell
	c.add(loadRun{latencies: []time.Duration{1, 2}, elapsed: time.Second, cpu: 4 * time.Millisecond, cpuOK: true})
	if cpu, ok := c.cpuPerRequest(); !ok || cpu != 2*time.Millisecond {
		t.Errorf("after one run: %v, %v; want 2ms, true", cpu, ok)
	}
	c.add(loadRun{latencies: []time.Duration{3}, elapsed: time.Second})
	if _, ok := c.cpuPerRequest(); ok {
		t.Error("CPU known after a run that could not tell it")
	}
	if got := c.throughput(); got != 1.5 {
		t.Errorf("throughput = %v, want 1.5", got)
	}
}

// testReport is a report with made-up measurements: modelgate adds 0.5 ms
// at every percentile, nginx 1 ms.
func testReport(clients []int) report {
	cfg := config{clients: clients, models: 1000, requests: 100, rounds: 1, streamRequests: 10, coldRuns: 1, startRuns: 1, chunks: 8}
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	lat := func(base float64) []time.Duration {
		var out []time.Duration
		for i := range 100 {
			out = append(out, ms(base+float64(i)/100))
		}
		return out
	}
	res := results{
		load:   map[cellKey]*cell{},
		stream: map[string][]streamSample{},
		start:  map[int][]time.Duration{1: {ms(20)}, 1000: {ms(40)}},
		cold: coldResults{aloneReady: []time.Duration{ms(15)}, alone: []time.Duration{ms(17)}, models: map[string]*coldSamples{
			modelName:  {total: []time.Duration{ms(40)}, locate: []time.Duration{ms(1)}, prepare: []time.Duration{ms(1)}, runtime: []time.Duration{ms(30)}, forward: []time.Duration{ms(1)}},
			pinnedName: {total: []time.Duration{ms(130)}, locate: []time.Duration{ms(1)}, prepare: []time.Duration{ms(1)}, runtime: []time.Duration{ms(30)}, forward: []time.Duration{ms(1)}},
		}},
	}
	for _, c := range clients {
		res.load[cellKey{wayDirect, c}] = &cell{latencies: lat(1), elapsed: time.Second}
		res.load[cellKey{wayModelgate, c}] = &cell{latencies: lat(1.5), elapsed: time.Second, cpu: 10 * time.Millisecond, cpuOK: true}
		res.load[cellKey{wayNginx, c}] = &cell{latencies: lat(2), elapsed: time.Second}
	}
	for i, w := range ways {
		res.stream[w] = []streamSample{{ttfb: ms(0.2 + float64(i)), total: ms(1)}}
	}
	return report{cfg: cfg, mach: machine{cores: 2}, res: res}
}

func TestJudge(t *testing.T) {
	rep := testReport([]int{1, 64})
	got := map[string]string{}
	for _, g := range rep.judge() {
		got[strings.Fields(g.what)[0]] = g.verdict() + ": " + g.measured
	}
	want := map[string]string{
		"p99":       "yes: +0.500 ms at 64 clients",
		"modelgate": "yes: modelgate +0.500 ms, nginx +1.00 ms",
		"streaming": "yes: +1.00 ms (p99 +1.00 ms)",
		"gateway's": "no: tag reference 23.0 ms, digest reference 113 ms",
		"start":     "yes: 40.0 ms with 1,000 models (1 model: 20.0 ms)",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: got %q, want %q", k, got[k], w)
		}
	}
}

func TestJudgeWithout64Clients(t *testing.T) {
	rep := testReport([]int{1, 16})
	for _, g := range rep.judge()[:2] {
		if g.judged {
			t.Errorf("%q judged at 16 clients: %s", g.what, g.measured)
		}
	}
}

func TestReportRenders(t *testing.T) {
	rep := testReport([]int{1, 16, 64})
	rep.goals = rep.judge()
	for name, out := range map[string]string{"text": rep.text(), "markdown": rep.markdown()} {
		if strings.Contains(out, "%!") {
			t.Errorf("%s has a formatting error:\n%s", name, out)
		}
	}
	md := rep.markdown()
	if !strings.HasPrefix(md, sectionHeading+"\n") {
		t.Errorf("markdown starts with %.40q, want the section heading", md)
	}
	if strings.Contains(md, "\n## ") {
		t.Error("markdown holds a second ## heading: benchdoc would split the section there")
	}
}

func TestNginxConfigRenders(t *testing.T) {
	conf := fmt.Sprintf(nginxConfig, "", "/tmp/p", 8081, 64, 8082)
	for _, want := range []string{"pid /tmp/p/nginx.pid;", "server 127.0.0.1:8081;", "keepalive 64;", "listen 127.0.0.1:8082;", "proxy_buffering off;"} {
		if !strings.Contains(conf, want) {
			t.Errorf("config lacks %q:\n%s", want, conf)
		}
	}
	if strings.Contains(conf, "%!") {
		t.Errorf("config has a formatting error:\n%s", conf)
	}
}
