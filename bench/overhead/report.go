package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// The targets of issue 7.
const (
	targetClients   = 64                     // the client count the overhead targets are judged at
	targetAddedP99  = time.Millisecond       // p99 the gateway may add at targetClients
	targetTTFB      = time.Millisecond       // streaming TTFB the gateway may add (median)
	targetColdShare = 100 * time.Millisecond // the gateway's share of a warm-disk cold start
	targetModels    = 1000                   // configured models of the start-up target
	targetStart     = 50 * time.Millisecond  // exec to listening with targetModels models
)

// sectionHeading is the heading of the section -write owns.
const sectionHeading = "## Gateway overhead, cold start and start-up"

// results is everything a run measured.
type results struct {
	start  map[int][]time.Duration // exec → /healthz 200, by configured models
	cold   coldResults
	load   map[cellKey]*cell
	stream map[string][]streamSample
}

// ways is the order of the ways in every table.
var ways = []string{wayDirect, wayModelgate, wayNginx}

// goal is one target of the issue and how this run did against it.
type goal struct {
	what     string // the target, in words
	measured string // what this run measured
	met      bool
	judged   bool // false: this run did not measure it (see measured)
}

func (g goal) verdict() string {
	switch {
	case !g.judged:
		return "not judged"
	case g.met:
		return "yes"
	}
	return "no"
}

// report is a finished benchmark and the context needed to reproduce it.
type report struct {
	cfg       config
	mach      machine
	modelSize int64
	res       results
	goals     []goal
}

func newReport(cfg config, mach machine, fx *fixture, res results) report {
	rep := report{cfg: cfg, mach: mach, modelSize: fx.modelSize, res: res}
	rep.goals = rep.judge()
	return rep
}

// judge sets each target against the measurements.
func (rep report) judge() []goal {
	var out []goal
	at := rep.cfg.clients[len(rep.cfg.clients)-1]
	if slices.Contains(rep.cfg.clients, targetClients) {
		at = targetClients
	}
	mg, okM := rep.added(wayModelgate, at, 99)
	ng, okN := rep.added(wayNginx, at, 99)
	g := goal{what: fmt.Sprintf("p99 added by modelgate at %d clients < %s", targetClients, fmtDur(targetAddedP99)),
		measured: fmt.Sprintf("%s at %d clients", fmtAdded(mg), at), met: mg < targetAddedP99, judged: okM && at == targetClients}
	if at != targetClients {
		g.measured += fmt.Sprintf(" (-clients lacks %d)", targetClients)
	}
	out = append(out, g)
	out = append(out, goal{what: fmt.Sprintf("modelgate ahead of nginx at %d clients (lower added p99)", targetClients),
		measured: fmt.Sprintf("modelgate %s, nginx %s", fmtAdded(mg), fmtAdded(ng)), met: mg < ng, judged: okM && okN && at == targetClients})

	d, m := rep.res.stream[wayDirect], rep.res.stream[wayModelgate]
	ttfb := median(ttfbs(m)) - median(ttfbs(d))
	out = append(out, goal{what: fmt.Sprintf("streaming TTFB within %s of direct (median)", fmtDur(targetTTFB)),
		measured: fmt.Sprintf("%s (p99 %s)", fmtAdded(ttfb), fmtAdded(percentile(ttfbs(m), 99)-percentile(ttfbs(d), 99))),
		met:      ttfb <= targetTTFB, judged: len(d) > 0 && len(m) > 0})

	var shares []string
	worst := time.Duration(math.MinInt64)
	for _, name := range coldModels {
		s := rep.coldShare(name)
		worst = max(worst, s)
		shares = append(shares, fmt.Sprintf("%s %s", refKind(name), fmtDur(s)))
	}
	out = append(out, goal{what: fmt.Sprintf("gateway's share of a warm-disk cold start < %s", fmtDur(targetColdShare)),
		measured: strings.Join(shares, ", "), met: worst < targetColdShare, judged: len(rep.res.cold.alone) > 0})

	st := median(rep.res.start[rep.cfg.models])
	g = goal{what: fmt.Sprintf("start to listening with %s configured models < %s", thousands(targetModels), fmtDur(targetStart)),
		measured: fmt.Sprintf("%s with %s models (1 model: %s)", fmtDur(st), thousands(int64(rep.cfg.models)), fmtDur(median(rep.res.start[1]))),
		met:      st < targetStart, judged: rep.cfg.models >= targetModels && st >= 0}
	out = append(out, g)
	return out
}

// added is way's p-th percentile latency minus the direct call's at clients.
func (rep report) added(way string, clients int, p float64) (time.Duration, bool) {
	c, d := rep.res.load[cellKey{way, clients}], rep.res.load[cellKey{wayDirect, clients}]
	if c == nil || d == nil || c.requests() == 0 || d.requests() == 0 {
		return 0, false
	}
	return percentile(c.latencies, p) - percentile(d.latencies, p), true
}

// coldShare is the gateway's share of model's cold start: its median total
// minus the runtime alone's median total.
func (rep report) coldShare(model string) time.Duration {
	return median(rep.res.cold.models[model].total) - median(rep.res.cold.alone)
}

// refKind says how model references the artifact.
func refKind(model string) string {
	if model == pinnedName {
		return "digest reference"
	}
	return "tag reference"
}

// sortLatencies sorts every sample set once, so that percentiles do not
// sort again.
func (rep report) sortLatencies() {
	for _, c := range rep.res.load {
		slices.Sort(c.latencies)
	}
}

// loadRow is one line of the overhead table.
type loadRow struct {
	clients          int
	way              string
	rps              float64
	p50, p99         time.Duration
	addP50, addP99   string // "" for direct
	ratio            string // throughput over direct's; "" for direct
	cpu              string // proxy CPU per request; "" for direct
	requests, errors int
	errNote          string
}

func (rep report) loadRows() []loadRow {
	rep.sortLatencies()
	var out []loadRow
	for _, clients := range rep.cfg.clients {
		d := rep.res.load[cellKey{wayDirect, clients}]
		for _, w := range ways {
			c := rep.res.load[cellKey{w, clients}]
			r := loadRow{clients: clients, way: w, rps: c.throughput(), p50: median(c.latencies), p99: percentile(c.latencies, 99),
				requests: c.requests(), errors: c.errors}
			if c.firstErr != nil {
				r.errNote = c.firstErr.Error()
			}
			if w != wayDirect {
				r.addP50 = fmtAdded(r.p50 - median(d.latencies))
				r.addP99 = fmtAdded(r.p99 - percentile(d.latencies, 99))
				r.ratio = fmt.Sprintf("%.2f", c.throughput()/d.throughput())
				r.cpu = "n/a"
				if cpu, ok := c.cpuPerRequest(); ok {
					r.cpu = fmt.Sprintf("%.0f µs", float64(cpu)/float64(time.Microsecond))
				}
			}
			out = append(out, r)
		}
	}
	return out
}

// text is the tables and the targets as printed on stdout.
func (rep report) text() string {
	var b strings.Builder
	if rep.cfg.quick {
		fmt.Fprintf(&b, "QUICK RUN (-quick): few samples, a check that everything works, not a result to publish.\n\n")
	}
	fmt.Fprintf(&b, "Overhead: POST %s, %s measured requests per cell in %s, closed loop\n", chatPath, thousands(int64(rep.cfg.requests)), rounds(rep.cfg.rounds))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "clients\tway\treq/s\tp50\tp99\tadded p50\tadded p99\tthroughput ratio\tproxy CPU/req\terrors\t\n")
	for _, r := range rep.loadRows() {
		fmt.Fprintf(tw, "%d\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t\n", r.clients, r.way, r.rps, fmtDur(r.p50), fmtDur(r.p99),
			r.addP50, r.addP99, r.ratio, r.cpu, r.errors)
	}
	tw.Flush()

	fmt.Fprintf(&b, "\nStreaming: %s streams per way, one at a time, %d events each\n", thousands(int64(rep.cfg.streamRequests)), rep.cfg.chunks)
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "way\tTTFB p50\tTTFB p99\tadded p50\tadded p99\tstream p50\t\n")
	for _, r := range rep.streamRows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", r[0], r[1], r[2], r[3], r[4], r[5])
	}
	tw.Flush()

	fmt.Fprintf(&b, "\nWarm-disk cold start: %d runs\n", rep.cfg.coldRuns)
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "what\tmedian\tp90\tmax\tgateway share\t\n")
	for _, r := range rep.coldRows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", r[0], r[1], r[2], r[3], r[4])
	}
	tw.Flush()
	fmt.Fprintf(&b, "phases (medians): ")
	for i, name := range coldModels {
		p := rep.phases(name)
		if i > 0 {
			fmt.Fprintf(&b, "; ")
		}
		fmt.Fprintf(&b, "%s: locate %s, prepare %s, runtime %s, forward %s", refKind(name), p[0], p[1], p[2], p[3])
	}
	fmt.Fprintln(&b)

	fmt.Fprintf(&b, "\nStart to listening (exec to first /healthz 200): %d runs each\n", rep.cfg.startRuns)
	tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "configured models\tmedian\tp90\tmax\t\n")
	for _, r := range rep.startRows() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", r[0], r[1], r[2], r[3])
	}
	tw.Flush()

	fmt.Fprintf(&b, "\nTargets:\n")
	for _, g := range rep.goals {
		fmt.Fprintf(&b, "  %-3s  %s: %s\n", g.verdict(), g.what, g.measured)
	}
	for _, r := range rep.loadRows() {
		if r.errors > 0 {
			fmt.Fprintf(&b, "errors: %d clients, %s: %d failed requests, the first: %s\n", r.clients, r.way, r.errors, r.errNote)
		}
	}
	return b.String()
}

// streamRows are the streaming table's lines: way, TTFB p50 and p99, added
// p50 and p99, and the whole stream's p50.
func (rep report) streamRows() [][6]string {
	d := ttfbs(rep.res.stream[wayDirect])
	var out [][6]string
	for _, w := range ways {
		s := rep.res.stream[w]
		t := ttfbs(s)
		r := [6]string{w, fmtDur(median(t)), fmtDur(percentile(t, 99)), "", "", fmtDur(median(totals(s)))}
		if w != wayDirect {
			r[3], r[4] = fmtAdded(median(t)-median(d)), fmtAdded(percentile(t, 99)-percentile(d, 99))
		}
		out = append(out, r)
	}
	return out
}

// coldRows are the cold start table's lines: what, median, p90, max and
// the gateway's share.
func (rep report) coldRows() [][5]string {
	c := rep.res.cold
	row := func(what string, xs []time.Duration, share string) [5]string {
		return [5]string{what, fmtDur(median(xs)), fmtDur(percentile(xs, 90)), fmtDur(percentile(xs, 100)), share}
	}
	out := [][5]string{
		row("runtime alone: exec → /health 200", c.aloneReady, ""),
		row("runtime alone: exec → first answer", c.alone, ""),
	}
	for _, name := range coldModels {
		out = append(out, row("modelgate, "+refKind(name)+": request → first answer", c.models[name].total, fmtDur(rep.coldShare(name))))
	}
	return out
}

// phases are the medians of model's cold start phases: locate, prepare,
// runtime and forward.
func (rep report) phases(model string) [4]string {
	s := rep.res.cold.models[model]
	return [4]string{fmtDur(median(s.locate)), fmtDur(median(s.prepare)), fmtDur(median(s.runtime)), fmtDur(median(s.forward))}
}

// startRows are the start-up table's lines: models, median, p90, max.
func (rep report) startRows() [][4]string {
	var out [][4]string
	for _, n := range []int{1, rep.cfg.models} {
		xs := rep.res.start[n]
		out = append(out, [4]string{thousands(int64(n)), fmtDur(median(xs)), fmtDur(percentile(xs, 90)), fmtDur(percentile(xs, 100))})
	}
	return out
}

// markdown is the section for docs/benchmarks.md, heading included.
func (rep report) markdown() string {
	var b strings.Builder
	cfg, m := rep.cfg, rep.mach
	fmt.Fprintf(&b, "%s\n\n", sectionHeading)
	fmt.Fprintf(&b, "Generated %s (%s of benchmark) by:\n\n```sh\n%s\n```\n\n", m.date.Format("2006-01-02 15:04 MST"), m.end.Sub(m.date).Round(time.Second), cfg.command)
	fmt.Fprintf(&b, "(`bench/overhead.sh` builds modelgate, the test runtime `internal/testruntime` and the `bench/overhead` program, installs nginx with apt-get if it is missing, and runs the program, whose doc comment describes every measurement; `-quick` for a check in seconds, `-write ''` to only print.)\n\n")
	if cfg.quick {
		fmt.Fprintf(&b, "**Quick run (`-quick`): few samples; a check that the benchmark works, not a result.**\n\n")
	}
	fmt.Fprintf(&b, "Machine:\n\n")
	fmt.Fprintf(&b, "- CPU: %s, %d logical cores; memory %s; kernel %s\n", m.cpu, m.cores, m.memory, m.kernel)
	fmt.Fprintf(&b, "- Load average %s at the start, %s at the end (the machine is shared: other builds and tests may run beside the benchmark)\n", m.loadStart, m.loadEnd)
	fmt.Fprintf(&b, "- modelgate built with %s from commit %s; %s (Debian package)\n", m.goVersion, m.revision, m.nginx)
	fmt.Fprintf(&b, "- The load generator, the proxies and the runtime all run on this machine and share its %d cores; everything on 127.0.0.1\n\n", m.cores)

	fmt.Fprintf(&b, "Setup: the runtime is `internal/testruntime` (`--release-timeout 0s --chunks %d`), a real HTTP server process that answers `POST %s` at once with a JSON echo of about half a kilobyte, or with %d SSE events and `[DONE]` for `\"stream\": true`; its own time is tens of microseconds, so the proxies' cost is not hidden behind it. ", cfg.chunks, chatPath, cfg.chunks)
	fmt.Fprintf(&b, "The model (`%s`, %s bytes) is a one-layer ModelPack artifact in an OCI image layout on disk, referenced as `oci-layout://` (no registry), pulled into a fresh cache with `modelgate pull` before anything is measured. ", cfg.model, thousands(rep.modelSize))
	fmt.Fprintf(&b, "`modelgate serve` starts the runtime on the first (unmeasured) request and logs at its default level (info, JSON, one line per request, to a file); nginx proxies to that same runtime process (its port read from the gateway's log), so *direct*, *modelgate* and *nginx* reach one process:\n\n")
	fmt.Fprintf(&b, "- direct: `http://127.0.0.1:RUNTIME%s`\n", chatPath)
	fmt.Fprintf(&b, "- modelgate: `modelgate serve --config FILE --log-format json`, the model chosen by the body's `\"model\"`\n")
	fmt.Fprintf(&b, "- nginx: `nginx -c CONF -p DIR -g 'daemon off;'` with `worker_processes auto`, an `upstream` with `keepalive %d`, `proxy_http_version 1.1`, `proxy_set_header Connection \"\"`, `proxy_buffering off`, its access log on; its defaults otherwise\n\n", max(slices.Max(cfg.clients), 16))

	fmt.Fprintf(&b, "### Targets\n\n| Target (issue 7) | Measured | Met |\n|---|---|:-:|\n")
	for _, g := range rep.goals {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", g.what, g.measured, g.verdict())
	}

	fmt.Fprintf(&b, "\n### Overhead: direct vs modelgate vs nginx\n\n")
	fmt.Fprintf(&b, "A Go load generator (net/http, keep-alive, one connection per client) sends %s measured requests per way and client count, closed loop (each client sends its next request when it has read the last answer), after a few unmeasured ones per client; the requests of a cell are split into %s and the three ways take turns in rotating order within each. ", thousands(int64(cfg.requests)), rounds(cfg.rounds))
	fmt.Fprintf(&b, "Latency: from sending a request to reading the last byte of its answer; p50 and p99 exact over every sample. Added: the way's percentile minus direct's. Throughput ratio: the way's requests/s over direct's. Proxy CPU/req: user+system time of the proxy's processes (the gateway; nginx's master and workers) over the measured requests, from /proc.\n\n")
	fmt.Fprintf(&b, "| Clients | Way | Requests/s | p50 | p99 | Added p50 | Added p99 | Throughput ratio | Proxy CPU/req | Errors |\n|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, r := range rep.loadRows() {
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", r.clients, r.way, thousands(int64(math.Round(r.rps))), fmtDur(r.p50), fmtDur(r.p99),
			dash(r.addP50), dash(r.addP99), dash(r.ratio), dash(r.cpu), r.errors)
	}

	fmt.Fprintf(&b, "\n### Streaming time to first byte\n\n")
	fmt.Fprintf(&b, "%s streaming requests (`\"stream\": true`) per way, one at a time on a keep-alive connection, in rotating order; TTFB is from sending the request to reading the first `data:` line; stream is to `data: [DONE]`.\n\n", thousands(int64(cfg.streamRequests)))
	fmt.Fprintf(&b, "| Way | TTFB p50 | TTFB p99 | Added p50 | Added p99 | Stream p50 |\n|---|--:|--:|--:|--:|--:|\n")
	for _, r := range rep.streamRows() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", r[0], r[1], r[2], dash(r[3]), dash(r[4]), r[5])
	}

	fmt.Fprintf(&b, "\n### Warm-disk cold start\n\n")
	fmt.Fprintf(&b, "%d runs, each starting a fresh `modelgate serve` on the warm cache (runtime not running), waiting for `/healthz`, then sending the first request on a new connection for two models of the same artifact: one by tag (`oci-layout://DIR:%s`: the gateway resolves the tag in the layout's `index.json`, a local read) and one by digest (the cache alone), alternating which goes first. ", cfg.coldRuns, layoutTag)
	fmt.Fprintf(&b, "Each run also starts the runtime alone with the same binary, flags and model file, polls its `/health` every millisecond and sends the same request on a new connection: the runtime's own share. ")
	fmt.Fprintf(&b, "**Gateway share = the gateway's median total − the runtime alone's median total**: everything the gateway adds (routing, cache lookup, tag resolution, rendering and exec'ing the command, its health polling, the forward).\n\n")
	fmt.Fprintf(&b, "| What | Median | p90 | Max | Gateway share |\n|---|--:|--:|--:|--:|\n")
	for _, r := range rep.coldRows() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", r[0], r[1], r[2], r[3], dash(r[4]))
	}
	fmt.Fprintf(&b, "\nPhases, from the gateway's JSON log against the time the request was sent (medians; they need not add up to the total's median):\n\n")
	fmt.Fprintf(&b, "| Model | Locate (request → \"%s\") | Prepare (→ \"%s\", just before exec) | Runtime (→ \"%s\": exec, load, health polling) | Forward (→ end of the answer) |\n|---|--:|--:|--:|--:|\n", msgInCache, msgStarting, msgReady)
	for _, name := range coldModels {
		p := rep.phases(name)
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", refKind(name), p[0], p[1], p[2], p[3])
	}

	fmt.Fprintf(&b, "\n### Start-up with many models\n\n")
	fmt.Fprintf(&b, "%d starts of `modelgate serve` per configuration, alternating, after one unmeasured start of each: from exec to the first 200 from `/healthz`, polled every %s. The large configuration lists `bench` and %s models referencing a registry that is never contacted and not in the cache.\n\n", cfg.startRuns, fmtDur(gatewayPoll), thousands(int64(cfg.models-1)))
	fmt.Fprintf(&b, "| Configured models | Median | p90 | Max |\n|--:|--:|--:|--:|\n")
	for _, r := range rep.startRows() {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r[0], r[1], r[2], r[3])
	}

	fmt.Fprintf(&b, "\nReading the numbers:\n\n")
	for _, s := range rep.interpretation() {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	return b.String()
}

// interpretation explains the numbers, from the numbers.
func (rep report) interpretation() []string {
	var out []string
	met := 0
	for _, g := range rep.goals {
		if g.met && g.judged {
			met++
		}
	}
	out = append(out, fmt.Sprintf("Targets met: %d of %d.", met, len(rep.goals)))

	one, top := rep.cfg.clients[0], rep.cfg.clients[len(rep.cfg.clients)-1]
	if mg, ok := rep.added(wayModelgate, one, 50); ok {
		ng, _ := rep.added(wayNginx, one, 50)
		out = append(out, fmt.Sprintf("At %d client%s the machine is not saturated, and the added p50 is the cost of the extra hop itself: modelgate %s, nginx %s.",
			one, plural(one), fmtAdded(mg), fmtAdded(ng)))
	}
	if top > 1 {
		d, mg, ng := rep.res.load[cellKey{wayDirect, top}], rep.res.load[cellKey{wayModelgate, top}], rep.res.load[cellKey{wayNginx, top}]
		s := fmt.Sprintf("At %d clients the loop is closed and the %d cores are saturated by the load generator, the proxy and the runtime together, so a client waits about clients ÷ throughput per request: the added latency is mostly the proxy's CPU per request taking cores from the runtime and the client, not a delay of its own (direct %s req/s, modelgate %s, nginx %s).",
			top, rep.mach.cores, rps(d), rps(mg), rps(ng))
		cm, okM := mg.cpuPerRequest()
		cn, okN := ng.cpuPerRequest()
		if okM && okN {
			s += fmt.Sprintf(" The gateway used %.0f µs of CPU per request, nginx %.0f µs.", float64(cm)/float64(time.Microsecond), float64(cn)/float64(time.Microsecond))
		}
		out = append(out, s)
	}
	c := rep.res.cold
	if len(c.alone) > 0 {
		s := rep.res.cold.models[modelName]
		out = append(out, fmt.Sprintf("Cold start: the runtime alone answered %s after exec (ready after %s, polled every millisecond); through the gateway, from the request, its runtime phase (exec to the gateway seeing it ready) took %s at the median: the difference from the runtime's own %s is mostly the gateway's health polling interval (the first probe that finds the runtime ready comes that much later), part of its share.",
			fmtDur(median(c.alone)), fmtDur(median(c.aloneReady)), fmtDur(median(s.runtime)), fmtDur(median(c.aloneReady))))
	}
	out = append(out, fmt.Sprintf("The machine is shared (load average %s at the start, %s at the end): single samples are noisy, and p99 of a closed loop on %d cores moves with whatever else runs; compare the ways within this run, not with other runs.",
		rep.mach.loadStart, rep.mach.loadEnd, rep.mach.cores))
	return out
}

// rps is c's throughput, rounded, with thousands separators.
func rps(c *cell) string { return thousands(int64(math.Round(c.throughput()))) }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func rounds(n int) string {
	if n == 1 {
		return "1 round"
	}
	return fmt.Sprintf("%d rounds", n)
}

func dash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// fmtDur writes d in milliseconds with a precision that suits its size;
// "n/a" for a negative d, which marks no samples.
func fmtDur(d time.Duration) string {
	if d < 0 {
		return "n/a"
	}
	return fmtMS(d)
}

// fmtAdded writes a difference of durations with its sign.
func fmtAdded(d time.Duration) string {
	if d < 0 {
		return "-" + fmtMS(-d)
	}
	return "+" + fmtMS(d)
}

func fmtMS(d time.Duration) string {
	ms := float64(d) / float64(time.Millisecond)
	switch {
	case ms >= 100:
		return fmt.Sprintf("%.0f ms", ms)
	case ms >= 10:
		return fmt.Sprintf("%.1f ms", ms)
	case ms >= 1:
		return fmt.Sprintf("%.2f ms", ms)
	}
	return fmt.Sprintf("%.3f ms", ms)
}

// thousands writes n with comma thousands separators.
func thousands(n int64) string {
	if n < 0 {
		return "-" + thousands(-n)
	}
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
