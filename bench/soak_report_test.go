//go:build soak

package bench

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// soakReport is everything SOAK.md says.
type soakReport struct {
	cfg        soakSettings
	start, end time.Time
	machine    machine
	faultBase  footprint
	faults     []*faultResult
	sustained  *sustainedResult
	reloads    *reloadResult
	forged     *forgedResult
}

func verdict(problems []string) string {
	if len(problems) == 0 {
		return "pass"
	}
	return fmt.Sprintf("**FAIL** (%d)", len(problems))
}

func mib(kb int64) string { return fmt.Sprintf("%.1f MiB", float64(kb)/1024) }

func latText(st *kindStats) string {
	if st == nil || len(st.lats) == 0 {
		return "—"
	}
	return fmt.Sprintf("%s / %s", fmtDur(st.p50), fmtDur(st.p99))
}

// sumRuns adds up the runs of one case.
func sumRuns(runs ...*driveResult) *kindStats {
	t := &kindStats{statuses: map[int]int{}}
	for _, r := range runs {
		if r == nil {
			continue
		}
		t.add(r.total())
	}
	return t
}

func (r *soakReport) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := r.machine
	m.loadEnd = loadAvg()
	w("# `make soak`: okera_auth under faults, hostile load, reloads and forged tokens\n\n")
	w("Written by `make soak` (bench/soak_test.go); do not edit by hand.\n\n")
	w("- Date: %s UTC (took %s)\n", r.start.UTC().Format("2006-01-02 15:04"), r.end.Sub(r.start).Round(time.Second))
	w("- Command: `%s` (sustained run %s with %d connections, %d reloads, %d forged tokens, fault phases of %s)\n",
		r.cfg.command(), r.cfg.duration, r.cfg.concurrency, r.cfg.reloads, r.cfg.forged, r.cfg.faultDur)
	w("- Machine: **%d cores** (%s), %.0f GiB, %s; load average (1/5/15 min) %s at the start, %s at the end\n",
		m.cores, m.cpuModel, m.memGiB, m.kernel, m.loadStart, m.loadEnd)
	w("- Go %s; Caddy %s (./caddy built from this tree)\n", m.goVersion, m.caddyVersion)
	w("- The load driver, the upstream, the remote validation endpoint, the groups endpoint, slapd and the Caddy under test share these cores (and other work ran on the machine). Latencies are reported, not held to targets; the checks use generous bounds (the dependencies' timeouts).\n\n")

	r.summary(w)
	r.faultSection(w)
	r.sustainedSection(w)
	r.reloadSection(w)
	r.forgedSection(w)

	var all []string
	for _, f := range r.faults {
		for _, p := range f.problems {
			all = append(all, f.fc.title+": "+p)
		}
	}
	if r.sustained != nil {
		for _, p := range r.sustained.problems {
			all = append(all, "sustained: "+p)
		}
	}
	if r.reloads != nil {
		for _, p := range r.reloads.problems {
			all = append(all, "reloads: "+p)
		}
	}
	if r.forged != nil {
		for _, p := range r.forged.problems {
			all = append(all, "forged: "+p)
		}
	}
	w("## Problems\n\n")
	if len(all) == 0 {
		w("None: every answer was the expected one, no spoofed identity reached the upstream, goroutines and descriptors came back to their baselines, memory stayed bounded.\n")
	}
	for _, p := range all {
		w("- %s\n", strings.Join(strings.Fields(p), " "))
	}
	return b.String()
}

func (r *soakReport) summary(w func(string, ...any)) {
	w("## Summary\n\n")
	w("| case | requests | statuses | wrong answers | transport errors | spoofed identities at the upstream | goroutines baseline → after | fds baseline → after | result |\n")
	w("|---|---|---|---|---|---|---|---|---|\n")
	row := func(name string, t *kindStats, spoofed int64, before, after footprint, problems []string) {
		w("| %s | %d | %s | %d | %d | %d | %d → %d | %d → %d | %s |\n", name, t.requests, t.statusText(), t.unexpected, t.errs,
			spoofed, before.goroutines, after.goroutines, before.fds, after.fds, verdict(problems))
	}
	for _, f := range r.faults {
		if f.skipped != "" {
			w("| fault: %s | — | — | — | — | — | — | — | skipped: %s |\n", f.fc.title, f.skipped)
			continue
		}
		t := sumRuns(f.base, f.fault, f.post)
		row("fault: "+f.fc.title, t, int64(t.spoofed), f.before, f.after, f.problems)
	}
	if s := r.sustained; s != nil && s.run != nil {
		row(fmt.Sprintf("sustained %s, %d connections, hostile mix", r.cfg.duration, r.cfg.concurrency), sumRuns(s.run), s.up.bad(), s.before, s.after, s.problems)
	}
	if rl := r.reloads; rl != nil && rl.run != nil {
		row(fmt.Sprintf("%d reloads under load", rl.done), sumRuns(rl.run), rl.up.bad(), rl.before, rl.after, rl.problems)
	}
	if f := r.forged; f != nil && f.run != nil {
		row(fmt.Sprintf("%d distinct forged tokens", f.n), sumRuns(f.run), 0, f.before, f.after, f.problems)
	}
	w("\nWrong answers: a status other than the one the request's kind must get, a 401 without `WWW-Authenticate`, a 503 without `Retry-After`, or a 200 the upstream did not send. Transport errors: failures `http.Transport.RoundTrip` returned after its own transparent retry of idempotent requests. Spoofed identities: requests on which the upstream found a client-chosen identity header, an identity other than the token's, or a request that should have been refused.\n\n")
}

func (r *soakReport) faultSection(w func(string, ...any)) {
	if len(r.faults) == 0 {
		return
	}
	w("## Faults\n\n")
	w("One Caddy process with four okera_auth sites, each with its own dependency (timeouts %s, group caches off so the dependency decides every request):\n\n", depTimeout)
	w("- `remote`: remote_endpoint (which verifies the token itself and names the user `alice-remote`), then the public key;\n")
	w("- `ldap`: public key; groups from the claim, else LDAP (slapd; users alice, bob, carol);\n")
	w("- `endpoint`: public key; groups from the claim, else the groups endpoint;\n")
	w("- `key`: public key only, from its own file (the one the corruption fault breaks; files checked every 1s).\n\n")
	w("Each kind of caller has its own workers (24 connections in all, 26 with the fresh-token caller), so a caller stuck behind a broken dependency holds up no one else. ")
	w("Each fault: baseline %s, fault %s (every answer checked against the outcome the README gives), recovery (the affected callers probed until they get their usual answer), 2s back to normal, then the gateway's goroutines and descriptors must return to the baseline taken after warm-up (%s; slack %d goroutines, %d fds). ",
		r.cfg.faultDur, r.cfg.faultDur, r.faultBase, goroutineSlack, fdSlack)
	w("Affected callers must be answered within the bound; every other caller's p99 during the fault must stay below the dependency timeout.\n\n")
	w("| fault | expected outcome | affected callers during the fault (statuses, p50, max) | bound | other callers, worst p99: baseline → fault | recovery | result |\n")
	w("|---|---|---|---|---|---|---|\n")
	for _, f := range r.faults {
		if f.skipped != "" {
			w("| %s | %s | skipped: %s | | | | |\n", f.fc.title, f.fc.outcome, f.skipped)
			continue
		}
		if f.fault == nil {
			w("| %s | %s | not run | | | | %s |\n", f.fc.title, f.fc.outcome, verdict(f.problems))
			continue
		}
		kb, kf, pb, pf := f.unrelatedWorst()
		other := fmt.Sprintf("%s (%s) → %s (%s)", fmtDur(pb), kb, fmtDur(pf), kf)
		aff := f.affectedText()
		if f.note != "" {
			aff += "; " + f.note
		}
		w("| %s | %s | %s | %s | %s | %s | %s |\n", f.fc.title, f.fc.outcome, aff, f.fc.bound, other, fmtDur(f.recovery), verdict(f.problems))
	}
	w("\n")
	for _, f := range r.faults {
		if f.fault == nil {
			continue
		}
		w("<details><summary>%s: every caller</summary>\n\n", f.fc.title)
		w("| caller | must get (fault) | baseline: statuses, p50 / p99 | fault: statuses, p50 / p99, max | users the upstream saw during the fault | after recovery |\n")
		w("|---|---|---|---|---|---|\n")
		for _, name := range f.fault.order {
			b, fl, p := f.base.get(name), f.fault.get(name), f.post
			must := fmt.Sprint(fl.want)
			if _, ok := f.fc.affected[name]; ok {
				must = "**" + must + "**"
			}
			post := "—"
			if p != nil {
				post = p.get(name).statusText()
			}
			w("| %s | %s | %s, %s | %s, %s, %s | %s | %s |\n", name, must, b.statusText(), latText(b), fl.statusText(), latText(fl),
				fmtDur(fl.max), fl.usersText(), post)
		}
		w("\n</details>\n\n")
	}
}

func (r *soakReport) sustainedSection(w func(string, ...any)) {
	s := r.sustained
	if s == nil || s.run == nil {
		return
	}
	tot := s.run.total()
	w("## Sustained run\n\n")
	w("One gateway, one site: public key, groups from the claim, `required_group analysts`, and `expected_underscore_headers` / `expected_dot_headers` allow-listing `x_okera_user`, `x_okera_groups`, `x.okera.user`, `x.okera.groups`, so Caddy hands those spellings to okera_auth and only the handler stands between them and the upstream. ")
	w("%d connections, %s after a 5s warm-up: %d requests (%.0f req/s). Spoofed headers: 2–5 per request drawn from 13 spellings of X-Okera-User / X-Okera-Groups (any case, `_`, `.`), values such as admin or root, and on a quarter of them `Connection: keep-alive, X-Okera-User, x_okera_groups`.\n\n",
		r.cfg.concurrency, r.cfg.duration, tot.requests, s.run.rps())
	w("| kind | must get | requests | statuses | p50 / p99 | wrong | spoofed at the upstream |\n|---|---|---|---|---|---|---|\n")
	for _, name := range s.run.order {
		st := s.run.kinds[name]
		w("| %s | %d | %d | %s | %s | %d | %d |\n", name, st.want, st.requests, st.statusText(), latText(st), st.failures(), st.spoofed)
	}
	w("\nDuring the run the upstream received %d requests: %d with a spoofed or wrong identity, %d that should have been refused, %d with an Authorization other than the system token. ",
		s.up.requests, s.up.spoofed, s.up.refused, s.up.tokens)
	w("Control (the check can fail): the same gateway has a bare reverse_proxy site with the same server options; of %d valid-token-plus-spoofed-headers requests sent there, the upstream flagged %d.\n\n",
		s.controlSent, s.controlFlagged)
	w("Memory (VmRSS every %s): ", memSampleEvery)
	var parts []string
	for _, x := range s.rss {
		parts = append(parts, fmt.Sprintf("%.0fs %.1f", x.at.Seconds(), float64(x.kb)/1024))
	}
	w("%s (MiB). After the first fifth (warm-up), the first third peaks at %s and the last third at %s (ratio %.2f; allowed %.1f).\n\n",
		strings.Join(parts, ", "), mib(s.firstMax), mib(s.lastMax), float64(s.lastMax)/float64(max(s.firstMax, 1)), memGrowthAllowed)
	w("Goroutines and descriptors: baseline %s (after priming, connections closed), after the run %s.\n\n", s.before, s.after)
}

func (r *soakReport) reloadSection(w func(string, ...any)) {
	rl := r.reloads
	if rl == nil || rl.run == nil {
		return
	}
	tot := rl.run.total()
	w("## Reloads under load\n\n")
	var ds []time.Duration
	ds = append(ds, rl.durations...)
	slices.Sort(ds)
	dtext := "—"
	if len(ds) > 0 {
		dtext = fmt.Sprintf("%s / %s / %s", fmtDur(ds[0]), fmtDur(ds[len(ds)/2]), fmtDur(ds[len(ds)-1]))
	}
	w("The sustained gateway, under the same mix and %d connections, got %d config reloads a second apart (admin `POST /load` of its JSON config with `verify_cache_size` changed, an equivalent config; %d failed). POST /load took %s (min / median / max).\n\n",
		r.cfg.concurrency, rl.done, len(rl.errs), dtext)
	w("| requests | statuses | wrong answers | transport errors (not retried) | requests retried transparently by http.Transport | spoofed at the upstream | goroutines baseline → after | fds baseline → after | result |\n|---|---|---|---|---|---|---|---|---|\n")
	w("| %d | %s | %d | %d | %d | %d | %d → %d | %d → %d | %s |\n\n", tot.requests, tot.statusText(), tot.unexpected, tot.errs, tot.retried,
		rl.up.bad(), rl.before.goroutines, rl.after.goroutines, rl.before.fds, rl.after.fds, verdict(rl.problems))
	w("Every soak gateway proxies with `transport http { keepalive %s }`: Caddy's reverse_proxy keeps each replaced config's idle upstream connections (and their goroutines) until their keep-alive timeout, 2 minutes by default; that is Caddy's (integration/issue4_reload_test.go works around it the same way), and with the default the counts below would measure Caddy's idle pools, not okera_auth's Cleanup. A request counts as retried when net/http's Transport needed a second connection for it (a keep-alive connection the old server closed under it); only failures it could not retry count as transport errors.\n\n", upstreamKeepAlive)
}

func (r *soakReport) forgedSection(w func(string, ...any)) {
	f := r.forged
	if f == nil || f.run == nil {
		return
	}
	st := f.run.total()
	w("## A million forged tokens\n\n")
	w("One fresh gateway (public key only, verify cache of 100 000 entries) got %d distinct forged tokens (a valid token's header and payload with 256 random signature bytes) over %d connections in %s (%.0f req/s).\n\n",
		f.n, r.cfg.concurrency, f.run.elapsed.Round(time.Second), f.run.rps())
	w("| | value |\n|---|---|\n")
	w("| answers | %s (wrong %d) |\n", st.statusText(), st.failures())
	w("| key cache over the run | hits +%.0f, misses +%.0f; keys rejected +%.0f |\n", f.hits, f.misses, f.rejected)
	w("| VmRSS before → after | %s → %s |\n", mib(f.rssBefore), mib(f.rssAfter))
	w("| VmRSS peak | %s sampled every %s; VmHWM %s (bound: baseline + %d MiB) |\n", mib(f.rssPeak), forgedSampling, mib(f.hwm), forgedRSSGrowth>>10)
	w("| live heap after a GC, before → after | %.1f MiB → %.1f MiB (bound: +%d MiB; a cache of 100 000 forged tokens would hold about 120 MiB) |\n",
		f.heapBefore/(1<<20), f.heapAfter/(1<<20), forgedHeapGrowth>>20)
	w("| goroutines, fds | %s before, %s after |\n", f.before, f.after)
	var parts []string
	for _, x := range f.samples {
		parts = append(parts, fmt.Sprintf("%.0fs %.1f", x.at.Seconds(), float64(x.kb)/1024))
	}
	w("\nVmRSS during the run (MiB): %s.\n\n", strings.Join(parts, ", "))
}
