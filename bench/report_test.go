//go:build bench

package bench

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/okeragate/caddy-okera-auth/validator"
)

// summary is a mode's result over all rounds.
type summary struct {
	rounds          int
	rps             float64 // median over rounds
	rpsMin, rpsMax  float64
	p50, p99        time.Duration // medians over rounds
	rpsRatio        float64       // median over rounds of mode rps / bare rps in the same round
	p99Ratio        float64       // likewise for p99
	cpuUS           float64       // gateway CPU per request, µs, median over rounds
	loadUS, upUS    float64       // the load generator's and the upstream's CPU per request
	failed          int           // non-200 answers and transport errors, all rounds
	exhausted       int           // rounds cut short by the token supply
	missed, invalid bool
	verdict         string
}

type report struct {
	cfg        settings
	start, end time.Time
	machine    machine
	modes      []*mode
	memory     *memResult
	micro      []microResult
	microCmd   string
	microErr   error
	profileDir string
	pools      []*tokenPool
}

func (r *report) bare() *mode {
	for _, m := range r.modes {
		if m.key == modeBare {
			return m
		}
	}
	return nil
}

// summarize computes every mode's medians, ratios and verdict. Ratios are
// taken round by round (each mode against the bare proxy's run in the same
// round, seconds apart) and then the median, so slow drift of the machine
// cancels out of them.
func (r *report) summarize() {
	bare := r.bare()
	for _, m := range r.modes {
		if len(m.runs) == 0 {
			continue
		}
		s := summary{rounds: len(m.runs), rpsMin: math.Inf(1)}
		var rps, p50, p99, cpu, load, up, rr, pr []float64
		for i, st := range m.runs {
			rps = append(rps, st.rps)
			p50 = append(p50, float64(st.p50))
			p99 = append(p99, float64(st.p99))
			cpu = append(cpu, us(st.cpuPerReq()))
			load = append(load, us(perReq(st.loadCPU, st.ok)))
			up = append(up, us(perReq(st.upCPU, st.ok)))
			s.rpsMin, s.rpsMax = min(s.rpsMin, st.rps), max(s.rpsMax, st.rps)
			s.failed += st.bad + st.errs
			if st.exhausted {
				s.exhausted++
			}
			if b := bare.runs[i]; b.rps > 0 && b.p99 > 0 {
				rr = append(rr, st.rps/b.rps)
				pr = append(pr, float64(st.p99)/float64(b.p99))
			}
		}
		s.rps, s.p50, s.p99 = median(rps), time.Duration(median(p50)), time.Duration(median(p99))
		s.cpuUS, s.rpsRatio, s.p99Ratio = median(cpu), median(rr), median(pr)
		s.loadUS, s.upUS = median(load), median(up)
		switch {
		case s.failed > 0:
			s.invalid = true
			s.verdict = fmt.Sprintf("**invalid**: %d requests failed", s.failed)
		case m.key == modeBare:
			s.verdict = "the limit"
		case m.goal == (goal{}):
			s.verdict = "no target"
		default:
			var why []string
			if m.goal.minRPS > 0 && s.rpsRatio < m.goal.minRPS {
				why = append(why, fmt.Sprintf("rps %.3f× < %.2f×", s.rpsRatio, m.goal.minRPS))
			}
			if m.goal.maxP99 > 0 && s.p99Ratio > m.goal.maxP99 {
				why = append(why, fmt.Sprintf("p99 %.3f× > %.1f×", s.p99Ratio, m.goal.maxP99))
			}
			if len(why) > 0 {
				s.missed = true
				s.verdict = "**missed** (" + strings.Join(why, "; ") + ")"
			} else {
				s.verdict = "met"
			}
		}
		m.summary = s
	}
}

// microResult is one Go benchmark, medians over its -count runs.
type microResult struct {
	pkg, name string
	runs      int
	metrics   map[string]float64 // by unit: ns/op, B/op, allocs/op, custom
}

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+(\d+)\s+(.*)$`)

// runMicro runs the Go micro-benchmarks of validator/, caddymodule/ and this
// package, echoing their output, and returns the medians. It makes count
// passes over the whole set (rather than -count, which repeats each
// benchmark back to back) so that drift of the machine spreads over all.
func runMicro(count int, logf func(string, ...any)) ([]microResult, string, error) {
	args := []string{"test", "-tags", "bench", "-run", "^$", "-bench", ".", "-benchmem",
		"-count", "1", "-timeout", "20m", "./validator/", "./caddymodule/", "./bench/"}
	cmdline := "go " + strings.Join(args, " ")
	type key struct{ pkg, name string }
	samples := map[key][]map[string]float64{}
	var order []key
	var errs []string
	for pass := range count {
		logf("micro-benchmarks, pass %d/%d: %s", pass+1, count, cmdline)
		cmd := exec.Command("go", args...)
		cmd.Dir = ".." // the module root
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, cmdline, err
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			return nil, cmdline, err
		}
		pkg := ""
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			fmt.Println("    " + line)
			if p, ok := strings.CutPrefix(line, "pkg: "); ok {
				pkg = strings.TrimPrefix(strings.TrimSpace(p), "github.com/okeragate/caddy-okera-auth/")
				continue
			}
			mm := benchLine.FindStringSubmatch(line)
			if mm == nil {
				continue
			}
			f := strings.Fields(mm[3])
			vals := map[string]float64{}
			for i := 0; i+1 < len(f); i += 2 {
				if v, err := strconv.ParseFloat(f[i], 64); err == nil {
					vals[f[i+1]] = v
				}
			}
			k := key{pkg, mm[1]}
			if _, seen := samples[k]; !seen {
				order = append(order, k)
			}
			samples[k] = append(samples[k], vals)
		}
		_, _ = io.Copy(io.Discard, out)
		if err := cmd.Wait(); err != nil {
			errs = append(errs, fmt.Sprintf("pass %d: %v", pass+1, err))
		}
	}
	var res []microResult
	for _, k := range order {
		mr := microResult{pkg: k.pkg, name: k.name, runs: len(samples[k]), metrics: map[string]float64{}}
		units := map[string][]float64{}
		for _, s := range samples[k] {
			for u, v := range s {
				units[u] = append(units[u], v)
			}
		}
		for u, v := range units {
			mr.metrics[u] = median(v)
		}
		res = append(res, mr)
	}
	if len(errs) > 0 {
		return res, cmdline, fmt.Errorf("%s: %s (results of the packages that ran are kept)", cmdline, strings.Join(errs, "; "))
	}
	return res, cmdline, nil
}

func (r *report) microMetric(pkg, name, unit string) (float64, bool) {
	for _, m := range r.micro {
		if m.pkg == pkg && m.name == name {
			v, ok := m.metrics[unit]
			return v, ok
		}
	}
	return 0, false
}

// markdown renders RESULTS.md.
func (r *report) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	cfg := r.cfg
	m := r.machine
	m.loadEnd = loadAvg()

	w("# `make bench`: okera_auth against a bare reverse_proxy\n\n")
	w("Written by `make bench` (bench/gateway_test.go); do not edit by hand.\n\n")
	w("- Date: %s (took %s)\n", r.start.UTC().Format("2006-01-02 15:04 MST"), r.end.Sub(r.start).Round(time.Second))
	w("- Command: `%s` — %d rounds × %s per front end, %d keep-alive connections, %s warm-up\n",
		cfg.command(), cfg.rounds, cfg.duration, cfg.concurrency, cfg.warmup)
	w("- Machine: %d cores (%s), %.0f GiB, %s; load average (1/5/15 min) %s at the start, %s at the end\n",
		m.cores, m.cpuModel, m.memGiB, m.kernel, m.loadStart, m.loadEnd)
	w("- Go %s; Caddy %s (./caddy built from this tree)\n", m.goVersion, m.caddyVersion)
	w("- **The load generator, the upstream and every Caddy front end run on this one machine and share its %d cores** "+
		"(and other work was running on it too). Absolute numbers are lower and noisier than on dedicated hardware; "+
		"the ratios to the bare proxy, measured in interleaved rounds, are the result.\n\n", m.cores)

	w("## How it is measured\n\n")
	w("- One upstream: a minimal Go `net/http` server (the bench binary re-executed) answering `ok`; it also plays the remote validation endpoint.\n")
	w("- One Caddy process per front end, all built from this tree and all proxying to that upstream with `reverse_proxy`: " +
		"separate processes keep their heaps, GCs, caches and connection pools apart, so no mode pays for another's garbage. " +
		"Only one front end is under load at a time; the idle ones cost nothing measurable.\n")
	w("- Load: %d connections (one worker each, closed loop, HTTP/1.1 keep-alive, connections kept across rounds), "+
		"every status checked (only 200s count), every latency kept and sorted (p50/p99 exact per run). "+
		"Front ends are driven in the order of the table, round after round (A B C … A B C …), so drift of the machine hits all alike.\n", cfg.concurrency)
	w("- Per mode: median over rounds of requests/s, p50 and p99; the ratios are the median over rounds of the ratio to the bare proxy's run of the same round. " +
		"*Gateway CPU* is the front end's own CPU time per request (`/proc/<pid>/stat`, 10 ms ticks), the least noise-sensitive figure here.\n")
	w("- Warm modes give each connection a token of its own (%d distinct tokens, all cached after the warm-up). "+
		"Cold modes give every request a token that process has never seen (pre-signed RSA-%d tokens, kept in `%s` between runs).\n",
		cfg.concurrency, keyBits, cfg.cacheDir)
	for _, p := range r.pools {
		w("- %s pool: %d tokens, %d of them from earlier runs, %d signed by this run", p.alg, len(p.tokens), p.loaded, len(p.tokens)-p.loaded)
		if p.signTime > 0 {
			w(" (in %s)", p.signTime.Round(time.Second))
		}
		w(".\n")
	}
	w("\n")

	w("## Load: okera_auth against the bare proxy\n\n")
	w("| mode | req/s (median; min–max) | p50 | p99 | rps ratio | p99 ratio | gateway CPU/req (Δ vs bare) | target | result |\n")
	w("|---|---|---|---|---|---|---|---|---|\n")
	for _, md := range r.modes {
		if md.skip != "" {
			w("| `%s` %s | — | — | — | — | — | — | %s | skipped: %s |\n", md.key, md.title, md.goal, oneLine(md.skip))
			continue
		}
		s := md.summary
		if s.rounds == 0 {
			continue
		}
		ratio, p99r, cpur := "1 (ref)", "1 (ref)", ""
		if md.key != modeBare {
			ratio, p99r = fmt.Sprintf("%.3f×", s.rpsRatio), fmt.Sprintf("%.3f×", s.p99Ratio)
			if b := r.bare(); b != nil {
				cpur = fmt.Sprintf(" (%+.1f µs)", s.cpuUS-b.summary.cpuUS)
			}
		}
		w("| `%s` %s | %.0f; %.0f–%.0f | %s | %s | %s | %s | %.1f µs%s | %s | %s |\n",
			md.key, md.title, s.rps, s.rpsMin, s.rpsMax, fmtDur(s.p50), fmtDur(s.p99), ratio, p99r, s.cpuUS, cpur, md.goal, s.verdict)
	}
	w("\n")
	if b := r.bare(); b != nil && b.summary.rounds > 0 {
		bs := b.summary
		total := bs.loadUS + bs.cpuUS + bs.upUS
		w("CPU per request in the bare proxy's rounds (medians): load generator %.1f µs, Caddy %.1f µs, upstream %.1f µs, %.1f µs in all "+
			"(with the cores to themselves these three would top out near %.0f req/s; the rounds reached %.0f, the rest of the machine went to other work). "+
			"Every µs a front end adds per request comes out of that shared budget: a warm path can reach 0.95× of the bare proxy's rate "+
			"only if okera_auth adds less than about %.0f µs of CPU per request.\n\n",
			bs.loadUS, bs.cpuUS, bs.upUS, total, float64(r.machine.cores)*1e6/total, bs.rps, total*(1/0.95-1))
	}
	for _, md := range r.modes {
		var notes []string
		if md.summary.exhausted > 0 {
			notes = append(notes, fmt.Sprintf("%d round(s) ran out of fresh tokens before the end; their rate is over the time they ran", md.summary.exhausted))
		}
		if md.cold && md.coldTokens > 0 {
			notes = append(notes, fmt.Sprintf("every request carried a token this process had never seen (%d fresh tokens over the rounds)", md.coldTokens))
		}
		notes = append(notes, md.notes...)
		if len(notes) > 0 {
			w("- `%s`: %s.\n", md.key, strings.Join(notes, "; "))
		}
	}
	w("\n<details><summary>Every round (req/s, p99)</summary>\n\n")
	w("| mode |")
	for i := range cfg.rounds {
		w(" round %d |", i+1)
	}
	w("\n|---|%s\n", strings.Repeat("---|", cfg.rounds))
	for _, md := range r.modes {
		if len(md.runs) == 0 {
			continue
		}
		w("| `%s` |", md.key)
		for _, st := range md.runs {
			w(" %.0f, %s |", st.rps, fmtDur(st.p99))
		}
		w("\n")
	}
	w("\n</details>\n\n")

	r.targets(&b)
	r.memorySection(&b)
	r.microSection(&b)
	r.profileSection(&b)
	return b.String()
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

func (r *report) targets(b *strings.Builder) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("## Targets of the issue\n\n| target | measured | result |\n|---|---|---|\n")
	for _, md := range r.modes {
		if md.goal == (goal{}) {
			continue
		}
		if md.skip != "" || md.summary.rounds == 0 {
			w("| `%s`: %s | skipped | — |\n", md.key, md.goal)
			continue
		}
		s := md.summary
		w("| `%s`: %s | rps %.3f×, p99 %.3f× | %s |\n", md.key, md.goal, s.rpsRatio, s.p99Ratio, s.verdict)
	}
	// The paired benchmark is the measurement; validator's own benchmarks
	// (cache off, one token, run at another moment than their raw
	// counterpart) are the cross-check.
	for _, alg := range []string{"RS256", "RS512"} {
		name := "BenchmarkColdVsRaw/" + alg
		ratio, ok := r.microMetric("bench", name, "cold/raw")
		if !ok {
			w("| validator cold %s ≤ 1.3× raw crypto/rsa verify | not measured | — |\n", alg)
			continue
		}
		cold, _ := r.microMetric("bench", name, "cold-ns/op")
		raw, _ := r.microMetric("bench", name, "raw-ns/op")
		extra := ""
		vc, ok1 := r.microMetric("validator", "BenchmarkValidateCold"+alg, "ns/op")
		vr, ok2 := r.microMetric("validator", "BenchmarkRawVerifyPKCS1v15"+alg, "ns/op")
		if ok1 && ok2 {
			extra = fmt.Sprintf("; validator's own benchmarks: %.0f / %.0f ns = %.2f×", vc, vr, vc/vr)
		}
		w("| validator cold %s ≤ 1.3× raw crypto/rsa verify | `%s` (paired): %.0f / %.0f ns = %.3f×%s | %s |\n",
			alg, name, cold, raw, ratio, extra, verdictAtMost(ratio, 1.3))
	}
	if a, ok := r.microMetric("caddymodule", "BenchmarkServeHTTPCached", "allocs/op"); ok {
		w("| cached ServeHTTP ≤ 10 allocs/op | `BenchmarkServeHTTPCached`: %.0f allocs/op | %s |\n", a, verdictAtMost(a, 10))
	} else {
		w("| cached ServeHTTP ≤ 10 allocs/op | not measured | — |\n")
	}
	w("\n")
}

func verdictAtMost(v, limit float64) string {
	if v <= limit {
		return "met"
	}
	return "**missed**"
}

func (r *report) memorySection(b *strings.Builder) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	mr := r.memory
	if mr == nil {
		return
	}
	w("## Memory: the token cache's bound\n\n")
	w("A fresh public-key gateway (key cache at its default bound, %d entries) gets %d distinct valid RS256 tokens in batches of %d, "+
		"at %d connections; after each batch the bench reads the process's VmRSS from `/proc/<pid>/status`, then forces a GC through the admin endpoint "+
		"(`/debug/pprof/heap?gc=1`) and reads the live heap (`go_memstats_heap_alloc_bytes`). VmRSS also holds garbage the collector has not yet "+
		"returned to the OS; the live heap is what the cache actually keeps.\n\n",
		validator.DefaultCacheSize, r.cfg.memTokens, r.cfg.memStep, r.cfg.concurrency)
	if mr.err != nil {
		w("The memory run failed: %s\n\n", oneLine(mr.err.Error()))
	}
	if len(mr.points) == 0 {
		return
	}
	base := mr.points[0]
	w("| distinct tokens sent | VmRSS | Δ VmRSS | live heap | Δ live heap | key-cache misses | batch req/s |\n|---|---|---|---|---|---|---|\n")
	for _, p := range mr.points {
		fail := ""
		if p.bad > 0 {
			fail = fmt.Sprintf(" (%d failed)", p.bad)
		}
		w("| %d | %.1f MiB | %+.1f MiB | %.1f MiB | %+.1f MiB | %.0f | %.0f%s |\n", p.tokens,
			float64(p.rssKB)/1024, float64(p.rssKB-base.rssKB)/1024,
			p.liveHeap/(1<<20), (p.liveHeap-base.liveHeap)/(1<<20), p.misses, p.rps, fail)
	}
	if mr.hwmKB > 0 {
		w("\nPeak RSS (VmHWM): %.1f MiB.\n", float64(mr.hwmKB)/1024)
	}
	var atBound, last *memPoint
	for i := range mr.points {
		if mr.points[i].tokens == mr.cacheSize {
			atBound = &mr.points[i]
		}
	}
	last = &mr.points[len(mr.points)-1]
	if atBound != nil && last.tokens > atBound.tokens {
		upRSS := float64(atBound.rssKB-base.rssKB) / 1024
		upHeap := (atBound.liveHeap - base.liveHeap) / (1 << 20)
		pastRSS := float64(last.rssKB-atBound.rssKB) / 1024
		pastHeap := (last.liveHeap - atBound.liveHeap) / (1 << 20)
		w("\nUp to the bound (0 → %d tokens): VmRSS %+.1f MiB, live heap %+.1f MiB (≈ %.0f bytes per cached token). "+
			"Past the bound (%d → %d tokens): VmRSS %+.1f MiB, live heap %+.1f MiB. ",
			atBound.tokens, upRSS, upHeap, (atBound.liveHeap-base.liveHeap)/float64(mr.cacheSize),
			atBound.tokens, last.tokens, pastRSS, pastHeap)
		if upHeap > 0 && pastHeap <= 0.1*upHeap && pastRSS <= 0.1*max(upRSS, 1) {
			w("**Bounded**: past %d entries the gateway stops growing.\n\n", mr.cacheSize)
		} else if upHeap > 0 && pastHeap <= 0.1*upHeap {
			w("The live heap stops growing at the bound; VmRSS still moved by %+.1f MiB past it (garbage of the evictions not yet returned to the OS).\n\n", pastRSS)
		} else {
			w("**Not clearly bounded**: memory kept growing past the cache's bound.\n\n")
		}
	} else {
		w("\n(Fewer tokens than the bound were sent, so the bound itself was not reached.)\n\n")
	}
}

func (r *report) microSection(b *strings.Builder) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	if r.microCmd == "" {
		return
	}
	w("## Go micro-benchmarks\n\n`%s`, %d passes (after every gateway had stopped); medians over the passes.\n\n", r.microCmd, r.cfg.microCount)
	if r.microErr != nil {
		w("The command failed: %s\n\n", oneLine(r.microErr.Error()))
	}
	w("| package | benchmark | ns/op | B/op | allocs/op | other |\n|---|---|---|---|---|---|\n")
	for _, m := range r.micro {
		var other []string
		for u, v := range m.metrics {
			switch u {
			case "ns/op", "B/op", "allocs/op":
			default:
				other = append(other, fmt.Sprintf("%g %s", v, u))
			}
		}
		slices.Sort(other)
		w("| %s | %s | %.0f | %.0f | %.0f | %s |\n", m.pkg, m.name, m.metrics["ns/op"], m.metrics["B/op"], m.metrics["allocs/op"], strings.Join(other, ", "))
	}
	w("\n`bench`'s `BenchmarkColdVsRaw` times two things in every iteration, on the same token: crypto/rsa alone (decode the signature, hash the signing input, " +
		"`rsa.VerifyPKCS1v15`: `raw-ns/op`) and `validator.Chain.Validate` of a token that chain has never seen, key cache on at its default size (`cold-ns/op`; " +
		"`hits/op` 0 shows it stayed cold). Its ns/op is the sum. Pairing them in one loop keeps the machine's drift out of the ratio.\n\n")
}

func (r *report) profileSection(b *strings.Builder) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	var profiled []*mode
	for _, md := range r.modes {
		if md.prof != nil && md.key != modeBare {
			profiled = append(profiled, md)
		}
	}
	if len(profiled) == 0 {
		return
	}
	var base map[string]float64
	if b := r.bare(); b != nil && b.prof != nil && b.prof.err == nil {
		base = b.prof.areas
	}
	w("## Profiles\n\n")
	if r.cfg.profile == "always" {
		w("Every okera_auth front end was profiled (BENCH_PROFILE=always), and the bare proxy as the baseline. ")
	} else {
		w("The front ends that missed a target were profiled, and the bare proxy as the baseline. ")
	}
	w("Profiles were taken from Caddy's admin endpoint while the bench loaded the front end (%d s CPU profile, %d s delta allocation profile, same load as the rounds); "+
		"files in `%s`. Read with `go tool pprof -top`.\n\n", r.cfg.profileSecs, r.cfg.profileSecs, r.profileDir)
	for _, md := range profiled {
		p := md.prof
		w("### `%s` %s\n\n", md.key, md.title)
		if p.err != nil {
			w("The profile failed: %s\n\n", oneLine(p.err.Error()))
			continue
		}
		w("Load while profiling: %.0f req/s, p99 %s, gateway CPU %.1f µs/req", p.load.rps, fmtDur(p.load.p99), us(p.load.cpuPerReq()))
		if p.pluginShare > 0 {
			x := p.pluginShare * us(p.load.cpuPerReq())
			w("; okera_auth's own work (its ServeHTTP without the proxy it calls) took %.1f%% of the gateway's CPU samples, ≈ %.1f µs per request",
				100*p.pluginShare, x)
			if b := r.bare(); b != nil && b.summary.rounds > 0 {
				total := b.summary.loadUS + b.summary.cpuUS + b.summary.upUS
				w(". On the bare rounds' CPU budget of %.0f µs per request (generator, Caddy, upstream), that much more work alone "+
					"puts this mode's ceiling at ≈ %.2f× the bare rate", total, total/(total+x))
			}
		}
		w(".\n\n")
		if base != nil && p.areas != nil {
			w("Where the front end's CPU per request goes, against the bare proxy profiled the same way (cum time of each area ÷ requests served during the profile; areas overlap):\n\n")
			w("| area | bare proxy | `%s` | Δ |\n|---|---|---|---|\n", md.key)
			for _, a := range cpuAreas {
				w("| %s | %.1f µs | %.1f µs | %+.1f µs |\n", a.label, base[a.label], p.areas[a.label], p.areas[a.label]-base[a.label])
			}
			w("\n")
		}
		section := func(title, body string) {
			if body == "" {
				return
			}
			w("%s\n\n```\n%s\n```\n\n", title, body)
		}
		section("CPU under okera_auth, the reverse proxy it calls excluded (`-cum -show_from='caddymodule\\.\\(\\*Handler\\)\\.ServeHTTP' -ignore=reverseproxy`):", p.pluginCPU)
		section("CPU, whole process (flat):", p.cpuTop)
		section("Objects allocated under okera_auth, the proxy excluded (`-sample_index=alloc_objects`, same filters, flat):", p.pluginAllocs)
		section("Bytes allocated, whole process (`-sample_index=alloc_space`):", p.allocTop)
	}
}
