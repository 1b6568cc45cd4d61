//go:build soak

package bench

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/okeragate/caddy-okera-auth/internal/slapdtest"
)

// The faults: one gateway (one Caddy process) with four okera_auth sites,
// each depending on one thing that breaks:
//
//	remote    remote_endpoint (timeout 1s) + public key
//	ldap      public key + groups from LDAP (timeout 1s, cache off) after the claim
//	endpoint  public key + groups from the groups endpoint (timeout 1s, cache off) after the claim
//	key       public key only, from its own key file
//
// Each kind of caller has its own crew of workers, so a caller stuck behind
// a broken dependency holds up no one else. Every fault runs the same way:
// a baseline with nothing broken, the fault (every answer checked against
// what the README says it must be, the affected ones within the dependency's
// timeout and the others at their usual latency), recovery, a check that
// everything is back to normal, and the gateway's goroutines and open
// descriptors back at the baseline taken at the start.

// depTimeout is the timeout every dependency of the fault gateway has.
const depTimeout = time.Second

// Kinds of the fault gateway.
const (
	kRemoteValid   = "remote: valid token"
	kRemoteForged  = "remote: forged token"
	kRemoteExpired = "remote: expired token"
	kRemoteMissing = "remote: no token"
	kLDAPGroups    = "ldap: groups from LDAP"
	kLDAPClaim     = "ldap: groups claim"
	kEPGroups      = "endpoint: groups from endpoint"
	kEPClaim       = "endpoint: groups claim"
	kKeyWarm       = "key: valid token (cached)"
	kKeyCold       = "key: new token each request"
)

// faultCase is one fault.
type faultCase struct {
	title    string
	needs    string                // "ldap" when it needs slapd
	affected map[string]int        // kinds whose status the fault changes (or must not change)
	bound    time.Duration         // the affected answers come within this
	outcome  string                // what the README says, in words
	cold     bool                  // also send a new token each request to the key site
	inject   func() error          //
	clear    func() error          //
	after    func() (string, bool) // a check once the fault has lasted (log line seen?)
	restored func() (string, bool) // a check after the fault ended, retried for 5s
}

// faultResult is what one fault showed.
type faultResult struct {
	fc                *faultCase
	skipped           string
	base, fault, post *driveResult
	recovery          time.Duration
	before, after     footprint
	note              string
	problems          []string
}

func (r *faultResult) failf(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

// faultEnv is the fault gateway and everything around it.
type faultEnv struct {
	gw             *soakGateway
	remote, groups *faultServer
	slapd          *slapdtest.Server
	kinds          map[string]*callKind
	keyFile        string
	keyPEM         []byte
	base           footprint
	faultDur       time.Duration
}

// crews is one crew per kind, with the wanted statuses of the fault (nil:
// normal); cold adds the key site's fresh-token caller.
func (e *faultEnv) crews(affected map[string]int, cold bool) []crew {
	size := map[string]int{
		kRemoteValid: 4, kRemoteForged: 2, kRemoteExpired: 1, kRemoteMissing: 1,
		kLDAPGroups: 3, kLDAPClaim: 2, kEPGroups: 3, kEPClaim: 2, kKeyWarm: 4, kKeyCold: 2,
	}
	var out []crew
	for _, name := range []string{kRemoteValid, kRemoteForged, kRemoteExpired, kRemoteMissing,
		kLDAPGroups, kLDAPClaim, kEPGroups, kEPClaim, kKeyWarm, kKeyCold} {
		k := e.kinds[name]
		if k == nil || (name == kKeyCold && !cold) {
			continue
		}
		if st, ok := affected[name]; ok {
			k = k.expecting(st)
		}
		out = append(out, solo(size[name], k))
	}
	return out
}

func setupFaults(t *testing.T, s *soakSetup) *faultEnv {
	e := &faultEnv{faultDur: s.cfg.faultDur, kinds: map[string]*callKind{}}
	var err error
	if e.remote, err = startFaultServer("remote endpoint", remoteValidator(&s.idp.PublicKey)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.remote.close)
	if e.groups, err = startFaultServer("groups endpoint", groupsEndpoint()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.groups.close)
	if why := slapdMissing(); why == "" {
		e.slapd = slapdtest.New(t, slapdtest.Options{})
	} else {
		s.logf("faults: LDAP cases skipped: %s", why)
	}

	// The key site reads its own copy of the public key, the file the
	// corruption fault breaks.
	e.keyFile = filepath.Join(s.dir, "keysite.pub")
	if e.keyPEM, err = os.ReadFile(filepath.Join(s.dir, "idp.pub")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(e.keyFile, e.keyPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	key := func(file string) string {
		return fmt.Sprintf("public_key %s RSA256\nsystem_token %s", file, filepath.Join(s.dir, "system.token"))
	}
	idpKey := key(filepath.Join(s.dir, "idp.pub"))
	sites := []site{
		{name: "remote", auth: fmt.Sprintf("remote_endpoint http://%s/validate {\n\ttimeout %s\n}\n%s", e.remote.addr, depTimeout, idpKey)},
		{name: "endpoint", auth: fmt.Sprintf("%s\ngroups_endpoint http://%s/groups {\n\ttimeout %s\n\tcache_ttl 0s\n}", idpKey, e.groups.addr, depTimeout)},
		{name: "key", auth: key(e.keyFile)},
	}
	if e.slapd != nil {
		sites = append(sites, site{name: "ldap", auth: fmt.Sprintf("%s\nldap {\n\turl %s\n\tbind_dn %s\n\tbind_password %s\n\tbase_dn %s\n\ttimeout %s\n\tcache_ttl 0s\n}",
			idpKey, e.slapd.URL, quoteCaddy(e.slapd.BindDN), quoteCaddy(e.slapd.BindPassword), quoteCaddy(e.slapd.BaseDN), depTimeout)})
	}
	e.gw, err = startSoakGateway(s.cfg.caddyBin, filepath.Join(s.dir, "faults"), "faults", s.up.addr, sites, false, 16,
		map[string]any{"file_check_interval": "1s"})
	if err != nil {
		t.Fatalf("fault gateway: %v", err)
	}
	t.Cleanup(e.gw.stop)

	is := s.issuer
	valid := func(sub string, groups []string, expect ...string) cred {
		c, err := is.valid(sub, groups, expect...)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	expired, err := is.expired("alice")
	if err != nil {
		t.Fatal(err)
	}
	// The remote endpoint says every valid token is alice-remote's; when it
	// cannot answer, the public key validates the token as alice.
	remoteOrKey := []string{identity(remoteSoakUser, remoteSoakGroups...), identity("alice", "analysts", "data")}
	var remoteCreds []cred
	for range 4 {
		remoteCreds = append(remoteCreds, valid("alice", []string{"analysts", "data"}, remoteOrKey...))
	}
	add := func(name, siteName string, want int, fill func(*rand.Rand, http.Header) bool) {
		e.kinds[name] = &callKind{name: name, tgt: e.gw.sites[siteName], want: want, fill: fill}
	}
	add(kRemoteValid, "remote", http.StatusOK, fromCreds(remoteCreds, false))
	add(kRemoteForged, "remote", http.StatusUnauthorized, newForger(strings.TrimPrefix(remoteCreds[0].auth, "Bearer ")).forged(false))
	add(kRemoteExpired, "remote", http.StatusUnauthorized, fromCreds([]cred{expired}, false))
	add(kRemoteMissing, "remote", http.StatusUnauthorized, missing(false))
	add(kEPGroups, "endpoint", http.StatusOK, fromCreds([]cred{
		valid("dave", nil, identity("dave", "ops", "analysts")),
		valid("erin", nil, identity("erin", "sales")),
		valid("frank", nil, identity("frank")),
	}, false))
	add(kEPClaim, "endpoint", http.StatusOK, fromCreds([]cred{valid("yan", []string{"Ops"}, identity("yan", "ops"))}, false))
	add(kKeyWarm, "key", http.StatusOK, fromCreds([]cred{
		valid("kim", []string{"analysts"}, identity("kim", "analysts")),
		valid("lee", []string{"data"}, identity("lee", "data")),
	}, false))
	add(kKeyCold, "key", http.StatusOK, fromPool(s.cold))
	if e.slapd != nil {
		many := make([]string, slapdtest.ManyGroups)
		for i := range many {
			many[i] = fmt.Sprintf("many-%02d", i)
		}
		add(kLDAPGroups, "ldap", http.StatusOK, fromCreds([]cred{
			valid("alice", nil, identity("alice", "analysts", "engineering")),
			valid("bob", nil, identity("bob")),
			valid("carol", nil, identity("carol", many...)),
		}, false))
		add(kLDAPClaim, "ldap", http.StatusOK, fromCreds([]cred{valid("zoe", []string{"analysts"}, identity("zoe", "analysts"))}, false))
	}

	// Warm up every site and dependency at the load the faults run with,
	// so every pool is at its working size, then take the baseline.
	warm := drive(e.crews(nil, false), driveOpts{duration: 3 * time.Second})
	for _, name := range warm.order {
		if st := warm.kinds[name]; st.failures() > 0 || st.spoofed > 0 {
			t.Fatalf("fault gateway warm-up: %s: %s (%v)", name, st.statusText(), st.problems)
		}
	}
	if e.base, err = e.gw.baseline(); err != nil {
		t.Fatal(err)
	}
	s.logf("faults: gateway pid %d, sites %v; baseline %s", e.gw.pid(), siteNames(e.gw), e.base)
	return e
}

func siteNames(g *soakGateway) []string {
	var out []string
	for n := range g.sites {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// faultCases lists the faults in the order they run.
func (e *faultEnv) faultCases() []*faultCase {
	remoteAffected := map[string]int{kRemoteValid: http.StatusOK, kRemoteForged: http.StatusServiceUnavailable}
	remoteOutcome := "valid token 200 through the public key (user alice, not alice-remote); forged token 503 (an unavailable validator and no key verifies it); expired and missing 401 at once"
	cases := []*faultCase{
		{
			title: "remote endpoint slow (never answers)", affected: remoteAffected, bound: depTimeout + 2*time.Second, outcome: remoteOutcome,
			inject: func() error { e.remote.set(behaveSlow); return nil },
			clear:  func() error { e.remote.set(behaveNormal); return nil },
		},
		{
			title: "remote endpoint answers 500", affected: remoteAffected, bound: depTimeout + 2*time.Second, outcome: remoteOutcome,
			inject: func() error { e.remote.set(behaveError); return nil },
			clear:  func() error { e.remote.set(behaveNormal); return nil },
		},
		{
			title: "remote endpoint down (connection refused)", affected: remoteAffected, bound: depTimeout + 2*time.Second, outcome: remoteOutcome,
			inject: e.remote.down, clear: e.remote.up,
		},
		{
			title: "LDAP black-holed (slapd stopped with SIGSTOP)", needs: "ldap",
			affected: map[string]int{kLDAPGroups: http.StatusServiceUnavailable},
			// acquire a pool slot, dial, bind: each step has the timeout.
			bound:   3*depTimeout + 2*time.Second,
			outcome: "tokens whose groups come from LDAP 503 (on_resolver_error deny); tokens with a groups claim 200 (LDAP not asked)",
			inject:  func() error { e.slapd.Pause(); return nil },
			clear:   func() error { e.slapd.Resume(); return nil },
		},
		{
			title: "LDAP down (slapd stopped)", needs: "ldap",
			affected: map[string]int{kLDAPGroups: http.StatusServiceUnavailable},
			bound:    3*depTimeout + 2*time.Second,
			outcome:  "tokens whose groups come from LDAP 503; tokens with a groups claim 200",
			inject:   func() error { e.slapd.Stop(); return nil },
			clear:    func() error { e.slapd.Start(); return nil },
		},
		{
			title:    "groups endpoint down (connection refused)",
			affected: map[string]int{kEPGroups: http.StatusServiceUnavailable},
			bound:    depTimeout + 2*time.Second,
			outcome:  "tokens whose groups come from the endpoint 503; tokens with a groups claim 200",
			inject:   e.groups.down, clear: e.groups.up,
		},
		{
			title:    "public key file corrupted mid-run (truncated PEM)",
			affected: map[string]int{kKeyWarm: http.StatusOK, kKeyCold: http.StatusOK},
			bound:    depTimeout,
			cold:     true,
			outcome:  "the previous key stays in force (every token, new ones included, 200) and the error is logged; the restored file is read again",
			inject: func() error {
				return writeFileAtomic(e.keyFile, e.keyPEM[:len(e.keyPEM)/2], 0o644)
			},
			clear: func() error { return writeFileAtomic(e.keyFile, e.keyPEM, 0o644) },
			after: func() (string, bool) {
				n := e.gw.logCount("keeping the previous public key")
				return fmt.Sprintf("gateway logged %q %d time(s)", "keeping the previous public key", n), n > 0
			},
			restored: func() (string, bool) {
				n := e.gw.logCount("reloaded public key")
				return fmt.Sprintf("then %q %d time(s) once the file was restored", "reloaded public key", n), n > 0
			},
		},
		e.reloadsUnderFaults(remoteAffected),
	}
	return cases
}

// reloadsUnderFaults is a config reload every 700ms while the remote
// endpoint hangs and LDAP is black-holed: Cleanup of a config whose
// requests are stuck on its dependencies must neither fail them nor leave
// their goroutines behind.
func (e *faultEnv) reloadsUnderFaults(remoteAffected map[string]int) *faultCase {
	affected := map[string]int{kLDAPGroups: http.StatusServiceUnavailable}
	for k, v := range remoteAffected {
		affected[k] = v
	}
	var stop, done chan struct{}
	var reloads int
	var errs []string
	size := 200_000
	return &faultCase{
		title: "reloads while the remote endpoint hangs and LDAP is black-holed", needs: "ldap",
		affected: affected, bound: 3*depTimeout + 2*time.Second,
		outcome: "as for each fault alone; every reload succeeds and no request fails because of one",
		inject: func() error {
			e.remote.set(behaveSlow)
			e.slapd.Pause()
			stop, done = make(chan struct{}), make(chan struct{})
			go func() {
				defer close(done)
				tick := time.NewTicker(700 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						size++
						if _, err := e.gw.reload(size); err != nil {
							errs = append(errs, err.Error())
						} else {
							reloads++
						}
					}
				}
			}()
			return nil
		},
		after: func() (string, bool) {
			close(stop)
			<-done
			return fmt.Sprintf("%d reloads during the fault, %d failed %v", reloads, len(errs), errs), len(errs) == 0 && reloads > 0
		},
		clear: func() error {
			e.remote.set(behaveNormal)
			e.slapd.Resume()
			return nil
		},
	}
}

// run runs one fault.
func (e *faultEnv) run(fc *faultCase, logf func(string, ...any)) *faultResult {
	r := &faultResult{fc: fc}
	if fc.needs == "ldap" && e.slapd == nil {
		r.skipped = "slapd is not installed"
		return r
	}
	normal := e.crews(nil, fc.cold)
	r.base = drive(normal, driveOpts{duration: e.faultDur})
	r.checkAll("baseline", r.base)

	if err := fc.inject(); err != nil {
		r.failf("injecting the fault: %v", err)
		return r
	}
	r.fault = drive(e.crews(fc.affected, fc.cold), driveOpts{duration: e.faultDur})
	r.checkAll("during the fault", r.fault)
	for _, name := range r.fault.order {
		st := r.fault.kinds[name]
		if _, ok := fc.affected[name]; ok {
			if st.max > fc.bound {
				r.failf("%s: slowest answer %s during the fault, above the bound %s", name, fmtDur(st.max), fc.bound)
			}
		} else if st.p99 >= depTimeout {
			r.failf("%s (not affected): p99 %s during the fault, not below the dependency timeout %s", name, fmtDur(st.p99), depTimeout)
		}
	}
	if fc.after != nil {
		note, ok := fc.after()
		r.note = note
		if !ok {
			r.failf("%s", note)
		}
	}
	if err := fc.clear(); err != nil {
		r.failf("ending the fault: %v", err)
		return r
	}
	if fc.restored != nil {
		var note string
		var ok bool
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			if note, ok = fc.restored(); ok || time.Now().After(deadline) {
				break
			}
		}
		r.note = strings.TrimPrefix(r.note+"; "+note, "; ")
		if !ok {
			r.failf("%s", note)
		}
	}

	// Recovery: one request of each affected kind at a time, until every
	// one gets its usual answer.
	start := time.Now()
	for recovered := false; !recovered; {
		recovered = true
		for name := range fc.affected {
			k := e.kinds[name]
			if k == nil || (name == kKeyCold && !fc.cold) {
				continue
			}
			if p := drive([]crew{solo(1, k)}, driveOpts{budget: 1}); p.total().failures() > 0 {
				recovered = false
			}
		}
		if !recovered {
			if time.Since(start) > 20*time.Second {
				r.failf("still failing 20s after the fault ended")
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	r.recovery = time.Since(start)

	r.post = drive(normal, driveOpts{duration: 2 * time.Second})
	r.checkAll("after recovery", r.post)

	r.before = e.base
	after, ok, err := e.gw.settle(e.base, 20*time.Second)
	r.after = after
	switch {
	case err != nil:
		r.failf("reading the gateway's goroutines: %v", err)
	case !ok:
		r.failf("gateway at %s after the fault, baseline %s", after, e.base)
		logf("goroutine profile after %q:\n%s", fc.title, e.gw.goroutineProfile())
	}
	return r
}

// checkAll records every kind's wrong answers and spoofs.
func (r *faultResult) checkAll(phase string, d *driveResult) {
	for _, name := range d.order {
		st := d.kinds[name]
		if st.failures() > 0 {
			r.failf("%s: %s: %d of %d answers wrong (%s; %v)", phase, name, st.failures(), st.requests, st.statusText(), st.problems)
		}
		if st.spoofed > 0 {
			r.failf("%s: %s: %d spoofed identities at the upstream (%v)", phase, name, st.spoofed, st.problems)
		}
		if st.requests == 0 && name != kKeyCold {
			r.failf("%s: %s: no request completed", phase, name)
		}
	}
	if d.exhausted {
		r.failf("%s: the pre-signed token pool ran out", phase)
	}
}

// affectedText describes the affected kinds' answers during the fault.
func (r *faultResult) affectedText() string {
	var parts []string
	for _, name := range r.fault.order {
		if _, ok := r.fc.affected[name]; !ok {
			continue
		}
		st := r.fault.kinds[name]
		parts = append(parts, fmt.Sprintf("%s: %s, p50 %s, max %s", name, st.statusText(), fmtDur(st.p50), fmtDur(st.max)))
	}
	return strings.Join(parts, "; ")
}

// unrelatedWorst is the highest p99 of the kinds the fault does not touch,
// during the fault and in the baseline.
func (r *faultResult) unrelatedWorst() (kindBase, kindFault string, base, fault time.Duration) {
	for _, name := range r.fault.order {
		if _, ok := r.fc.affected[name]; ok {
			continue
		}
		if st := r.fault.kinds[name]; st.p99 > fault {
			fault, kindFault = st.p99, name
		}
		if st := r.base.get(name); st.p99 > base {
			base, kindBase = st.p99, name
		}
	}
	return
}
