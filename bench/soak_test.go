//go:build soak

package bench

import (
	"crypto/rsa"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestSoak is `make soak`: the gateway under faults, sustained hostile
// load, reloads under load, and a million forged tokens, with every answer
// checked and the gateway's goroutines, descriptors and memory watched. It
// writes bench/SOAK.md. Unlike the bench, a wrong answer, a spoofed
// identity, a leak or unbounded memory fails the test; timings are
// reported and only checked against generous bounds (the dependencies'
// timeouts).
//
// Knobs (environment): SOAK_DURATION (sustained run, default 60s),
// SOAK_CONCURRENCY (default 64), SOAK_RELOADS (default 20), SOAK_FORGED
// (default 1000000), SOAK_FAULT_DURATION (each fault phase, default 5s),
// SOAK_PARTS (comma-separated subset of faults,sustained,reloads,forged),
// SOAK_OUT (default SOAK.md); BENCH_CACHE_DIR and CADDY_BIN as for the bench.
func TestSoak(t *testing.T) {
	cfg, err := loadSoakSettings()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	logf := func(format string, args ...any) {
		fmt.Printf("[%6.1fs] "+format+"\n", append([]any{time.Since(start).Seconds()}, args...)...)
	}
	rep := &soakReport{cfg: cfg, start: start, machine: describeMachine(cfg.caddyBin)}
	defer func() {
		rep.end = time.Now()
		md := rep.markdown()
		fmt.Println()
		fmt.Println(md)
		if err := os.WriteFile(cfg.out, []byte(md), 0o644); err != nil {
			t.Error(err)
		}
		abs, _ := filepath.Abs(cfg.out)
		logf("wrote %s", abs)
	}()
	logf("soak: %s", rep.machine.summary())
	s := newSoakSetup(t, cfg, logf)

	if cfg.wants("faults") {
		t.Run("faults", func(t *testing.T) {
			e := setupFaults(t, s)
			rep.faultBase = e.base
			for _, fc := range e.faultCases() {
				logf("fault: %s", fc.title)
				r := e.run(fc, logf)
				rep.faults = append(rep.faults, r)
				switch {
				case r.skipped != "":
					logf("  skipped: %s", r.skipped)
				case len(r.problems) == 0:
					logf("  ok: %s; recovered in %s; %s", r.affectedText(), fmtDur(r.recovery), r.after)
				default:
					for _, p := range r.problems {
						t.Errorf("%s: %s", fc.title, p)
					}
				}
			}
		})
	}
	if cfg.wants("sustained") || cfg.wants("reloads") {
		t.Run("sustained", func(t *testing.T) { runSustained(t, s, rep) })
	}
	if cfg.wants("forged") {
		t.Run("forged", func(t *testing.T) { rep.forged = runForged(t, s) })
	}
}

// soakSettings are the knobs of one `make soak`.
type soakSettings struct {
	duration    time.Duration
	concurrency int
	reloads     int
	forged      int
	faultDur    time.Duration
	parts       []string
	out         string
	cacheDir    string
	caddyBin    string
}

func loadSoakSettings() (soakSettings, error) {
	s := soakSettings{
		duration:    60 * time.Second,
		concurrency: 64,
		reloads:     20,
		forged:      1_000_000,
		faultDur:    5 * time.Second,
		out:         "SOAK.md",
		// The bench's cache: its identity-provider key and token pool.
		cacheDir: filepath.Join(os.TempDir(), "caddy-okera-auth-bench"),
		caddyBin: os.Getenv("CADDY_BIN"),
	}
	if v := os.Getenv("BENCH_CACHE_DIR"); v != "" {
		s.cacheDir = v
	}
	var errs []string
	var err error
	for name, dst := range map[string]*int{"SOAK_CONCURRENCY": &s.concurrency, "SOAK_RELOADS": &s.reloads, "SOAK_FORGED": &s.forged} {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(strings.TrimSpace(v))
			if err != nil || n < 1 {
				errs = append(errs, fmt.Sprintf("%s=%q: want a whole number >= 1", name, v))
				continue
			}
			*dst = n
		}
	}
	for name, dst := range map[string]*time.Duration{"SOAK_DURATION": &s.duration, "SOAK_FAULT_DURATION": &s.faultDur} {
		if v := os.Getenv(name); v != "" {
			d, err := time.ParseDuration(strings.TrimSpace(v))
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Sprintf("%s=%q: want a positive duration such as 60s", name, v))
				continue
			}
			*dst = d
		}
	}
	if v := os.Getenv("SOAK_PARTS"); v != "" {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if !slices.Contains([]string{"faults", "sustained", "reloads", "forged"}, p) {
				errs = append(errs, fmt.Sprintf("SOAK_PARTS: unknown part %q (faults, sustained, reloads, forged)", p))
			}
			s.parts = append(s.parts, p)
		}
	}
	if v := os.Getenv("SOAK_OUT"); v != "" {
		s.out = v
	}
	if s.caddyBin == "" {
		errs = append(errs, "CADDY_BIN is not set: run the soak with `make soak`, which builds ./caddy and passes it")
	} else if s.caddyBin, err = filepath.Abs(s.caddyBin); err == nil {
		if _, err := os.Stat(s.caddyBin); err != nil {
			errs = append(errs, "CADDY_BIN: "+err.Error())
		}
	}
	if len(errs) > 0 {
		return s, fmt.Errorf("soak settings: %s", strings.Join(errs, "; "))
	}
	return s, nil
}

func (s soakSettings) wants(part string) bool {
	return len(s.parts) == 0 || slices.Contains(s.parts, part)
}

// command is the command line that reproduces this run.
func (s soakSettings) command() string {
	var env []string
	for _, name := range []string{"SOAK_DURATION", "SOAK_CONCURRENCY", "SOAK_RELOADS", "SOAK_FORGED",
		"SOAK_FAULT_DURATION", "SOAK_PARTS"} {
		if v := os.Getenv(name); v != "" {
			env = append(env, name+"="+v)
		}
	}
	return strings.TrimSpace(strings.Join(env, " ") + " make soak")
}

// soakSetup is what every part shares: keys, the system token, the
// upstream, and the pool of pre-signed tokens.
type soakSetup struct {
	cfg         soakSettings
	dir         string
	idp         *rsa.PrivateKey
	issuer      issuer
	stranger    signer
	systemToken string
	up          *soakUpstream
	cold        *poolCursor
	logf        func(string, ...any)
}

// soakPoolTokens is how many pre-signed tokens the key-file fault may use.
const soakPoolTokens = 30_000

func newSoakSetup(t *testing.T, cfg soakSettings, logf func(string, ...any)) *soakSetup {
	s := &soakSetup{cfg: cfg, dir: t.TempDir(), logf: logf}
	if err := os.MkdirAll(cfg.cacheDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// The bench's identity-provider key, so its pre-signed pool serves the
	// fresh-token callers.
	var err error
	if s.idp, err = loadOrCreateKey(filepath.Join(cfg.cacheDir, "idp_rsa.pem")); err != nil {
		t.Fatal(err)
	}
	if err := writePublicKey(filepath.Join(s.dir, "idp.pub"), &s.idp.PublicKey); err != nil {
		t.Fatal(err)
	}
	rs256 := newSigner(s.idp, "RS256")
	s.issuer = issuer{s: rs256, now: time.Now()}
	if s.stranger, err = strangerSigner(); err != nil {
		t.Fatal(err)
	}
	if s.systemToken, err = rs256.sign(map[string]any{"sub": "okera", "groups": []string{"root"},
		"iat": time.Now().Unix(), "exp": time.Now().Add(30 * 24 * time.Hour).Unix()}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "system.token"), []byte(s.systemToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s.up, err = startSoakUpstream(s.systemToken); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.up.close)
	if cfg.wants("faults") {
		pool := openPool(cfg.cacheDir, rs256)
		if err := pool.ensure(soakPoolTokens, logf); err != nil {
			t.Fatal(err)
		}
		s.cold = &poolCursor{p: pool}
		logf("token pool %s: %d tokens (%d from earlier runs)", pool.path, len(pool.tokens), pool.loaded)
	}
	return s
}
