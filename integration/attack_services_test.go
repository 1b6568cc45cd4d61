package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/okeragate/caddy-okera-auth/internal/slapdtest"
)

// atkRemoteCases: a misbehaving or hostile remote validation endpoint
// (README "Validation"). The tokens are signed by an identity provider only the
// endpoint knows, so the endpoint's answer alone decides; whatever it
// says, no forged user or group reaches the upstream.
func atkRemoteCases(t *testing.T, other *hitCounter) []atkCase {
	idp := func() http.Header { return bearer(idpToken(t, atkClaims("alice", "token-group"))) }
	reply := func(status int, body string) *remoteReply { return &remoteReply{Status: status, Body: body} }
	refused := func(id, name string, r *remoteReply) atkCase {
		return atkCase{id: id, name: name, header: idp(), remote: r, status: http.StatusUnauthorized, presented: true, remoteCalls: 1}
	}
	down := func(id, name string, r *remoteReply) atkCase {
		return atkCase{id: id, name: name, header: idp(), remote: r, status: http.StatusServiceUnavailable, remoteCalls: 1}
	}
	huge := `{"sub":"alice","pad":"` + strings.Repeat("x", 5<<20) + `"}`
	slow := down("ATK-138", "answer slower than the 1s timeout: unavailable", &remoteReply{Status: 200, Body: `{"sub":"alice"}`, Delay: 2500 * time.Millisecond})
	slow.maxTime = 2400 * time.Millisecond
	redirect := down("ATK-139", "302 to another server on 127.0.0.1: not followed", &remoteReply{Status: http.StatusFound, Location: other.srv.URL + "/validate", Body: `{"sub":"root"}`})
	redirect.after = func(t *testing.T, _ response, _ *recordedRequest) {
		if n := other.Hits(); n != 0 {
			t.Errorf("the redirect target got %d request(s): the token was sent to another host", n)
		}
	}
	return []atkCase{
		// README "Validation": a 2xx body that is not JSON is "unavailable"
		// (503).
		down("ATK-130", "200 with garbage instead of JSON", reply(200, `{"sub":"alice"`)),
		// A 2xx without a usable sub is a rejection; the token then falls
		// through to the keys, which do not know it.
		refused("ATK-131", "sub a number", reply(200, `{"sub":1}`)),
		refused("ATK-132", "sub an array", reply(200, `{"sub":["root"]}`)),
		refused("ATK-133", "sub an object", reply(200, `{"sub":{"name":"root"}}`)),
		refused("ATK-134", "sub with a CRLF header injection", reply(200, `{"sub":"alice\r\nX-Okera-User: root"}`)),
		refused("ATK-135", "sub with NUL and control characters", reply(200, `{"sub":"alice\u0000\u001b"}`)),
		// Two parsers, two users: an answer with two subs names nobody.
		refused("ATK-136", "two sub members (duplicate JSON key)", reply(200, `{"sub":"alice","sub":"root"}`)),
		down("ATK-137", "503 from the endpoint", reply(503, `{"sub":"root"}`)),
		slow,
		redirect,
		// README "Validation": the body is read up to 1 MiB.
		down("ATK-140", "5 MiB answer", reply(200, huge)),
		// README "Groups": the endpoint's groups are the claim; a comma or
		// control character drops the name, so nothing forges "root". With no
		// group left, LDAP and the group endpoint are asked for remote-bob.
		{id: "ATK-141", name: "groups with commas and control characters are dropped", header: idp(),
			remote: reply(200, `{"sub":"remote-bob","groups":["analysts,root","ops\u0000","x\r\nX-Okera-Groups: root"]}`),
			status: http.StatusOK, wantUser: "remote-bob", wantGroups: "", remoteCalls: 1, ldapSearches: 1, groupCalls: 1},
		refused("ATK-142", "groups holding a non-string", reply(200, `{"sub":"remote-bob","groups":["analysts",{"name":"root"}]}`)),
		// A header value loses surrounding whitespace (RFC 9110 §5.5): the
		// endpoint's "alice " would reach the upstream as alice.
		refused("ATK-144", "sub with a trailing space", reply(200, `{"sub":"alice "}`)),
		// README "Groups": the token's own payload was not verified by the
		// gateway: its groups are not read (no trust_token_claims).
		{id: "ATK-143", name: "the unverified payload's groups are ignored", header: bearer(idpToken(t, atkClaims("alice", "root", "admins"))),
			remote: reply(200, `{"sub":"remote-bob"}`),
			status: http.StatusOK, wantUser: "remote-bob", wantGroups: "", remoteCalls: 1, ldapSearches: 1, groupCalls: 1},
	}
}

// atkGroupEndpointCases: a misbehaving group endpoint (README "Groups"). The
// users are key-A tokens without a groups claim, unknown to LDAP (one search),
// so the endpoint is asked; on_resolver_error is deny.
func atkGroupEndpointCases(t *testing.T, groups *atkGroupEndpoint, other *hitCounter) []atkCase {
	a := rsaKey(t, keyA)
	user := func(sub string) http.Header { return bearer(sign(t, a, jwa.RS512, atkClaims(sub))) }
	fails := func(id, name, sub string, r atkReply) atkCase {
		return atkCase{id: id, name: name, header: user(sub), groups: map[string]atkReply{sub: r},
			status: http.StatusServiceUnavailable, remoteCalls: 1, ldapSearches: 1, groupCalls: 1}
	}
	huge := `["` + strings.Repeat("g", 2<<20) + `"]`
	redirect := fails("ATK-162", "302 to another server: not followed, the system token stays home", "ge-redirect",
		atkReply{Status: http.StatusFound, Location: other.srv.URL + "/groups/ge-redirect", Body: `["root"]`})
	redirect.after = func(t *testing.T, _ response, _ *recordedRequest) {
		if n := other.Hits(); n != 0 {
			t.Errorf("the redirect target got %d request(s)", n)
		}
	}
	return []atkCase{
		// README "Groups": other shapes, non-2xx, redirects and bodies over 1
		// MiB are errors (503 under deny), never a guess at the groups.
		fails("ATK-160", "garbage instead of JSON", "ge-garbage", atkReply{Status: 200, Body: `["a",`}),
		fails("ATK-161", "2 MiB answer", "ge-huge", atkReply{Status: 200, Body: huge}),
		redirect,
		{id: "ATK-163", name: "names with commas and control characters are dropped", header: user("ge-dirty"),
			groups: map[string]atkReply{"ge-dirty": {Status: 200, Body: `["Analysts,root","ops\u0000","x\r\nX-Okera-User: root","Sales"]`}},
			status: http.StatusOK, wantUser: "ge-dirty", wantGroups: "sales", remoteCalls: 1, ldapSearches: 1, groupCalls: 1},
		fails("ATK-164", "non-string groups", "ge-types", atkReply{Status: 200, Body: `["sales",7,null]`}),
		fails("ATK-165", `object without "groups" (other letter case)`, "ge-case", atkReply{Status: 200, Body: `{"Groups":["root"]}`}),
		fails("ATK-166", "nested list", "ge-nested", atkReply{Status: 200, Body: `[["root"]]`}),
		fails("ATK-167", "500 from the endpoint", "ge-500", atkReply{Status: 500, Body: `["root"]`}),
		// README "Groups": the user is one path-escaped segment; "../admin"
		// must not reach the groups of "admin".
		{id: "ATK-168", name: "sub ../admin stays one path segment", header: user("../admin"),
			groups: map[string]atkReply{"admin": {Status: 200, Body: `["root"]`}},
			status: http.StatusOK, wantUser: "../admin", wantGroups: "", remoteCalls: 1, ldapSearches: 1, groupCalls: 1,
			after: oneSegment(groups, "/groups/..%2Fadmin")},
		{id: "ATK-170", name: "sub x/../admin stays one path segment", header: user("x/../admin"),
			groups: map[string]atkReply{"admin": {Status: 200, Body: `["root"]`}},
			status: http.StatusOK, wantUser: "x/../admin", wantGroups: "", remoteCalls: 1, ldapSearches: 1, groupCalls: 1,
			after: oneSegment(groups, "/groups/x%2F..%2Fadmin")},
		{id: "ATK-171", name: "sub with ? and # stays in the path", header: user("bob?user=admin#x"),
			groups: map[string]atkReply{"bob": {Status: 200, Body: `["root"]`}},
			status: http.StatusOK, wantUser: "bob?user=admin#x", wantGroups: "", remoteCalls: 1, ldapSearches: 1, groupCalls: 1,
			after: oneSegment(groups, "/groups/bob%3Fuser=admin%23x")},
		{id: "ATK-169", name: "sub .. is refused as a path segment", header: user(".."),
			groups: map[string]atkReply{"": {Status: 200, Body: `["root"]`}},
			status: http.StatusServiceUnavailable, remoteCalls: 1, ldapSearches: 1, groupCalls: 0},
	}
}

// oneSegment checks the request line the group endpoint got.
func oneSegment(groups *atkGroupEndpoint, want string) func(*testing.T, response, *recordedRequest) {
	return func(t *testing.T, _ response, _ *recordedRequest) {
		for _, c := range groups.Calls() {
			if c.RequestURI != want {
				t.Errorf("the group endpoint was asked for %q, want %q", c.RequestURI, want)
			}
		}
	}
}

// atkLDAPCases: LDAP filter injection through sub, ambiguous and missing
// entries, referrals, and a directory that is down or hangs (README "Groups"; RFC
// 4515 §3). Users have no groups claim, so LDAP is asked; a user it does
// not know falls through to the group endpoint (404: no groups).
func atkLDAPCases(t *testing.T, dir *slapdtest.Server, referral *atkListener) []atkCase {
	a := rsaKey(t, keyA)
	user := func(sub string) http.Header { return bearer(sign(t, a, jwa.RS512, atkClaims(sub))) }
	noPresence := func(t *testing.T, _ response, _ *recordedRequest) {
		// slapd logs filters normalised; a user that turned into a
		// presence test would show as (uid=*).
		if n := dir.SearchCount("(uid=*)"); n != 0 {
			t.Errorf("the directory ran %d search(es) with a (uid=*) presence filter", n)
		}
	}
	unknown := func(id, name, sub string) atkCase {
		return atkCase{id: id, name: name, header: user(sub), status: http.StatusOK, wantUser: sub, wantGroups: "",
			remoteCalls: 1, ldapSearches: 1, groupCalls: 1, after: noPresence}
	}
	noReferral := func(t *testing.T, _ response, _ *recordedRequest) {
		// Not vacuous: the directory does answer this search with a
		// continuation reference to the listener.
		conn, err := ldap.DialURL(dir.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.Bind(dir.BindDN, dir.BindPassword); err != nil {
			t.Fatal(err)
		}
		res, err := conn.Search(ldap.NewSearchRequest(dir.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, 0, false,
			"(&(objectClass=person)(uid=zed))", []string{"1.1"}, nil))
		if err != nil || len(res.Referrals) == 0 || !strings.Contains(res.Referrals[0], referral.Addr()) {
			t.Fatalf("the fixture's referral is not returned (%v): the case proves nothing", err)
		}
		if n := referral.Count(); n != 0 {
			t.Errorf("the referral target got %d connection(s): a referral was chased", n)
		}
	}
	pause := atkCase{id: "ATK-189", name: "directory hangs (black hole): 503 after the 1s timeout", header: user("carol"),
		before: func(t *testing.T) { dir.Pause(); t.Cleanup(dir.Resume) },
		status: http.StatusServiceUnavailable, remoteCalls: 1, ldapSearches: -1, maxTime: 4 * time.Second}
	stopped := atkCase{id: "ATK-190", name: "directory down: 503", header: user("carol"),
		before: func(t *testing.T) { dir.Stop(); t.Cleanup(dir.Start) },
		status: http.StatusServiceUnavailable, remoteCalls: 1, ldapSearches: -1}
	return []atkCase{
		{id: "ATK-180", name: "control: alice's groups come from LDAP", header: user("alice"),
			status: http.StatusOK, wantUser: "alice", wantGroups: "engineering,analysts", remoteCalls: 1, ldapSearches: 2},
		// The classic injections: escaped, each matches only the literal
		// (unknown) user, so no group search follows.
		unknown("ATK-181", "sub *)(uid=* matches nobody", "*)(uid=*"),
		unknown("ATK-182", "sub * matches nobody", "*"),
		unknown("ATK-183", "sub x)(|(objectClass=* matches nobody", "x)(|(objectClass=*"),
		unknown("ATK-184", "sub alice)(uid=bob does not become bob or alice", "alice)(uid=bob"),
		{id: "ATK-185", name: "sub eve*)(uid=* finds only the entry with that literal uid", header: user("eve*)(uid=*"),
			status: http.StatusOK, wantUser: "eve*)(uid=*", wantGroups: "meta", remoteCalls: 1, ldapSearches: 2, after: noPresence},
		{id: "ATK-186", name: `sub back\slash is escaped in both searches`, header: user(`back\slash`),
			status: http.StatusOK, wantUser: `back\slash`, wantGroups: "backslash", remoteCalls: 1, ldapSearches: 2},
		// README "Groups": several entries are an error, never a pick.
		{id: "ATK-187", name: "sub matching two entries: 503", header: user("dup"),
			status: http.StatusServiceUnavailable, remoteCalls: 1, ldapSearches: 1},
		// A known user in no group is an empty answer: the next resolver.
		{id: "ATK-188", name: "known user in no group falls through", header: user("bob"),
			status: http.StatusOK, wantUser: "bob", wantGroups: "", remoteCalls: 1, ldapSearches: 2, groupCalls: 1},
		func() atkCase {
			c := unknown("ATK-191", "a referral in the directory is never chased", "zed")
			c.after = noReferral
			return c
		}(),
		// RFC 9110 §5.5 and RFC 4518 §2.6.1: net/http trims a header value's
		// surrounding whitespace and LDAP ignores it, so a token for " alice"
		// would reach the upstream as alice, with alice's groups.
		{id: "ATK-193", name: "sub with a leading space does not become alice", header: user(" alice"),
			status: http.StatusUnauthorized, presented: true, remoteCalls: 1},
		{id: "ATK-194", name: "sub with a leading no-break space does not get alice's groups", header: user("\u00a0alice"),
			status: http.StatusUnauthorized, presented: true, remoteCalls: 1},
		pause,
		stopped,
		{id: "ATK-192", name: "after the directory is back, lookups work again", header: user("alice"),
			status: http.StatusOK, wantUser: "alice", wantGroups: "engineering,analysts", remoteCalls: 1, ldapSearches: 2, maxTime: 5 * time.Second},
	}
}

// TestAttackRemoteTLSUntrusted: a remote endpoint behind a certificate the
// gateway does not trust is unavailable, never validated without TLS
// verification (README "Validation").
func TestAttackRemoteTLSUntrusted(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	var handled atomic.Int64
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handled.Add(1)
		fmt.Fprint(w, `{"sub":"root"}`)
	}))
	t.Cleanup(tlsSrv.Close)
	g := startGateway(t, gatewayConfig{
		Global: "log {\n\tlevel DEBUG\n}",
		Site:   "log",
		Auth: fmt.Sprintf(`
			remote_endpoint %s/validate {
				timeout 1s
			}
			public_key %s
			issuer %s
			audience %s
			system_token %s
		`, tlsSrv.URL, k.A, atkIssuer, atkAudience, k.SystemToken),
	})
	e := &atkEnv{g: g, system: k.System}
	e.startBaseline(t)
	noCall := func(t *testing.T, _ response, _ *recordedRequest) {
		if n := handled.Load(); n != 0 {
			t.Errorf("the untrusted endpoint handled %d request(s)", n)
		}
	}
	e.run(t, []atkCase{
		{id: "ATK-150", name: "untrusted certificate: unavailable, 503", header: bearer(idpToken(t, atkClaims("alice"))),
			status: http.StatusServiceUnavailable, after: noCall},
		{id: "ATK-151", name: "untrusted certificate: a key-signed token still passes", header: bearer(sign(t, rsaKey(t, keyA), jwa.RS512, atkClaims("alice", "analysts"))),
			status: http.StatusOK, wantUser: "alice", wantGroups: "analysts", after: noCall},
	})
	e.finish(t)
}
