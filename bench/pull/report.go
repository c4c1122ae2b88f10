package main

import (
	"fmt"
	"math"
	"strings"
	"text/tabwriter"
	"time"
)

// sectionHeading starts this benchmark's section of docs/benchmarks.md.
const sectionHeading = "## Pulls: modelgate vs oras pull"

// The targets of the issue that asked for this benchmark.
const (
	loopbackRatioTarget  = 1.0      // oras time / modelgate time, at least
	loopbackLimitTarget  = 0.8      // modelgate's share of the machine's limit, at least
	throttledRatioTarget = 4.0      // oras time / modelgate time, at least
	rssTarget            = 32 << 20 // modelgate's peak RSS, below
)

// report renders results for the terminal and for docs/benchmarks.md.
type report struct {
	cfg  benchConfig
	mach machine
	res  results
}

// line is one row of the table, computed. The targets are judged on
// modelgate's defaults (mg*); the sync-off figures (noSync*) are informative.
type line struct {
	scenario, model                        string
	orasS, orasMiBs                        float64
	mgS, mgMiBs                            float64
	ratio                                  float64 // oras median time / modelgate median time
	ofLimit                                float64 // modelgate MiB/s over the machine limit; set for loopback only
	ofPath                                 float64 // modelgate MiB/s over the path's capacity writing and hashing; set for throttled only
	noSyncS, noSyncMiBs, noSyncRatio       float64 // modelgate with cache.sync: false
	orasRSS, mgRSS, noSyncRSS              int64
	targets                                string // "yes", or "no: ..." naming the missed ones
	met                                    bool
	orasRange, modelgateRange, noSyncRange string
}

func (r report) lines() []line {
	lim, capacity := r.res.limit.mibPerSec(), r.res.capacity.workingMiBs()
	var out []line
	for _, row := range r.res.rows {
		o, m, ns := medianWall(row.oras), medianWall(row.modelgate), medianWall(row.modelgateNoSync)
		l := line{
			scenario: row.scenario,
			model:    fmt.Sprintf("%s (%s)", row.model.name, row.model.describe()),
			orasS:    o.Seconds(), orasMiBs: mibPerSec(row.model.bytes, o),
			mgS: m.Seconds(), mgMiBs: mibPerSec(row.model.bytes, m),
			ratio:   o.Seconds() / m.Seconds(),
			noSyncS: ns.Seconds(), noSyncMiBs: mibPerSec(row.model.bytes, ns),
			noSyncRatio: o.Seconds() / ns.Seconds(),
			orasRSS:     peakRSS(row.oras), mgRSS: peakRSS(row.modelgate), noSyncRSS: peakRSS(row.modelgateNoSync),
			orasRange: secondsRange(row.oras), modelgateRange: secondsRange(row.modelgate), noSyncRange: secondsRange(row.modelgateNoSync),
		}
		var missed []string
		if row.scenario == scenarioLoopback {
			l.ofLimit = l.mgMiBs / lim
			if l.ratio < loopbackRatioTarget {
				missed = append(missed, fmt.Sprintf("ratio %.2f < %.1f", l.ratio, loopbackRatioTarget))
			}
			if l.ofLimit < loopbackLimitTarget {
				missed = append(missed, fmt.Sprintf("%.0f%% of limit < %.0f%%", 100*l.ofLimit, 100*loopbackLimitTarget))
			}
		} else {
			l.ofPath = l.mgMiBs / capacity
			if l.ratio < throttledRatioTarget {
				missed = append(missed, throttledMiss(l.ratio, l.orasMiBs, capacity))
			}
		}
		if l.mgRSS >= rssTarget {
			missed = append(missed, fmt.Sprintf("RSS %s ≥ 32 MiB", formatBytes(l.mgRSS)))
		}
		l.met = len(missed) == 0
		l.targets = "yes"
		if !l.met {
			l.targets = "no: " + strings.Join(missed, "; ")
		}
		out = append(out, l)
	}
	return out
}

// throttledMiss names a throttled ratio below the target and, when reaching
// it would take more than an ideal verifying client gets through the path
// here (4 x oras's MiB/s above capacity, the path's capacity writing and
// hashing), says that no client that writes, hashes and syncs could have met
// it on this machine.
// A capacity of NaN (not measured) adds nothing.
func throttledMiss(ratio, orasMiBs, capacity float64) string {
	s := fmt.Sprintf("ratio %.2f < %.0f", ratio, throttledRatioTarget)
	if need := throttledRatioTarget * orasMiBs; need > capacity {
		s += fmt.Sprintf(" (unreachable here: %.0f x oras = %.0f MiB/s > path capacity writing and hashing %.0f MiB/s)",
			throttledRatioTarget, need, capacity)
	}
	return s
}

// secondsRange is the fastest and slowest wall time of es, "1.2–1.5"; "–"
// for none.
func secondsRange(es []exit) string {
	if len(es) == 0 {
		return "–"
	}
	lo, hi := es[0].wall, es[0].wall
	for _, e := range es {
		lo, hi = min(lo, e.wall), max(hi, e.wall)
	}
	return fmt.Sprintf("%.2f–%.2f", lo.Seconds(), hi.Seconds())
}

// ofLimitCell is the "% of limit" cell: only loopback is held to the limit.
func (l line) ofLimitCell() string {
	if l.scenario != scenarioLoopback {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100*l.ofLimit)
}

// ofPathCell is the "% of path" cell, the share of the path's capacity
// writing and hashing: only throttled rows go through the path, and only a
// measured capacity gives a share.
func (l line) ofPathCell() string {
	if l.scenario != scenarioThrottled || math.IsNaN(l.ofPath) || math.IsInf(l.ofPath, 0) {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100*l.ofPath)
}

// workingNote says how the path's capacity writing and hashing was
// measured, for the terminal and the markdown.
func (r report) workingNote() string {
	return fmt.Sprintf("%d concurrent ranged GETs of the single blob through the proxy, each writing its range at its offset "+
		"into one pre-sized file in the work directory and hashing it with its own SHA-256 as it streams, then one fsync; median of %d",
		capacityConns, len(r.res.capacity.working))
}

// discardNote says how the path's capacity with the bodies discarded was
// measured, for the terminal and the markdown.
func (r report) discardNote() string {
	return fmt.Sprintf("the same %d GETs, bodies read and discarded; median of %d", capacityConns, len(r.res.capacity.discard))
}

// text is the terminal report.
func (r report) text() string {
	var b strings.Builder
	lim := r.res.limit
	fmt.Fprintf(&b, "\nmachine limit: %.0f MiB/s (disk write with fsync %.0f MiB/s, sha256 one core %.0f MiB/s; medians of %d)\n",
		lim.mibPerSec(), median(lim.disk), median(lim.sha), len(lim.disk))
	if r.res.capacity.measured() {
		fmt.Fprintf(&b, "throttled path capacity, writing and hashing: %.0f MiB/s (%s; the basis of %% of path)\n",
			r.res.capacity.workingMiBs(), r.workingNote())
		fmt.Fprintf(&b, "throttled path capacity, bodies discarded: %.0f MiB/s (%s; information)\n",
			r.res.capacity.discardMiBs(), r.discardNote())
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tmodel\toras s\toras MiB/s\tmodelgate s\tmodelgate MiB/s\tratio\t% of limit\t% of path\t"+
		"sync off s\tsync off MiB/s\tratio (sync off)\toras RSS\tmodelgate RSS\tsync off RSS\t")
	for _, l := range r.lines() {
		fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.0f\t%.2f\t%.0f\t%.2f\t%s\t%s\t%.2f\t%.0f\t%.2f\t%s\t%s\t%s\t\n",
			l.scenario, l.model, l.orasS, l.orasMiBs, l.mgS, l.mgMiBs, l.ratio, l.ofLimitCell(), l.ofPathCell(),
			l.noSyncS, l.noSyncMiBs, l.noSyncRatio, formatBytes(l.orasRSS), formatBytes(l.mgRSS), formatBytes(l.noSyncRSS))
	}
	tw.Flush()
	b.WriteString("\n")
	for _, l := range r.lines() {
		fmt.Fprintf(&b, "targets met, %s %s: %s\n", l.scenario, l.model, l.targets)
	}
	return b.String()
}

// markdown is the section for docs/benchmarks.md.
func (r report) markdown() string {
	var b strings.Builder
	m, cfg, lim := r.mach, r.cfg, r.res.limit
	lines := r.lines()
	fmt.Fprintf(&b, "%s\n\nGenerated %s UTC (%s of benchmark) by:\n\n```sh\n%s\n```\n\n", sectionHeading,
		m.date.Format("2006-01-02 15:04"), m.end.Sub(m.date).Round(time.Second), cfg.command)
	b.WriteString("(`bench/pull.sh` builds modelgate, installs `oras` with `go install oras.land/oras/cmd/oras@v1.3.6` into " +
		"`~/.cache/modelgate-bench/bin` if it is missing, and runs the `bench/pull` program; see its doc comment. " +
		"A quick run: `bench/pull.sh -runs 1 -single 256MiB -layer-size 16MiB`.)\n\n")
	b.WriteString("Machine:\n\n")
	fmt.Fprintf(&b, "- CPU: %s, %d logical cores; memory %s; kernel %s\n", m.cpu, m.cores, m.memory, m.kernel)
	fmt.Fprintf(&b, "- Disk: %s free at the start on the file system the registry and the pulls use\n", m.diskFree)
	fmt.Fprintf(&b, "- Load average %s at the start, %s at the end (the machine is shared: other builds and tests may run beside the benchmark)\n", m.loadStart, m.loadEnd)
	fmt.Fprintf(&b, "- modelgate built with %s from commit %s; oras %s; registry %s\n", m.goVersion, m.revision, m.oras, m.registry)
	fmt.Fprintf(&b, "- Machine limit, measured in this run: **%.0f MiB/s**, the lower of writing %s to a new file with fsync (%.0f MiB/s) "+
		"and SHA-256 on one core (%.0f MiB/s), medians of %d samples each\n",
		lim.mibPerSec(), formatBytes(cfg.limitSize), median(lim.disk), median(lim.sha), len(lim.disk))
	if r.res.capacity.measured() {
		fmt.Fprintf(&b, "- Throttled path capacity, writing and hashing, measured in this run: **%.0f MiB/s**, %s: an upper bound for "+
			"a client that writes, hashes and syncs what it pulls through the throttled path on this machine, where the proxy, the registry "+
			"and the client share the cores (a real client hashes each blob in one sequential pass, not %d parallel ones); "+
			"%% of path and the throttled targets' reachability are judged against it\n",
			r.res.capacity.workingMiBs(), r.workingNote(), capacityConns)
		fmt.Fprintf(&b, "- Throttled path capacity, bodies discarded, measured in this run: %.0f MiB/s, %s: what the path carries "+
			"when the client does no work (information)\n",
			r.res.capacity.discardMiBs(), r.discardNote())
	}
	b.WriteString("\n")

	b.WriteString("Setup: a Distribution registry (`docker-registry serve`, filesystem storage) on 127.0.0.1 holds two models of random bytes, " +
		"pushed once with `modelgate push --plain-http`: ")
	fmt.Fprintf(&b, "*single*, one blob of %s, and *layers*, %d blobs of %s. ", formatBytes(cfg.single), cfg.layers, formatBytes(cfg.layerSize))
	fmt.Fprintf(&b, "Each client pulled each model %d times per scenario, in rotating order (oras, modelgate, modelgate sync off in the first run; "+
		"each later run starts one client further along), each run into a fresh directory deleted after it:\n\n", cfg.runs)
	b.WriteString("- oras: `oras " + strings.Join(orasArgs("HOST/bench/MODEL:v1", "DIR"), " ") + "` (its defaults: 3 blobs at once)\n")
	b.WriteString("- modelgate: `modelgate " + strings.Join(modelgateArgs("FILE", "MODEL"), " ") +
		"`, FILE naming the model, a fresh cache directory and `registries: {HOST: {plain_http: true}}` (its defaults otherwise)\n")
	b.WriteString("- modelgate sync off: the same with `cache: {sync: false}` in FILE, so that modelgate commits blobs without fsyncing them " +
		"(informative: the targets are judged on the defaults)\n\n")
	fmt.Fprintf(&b, "Scenarios: *loopback* pulls straight from the registry; *throttled* goes through a TCP proxy in `bench/pull` that gives every "+
		"client connection its own upstream connection, limits its server-to-client bytes to %s/s (token bucket, %s deep) and delays every "+
		"byte by %s in each direction (so each request/response exchange gains %s): an object-storage link with a per-connection cap. "+
		"Wall time runs from exec to exit; throughput is the model's bytes over it. Peak RSS is getrusage's ru_maxrss of the child, the highest of its runs, "+
		"taken by a small wrapper process that starts the child (so that the benchmark's own memory does not count; the wrapper reports %s for `true`, the floor of every RSS figure). "+
		"The page cache is not dropped between runs: the registry's blobs are served from memory where they fit, and modelgate fsyncs each blob it "+
		"commits (unless sync is off) while oras does not.\n\n",
		formatBytes(int64(cfg.rate)), formatBytes(proxyBurst), cfg.latency, 2*cfg.latency, formatBytes(r.res.rssFloor))

	b.WriteString("| Scenario | Model | oras | oras MiB/s | modelgate | modelgate MiB/s | Ratio | % of limit | % of path | " +
		"modelgate sync off | Ratio (sync off) | oras peak RSS | modelgate peak RSS | sync off peak RSS | Targets met |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, l := range lines {
		fmt.Fprintf(&b, "| %s | %s | %.2f s | %.0f | %.2f s | %.0f | %.2f | %s | %s | %.2f s, %.0f MiB/s | %.2f | %s | %s | %s | %s |\n",
			l.scenario, l.model, l.orasS, l.orasMiBs, l.mgS, l.mgMiBs, l.ratio, l.ofLimitCell(), l.ofPathCell(),
			l.noSyncS, l.noSyncMiBs, l.noSyncRatio, formatBytes(l.orasRSS), formatBytes(l.mgRSS), formatBytes(l.noSyncRSS), l.targets)
	}
	fmt.Fprintf(&b, "\nTimes are medians of %d runs (ranges: ", cfg.runs)
	var ranges []string
	for _, l := range lines {
		ranges = append(ranges, fmt.Sprintf("%s %s oras %s s, modelgate %s s, sync off %s s",
			l.scenario, strings.Fields(l.model)[0], l.orasRange, l.modelgateRange, l.noSyncRange))
	}
	b.WriteString(strings.Join(ranges, "; ") + "). ")
	b.WriteString("Ratio: oras's median time ÷ modelgate's; above 1 means modelgate is faster. % of path: modelgate's MiB/s over the throttled path's capacity writing and hashing. " +
		"Targets, judged on modelgate's defaults (sync on): loopback, ratio ≥ 1.0 and modelgate at ≥ 80% of the machine limit; throttled, ratio ≥ 4; " +
		"everywhere, modelgate's peak RSS under 32 MiB (the issue sets it for a 2 GiB pull). A throttled row whose ratio of 4 would take more than " +
		"the path's capacity writing and hashing (4 × oras's MiB/s above it) says so: no client that writes, hashes and syncs what it pulls could meet it on this machine.\n\n")
	b.WriteString("Reading the numbers:\n\n")
	for _, s := range r.interpretation(lines) {
		b.WriteString("- " + s + "\n")
	}
	return b.String()
}

// interpretation states what the numbers say, from the numbers alone.
func (r report) interpretation(lines []line) []string {
	var out []string
	met := 0
	for _, l := range lines {
		if l.met {
			met++
		}
	}
	out = append(out, fmt.Sprintf("Targets met on %d of %d rows.", met, len(lines)))
	capacity := r.res.capacity.workingMiBs()
	for _, l := range lines {
		noSync := fmt.Sprintf("with sync off, modelgate %.0f MiB/s (%.2fx)", l.noSyncMiBs, l.noSyncRatio)
		switch {
		case l.scenario == scenarioLoopback:
			out = append(out, fmt.Sprintf("Loopback, %s: modelgate %.0f MiB/s against oras %.0f MiB/s (%.2fx), %.0f%% of the machine limit of %.0f MiB/s; %s.",
				l.model, l.mgMiBs, l.orasMiBs, l.ratio, 100*l.ofLimit, r.res.limit.mibPerSec(), noSync))
		default:
			perConn := r.cfg.rate / (1 << 20)
			s := fmt.Sprintf("Throttled, %s: modelgate %.0f MiB/s (%.1f connections' worth at %.0f MiB/s each) against oras %.0f MiB/s (%.1f), %.2fx, "+
				"%s of the path capacity writing and hashing of %.0f MiB/s; %s.",
				l.model, l.mgMiBs, l.mgMiBs/perConn, perConn, l.orasMiBs, l.orasMiBs/perConn, l.ratio, l.ofPathCell(), capacity, noSync)
			if need := throttledRatioTarget * l.orasMiBs; need > capacity {
				s += fmt.Sprintf(" A ratio of %.0f would take %.0f MiB/s, more than an ideal verifying client gets through the path here: "+
					"no client that writes, hashes and syncs what it pulls could reach it on this machine.", throttledRatioTarget, need)
			}
			out = append(out, s)
		}
	}
	out = append(out,
		"On a link capped per connection, a client goes faster only by holding more connections at once: across blobs (oras pulls 3 blobs at once, "+
			"modelgate fetch.concurrency, default 4) and, within one blob, only with parallel ranged requests (oras sends one GET per blob). "+
			"\"Connections' worth\" above is the throughput over the per-connection cap: about 1 for oras on the single blob is that one GET.")
	if r.res.capacity.measured() {
		out = append(out, r.capacityReading())
	}
	out = append(out,
		"The limit is measured alone (one writer, one hashing goroutine); during a loopback pull the registry's reads and sends, the client "+
			"and its hashing share the machine's cores, so no pull reaches 100% of it. Its disk figure includes fsync: oras does not fsync, "+
			"so its writes can end in the page cache and its throughput can exceed the limit; modelgate fsyncs every blob by default.",
		"Sync off: oras never fsyncs; modelgate fsyncs every blob it commits by default, so that a power loss never leaves a torn blob that the cache "+
			"trusts; `cache.sync: false` is meant for caches that do not outlive the pod (an emptyDir). "+
			"The sync-off columns are informative; the targets are judged on the default.",
		"Single samples are noisy on a shared machine (see the ranges and the load averages): compare medians of rotating runs, and rerun "+
			"with more -runs before reading a difference of less than the ranges.",
		fmt.Sprintf("Peak RSS: modelgate %s (sync off %s), oras %s at the highest (oras was expected near 16 MB).",
			formatBytes(maxRSS(lines, func(l line) int64 { return l.mgRSS })),
			formatBytes(maxRSS(lines, func(l line) int64 { return l.noSyncRSS })),
			formatBytes(maxRSS(lines, func(l line) int64 { return l.orasRSS }))),
	)
	return out
}

// capacityReading explains the two capacities of the throttled path and
// which one the throttled rows are judged against.
func (r report) capacityReading() string {
	caps := capacityConns * r.cfg.rate / (1 << 20)
	discard, working := r.res.capacity.discardMiBs(), r.res.capacity.workingMiBs()
	s := fmt.Sprintf("With the bodies discarded, %d connections carry %.0f MiB/s through the proxy at once, against %.0f MiB/s of "+
		"per-connection caps.", capacityConns, discard, caps)
	if discard < 0.9*caps {
		s += fmt.Sprintf(" The proxy, the registry and the client share this machine's %d cores, and the path carries what they leave.", r.mach.cores)
	}
	s += fmt.Sprintf(" When each connection also writes its range to disk and hashes it, as a pulling client must, the same cores carry "+
		"%.0f MiB/s (%.0f%% of that), fsync included. That working figure is the path's capacity for %% of path and the targets: "+
		"it is an upper bound, since its %d hashes run in parallel where a blob's digest is one sequential hash. Where %.0f x oras's MiB/s "+
		"exceeds it, the throttled target cannot be met on this machine by modelgate's defaults or any client that syncs, and %% of path "+
		"shows how close modelgate comes.",
		working, 100*working/discard, capacityConns, throttledRatioTarget)
	return s
}

// maxRSS is the highest of one client's peak RSS, picked by rss, over lines.
func maxRSS(lines []line, rss func(line) int64) int64 {
	var m int64
	for _, l := range lines {
		m = max(m, rss(l))
	}
	return m
}

// formatBytes is n in the largest binary unit that keeps it at least 1:
// whole numbers exactly ("2 GiB"), others to one decimal ("15.3 MiB").
func formatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	v, u := float64(n), 0
	for v >= 1024 && u < len(units)-1 {
		v /= 1024
		u++
	}
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d %s", int64(v), units[u])
	}
	return fmt.Sprintf("%.1f %s", v, units[u])
}
