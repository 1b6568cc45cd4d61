package integration

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/okeragate/caddy-okera-auth/internal/slapdtest"
)

// TestAttackGateway runs the token, JOSE, claim, exhaustion, remote
// endpoint, group endpoint, LDAP and extraction attacks against one gateway
// with every validator and group source configured: the remote endpoint
// (non-authoritative, 1s), key A (RSA512) and key B (RSA256), issuer and
// audience, max_token_size 65536, LDAP and the group endpoint (no caches,
// deny on errors), the `_`/`.` identity names allow-listed, DEBUG logs.
func TestAttackGateway(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	referral := startAtkListener(t)
	dir := slapdtest.New(t, slapdtest.Options{ExtraLDIF: fmt.Sprintf(`
dn: ou=elsewhere,%[1]s
objectClass: referral
objectClass: extensibleObject
ou: elsewhere
ref: ldap://%[2]s/ou=people,%[1]s
`, slapdtest.Suffix, referral.Addr())})
	remote := startRemote(t)
	groups := startAtkGroupEndpoint(t)
	planted := startHitCounter(t, `{"keys":[]}`)
	elsewhere := startHitCounter(t, `{"sub":"root","groups":["root"]}`)

	// A placeholder keeps the password out of the config, which Caddy
	// logs at DEBUG (the README's advice); the secret check below then
	// covers the gateway's own logging.
	password := writeFile(t, k.Dir, "ldap.password", dir.BindPassword)
	// max_header_size lets tokens up to 1 MB reach the handler, so the
	// size limit under test is max_token_size, not Caddy's 16 KiB default.
	g := startAtkGateway(t, "max_header_size 2MB", gatewayConfig{
		Global: "log {\n\tlevel DEBUG\n}",
		Site:   "log",
		Auth: fmt.Sprintf(`
			remote_endpoint %s {
				timeout 1s
			}
			public_key %s RSA512
			public_key %s RSA256
			issuer %s
			audience %s
			max_token_size 65536
			group_resolvers claim ldap endpoint
			ldap {
				url %s
				bind_dn %s
				bind_password {file.%s}
				base_dn %s
				timeout 1s
				cache_ttl 0
			}
			groups_endpoint %s {
				timeout 1s
				cache_ttl 0
			}
			on_resolver_error deny
			system_token %s
		`, remote.URL(), k.A, k.B, atkIssuer, atkAudience,
			dir.URL, dir.BindDN, password, dir.BaseDN,
			groups.URL(), k.SystemToken),
	})
	e := &atkEnv{g: g, remote: remote, groups: groups, ldap: dir, system: k.System, secret: []string{dir.BindPassword}}

	// Warm up every path once (LDAP pool, transports), then take the
	// goroutine baseline.
	remote.Set(remoteReply{Status: http.StatusUnauthorized})
	groups.Set(nil)
	g.accept(t, bearer(sign(t, rsaKey(t, keyA), jwa.RS512, atkClaims("alice"))))
	g.accept(t, bearer(sign(t, rsaKey(t, keyA), jwa.RS512, atkClaims("zed"))))
	g.reject(t, bearer("not-a-token"))
	e.startBaseline(t)

	var cases []atkCase
	cases = append(cases, atkTokenCases(t, k, planted)...)
	cases = append(cases, atkJOSECases(t)...)
	cases = append(cases, atkClaimCases(t)...)
	cases = append(cases, atkExtractionCases(t)...)
	cases = append(cases, atkExhaustionCases(t)...)
	cases = append(cases, atkRemoteCases(t, elsewhere)...)
	cases = append(cases, atkGroupEndpointCases(t, groups, elsewhere)...)
	cases = append(cases, atkLDAPCases(t, dir, referral)...) // last: it stops the directory
	e.run(t, cases)

	t.Run("LEAK no URL from a token header, redirect or referral was ever contacted", func(t *testing.T) {
		if n := planted.Hits() + elsewhere.Hits() + referral.Count(); n != 0 {
			t.Errorf("%d request(s) or connection(s) to servers only an attacker named", n)
		}
	})
	e.finish(t)
}

// startAtkGateway is startGateway with more server options (the first
// servers block of a Caddyfile wins, so they go into gatewayConfig's).
func startAtkGateway(t *testing.T, serverOptions string, cfg gatewayConfig) *gateway {
	t.Helper()
	up := startUpstream(t)
	for attempt := 1; ; attempt++ {
		gw, plain, admin := freeAddr(t), freeAddr(t), freeAddr(t)
		caddyfile := cfg.caddyfile(gw, plain, up.Addr())
		if !strings.Contains(caddyfile, "\tservers {\n") {
			t.Fatal("the gateway config has no servers block to extend")
		}
		caddyfile = strings.Replace(caddyfile, "\tservers {\n", "\tservers {\n\t\t"+serverOptions+"\n", 1)
		proc, err := tryStartCaddy(t, withAdmin(caddyfile, admin), "caddyfile", admin)
		if errors.Is(err, errPortTaken) && attempt < 3 {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return &gateway{caddyProc: proc, URL: "http://" + gw + "/data", PlainURL: "http://" + plain + "/data", Up: up}
	}
}

// atkExtractionCases: what counts as a presented token (README "Validation";
// RFC 6750 §2.1, RFC 9110 §11.6.2) and `_`/`.` identity spoofing with those
// names allow-listed (README "Security notes").
func atkExtractionCases(t *testing.T) []atkCase {
	a := rsaKey(t, keyA)
	tok := func(sub string, groups ...string) string { return sign(t, a, jwa.RS512, atkClaims(sub, groups...)) }
	missing := func(id, name string, h http.Header) atkCase {
		return atkCase{id: id, name: name, header: h, status: http.StatusUnauthorized, presented: false}
	}
	spoof := func(h http.Header) http.Header {
		h["X_Okera_User"] = []string{"root"}
		h["X.Okera.User"] = []string{"root"}
		h["x_okera_groups"] = []string{"admins"}
		h["X.OKERA.GROUPS"] = []string{"admins"}
		return h
	}
	onlyCanonical := func(t *testing.T, _ response, rec *recordedRequest) {
		if rec != nil {
			assertOnlyCanonical(t, rec.Header, "X-Okera-User", []string{"alice"})
			assertOnlyCanonical(t, rec.Header, "X-Okera-Groups", []string{"analysts"})
		}
	}
	// A chunked POST whose trailer block spoofs the identity under the
	// allow-listed spellings.
	trailers := func(t *testing.T, addr string) response {
		return rawRequest(t, addr, "POST /data HTTP/1.1\r\nHost: "+addr+"\r\nAuthorization: Bearer "+tok("alice", "analysts")+
			"\r\nTrailer: X_Okera_User, X.Okera.Groups\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+
			"7\r\npayload\r\n0\r\nX_Okera_User: root\r\nX.Okera.Groups: admins\r\nX-Okera-User: root\r\n\r\n")
	}
	noTrailers := func(t *testing.T, _ response, rec *recordedRequest) {
		if rec == nil {
			return
		}
		for k, v := range rec.Trailer {
			if sameHeaderName(k, "X-Okera-User") || sameHeaderName(k, "X-Okera-Groups") {
				t.Errorf("the upstream got the spoofed trailer %s = %q", k, v)
			}
		}
		if rec.Body != "payload" {
			t.Errorf("the upstream got body %q", rec.Body)
		}
	}
	valid := tok("alice", "analysts")
	return []atkCase{
		// RFC 6750 §2.1 / README "Validation": "Bearer" SP token, scheme in any
		// case; anything else is no token (401 without error=).
		missing("ATK-100", "no Authorization header", http.Header{}),
		missing("ATK-101", "Basic credentials", http.Header{"Authorization": {"Basic YWxpY2U6c2VjcmV0"}}),
		missing("ATK-102", "Bearer without a token", http.Header{"Authorization": {"Bearer"}}),
		missing("ATK-103", "another scheme carrying a valid token", http.Header{"Authorization": {"Token " + valid}}),
		missing("ATK-104", "a tab between scheme and token", http.Header{"Authorization": {"Bearer\t" + valid}}),
		// jwt_tool "Bearer twice": the second word is not a token.
		atkInvalid("ATK-105", "Bearer twice", "Bearer "+valid, 0),
		// Two headers could be read differently by the gateway and the
		// upstream: refused, even when both hold the same valid token.
		{id: "ATK-106", name: "two Authorization headers with valid tokens", header: http.Header{"Authorization": {"Bearer " + valid, "Bearer " + valid}},
			status: http.StatusUnauthorized, presented: true},
		{id: "ATK-107", name: "Authorization twice in different letter case", header: http.Header{"Authorization": {"Bearer " + valid}, "authorization": {"Bearer not-a-token"}},
			status: http.StatusUnauthorized, presented: true},
		{id: "ATK-108", name: "control: lower-case scheme", header: http.Header{"Authorization": {"bearer " + tok("alice", "analysts")}},
			status: http.StatusOK, wantUser: "alice", wantGroups: "analysts", remoteCalls: 1},
		{id: "ATK-109", name: "control: upper-case scheme", header: http.Header{"Authorization": {"BEARER " + tok("alice", "analysts")}},
			status: http.StatusOK, wantUser: "alice", wantGroups: "analysts", remoteCalls: 1},
		// README "Security notes": with X_Okera_User and X.Okera.User
		// allow-listed, Caddy passes them; only the handler stands between them
		// and a CGI-style back end that folds them into X-Okera-User.
		{id: "ATK-110", name: "X_Okera_User and X.Okera.Groups spoofed next to a valid token", header: spoof(bearer(tok("alice", "analysts"))),
			status: http.StatusOK, wantUser: "alice", wantGroups: "analysts", remoteCalls: 1, after: onlyCanonical},
		func() atkCase {
			c := atkInvalid("ATK-111", "spoofed identity with an invalid token", sign(t, rsaKey(t, keyAttacker), jwa.RS512, atkClaims("alice")), 1)
			c.header = spoof(c.header)
			return c
		}(),
		missing("ATK-112", "spoofed identity without a token", spoof(http.Header{})),
		// README "Security notes": a trailer field is a client-sent value too
		// (RFC 9110 §6.5).
		{id: "ATK-113", name: "spoofed identity in declared request trailers", raw: trailers,
			status: http.StatusOK, wantUser: "alice", wantGroups: "analysts", remoteCalls: -1, after: noTrailers},
		// RFC 7515 §2: a byte outside the base64url alphabet.
		atkInvalid("ATK-114", "token with a trailing junk segment character", strings.TrimSuffix(valid, valid[len(valid)-1:])+"!", 0),
	}
}
