package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
)

// targetRatio is the target: tinyllm within 3x of llama.cpp's time.
const targetRatio = 3.0

// row is one line of the table: a metric's value for both runtimes.
type row struct {
	label   string
	unit    string // "ms" or "tok/s"
	rate    bool   // a throughput: higher is better, the ratio inverts
	tiny    float64
	llama   float64
	samples int // per runtime
	// tinyRange and llamaRange are the lowest and highest samples, for rows
	// that summarise them with a median; zero otherwise.
	tinyRange, llamaRange [2]float64
}

// rangeText is a runtime's lowest and highest sample, "" if the row has none.
func (r row) rangeText(minMax [2]float64) string {
	if minMax == [2]float64{} {
		return ""
	}
	return number(minMax[0], r.unit) + "–" + number(minMax[1], r.unit)
}

// ratio is tinyllm's time over llama.cpp's: for a throughput, llama.cpp's
// tokens/s over tinyllm's. Below 1, tinyllm is faster.
func (r row) ratio() float64 {
	if r.rate {
		return r.llama / r.tiny
	}
	return r.tiny / r.llama
}

func (r row) met() bool { return r.ratio() <= targetRatio }

// report is a finished benchmark: the rows, the cross-checks and the
// context needed to reproduce it.
type report struct {
	cfg      config
	programs []program
	mach     machine
	rows     []row
	checks   []string // correctness cross-checks, one sentence each
	perToken [2]float64
}

// newReport computes the table from the results of both programs, in the
// order of programs (tinyllm first).
func newReport(cfg config, programs []program, mach machine, res map[string]*results) report {
	tiny, llama := res[programs[0].name], res[programs[1].name]
	rep := report{cfg: cfg, programs: programs, mach: mach}
	add := func(label, unit, key string, agg func([]float64) float64) {
		r := row{label: label, unit: unit, rate: unit == "tok/s",
			tiny: agg(tiny.samples[key]), llama: agg(llama.samples[key]), samples: len(tiny.samples[key])}
		if len(tiny.samples[key]) > 0 && len(llama.samples[key]) > 0 {
			r.tinyRange = [2]float64{slices.Min(tiny.samples[key]), slices.Max(tiny.samples[key])}
			r.llamaRange = [2]float64{slices.Min(llama.samples[key]), slices.Max(llama.samples[key])}
		}
		rep.rows = append(rep.rows, r)
	}
	p90 := func(xs []float64) float64 { return percentile(xs, 90) }

	promptN := fmt.Sprint(slices.Max(tiny.promptN))
	add("load time (exec to first /health 200)", "ms", keyLoad, median)
	add("prompt processing, "+promptN+" tokens (server timings)", "tok/s", keyPromptRate, median)
	add("prompt request, "+promptN+" tokens + 1 generated (client wall)", "ms", keyPromptWall, median)
	for _, n := range cfg.predict {
		add(fmt.Sprintf("generation, %d tokens (server timings)", n), "tok/s", genRateKey(n), median)
		add(fmt.Sprintf("generation request, %d tokens (client wall)", n), "ms", genWallKey(n), median)
	}
	short := fmt.Sprintf("short completion, %d tokens, latency", cfg.latencyPredict)
	add(short+" median (client wall)", "ms", keyLatency, median)
	add(short+" p90 (client wall)", "ms", keyLatency, p90)
	last := &rep.rows[len(rep.rows)-1] // its range is the median row's
	last.tinyRange, last.llamaRange = [2]float64{}, [2]float64{}

	n := cfg.predict[0]
	rep.perToken = [2]float64{1e6 / median(tiny.samples[genRateKey(n)]), 1e6 / median(llama.samples[genRateKey(n)])}
	rep.checks = crossChecks(cfg, programs, tiny, llama)
	return rep
}

// crossChecks compares what both runtimes did: the prompt tokens they
// evaluated, and their greedy completions, which should be the same text.
func crossChecks(cfg config, programs []program, tiny, llama *results) []string {
	var out []string
	if a, b := slices.Compact(slices.Sorted(slices.Values(tiny.promptN))), slices.Compact(slices.Sorted(slices.Values(llama.promptN))); slices.Equal(a, b) && len(a) == 1 {
		out = append(out, fmt.Sprintf("Prompt processing: both evaluated the whole prompt, %d tokens, every time (timings.prompt_n = tokens_evaluated).", a[0]))
	} else {
		out = append(out, fmt.Sprintf("Prompt processing: the runtimes evaluated different token counts: %s %v, %s %v.", programs[0].name, a, programs[1].name, b))
	}
	for _, n := range cfg.predict {
		out = append(out, greedyCheck(n, programs, tiny, llama))
	}
	return out
}

// greedyCheck says whether every greedy completion of n tokens, over all runs
// of both runtimes, was the same text, and how many tokens they produced.
func greedyCheck(n int, programs []program, tiny, llama *results) string {
	all := append(append([]string{}, tiny.outputs[n]...), llama.outputs[n]...)
	counts := slices.Compact(slices.Sorted(slices.Values(append(append([]int{}, tiny.predictedN[n]...), llama.predictedN[n]...))))
	produced := fmt.Sprintf("predicted_n %v", counts)
	if len(all) > 0 && slices.Equal(slices.Compact(slices.Clone(all)), all[:1]) {
		return fmt.Sprintf("Greedy generation of %d tokens: identical text from both runtimes in all %d requests (%s).", n, len(all), produced)
	}
	t, l := tiny.outputs[n], llama.outputs[n]
	if len(t) > 0 && len(l) > 0 && t[0] != l[0] {
		i := commonPrefixLen(t[0], l[0])
		return fmt.Sprintf("Greedy generation of %d tokens: the texts DIFFER from byte %d (%s: %.40q, %s: %.40q; %s).",
			n, i, programs[0].name, t[0][i:], programs[1].name, l[0][i:], produced)
	}
	return fmt.Sprintf("Greedy generation of %d tokens: a runtime's text varied between requests (%s).", n, produced)
}

func commonPrefixLen(a, b string) int {
	i := 0
	for i < len(a) && i < len(b) && a[i] == b[i] {
		i++
	}
	return i
}

// verdict sums the table up against the target.
func (rep report) verdict() string {
	var missed []string
	for _, r := range rep.rows {
		if !r.met() {
			missed = append(missed, fmt.Sprintf("%s (%.2fx)", r.label, r.ratio()))
		}
	}
	if len(missed) == 0 {
		worst := slices.MaxFunc(rep.rows, func(a, b row) int { return cmpFloat(a.ratio(), b.ratio()) })
		return fmt.Sprintf("Target met: tinyllm is within %.0fx of llama.cpp's time on every row (worst: %s, %.2fx).", targetRatio, worst.label, worst.ratio())
	}
	return fmt.Sprintf("Target NOT met on %d of %d rows: %s.", len(missed), len(rep.rows), strings.Join(missed, "; "))
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// text is the table and checks as printed on stdout.
func (rep report) text() string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "metric\t%s\t%s\tratio\twithin %.0fx\t%s range\t%s range\t\n", rep.programs[0].name, rep.programs[1].name, targetRatio, rep.programs[0].name, rep.programs[1].name)
	for _, r := range rep.rows {
		fmt.Fprintf(tw, "%s [%s]\t%s\t%s\t%.2f\t%s\t%s\t%s\t\n", r.label, r.unit, number(r.tiny, r.unit), number(r.llama, r.unit), r.ratio(), yesNo(r.met()),
			r.rangeText(r.tinyRange), r.rangeText(r.llamaRange))
	}
	tw.Flush()
	fmt.Fprintf(&b, "\nratio: %s\n", ratioMeaning)
	for _, c := range rep.checks {
		fmt.Fprintln(&b, c)
	}
	for _, p := range rep.programs {
		for _, n := range p.notes {
			fmt.Fprintln(&b, "note:", n)
		}
	}
	fmt.Fprintln(&b, rep.verdict())
	return b.String()
}

const ratioMeaning = "tinyllm's time ÷ llama.cpp's time (for tok/s rows: llama.cpp's tok/s ÷ tinyllm's tok/s); below 1 means tinyllm is faster"

// sectionHeading is the heading of the section -write owns.
const sectionHeading = "## tinyllm vs llama.cpp"

// markdown is the section for docs/benchmarks.md, heading included.
func (rep report) markdown() string {
	var b strings.Builder
	cfg, m := rep.cfg, rep.mach
	fmt.Fprintf(&b, "%s\n\n", sectionHeading)
	fmt.Fprintf(&b, "Generated %s by:\n\n```sh\n%s\n```\n\n", m.date.Format("2006-01-02 15:04 MST"), cfg.command)
	fmt.Fprintf(&b, "(`bench/runtimes.sh` builds tinyllm, gets llama-server with `bench/build-llama-server.sh`, which builds it from the llama.cpp source in the npm package node-llama-cpp@3.21.1, 15-40 minutes the first time, and runs the `bench/runtimes` program; never in CI.)\n\n")

	fmt.Fprintf(&b, "Machine:\n\n")
	fmt.Fprintf(&b, "- CPU: %s, %d logical cores\n", m.cpu, m.cores)
	fmt.Fprintf(&b, "- Memory: %s; kernel %s; load average at the start %s (the machine is shared: other builds and tests run beside the benchmark)\n", m.memory, m.kernel, m.loadavg)
	fmt.Fprintf(&b, "- tinyllm built with %s from modelgate %s; llama.cpp: %s\n", m.goVersion, m.revision, m.llama)
	fmt.Fprintf(&b, "- Model: `%s`, %s bytes\n\n", cfg.model, thousands(m.modelSize))

	fmt.Fprintf(&b, "Setup: each runtime was started %s, alternately (tinyllm, llama.cpp, tinyllm, ...), on a free 127.0.0.1 port:\n\n", times(cfg.runs))
	for _, p := range rep.programs {
		fmt.Fprintf(&b, "- %s: `%s`\n", p.name, p.commandLine())
	}
	fmt.Fprintf(&b, "\nEach run: load time, one unmeasured warm-up of each request kind, then %d prompt-processing and %d generation requests per length, and %d short completions for latency, all `POST /completion` with temperature 0. ", cfg.reps, cfg.reps, cfg.requests)
	fmt.Fprintf(&b, "Prompt processing sends `cache_prompt: false` and, before each request, a one-token prompt that leaves nothing cached in common (tinyllm ignores `cache_prompt` and reuses the longest cached prefix), so both evaluate the whole prompt. ")
	fmt.Fprintf(&b, "Generation starts from %q; the latency requests keep each server's default prompt caching. Tokens/s are the servers' own `timings`; wall times are measured by the client. Values are medians over all samples (runs × requests).\n\n", shortPrompt)

	fmt.Fprintf(&b, "| Metric | tinyllm | llama.cpp | Ratio | Within %.0fx | tinyllm range | llama.cpp range |\n|---|--:|--:|--:|:-:|--:|--:|\n", targetRatio)
	for _, r := range rep.rows {
		fmt.Fprintf(&b, "| %s | %s %s | %s %s | %.2f | %s | %s | %s |\n", r.label, number(r.tiny, r.unit), r.unit, number(r.llama, r.unit), r.unit, r.ratio(), yesNo(r.met()),
			r.rangeText(r.tinyRange), r.rangeText(r.llamaRange))
	}
	fmt.Fprintf(&b, "\nRatio: %s. Range: the lowest and highest sample. Samples per runtime: %d for load time, %d per prompt and generation row, %d for latency.\n\n",
		ratioMeaning, cfg.runs, cfg.runs*cfg.reps, cfg.runs*cfg.requests)

	fmt.Fprintf(&b, "Cross-checks:\n\n")
	for _, c := range rep.checks {
		fmt.Fprintf(&b, "- %s\n", c)
	}
	for _, p := range rep.programs {
		for _, n := range p.notes {
			fmt.Fprintf(&b, "- Note: %s\n", n)
		}
	}
	fmt.Fprintf(&b, "\nReading the numbers:\n\n- %s\n", rep.verdict())
	for _, s := range rep.interpretation() {
		fmt.Fprintf(&b, "- %s\n", s)
	}
	return b.String()
}

// interpretation explains what the numbers measure, from the numbers.
func (rep report) interpretation() []string {
	var faster, slower []string
	for _, r := range rep.rows {
		if r.ratio() < 1 {
			faster = append(faster, r.label)
		} else {
			slower = append(slower, r.label)
		}
	}
	out := []string{fmt.Sprintf("tinyllm is faster on %d of %d rows and slower on %d (%s).",
		len(faster), len(rep.rows), len(slower), orNone(slower))}
	out = append(out, fmt.Sprintf("Per generated token (%d-token generation, server timings): tinyllm %.0f µs, llama.cpp %.0f µs.",
		rep.cfg.predict[0], rep.perToken[0], rep.perToken[1]))
	if rep.mach.modelSize > 0 && rep.mach.modelSize < 64<<20 {
		out = append(out, fmt.Sprintf("The model is tiny (%.1f MB of weights): a token is a few small matrix products, far from either runtime's kernel peak, "+
			"so fixed costs per decode call weigh as much as arithmetic. llama.cpp schedules a ggml compute graph, splits each op across its threads and synchronises them, "+
			"and runs its sampler chain for every decode; tinyllm calls its Go kernels directly. Load time likewise measures process start-up and set-up "+
			"(for llama-server: its context, thread pool and, by default, a warm-up decode), not reading weights.",
			float64(rep.mach.modelSize)/1e6))
		if strings.Contains(rep.cfg.model, "stories260K") {
			out = append(out, "With stories260K (embedding 64, feed-forward 172, vocabulary 512) every product of a generated token is below tinyllm's threshold for splitting work across threads "+
				"(tensor.parallelMinWork, 65,536 multiply-adds), so tinyllm generates on one core without synchronisation; prompt processing batches the whole prompt and both runtimes use both threads "+
				// rows[1] and rows[3]: prompt and first generation throughput, as newReport adds them.
				fmt.Sprintf("(ratio %.2f for prompt processing against %.2f for generation).", rep.rows[1].ratio(), rep.rows[3].ratio()))
		}
		out = append(out, "These ratios do not carry over to multi-gigabyte models, where arithmetic and memory bandwidth dominate and llama.cpp's SIMD and quantized kernels pay off; "+
			"the in-process Go benchmarks below (BenchmarkMatVec at 4096x4096) show tinyllm's kernel throughput at that size.")
	}
	out = append(out, fmt.Sprintf("The machine is shared, and %d server threads and the client share its %d cores, so single samples are noisy: "+
		"the worst sample of a row is up to %.1fx its median for tinyllm and %.1fx for llama.cpp. Compare the medians of alternating runs, not single requests.",
		rep.cfg.threads, rep.mach.cores, rep.worstSpread(false), rep.worstSpread(true)))
	return out
}

// worstSpread is the largest factor, over the rows with a range, by which a
// runtime's worst sample is slower than its median (llama.cpp's if llama).
func (rep report) worstSpread(llama bool) float64 {
	worst := 1.0
	for _, r := range rep.rows {
		mid, rng := r.tiny, r.tinyRange
		if llama {
			mid, rng = r.llama, r.llamaRange
		}
		switch {
		case rng == [2]float64{}:
		case r.rate && rng[0] > 0:
			worst = max(worst, mid/rng[0])
		case !r.rate && mid > 0:
			worst = max(worst, rng[1]/mid)
		}
	}
	return worst
}

func times(n int) string {
	if n == 1 {
		return "once"
	}
	return fmt.Sprintf("%d times", n)
}

func orNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, "; ")
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

// number formats a value with precision that suits its size.
func number(v float64, unit string) string {
	switch {
	case math.IsNaN(v):
		return "n/a"
	case unit == "tok/s" || v >= 100:
		return thousands(int64(math.Round(v)))
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	case v >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// thousands writes n with comma thousands separators.
func thousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
