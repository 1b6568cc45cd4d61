package resolver_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/okeragate/caddy-okera-auth/internal/slapdtest"
	"github.com/okeragate/caddy-okera-auth/resolver"
)

// TestLDAPResolve pins the LDAP rules of README "Groups" against a real slapd:
// exactly one user entry, groups by membership of its DN, unknown user is no
// answer, and the user can never rewrite the filter.
func TestLDAPResolve(t *testing.T) {
	s := slapdtest.New(t, slapdtest.Options{})
	plain := ldapConfig(s)

	uniqueMembers := plain
	uniqueMembers.GroupFilter = "objectClass=groupOfUniqueNames" // without parentheses, as operators write it
	uniqueMembers.MemberAttribute = "uniqueMember"

	smallLimit := plain
	smallLimit.SizeLimit = 10

	byCN := plain
	byCN.UserFilter = "(&(objectClass=inetOrgPerson)(cn={0}))"
	byCN.UserAttribute = "cn"

	asciiCase := plain
	asciiCase.UserMatch = resolver.UserMatchASCIICase

	tests := []struct {
		name    string
		cfg     resolver.LDAPConfig
		user    string
		want    []string // sorted; nil is "no answer"
		empty   bool     // a known user in no group: non-nil and empty
		wantErr string
	}{
		{name: "user in two groups", cfg: plain, user: "alice", want: []string{"Analysts", "Engineering"}},
		{name: "user in no group is an empty answer", cfg: plain, user: "bob", empty: true},
		{name: "unknown user is no answer", cfg: plain, user: "zed"},
		{name: "uid matching two entries is an error", cfg: plain, user: "dup", wantErr: "several entries"},
		{name: "user in many groups", cfg: plain, user: "carol", want: manyGroups()},
		{name: "more groups than the size limit is an error, not a truncated list", cfg: smallLimit, user: "carol", wantErr: "more than 10 groups"},
		// The classic injection: unescaped, it would become (uid=*)(uid=*)
		// and match every person, so several entries or someone's groups.
		{name: "filter injection is no answer", cfg: plain, user: "*)(uid=*"},
		{name: "a lone star is a literal star", cfg: plain, user: "*"},
		{name: "injection widening to an or", cfg: plain, user: "alice)(|(uid=*"},
		{name: "NUL byte", cfg: plain, user: "alice\x00"},
		{name: "metacharacters in uid and DN", cfg: plain, user: "eve*)(uid=*", want: []string{"Meta"}},
		{name: "backslash in uid and DN", cfg: plain, user: `back\slash`, want: []string{"Backslash"}},
		{name: "non-ASCII user", cfg: plain, user: "ålice"},
		{name: "empty user is no answer", cfg: plain, user: ""},
		{name: "custom group filter and member attribute", cfg: uniqueMembers, user: "alice", want: []string{"Unique-Alice"}},
		{name: "custom user filter", cfg: byCN, user: "Alice", want: []string{"Analysts", "Engineering"}},
		// The directory's loose matching finds alice's entry for these, but
		// the entry does not name them: no answer, never alice's groups.
		{name: "upper case under exact", cfg: plain, user: "ALICE"},
		{name: "fullwidth look-alike", cfg: plain, user: "ａｌｉｃｅ"},
		{name: "fullwidth look-alike under ascii_case", cfg: asciiCase, user: "ａｌｉｃｅ"},
		{name: "dotted capital I under ascii_case", cfg: asciiCase, user: "ALİCE"},
		{name: "upper case under ascii_case", cfg: asciiCase, user: "ALICE", want: []string{"Analysts", "Engineering"}},
		{name: "the custom filter's attribute, other case", cfg: byCN, user: "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newLDAP(t, tt.cfg)
			got, err := r.Resolve(context.Background(), resolver.Request{User: tt.user})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve(%q) = %v, %v; want an error containing %q", tt.user, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tt.user, err)
			}
			switch {
			case tt.empty:
				if got == nil || len(got) != 0 {
					t.Fatalf("Resolve(%q) = %#v, want an empty answer", tt.user, got)
				}
			case tt.want == nil:
				if got != nil {
					t.Fatalf("Resolve(%q) = %#v, want no answer", tt.user, got)
				}
			default:
				if !slices.Equal(sorted(got), tt.want) {
					t.Fatalf("Resolve(%q) = %v, want %v", tt.user, sorted(got), tt.want)
				}
			}
		})
	}

	// The server saw the injected user only as escaped assertion values.
	for _, escaped := range []string{`(uid=\2a\29\28uid=\2a)`, `(uid=alice\29\28|\28uid=\2a)`, `(uid=\2a)`} {
		if n := s.SearchCount(escaped); n != 1 {
			t.Errorf("server saw %d searches with %s, want 1\n%s", n, escaped, s.Log())
		}
	}
	if n := s.CountLog("filter=", "(uid=*)"); n != 0 {
		t.Errorf("server saw an unescaped wildcard filter %d times", n)
	}
	// eve's DN holds ( * ): the member filter carried it escaped.
	if n := s.SearchCount(`(member=cn=Eve \28meta\2a\29,ou=people,dc=example,dc=org)`); n != 1 {
		t.Errorf("member search for eve seen %d times, want 1\n%s", n, s.Log())
	}
}

func TestNewLDAPResolverConfig(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "ca.txt")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	const secret = "s3cret-Pa55word"
	base := resolver.LDAPConfig{
		URL:          "ldap://ldap.example.org",
		BindDN:       "cn=svc,dc=example,dc=org",
		BindPassword: secret,
		BaseDN:       "dc=example,dc=org",
	}
	tests := []struct {
		name    string
		mod     func(*resolver.LDAPConfig)
		wantErr string // empty: valid
	}{
		{"defaults", func(*resolver.LDAPConfig) {}, ""},
		{"ldaps with port", func(c *resolver.LDAPConfig) { c.URL = "ldaps://ldap.example.org:1636" }, ""},
		{"trailing slash", func(c *resolver.LDAPConfig) { c.URL = "ldap://ldap.example.org/" }, ""},
		{"start_tls", func(c *resolver.LDAPConfig) { c.StartTLS = true }, ""},
		{"http scheme", func(c *resolver.LDAPConfig) { c.URL = "http://ldap.example.org" }, "scheme must be ldap or ldaps"},
		{"ldapi scheme", func(c *resolver.LDAPConfig) { c.URL = "ldapi:///var/run/slapd" }, "scheme must be ldap or ldaps"},
		{"no host", func(c *resolver.LDAPConfig) { c.URL = "ldap://" }, "no host"},
		{"DN in URL", func(c *resolver.LDAPConfig) { c.URL = "ldap://h/dc=example,dc=org" }, "base_dn"},
		{"credentials in URL", func(c *resolver.LDAPConfig) { c.URL = "ldap://u:" + secret + "@h" }, "not in the URL"},
		{"no bind_dn", func(c *resolver.LDAPConfig) { c.BindDN = "" }, "bind_dn is required"},
		{"bind_dn not a DN", func(c *resolver.LDAPConfig) { c.BindDN = "admin" }, "not a DN"},
		{"empty password", func(c *resolver.LDAPConfig) { c.BindPassword = "" }, "bind_password is required"},
		{"no base_dn", func(c *resolver.LDAPConfig) { c.BaseDN = "" }, "base_dn is required"},
		{"user filter without {0}", func(c *resolver.LDAPConfig) { c.UserFilter = "(uid=alice)" }, "no {0}"},
		{"broken user filter", func(c *resolver.LDAPConfig) { c.UserFilter = "(&(uid={0})" }, "user_filter"},
		{"broken group filter", func(c *resolver.LDAPConfig) { c.GroupFilter = "(objectClass=group" }, "group_filter"},
		{"bad member attribute", func(c *resolver.LDAPConfig) { c.MemberAttribute = "member)(x" }, "member_attribute"},
		{"bad group name attribute", func(c *resolver.LDAPConfig) { c.GroupNameAttribute = "c n" }, "group_name_attribute"},
		{"ca_file missing", func(c *resolver.LDAPConfig) { c.URL = "ldaps://h"; c.CAFile = filepath.Join(dir, "nope.pem") }, "ca_file"},
		{"ca_file not PEM", func(c *resolver.LDAPConfig) { c.URL = "ldaps://h"; c.CAFile = notPEM }, "no PEM certificate"},
		{"ca_file without TLS", func(c *resolver.LDAPConfig) { c.CAFile = notPEM }, "needs an ldaps:// URL or start_tls"},
		{"ldaps and start_tls", func(c *resolver.LDAPConfig) { c.URL = "ldaps://h"; c.StartTLS = true }, "start_tls"},
		{"negative timeout", func(c *resolver.LDAPConfig) { c.Timeout = -time.Second }, "negative"},
		{"negative cache ttl", func(c *resolver.LDAPConfig) { c.CacheTTL = -time.Second }, "negative"},
		{"negative pool", func(c *resolver.LDAPConfig) { c.PoolSize = -1 }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := base
			tt.mod(&cfg)
			r, err := resolver.NewLDAPResolver(cfg, nil)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewLDAPResolver: %v", err)
				}
				r.Close()
				return
			}
			if err == nil {
				r.Close()
				t.Fatalf("NewLDAPResolver accepted the config; want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error reveals the bind password: %q", err)
			}
		})
	}
}

// TestNewLDAPResolverNeverDials: Caddy's Provision must not block on the
// network, so building a resolver is instant and opens no connection, even
// for an address that never answers.
func TestNewLDAPResolverNeverDials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	cfg := resolver.LDAPConfig{BindDN: "cn=svc,dc=example,dc=org", BindPassword: "pw", BaseDN: "dc=example,dc=org"}
	start := time.Now()
	for _, url := range []string{"ldap://" + ln.Addr().String(), "ldap://192.0.2.1:389"} { // TEST-NET-1: never answers
		cfg.URL = url
		r, err := resolver.NewLDAPResolver(cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Fatalf("NewLDAPResolver took %s", d)
	}
	time.Sleep(50 * time.Millisecond)
	if n := accepted.Load(); n != 0 {
		t.Fatalf("NewLDAPResolver opened %d connections", n)
	}
}

// TestLDAPTLS: ldaps:// and StartTLS verify the server against ca_file, and a
// failed handshake is an error with nothing sent in clear (README "Groups").
func TestLDAPTLS(t *testing.T) {
	s := slapdtest.New(t, slapdtest.Options{TLS: true})
	wrongCA := slapdtest.UnrelatedCAFile(t)
	tests := []struct {
		name     string
		url      string
		startTLS bool
		caFile   string
		wantErr  string
	}{
		{name: "ldaps", url: s.LDAPSURL, caFile: s.CAFile},
		{name: "StartTLS", url: s.URL, startTLS: true, caFile: s.CAFile},
		{name: "ldaps with the wrong CA", url: s.LDAPSURL, caFile: wrongCA, wantErr: "TLS handshake"},
		{name: "StartTLS with the wrong CA", url: s.URL, startTLS: true, caFile: wrongCA, wantErr: "StartTLS"},
		{name: "ldaps with system roots only", url: s.LDAPSURL, wantErr: "TLS handshake"},
		{name: "ldaps to localhost", url: strings.Replace(s.LDAPSURL, "127.0.0.1", "localhost", 1), caFile: s.CAFile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ldapConfig(s)
			cfg.URL, cfg.StartTLS, cfg.CAFile = tt.url, tt.startTLS, tt.caFile
			r := newLDAP(t, cfg)
			binds := s.CountLog(" BIND dn=")
			searches := s.SearchCount("(uid=alice)")
			got, err := r.Resolve(context.Background(), resolver.Request{User: "alice"})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Resolve: %v", err)
				}
				if !slices.Equal(sorted(got), []string{"Analysts", "Engineering"}) {
					t.Fatalf("Resolve = %v", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Resolve = %v, %v; want an error containing %q", got, err, tt.wantErr)
			}
			// No fall-back to plain LDAP: neither the bind nor the search reached the server.
			if n := s.CountLog(" BIND dn="); n != binds {
				t.Errorf("server saw %d binds after a failed handshake", n-binds)
			}
			if n := s.SearchCount("(uid=alice)"); n != searches {
				t.Errorf("server saw %d searches after a failed handshake", n-searches)
			}
		})
	}
}

// TestLDAPServerDown: a stopped server is an error well within the
// timeout, and a restarted one is used again without a new resolver.
func TestLDAPServerDown(t *testing.T) {
	s := slapdtest.New(t, slapdtest.Options{})
	cfg := ldapConfig(s)
	cfg.Timeout = time.Second
	cfg.PoolSize = 3
	r := newLDAP(t, cfg)
	ctx := context.Background()

	// Fill the pool with three connections.
	var wg sync.WaitGroup
	for _, u := range []string{"alice", "bob", "carol"} {
		wg.Go(func() {
			if _, err := r.Resolve(ctx, resolver.Request{User: u}); err != nil {
				t.Errorf("Resolve(%s): %v", u, err)
			}
		})
	}
	wg.Wait()

	s.Stop()
	start := time.Now()
	if got, err := r.Resolve(ctx, resolver.Request{User: "alice"}); err == nil {
		t.Fatalf("Resolve with the server stopped = %v, want an error", got)
	} else {
		t.Logf("server stopped: %v", err)
	}
	if d := time.Since(start); d > cfg.Timeout {
		t.Fatalf("error took %s, over the %s timeout", d, cfg.Timeout)
	}

	s.Start()
	for _, u := range []string{"alice", "bob", "carol", "alice"} {
		if _, err := r.Resolve(ctx, resolver.Request{User: u}); err != nil {
			t.Fatalf("Resolve(%s) after the restart: %v", u, err)
		}
	}
}

// TestLDAPRestartRecoversPool: after a restart every pooled connection is
// dead; lookups go on without an error.
func TestLDAPRestartRecoversPool(t *testing.T) {
	s := slapdtest.New(t, slapdtest.Options{})
	cfg := ldapConfig(s)
	r := newLDAP(t, cfg)
	ctx := context.Background()
	for round := range 3 {
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Go(func() {
				u := []string{"alice", "bob", "carol", "zed"}[i%4]
				if _, err := r.Resolve(ctx, resolver.Request{User: u}); err != nil {
					t.Errorf("round %d: Resolve(%s): %v", round, u, err)
				}
			})
		}
		wg.Wait()
		s.Restart()
	}
}

// TestLDAPRetriesStalePooledConnection: a pooled connection that died
// while idle, unnoticed until used, is replaced once, transparently.
func TestLDAPRetriesStalePooledConnection(t *testing.T) {
	s := slapdtest.New(t, slapdtest.Options{})
	proxy := newStaleProxy(t, strings.TrimPrefix(s.URL, "ldap://"))
	cfg := ldapConfig(s)
	cfg.URL = "ldap://" + proxy.addr()
	cfg.PoolSize = 1
	core, logs := observer.New(zap.DebugLevel)
	r := newLDAPWithLogger(t, cfg, zap.New(core))
	ctx := context.Background()

	if _, err := r.Resolve(ctx, resolver.Request{User: "alice"}); err != nil {
		t.Fatal(err)
	}
	proxy.poison()
	got, err := r.Resolve(ctx, resolver.Request{User: "alice"})
	if err != nil {
		t.Fatalf("Resolve on a stale pooled connection: %v", err)
	}
	if !slices.Equal(sorted(got), []string{"Analysts", "Engineering"}) {
		t.Fatalf("Resolve = %v", got)
	}
	if n := proxy.accepted.Load(); n != 2 {
		t.Errorf("%d connections opened, want 2 (the first, and one retry)", n)
	}
	if n := logs.FilterMessageSnippet("retrying").Len(); n != 1 {
		t.Errorf("%d retry log entries, want 1", n)
	}

	// A fresh connection that fails is not retried: that would hide a real outage.
	proxy.poison()
	s.Stop()
	if _, err := r.Resolve(ctx, resolver.Request{User: "bob"}); err == nil {
		t.Fatal("Resolve with the server stopped succeeded")
	}
	if n := proxy.accepted.Load(); n != 3 {
		t.Errorf("%d connections opened in all, want 3", n)
	}
}

// TestLDAPTimeout: a server that accepts connections but never answers
// (SIGSTOP) is an error once the timeout has passed, whether the lookup
// runs on a pooled connection or has to dial and bind.
func TestLDAPTimeout(t *testing.T) {
	s := slapdtest.New(t, slapdtest.Options{})
	cfg := ldapConfig(s)
	cfg.Timeout = 400 * time.Millisecond
	pooled := newLDAP(t, cfg)
	if _, err := pooled.Resolve(context.Background(), resolver.Request{User: "alice"}); err != nil {
		t.Fatal(err)
	}
	fresh := newLDAP(t, cfg)

	slow := cfg
	slow.Timeout = 10 * time.Second
	patient := newLDAP(t, slow)

	s.Pause()
	defer s.Resume()
	tests := []struct {
		name string
		r    *resolver.LDAPResolver
		ctx  time.Duration // the caller's deadline; 0: none
		max  time.Duration
		is   error
	}{
		{"pooled connection", pooled, 0, cfg.Timeout + 300*time.Millisecond, context.DeadlineExceeded},
		{"new connection", fresh, 0, cfg.Timeout + 300*time.Millisecond, context.DeadlineExceeded},
		{"caller's deadline before the timeout", patient, 200 * time.Millisecond, 500 * time.Millisecond, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctx)
				defer cancel()
			}
			start := time.Now()
			got, err := tt.r.Resolve(ctx, resolver.Request{User: "bob"})
			d := time.Since(start)
			if err == nil {
				t.Fatalf("Resolve on a hung server = %v", got)
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			if d > tt.max {
				t.Errorf("took %s, want at most %s", d, tt.max)
			}
		})
	}
	s.Resume()
	if _, err := pooled.Resolve(context.Background(), resolver.Request{User: "carol"}); err != nil {
		t.Fatalf("Resolve after the server resumed: %v", err)
	}
}

// TestLDAPCache: answers, "no answer" included, are kept for cache_ttl and
// then asked again; errors are never kept (README "Groups").
func TestLDAPCache(t *testing.T) {
	s := slapdtest.New(t, slapdtest.Options{})
	cfg := ldapConfig(s)
	cfg.CacheTTL = 500 * time.Millisecond
	r := newLDAP(t, cfg)
	ctx := context.Background()

	resolveN := func(user string, n int) {
		t.Helper()
		for range n {
			_, _ = r.Resolve(ctx, resolver.Request{User: user})
		}
	}
	tests := []struct {
		user, filter string
		wantPerRound int
	}{
		{"alice", "(uid=alice)", 1},
		{"zed", "(uid=zed)", 1}, // no answer is cached too
		{"dup", "(uid=dup)", 5}, // errors never are
	}
	for _, tt := range tests {
		resolveN(tt.user, 5)
		if n := s.SearchCount(tt.filter); n != tt.wantPerRound {
			t.Errorf("%s: %d searches for 5 lookups, want %d", tt.user, n, tt.wantPerRound)
		}
	}
	if n := s.SearchCount("(member=uid=alice,"); n != 1 {
		t.Errorf("alice: %d group searches, want 1", n)
	}

	// A caller that changes the answer it got does not change the cache.
	got, _ := r.Resolve(ctx, resolver.Request{User: "alice"})
	got[0] = "Tampered"
	if again, _ := r.Resolve(ctx, resolver.Request{User: "alice"}); slices.Contains(again, "Tampered") {
		t.Errorf("the cached answer was changed through a returned slice: %v", again)
	}

	time.Sleep(cfg.CacheTTL + 200*time.Millisecond)
	for _, tt := range tests {
		resolveN(tt.user, 5)
		if n := s.SearchCount(tt.filter); n != 2*tt.wantPerRound {
			t.Errorf("%s after cache_ttl: %d searches, want %d", tt.user, n, 2*tt.wantPerRound)
		}
	}
}

// TestLDAPConcurrentFirstLookups: 500 requests of one user arriving at once
// cost one search, with or without a cache (README "Groups": concurrent lookups
// of one user make one query).
func TestLDAPConcurrentFirstLookups(t *testing.T) {
	s := slapdtest.New(t, slapdtest.Options{})
	tests := []struct {
		name string
		ttl  time.Duration
		user string
	}{
		{"with a cache", time.Minute, "alice"},
		{"without a cache", 0, "carol"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := ldapConfig(s)
			cfg.CacheTTL = tt.ttl
			cfg.Timeout = 10 * time.Second
			r := newLDAP(t, cfg)

			// With the server frozen, the first lookup cannot finish before
			// the others arrive, so each of them must join it.
			s.Pause()
			var started, done sync.WaitGroup
			errs := make(chan error, 500)
			for range 500 {
				started.Add(1)
				done.Go(func() {
					started.Done()
					got, err := r.Resolve(context.Background(), resolver.Request{User: tt.user})
					if err == nil && len(got) == 0 {
						err = fmt.Errorf("no groups for %s", tt.user)
					}
					errs <- err
				})
			}
			started.Wait()
			time.Sleep(300 * time.Millisecond) // for every goroutine to reach the shared lookup
			s.Resume()
			done.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			if n := s.SearchCount("(uid=" + tt.user + ")"); n != 1 {
				t.Fatalf("%d user searches for 500 concurrent lookups, want 1", n)
			}
		})
	}
}

// TestLDAPSecretsNeverInErrors: a wrong bind password fails with an error
// that names the bind, never the password, in errors and in logs.
func TestLDAPSecretsNeverInErrors(t *testing.T) {
	s := slapdtest.New(t, slapdtest.Options{})
	const wrong = "Wr0ng-P4ssw0rd-do-not-print"
	cfg := ldapConfig(s)
	cfg.BindPassword = wrong
	core, logs := observer.New(zap.DebugLevel)
	r := newLDAPWithLogger(t, cfg, zap.New(core))

	tests := []struct {
		name string
		call func() error
	}{
		{"Resolve", func() error {
			_, err := r.Resolve(context.Background(), resolver.Request{User: "alice"})
			return err
		}},
		{"Ping", func() error { return r.Ping(context.Background()) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call()
			if err == nil {
				t.Fatal("a wrong bind password was accepted")
			}
			if !strings.Contains(err.Error(), "Invalid Credentials") || !strings.Contains(err.Error(), s.BindDN) {
				t.Errorf("error does not say which bind failed and why: %q", err)
			}
			if strings.Contains(fmt.Sprintf("%v %+v %#v", err, err, err), wrong) {
				t.Fatalf("error reveals the bind password: %v", err)
			}
		})
	}
	for _, e := range logs.All() {
		if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), wrong) {
			t.Fatalf("log entry reveals the bind password: %v %v", e.Message, e.ContextMap())
		}
	}
}

// TestLDAPPingAndClose: Ping reports a reachable server, and Close leaves
// neither goroutines nor connections behind (a reload must not leak).
func TestLDAPPingAndClose(t *testing.T) {
	s := slapdtest.New(t, slapdtest.Options{})
	before := runtime.NumGoroutine()
	cfg := ldapConfig(s)
	cfg.CacheTTL = time.Minute
	r, err := resolver.NewLDAPResolver(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	var wg sync.WaitGroup
	for _, u := range []string{"alice", "bob", "carol", "zed", "eve*)(uid=*"} {
		wg.Go(func() {
			if _, err := r.Resolve(context.Background(), resolver.Request{User: u}); err != nil {
				t.Errorf("Resolve(%s): %v", u, err)
			}
		})
	}
	wg.Wait()
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Resolve(context.Background(), resolver.Request{User: "bob"}); err == nil {
		// bob is cached; Close dropped the cache, and the pool is closed.
		t.Error("Resolve after Close succeeded")
	}
	if err := r.Ping(context.Background()); err == nil {
		t.Error("Ping after Close succeeded")
	}
	waitGoroutines(t, before)

	// Every connection the server accepted has been closed.
	deadline := time.Now().Add(2 * time.Second)
	for s.CountLog(" ACCEPT ") != s.CountLog(" closed") {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections accepted, %d closed", s.CountLog(" ACCEPT "), s.CountLog(" closed"))
		}
		time.Sleep(10 * time.Millisecond)
	}

	s.Stop()
	r2 := newLDAP(t, cfg)
	if err := r2.Ping(context.Background()); err == nil {
		t.Error("Ping with the server stopped succeeded")
	}
}
