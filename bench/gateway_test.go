//go:build bench

package bench

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/okeragate/caddy-okera-auth/internal/slapdtest"
)

// warmupTokens is the least a cold mode's pool holds before its rate is
// probed (which sizes the pool for the rest of the run).
const warmupTokens = 5000

// TestGatewayBench is `make bench`: okera_auth side by side with a bare
// reverse_proxy. It fails only when the bench itself cannot run; a missed
// target is a finding for RESULTS.md, not a test failure.
func TestGatewayBench(t *testing.T) {
	cfg, err := loadSettings()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.caddyBin == "" {
		t.Fatal("CADDY_BIN is not set: run the bench with `make bench`, which builds ./caddy and passes it")
	}
	if cfg.caddyBin, err = filepath.Abs(cfg.caddyBin); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(cfg.caddyBin); err != nil {
		t.Fatalf("CADDY_BIN: %v", err)
	}
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Printf("[%6.1fs] "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
	}
	rep := &report{cfg: cfg, start: start, machine: describeMachine(cfg.caddyBin)}
	logf("bench: %d rounds × %s per front end, %d keep-alive connections, warm-up %s; %s",
		cfg.rounds, cfg.duration, cfg.concurrency, cfg.warmup, rep.machine.summary())

	// Keys and tokens.
	work := t.TempDir()
	if err := os.MkdirAll(cfg.cacheDir, 0o700); err != nil {
		t.Fatal(err)
	}
	idpKey, err := loadOrCreateKey(filepath.Join(cfg.cacheDir, "idp_rsa.pem"))
	if err != nil {
		t.Fatal(err)
	}
	gwKey, err := loadOrCreateKey(filepath.Join(cfg.cacheDir, "gateway_rsa.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := writePublicKey(filepath.Join(work, "idp.pub"), &idpKey.PublicKey); err != nil {
		t.Fatal(err)
	}
	if err := writePrivateKey(filepath.Join(work, "gateway_rsa.pem"), gwKey); err != nil {
		t.Fatal(err)
	}
	rs256, rs512 := newSigner(idpKey, "RS256"), newSigner(idpKey, "RS512")
	now := time.Now()
	systemToken, err := rs256.sign(map[string]any{"sub": "okera", "groups": []string{"root"},
		"iat": now.Unix(), "exp": now.Add(30 * 24 * time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "system.token"), []byte(systemToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Warm modes: one token per connection, as from that many clients.
	warmGroups, err := warmTokens(rs256, cfg.concurrency, benchGroups)
	if err != nil {
		t.Fatal(err)
	}
	warmNoGroups, err := warmTokens(rs256, cfg.concurrency, nil)
	if err != nil {
		t.Fatal(err)
	}

	// Upstream (and remote validation endpoint), and slapd.
	up, upstream, err := startUpstream(work)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(up.stop)
	e := env{dir: work, upstream: upstream, systemToken: systemToken}
	var slapd *slapdtest.Server
	ldapSkip := ""
	if cfg.wants(modeLDAPWarm) {
		if why := slapdMissing(); why != "" {
			ldapSkip = why
		} else {
			slapd = slapdtest.New(t, slapdtest.Options{})
			e.ldap = &ldapInfo{url: slapd.URL, bindDN: slapd.BindDN, bindPassword: slapd.BindPassword, baseDN: slapd.BaseDN}
		}
	}

	p256, p512 := openPool(cfg.cacheDir, rs256), openPool(cfg.cacheDir, rs512)
	rep.pools = []*tokenPool{p256, p512}
	logf("token pools in %s: %d RS256 and %d RS512 tokens from earlier runs", cfg.cacheDir, p256.loaded, p512.loaded)
	// The pools of the cold modes this run drives need a first few tokens
	// now (their rate probe); each pool is sized for the rounds later.
	for p, key := range map[*tokenPool]string{p256: modeColdRS256, p512: modeColdRS512} {
		if cfg.wants(key) {
			if err := p.ensure(1+warmupTokens, logf); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Front ends: one Caddy process each.
	all := buildModes(e, warmGroups, warmNoGroups, p256, p512)
	rep.modes = all
	var active []*mode
	for _, m := range all {
		switch {
		case !cfg.wants(m.key):
			m.skip = "not selected (BENCH_MODES)"
			continue
		case m.key == modeLDAPWarm && ldapSkip != "":
			m.skip = ldapSkip
			logf("%-15s skipped: %s", m.key, m.skip)
			continue
		}
		if m.cold {
			// Token 0 is for the sanity check; the rest go to the cursor.
			m.sanityToken = "Bearer " + m.pool.tokens[0]
			m.cursor = &poolCursor{p: m.pool}
			m.cursor.i.Store(1)
		} else {
			m.sanityToken = m.warm[0]
		}
		g, err := startGateway(cfg.caddyBin, filepath.Join(work, m.key), m.key, upstream, m.handler)
		if err == nil {
			m.gw = g
			t.Cleanup(g.stop)
			err = m.sanity(m.sanityToken)
		}
		if err != nil {
			if m.key == modeBare {
				t.Fatalf("the bare reverse_proxy does not work: %v", err)
			}
			if m.gw != nil {
				m.gw.stop()
			}
			m.skip = err.Error()
			if m.key == modeMintedWarm && strings.Contains(err.Error(), "caddy adapt") {
				m.skip = "this build does not know signing_key / upstream_token minted (" + err.Error() + ")"
			}
			logf("%-15s skipped: %s", m.key, m.skip)
			continue
		}
		m.tgt = newTarget(g.addr, cfg.concurrency, g.pid(), up.pid())
		active = append(active, m)
		logf("%-15s Caddy pid %d on %s (admin %s): sanity check passed", m.key, g.pid(), g.addr, g.admin)
	}
	defer func() {
		for _, m := range active {
			m.tgt.close()
		}
	}()

	// Size the cold pools from a short probe of each cold mode: enough fresh
	// tokens for the warm-up and every round at 1.5 times the probed rate,
	// so the supply never sets the pace (a round that runs out anyway is
	// reported). A profile, if one is taken, gets its tokens later.
	need := map[*tokenPool]int{p256: cfg.memTokens}
	for _, m := range active {
		if !m.cold {
			continue
		}
		st := m.tgt.run(cfg.warmup, cfg.concurrency, m.source())
		m.probeRPS = st.rps
		secs := cfg.warmup.Seconds() + float64(cfg.rounds)*cfg.duration.Seconds()
		n := int(m.cursor.i.Load()) + max(5000, int(math.Ceil(st.rps*secs*1.5)))
		need[m.pool] = max(need[m.pool], n)
		logf("%-15s probe: %.0f req/s; the pool needs %d %s tokens", m.key, st.rps, n, m.pool.alg)
	}
	for _, p := range []*tokenPool{p256, p512} {
		if err := p.ensure(need[p], logf); err != nil {
			t.Fatal(err)
		}
	}

	// Warm-up, then the interleaved rounds.
	for _, m := range active {
		st := m.tgt.run(cfg.warmup, cfg.concurrency, m.source())
		logf("%-15s warm-up: %.0f req/s, %d failed", m.key, st.rps, st.bad+st.errs)
	}
	for r := range cfg.rounds {
		for _, m := range active {
			var before int64
			if m.cold {
				before = m.cursor.i.Load()
			}
			st := m.tgt.run(cfg.duration, cfg.concurrency, m.source())
			if m.cold {
				m.coldTokens += m.cursor.i.Load() - before
			}
			m.runs = append(m.runs, st)
			extra := ""
			if st.bad+st.errs > 0 {
				extra += fmt.Sprintf("  %d FAILED (first status %d)", st.bad+st.errs, st.firstBad)
			}
			if st.exhausted {
				extra += "  (token supply ran out)"
			}
			logf("round %d/%d %-15s %8.0f req/s  p50 %7s  p99 %7s  CPU %5.1f µs/req%s", r+1, cfg.rounds, m.key,
				st.rps, fmtDur(st.p50), fmtDur(st.p99), us(st.cpuPerReq()), extra)
		}
	}
	rep.summarize()

	// What the caches saved: the remote endpoint's and slapd's own counts.
	for _, m := range active {
		switch m.key {
		case modeRemoteWarm:
			if n, err := upstreamValidations(upstream); err == nil {
				m.notes = append(m.notes, fmt.Sprintf("remote endpoint called %d times in all", n))
			}
		case modeLDAPWarm:
			if slapd != nil {
				m.notes = append(m.notes, fmt.Sprintf("slapd received %d searches in all", slapd.SearchCount("")))
			}
		}
	}

	// Profiles of the front ends that missed a target, and of the bare
	// proxy as the baseline they are compared with.
	var toProfile []*mode
	for _, m := range active {
		if m.handler == "" || cfg.profile == "never" {
			continue
		}
		if cfg.profile == "always" || m.summary.missed {
			toProfile = append(toProfile, m)
		}
	}
	if len(toProfile) > 0 {
		toProfile = append([]*mode{active[0]}, toProfile...) // active[0] is the bare proxy
	}
	for _, m := range toProfile {
		if rep.profileDir == "" {
			rep.profileDir = filepath.Join(cfg.cacheDir, "profiles-"+start.Format("20060102-150405"))
			if err := os.MkdirAll(rep.profileDir, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if m.cold {
			rate := m.probeRPS
			for _, st := range m.runs {
				rate = max(rate, st.rps)
			}
			n := int(m.cursor.i.Load()) + max(2000, int(math.Ceil(rate*(float64(cfg.profileSecs)+1.5)*1.3)))
			if err := m.pool.ensure(n, logf); err != nil {
				t.Fatal(err)
			}
		}
		logf("%-15s profiling for %ds under load (CPU and allocations)...", m.key, cfg.profileSecs)
		m.prof = profileMode(m, cfg.concurrency, cfg.profileSecs, rep.profileDir)
		if m.prof.err != nil {
			logf("%-15s profile failed: %v", m.key, m.prof.err)
		}
	}
	for _, m := range active {
		m.gw.stop()
	}

	// The token cache's memory bound, on a fresh gateway.
	if cfg.memTokens > 0 {
		logf("memory: sending %d distinct tokens to a fresh public-key gateway, reading its memory every %d", cfg.memTokens, cfg.memStep)
		var keyWarm *mode
		for _, m := range all {
			if m.key == modeKeyWarm {
				keyWarm = m
			}
		}
		mm := &mode{key: "memory", handler: keyWarm.handler, warm: warmGroups, expect: keyWarm.expect}
		g, err := startGateway(cfg.caddyBin, filepath.Join(work, "memory"), "memory", upstream, mm.handler)
		if err != nil {
			t.Fatalf("memory gateway: %v", err)
		}
		t.Cleanup(g.stop)
		mm.gw, mm.tgt = g, newTarget(g.addr, cfg.concurrency, g.pid(), up.pid())
		if err := mm.sanity(warmGroups[0]); err != nil {
			t.Fatalf("memory gateway: %v", err)
		}
		bearers, err := p256.bearers(0, cfg.memTokens)
		if err != nil {
			t.Fatal(err)
		}
		res := memoryRun(mm, bearers, cfg.memStep, cfg.concurrency, logf)
		rep.memory = &res
		mm.tgt.close()
		g.stop()
		if res.err != nil {
			logf("memory run failed: %v", res.err)
		}
	}
	up.stop()
	if slapd != nil {
		slapd.Stop()
	}

	// Go micro-benchmarks, with nothing else of ours running.
	if cfg.microCount > 0 {
		rep.micro, rep.microCmd, rep.microErr = runMicro(cfg.microCount, logf)
		if rep.microErr != nil {
			logf("micro-benchmarks: %v", rep.microErr)
		}
	}

	rep.end = time.Now()
	md := rep.markdown()
	fmt.Println()
	fmt.Println(md)
	if err := os.WriteFile(cfg.out, []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(cfg.out)
	logf("wrote %s", abs)
}

// warmTokens signs n distinct tokens (different jti) with the groups claim,
// or without one when groups is nil.
func warmTokens(s signer, n int, groups []string) (fixedTokens, error) {
	now := time.Now()
	toks, err := signMany(s, n, func(i int) map[string]any {
		tag := "warm"
		if groups == nil {
			tag = "warm-nogroups"
		}
		return userClaims(fmt.Sprintf("%s-%d-%d", tag, now.UnixNano(), i), groups, now, 24*time.Hour)
	}, nil)
	if err != nil {
		return nil, err
	}
	out := make(fixedTokens, n)
	for i, t := range toks {
		out[i] = "Bearer " + t
	}
	return out, nil
}
