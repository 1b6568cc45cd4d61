//go:build soak

package bench

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The sustained run and the reloads share one gateway: a single site,
// public key validation, groups from the claim, required_group analysts,
// and the `_` and `.` spellings of the identity headers allow-listed so
// Caddy passes them to okera_auth. 64 connections send a mix of valid,
// expired, forged and missing tokens, spoofed identity headers on all of
// them, and valid tokens outside the required group.

// Kinds of the sustained gateway.
const (
	kValid           = "valid token"
	kValidSpoofed    = "valid token + spoofed identity headers"
	kForbidden       = "valid token outside required_group"
	kForbiddenSpoof  = "outside required_group + spoofed X-Okera-Groups"
	kExpired         = "expired token"
	kForged          = "forged token (random signature)"
	kForgedSpoofed   = "forged token + spoofed identity headers"
	kOddForgery      = "other forgeries (alg none, HS256, cut, noise, unknown key, Basic)"
	kMissing         = "no token"
	kMissingSpoofed  = "no token + spoofed identity headers"
	memSampleEvery   = 2 * time.Second
	memGrowthAllowed = 1.2 // last third's peak over the first third's, after warm-up
)

// sustainedResult is the sustained run.
type sustainedResult struct {
	prime, warm, run *driveResult
	up               upstreamCounts
	before, after    footprint
	rss              []rssSample
	firstMax         int64 // peak VmRSS of the first third after warm-up, kB
	lastMax          int64 // of the last third
	controlSent      int   // spoofed requests sent past a bare reverse_proxy
	controlFlagged   int64 // of which the upstream flagged
	problems         []string
}

// reloadResult is the reloads under load.
type reloadResult struct {
	run           *driveResult
	up            upstreamCounts
	done          int
	durations     []time.Duration
	errs          []string
	before, after footprint
	problems      []string
}

func sustainedKinds(t *testing.T, s *soakSetup, tgt *target) []weighted {
	is := s.issuer
	var valid, forbidden, expired []cred
	for i := range 256 {
		groups := []string{"Analysts", fmt.Sprintf("Team-%02d", i%16)}
		if i%3 == 0 {
			groups = append(groups, "DATA", "data")
		}
		if i%5 == 0 {
			groups = append(groups, " ops ")
		}
		user := fmt.Sprintf("u%03d", i)
		c, err := is.valid(user, groups, identity(user, groups...))
		if err != nil {
			t.Fatal(err)
		}
		valid = append(valid, c)
	}
	for i := range 32 {
		c, err := is.valid(fmt.Sprintf("f%02d", i), []string{"sales"}, expectRefused)
		if err != nil {
			t.Fatal(err)
		}
		forbidden = append(forbidden, c)
		if c, err = is.expired(fmt.Sprintf("x%02d", i)); err != nil {
			t.Fatal(err)
		}
		expired = append(expired, c)
	}
	odd, err := oddForgeries(strings.TrimPrefix(valid[0].auth, "Bearer "), s.stranger)
	if err != nil {
		t.Fatal(err)
	}
	f := newForger(strings.TrimPrefix(valid[1].auth, "Bearer "))
	k := func(name string, want int, fill func(*rand.Rand, http.Header) bool) *callKind {
		return &callKind{name: name, tgt: tgt, want: want, fill: fill}
	}
	return []weighted{
		{k(kValid, http.StatusOK, fromCreds(valid, false)), 30},
		{k(kValidSpoofed, http.StatusOK, fromCreds(valid, true)), 20},
		{k(kForbidden, http.StatusForbidden, fromCreds(forbidden, false)), 4},
		{k(kForbiddenSpoof, http.StatusForbidden, fromCreds(forbidden, true)), 3},
		{k(kExpired, http.StatusUnauthorized, fromCreds(expired, false)), 8},
		{k(kForged, http.StatusUnauthorized, f.forged(false)), 15},
		{k(kForgedSpoofed, http.StatusUnauthorized, f.forged(true)), 3},
		{k(kOddForgery, http.StatusUnauthorized, fromCreds(odd, false)), 5},
		{k(kMissing, http.StatusUnauthorized, missing(false)), 5},
		{k(kMissingSpoofed, http.StatusUnauthorized, missing(true)), 5},
	}
}

// runProblems lists a run's wrong answers and spoofs.
func runProblems(label string, d *driveResult) []string {
	var out []string
	for _, name := range d.order {
		st := d.kinds[name]
		if st.failures() > 0 {
			out = append(out, fmt.Sprintf("%s: %s: %d of %d answers wrong (%s; %v)", label, name, st.failures(), st.requests, st.statusText(), st.problems))
		}
		if st.spoofed > 0 {
			out = append(out, fmt.Sprintf("%s: %s: %d spoofed identities at the upstream (%v)", label, name, st.spoofed, st.problems))
		}
	}
	return out
}

func runSustained(t *testing.T, s *soakSetup, rep *soakReport) {
	cfg := s.cfg
	auth := fmt.Sprintf("public_key %s RSA256\nsystem_token %s\nrequired_group analysts",
		filepath.Join(s.dir, "idp.pub"), filepath.Join(s.dir, "system.token"))
	// The control site is a bare reverse_proxy with the same server
	// options: what it forwards shows that the upstream's check does catch
	// spoofed identities when nothing removes them.
	gw, err := startSoakGateway(cfg.caddyBin, filepath.Join(s.dir, "sustained"), "sustained", s.up.addr,
		[]site{{name: "sustained", auth: auth}, {name: "control"}}, true, cfg.concurrency, nil)
	if err != nil {
		t.Fatalf("sustained gateway: %v", err)
	}
	defer gw.stop()
	kinds := sustainedKinds(t, s, gw.sites["sustained"])
	mix := []crew{{workers: cfg.concurrency, mix: kinds}}

	// Prime every path, then take the baseline with the connections closed.
	sr := &sustainedResult{}
	sr.prime = drive(mix, driveOpts{duration: 2 * time.Second})
	sr.problems = append(sr.problems, runProblems("priming", sr.prime)...)
	control := *kinds[1].kind // valid token + spoofed identity headers
	control.name, control.tgt = "control", gw.sites["control"]
	up0 := s.up.counts()
	cr := drive([]crew{solo(8, &control)}, driveOpts{duration: time.Second}).get("control")
	sr.controlSent, sr.controlFlagged = cr.requests, s.up.counts().sub(up0).bad()
	if sr.controlSent == 0 || sr.controlFlagged != int64(sr.controlSent) || cr.spoofed != cr.requests {
		sr.problems = append(sr.problems, fmt.Sprintf("control: the upstream flagged %d of %d spoofed requests sent past a bare reverse_proxy, want all",
			sr.controlFlagged, sr.controlSent))
	}
	if sr.before, err = gw.baseline(); err != nil {
		t.Fatal(err)
	}
	s.logf("sustained: gateway pid %d; baseline %s", gw.pid(), sr.before)

	if cfg.wants("sustained") {
		rep.sustained = sr
		sr.warm = drive(mix, driveOpts{duration: 5 * time.Second})
		sr.problems = append(sr.problems, runProblems("warm-up", sr.warm)...)
		s.logf("sustained: warm-up %.0f req/s; measuring for %s with %d connections, VmRSS every %s",
			sr.warm.rps(), cfg.duration, cfg.concurrency, memSampleEvery)
		up0 := s.up.counts()
		stop := make(chan struct{})
		samples := sampleRSS(gw.pid(), memSampleEvery, stop)
		sr.run = drive(mix, driveOpts{duration: cfg.duration, progress: func(n int64) {
			kb, _ := procStatusKB(gw.pid(), "VmRSS")
			s.logf("  ... %d requests, VmRSS %.1f MiB", n, float64(kb)/1024)
		}})
		close(stop)
		sr.rss = <-samples
		sr.up = s.up.counts().sub(up0)
		sr.problems = append(sr.problems, runProblems("sustained", sr.run)...)
		if sr.up.bad() > 0 {
			sr.problems = append(sr.problems, fmt.Sprintf("the upstream counted %d spoofed identities, %d requests that should have been refused, %d foreign Authorization values: %v",
				sr.up.spoofed, sr.up.refused, sr.up.tokens, sr.up.examples))
		}
		sr.firstMax, sr.lastMax = memThirds(sr.rss)
		if sr.firstMax == 0 {
			sr.problems = append(sr.problems, "too few memory samples")
		} else if float64(sr.lastMax) > float64(sr.firstMax)*memGrowthAllowed {
			sr.problems = append(sr.problems, fmt.Sprintf("memory grew: VmRSS peak %.1f MiB in the last third, %.1f MiB in the first third after warm-up (allowed ×%.1f)",
				float64(sr.lastMax)/1024, float64(sr.firstMax)/1024, memGrowthAllowed))
		}
		after, ok, err := gw.settle(sr.before, 20*time.Second)
		sr.after = after
		if err != nil || !ok {
			sr.problems = append(sr.problems, fmt.Sprintf("gateway at %s after the run, baseline %s (%v)", after, sr.before, err))
		}
		tot := sr.run.total()
		s.logf("sustained: %d requests in %s (%.0f req/s), %d wrong, %d spoofed at the upstream; VmRSS first third %.1f MiB, last third %.1f MiB; %s",
			tot.requests, sr.run.elapsed.Round(time.Millisecond), sr.run.rps(), tot.failures(), sr.up.bad(),
			float64(sr.firstMax)/1024, float64(sr.lastMax)/1024, after)
		for _, p := range sr.problems {
			t.Errorf("sustained: %s", p)
		}
	}

	if cfg.wants("reloads") {
		rr := runReloads(s, gw, mix, sr.before)
		rep.reloads = rr
		for _, p := range rr.problems {
			t.Errorf("reloads: %s", p)
		}
	}
}

// memThirds drops the first fifth of the samples (warm-up) and returns the
// peaks of the first and last thirds of the rest.
func memThirds(s []rssSample) (first, last int64) {
	s = s[len(s)/5:]
	n := len(s) / 3
	if n == 0 {
		return 0, 0
	}
	for _, x := range s[:n] {
		first = max(first, x.kb)
	}
	for _, x := range s[len(s)-n:] {
		last = max(last, x.kb)
	}
	return first, last
}

// runReloads reloads the gateway cfg.reloads times, a second apart, under
// the sustained mix, and checks that no request failed and that the
// goroutines and descriptors come back to base.
func runReloads(s *soakSetup, gw *soakGateway, mix []crew, base footprint) *reloadResult {
	rr := &reloadResult{before: base}
	up0 := s.up.counts()
	stop := make(chan struct{})
	runDone := make(chan *driveResult)
	go func() { runDone <- drive(mix, driveOpts{stop: stop, trace: true}) }()
	time.Sleep(2 * time.Second)
	for i := range s.cfg.reloads {
		t0 := time.Now()
		d, err := gw.reload(100_001 + i)
		if err != nil {
			rr.errs = append(rr.errs, err.Error())
		} else {
			rr.done++
			rr.durations = append(rr.durations, d)
		}
		time.Sleep(time.Second - time.Since(t0))
	}
	time.Sleep(2 * time.Second)
	close(stop)
	rr.run = <-runDone
	rr.up = s.up.counts().sub(up0)
	rr.problems = append(rr.problems, runProblems("under reloads", rr.run)...)
	for _, e := range rr.errs {
		rr.problems = append(rr.problems, "reload failed: "+e)
	}
	if rr.up.bad() > 0 {
		rr.problems = append(rr.problems, fmt.Sprintf("the upstream counted %d bad requests: %v", rr.up.bad(), rr.up.examples))
	}
	after, ok, err := gw.settle(base, 30*time.Second)
	rr.after = after
	if err != nil || !ok {
		rr.problems = append(rr.problems, fmt.Sprintf("gateway at %s after %d reloads, baseline %s (%v)", after, rr.done, base, err))
		s.logf("goroutine profile after the reloads:\n%s", gw.goroutineProfile())
	}
	tot := rr.run.total()
	s.logf("reloads: %d done under load; %d requests, %d wrong, %d transport errors, %d retried transparently; %s (baseline %s)",
		rr.done, tot.requests, tot.unexpected, tot.errs, tot.retried, after, base)
	return rr
}
