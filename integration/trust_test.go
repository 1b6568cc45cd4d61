package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// The trust suite: nobody reaches the upstream with an identity or a
// credential that is not theirs (README "Security notes"). Each case has an
// id (TRUST-nn) and a comment naming the attack it pins down. The attacks
// were found against the built binary; each test failed before its fix.

// secretSite is a gateway whose protected handler is a `respond`, the way
// file_server or a static answer sits behind okera_auth: whatever reaches
// it was let through, so a 200 here is an authentication decision.
func secretSite(t *testing.T, auth string) (addr string, p *caddyProc) {
	t.Helper()
	addr = freeAddr(t)
	admin := freeAddr(t)
	cf := fmt.Sprintf(`{
	debug
}
http://%s {
	bind 127.0.0.1
	okera_auth {
%s	}
	respond "top secret for {http.auth.user.id} in {http.auth.user.groups}" 200
}
`, addr, indent(auth, "\t\t"))
	p, err := tryStartCaddy(t, withAdmin(cf, admin), "caddyfile", admin)
	if err != nil {
		t.Fatal(err)
	}
	return addr, p
}

// halfClosedRequest sends a GET with the bearer token, half-closes the
// connection (the client will send nothing more, but still reads), and
// returns whatever came back: the status line and body, or "" when the
// gateway hung up without answering.
func halfClosedRequest(t *testing.T, addr, token string) (status int, body string) {
	t.Helper()
	conn, err := writeRaw(addr, bearerGET(addr, token), 15*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "" // no answer at all: no decision
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// slowEndpoint answers after delay (or when the gateway hangs up) and counts
// the connections it has open.
type slowEndpoint struct {
	srv    *httptest.Server
	open   atomic.Int64
	calls  atomic.Int64
	delay  time.Duration
	answer func(w http.ResponseWriter, r *http.Request)
}

func startSlowEndpoint(t *testing.T, delay time.Duration, answer func(w http.ResponseWriter, r *http.Request)) *slowEndpoint {
	t.Helper()
	e := &slowEndpoint{delay: delay, answer: answer}
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.calls.Add(1)
		select {
		case <-time.After(e.delay):
			e.answer(w, r)
		case <-r.Context().Done():
		}
	}))
	e.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		switch s {
		case http.StateNew:
			e.open.Add(1)
		case http.StateClosed, http.StateHijacked:
			e.open.Add(-1)
		}
	}
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

func jsonAnswer(status int, body string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// TestTrustDepartedCaller: a caller that goes away ends its request with no
// decision; its departure is never the endpoint (or a group resolver) being
// unavailable, so it never falls through to the keys or the next resolver.
func TestTrustDepartedCaller(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	// Signed by key A: the keys would accept it; only the endpoint can
	// revoke it or name another user.
	mallory := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("mallory", "admins"))

	t.Run("TRUST-01 half-closed client vs an authoritative endpoint that revokes", func(t *testing.T) {
		ep := startSlowEndpoint(t, 400*time.Millisecond, jsonAnswer(401, `{}`))
		addr, p := secretSite(t, fmt.Sprintf("remote_endpoint %s {\n\tauthoritative\n}\npublic_key %s\nupstream_token none\n", ep.srv.URL, k.A))
		if !strings.Contains(p.Output(), "public_key and jwks_url are never consulted") {
			t.Error("no start-up warning that an authoritative endpoint leaves the keys unused")
		}
		if st, body := halfClosedRequest(t, addr, mallory); st == 200 || strings.Contains(body, "top secret") {
			t.Fatalf("a half-closed client with a revoked token got %d %q", st, body)
		}
		// Control: the same token on a normal connection is refused.
		if resp := get(t, "http://"+addr+"/data", bearer(mallory)); resp.Status != 401 {
			t.Fatalf("revoked token: %d, want 401", resp.Status)
		}
	})

	t.Run("TRUST-02 half-closed client vs a non-authoritative endpoint that names the user", func(t *testing.T) {
		ep := startSlowEndpoint(t, 400*time.Millisecond, jsonAnswer(200, `{"sub":"alice","groups":["analysts"]}`))
		addr, _ := secretSite(t, fmt.Sprintf("remote_endpoint %s\npublic_key %s\nupstream_token none\n", ep.srv.URL, k.A))
		if st, body := halfClosedRequest(t, addr, mallory); strings.Contains(body, "mallory") || strings.Contains(body, "admins") {
			t.Fatalf("a half-closed client replaced the endpoint's user with its own claims: %d %q", st, body)
		}
		resp := get(t, "http://"+addr+"/data", bearer(mallory))
		if resp.Status != 200 || !strings.Contains(resp.Body, "top secret for alice in analysts") {
			t.Fatalf("normal request: %d %q, want the endpoint's alice", resp.Status, resp.Body)
		}
	})

	t.Run("TRUST-03 half-closed client vs a slow group endpoint with on_resolver_error continue", func(t *testing.T) {
		ep := startSlowEndpoint(t, 400*time.Millisecond, jsonAnswer(200, `["analysts"]`))
		addr, _ := secretSite(t, fmt.Sprintf(`public_key %s
system_token %s
groups_endpoint %s/groups
group_resolvers endpoint claim
on_resolver_error continue
required_group admins
`, k.A, k.SystemToken, ep.srv.URL))
		if st, body := halfClosedRequest(t, addr, mallory); st == 200 || strings.Contains(body, "top secret") {
			t.Fatalf("a half-closed client skipped the group endpoint to its own groups claim: %d %q", st, body)
		}
		// Control: the endpoint puts mallory in analysts only.
		if resp := get(t, "http://"+addr+"/data", bearer(mallory)); resp.Status != 403 {
			t.Fatalf("normal request: %d %q, want 403", resp.Status, resp.Body)
		}
	})

	t.Run("TRUST-04 abandoned requests leave no call running at the endpoint", func(t *testing.T) {
		ep := startSlowEndpoint(t, time.Minute, jsonAnswer(401, `{}`))
		addr, _ := secretSite(t, fmt.Sprintf("remote_endpoint %s {\n\ttimeout 30s\n}\npublic_key %s\nupstream_token none\n", ep.srv.URL, k.A))
		const n = 40
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok := sign(t, rsaKey(t, keyB), jwa.RS512, userClaims(fmt.Sprintf("u%d", i)))
				conn, err := writeRaw(addr, bearerGET(addr, tok), 10*time.Second)
				if err != nil {
					t.Error(err)
					return
				}
				time.Sleep(300 * time.Millisecond)
				conn.Close() // abandoned
			}()
		}
		wg.Wait()
		if ep.calls.Load() == 0 {
			t.Fatal("the endpoint was never asked: the test proves nothing")
		}
		if !waitUntil(5*time.Second, func() bool { return ep.open.Load() == 0 }) {
			t.Fatalf("%d connections still open at the endpoint after %d abandoned requests", ep.open.Load(), n)
		}
	})
}

// TestTrustLookalikeGroups (TRUST-05): lower-casing never turns a non-ASCII
// group into an ASCII one, so `ADMİNS` (U+0130) or `Kafka` with the Kelvin
// sign never satisfies required_group admins or kafka.
func TestTrustLookalikeGroups(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	for _, c := range []struct{ group, required string }{
		{"ADMİNS", "admins"},
		{"\u212Aafka", "kafka"},
	} {
		addr, _ := secretSite(t, fmt.Sprintf("public_key %s\nrequired_group %s\nupstream_token none\n", k.A, c.required))
		tok := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("mallory", c.group))
		if resp := get(t, "http://"+addr+"/data", bearer(tok)); resp.Status != 403 {
			t.Errorf("groups [%q] with required_group %s: %d %q, want 403", c.group, c.required, resp.Status, resp.Body)
		}
		// Control: the real group passes.
		tok = sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice", strings.ToUpper(c.required)))
		if resp := get(t, "http://"+addr+"/data", bearer(tok)); resp.Status != 200 {
			t.Errorf("groups [%q]: %d, want 200", strings.ToUpper(c.required), resp.Status)
		}
	}
}

// TestTrustUpstreamAuthorization: only the gateway decides the upstream's
// Authorization.
func TestTrustUpstreamAuthorization(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	alice := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice", "analysts"))
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf("public_key %s\nsystem_token %s\n", k.A, k.SystemToken)})
	gwAddr := strings.TrimSuffix(strings.TrimPrefix(g.URL, "http://"), "/data")

	wantSystemOnly := func(t *testing.T, rec recordedRequest) {
		t.Helper()
		if got := rec.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+k.System {
			t.Errorf("upstream Authorization %q, want the system token only", got)
		}
		for name, v := range rec.Trailer {
			if sameHeaderName(name, "Authorization") {
				t.Errorf("upstream got an Authorization trailer %q", v)
			}
		}
	}

	t.Run("TRUST-06 declared Authorization trailer", func(t *testing.T) {
		req, err := http.NewRequest(http.MethodPost, g.URL, io.NopCloser(strings.NewReader("payload")))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+alice)
		req.ContentLength = -1
		req.Trailer = http.Header{"Authorization": {"Bearer smuggled"}}
		before := g.Up.Count()
		if resp := do(t, req); resp.Status != 200 || g.Up.Count() != before+1 {
			t.Fatalf("POST: %d", resp.Status)
		}
		wantSystemOnly(t, g.Up.Last(t))
	})

	t.Run("TRUST-07 undeclared Authorization trailer", func(t *testing.T) {
		before := g.Up.Count()
		resp := rawRequest(t, gwAddr, "POST /data HTTP/1.1\r\nHost: "+gwAddr+"\r\nAuthorization: Bearer "+alice+
			"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n7\r\npayload\r\n0\r\nAuthorization: Bearer smuggled\r\n\r\n")
		if resp.Status != 200 || g.Up.Count() != before+1 {
			t.Fatalf("POST: %d %q", resp.Status, resp.Body)
		}
		wantSystemOnly(t, g.Up.Last(t))
	})

	t.Run("TRUST-08 Connection: Authorization does not drop the system token", func(t *testing.T) {
		rec := g.accept(t, http.Header{"Authorization": {"Bearer " + alice}, "Connection": {"Authorization, keep-alive"}})
		wantSystemOnly(t, rec)
	})

	t.Run("TRUST-09 handle_errors never forwards the caller's token", func(t *testing.T) {
		up := startUpstream(t)
		ge := startGateway(t, gatewayConfig{
			Auth: fmt.Sprintf("public_key %s\nsystem_token %s\nrequired_group admins\n", k.A, k.SystemToken),
			Site: fmt.Sprintf("handle_errors {\n\treverse_proxy %s\n}\n", up.Addr()),
		})
		forged := sign(t, rsaKey(t, keyB), jwa.RS512, userClaims("mallory"))
		for _, tok := range []string{forged /* 401 */, alice /* 403 */} {
			before := up.Count()
			get(t, ge.URL, bearer(tok))
			if up.Count() != before+1 {
				t.Fatalf("handle_errors did not proxy: the test proves nothing")
			}
			rec := up.Last(t)
			for _, v := range rec.Header.Values("Authorization") {
				if strings.Contains(v, tok) {
					t.Errorf("handle_errors forwarded the caller's token")
				}
			}
		}
	})
}

// TestTrustGatewayCredentials: what the gateway hands out is not a
// credential to the gateway.
func TestTrustGatewayCredentials(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)

	t.Run("TRUST-10 the system token is refused from callers", func(t *testing.T) {
		g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf("public_key %s\nsystem_token %s\n", k.A, k.SystemToken)})
		assertUnauthorized(t, g.reject(t, bearer(k.System)), "okera", true)
	})

	t.Run("TRUST-11 accept_system_token lets it in, as the default admin", func(t *testing.T) {
		g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf("public_key %s\nsystem_token %s\naccept_system_token\nrequired_group admins\n", k.A, k.SystemToken)})
		rec := g.accept(t, bearer(k.System))
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "okera", "root")
	})

	t.Run("TRUST-12 a minted upstream token is refused from callers", func(t *testing.T) {
		signing := writePKCS8Private(t, k.Dir, "signing.pem", rsaKey(t, keyC))
		g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf("public_key %s\nsigning_key %s\nupstream_token minted\n", k.A, signing)})
		rec := g.accept(t, bearer(sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice", "analysts"))))
		minted := strings.TrimPrefix(rec.Header.Get("Authorization"), "Bearer ")
		if aud := payloadOf(t, minted)["aud"]; aud != "okera-upstream" {
			t.Fatalf("minted token aud %v, want okera-upstream", aud)
		}
		// The upstream replays it: signed by the gateway's own key, which
		// the gateway trusts, and still refused.
		assertUnauthorized(t, g.reject(t, bearer(minted)), "okera", true)
	})

	t.Run("TRUST-13 the self-minted system token is refused from callers", func(t *testing.T) {
		signing := writePKCS8Private(t, k.Dir, "signing2.pem", rsaKey(t, keyD))
		g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf("signing_key %s\n", signing)})
		rec := g.accept(t, bearer(sign(t, rsaKey(t, keyD), jwa.RS512, userClaims("alice"))))
		self := strings.TrimPrefix(rec.Header.Get("Authorization"), "Bearer ")
		if payloadOf(t, self)["sub"] != "okera" {
			t.Fatalf("upstream Authorization is not the self-minted system token")
		}
		assertUnauthorized(t, g.reject(t, bearer(self)), "okera", true)
	})

	t.Run("TRUST-14 sub okera is no admin by default", func(t *testing.T) {
		g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf("public_key %s\nsystem_token %s\nrequired_group admins\n", k.A, k.SystemToken)})
		okera := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("okera"))
		assertForbidden(t, g.reject(t, bearer(okera)))
	})
}

// TestTrustConfigurationHoles (TRUST-15..18): every configuration error is a
// start-up error naming the directive, never a panic.
func TestTrustConfigurationHoles(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	site := func(auth string) string {
		return fmt.Sprintf("http://127.0.0.1:0 {\n\tokera_auth {\n%s\t}\n\trespond ok\n}\n", indent(auth, "\t\t"))
	}
	cases := []struct {
		id, auth, want string
	}{
		{"TRUST-15 group_resolvers ldap without an ldap block", fmt.Sprintf("public_key %s\nsystem_token %s\ngroup_resolvers claim ldap\n", k.A, k.SystemToken), "group_resolvers lists ldap"},
		{"TRUST-15 group_resolvers endpoint without groups_endpoint", fmt.Sprintf("public_key %s\nsystem_token %s\ngroup_resolvers endpoint\n", k.A, k.SystemToken), "group_resolvers lists endpoint"},
		{"TRUST-16 an empty okera_auth block", "", "needs a remote_endpoint or at least one public_key"},
		{"TRUST-17 identity headers that fold together", fmt.Sprintf("public_key %s\nsystem_token %s\nuser_header X_Okera_User\ngroups_header X-Okera-User\n", k.A, k.SystemToken), "name the same header"},
		{"TRUST-17 an identity header that folds into Authorization", fmt.Sprintf("public_key %s\nsystem_token %s\nuser_header authorization\n", k.A, k.SystemToken), "cannot be an identity header"},
		{"TRUST-18 audience lists the minted audience", fmt.Sprintf("public_key %s\nsystem_token %s\naudience okera-upstream\n", k.A, k.SystemToken), "minted_audience"},
	}
	for _, c := range cases {
		t.Run(c.id, func(t *testing.T) {
			out := expectStartFailure(t, site(c.auth))
			if strings.Contains(out, "panic") || strings.Contains(out, "goroutine ") {
				t.Fatalf("configuration error panicked:\n%s", out)
			}
			if !strings.Contains(out, c.want) {
				t.Fatalf("output does not say %q:\n%s", c.want, out)
			}
		})
	}

	t.Run("TRUST-15 JSON group_resolvers [ldap] without ldap", func(t *testing.T) {
		admin := freeAddr(t)
		cfg := fmt.Sprintf(`{"admin":{"listen":%q},"apps":{"http":{"servers":{"s":{"listen":[%q],"routes":[{"handle":[
			{"handler":"okera_auth","public_keys":[{"path":%q}],"system_token":%q,"group_resolvers":["ldap"]}]}]}}}}}`,
			admin, freeAddr(t), k.A, k.SystemToken)
		_, err := tryStartCaddy(t, cfg, "json", admin)
		if err == nil {
			t.Fatal("caddy run accepted group_resolvers [ldap] without an ldap block")
		}
		if msg := err.Error(); strings.Contains(msg, "panic") || !strings.Contains(msg, "group_resolvers lists ldap") {
			t.Fatalf("want a start-up error naming group_resolvers, got:\n%s", msg)
		}
	})
}

// TestTrustCommaInSub (TRUST-19): an upstream reading X-Okera-User as a
// list would see "alice,admin" as two users, so such a sub is refused, from
// a token and from the remote endpoint's answer alike.
func TestTrustCommaInSub(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf("public_key %s\nsystem_token %s\n", k.A, k.SystemToken)})
	tok := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice,admin"))
	assertUnauthorized(t, g.reject(t, bearer(tok)), "okera", true)

	ep := startSlowEndpoint(t, 0, jsonAnswer(200, `{"sub":"alice,admin"}`))
	addr, _ := secretSite(t, fmt.Sprintf("remote_endpoint %s\nupstream_token none\n", ep.srv.URL))
	forged := sign(t, rsaKey(t, keyB), jwa.RS512, userClaims("bob"))
	if resp := get(t, "http://"+addr+"/data", bearer(forged)); resp.Status != 401 {
		t.Fatalf("endpoint sub with a comma: %d %q, want 401", resp.Status, resp.Body)
	}
}

// TestTrustLoneSurrogate (TRUST-20): a JSON string escape "\ud800" has no
// character of its own: Go reads it as U+FFFD, JavaScript and Python keep
// it, so a token signed for "\ud800" reached the upstream as the user "�",
// which "\udbff" became too. Such an escape is refused wherever the gateway
// reads JSON: in a token (401), the remote endpoint's answer (no
// validation) and a group endpoint's answer (an error).
func TestTrustLoneSurrogate(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf("public_key %s\nsystem_token %s\n", k.A, k.SystemToken)})
	exp := time.Now().Add(time.Hour).Unix()
	for _, sub := range []string{`\ud800`, `\udbff`, `alice\udc00`, `\ud800\u0041`} {
		payload := fmt.Sprintf(`{"sub":"%s","exp":%d}`, sub, exp)
		tok, err := jws.Sign([]byte(payload), jws.WithKey(jwa.RS512, rsaKey(t, keyA)))
		if err != nil {
			t.Fatal(err)
		}
		t.Run("token sub "+sub, func(t *testing.T) {
			assertUnauthorized(t, g.reject(t, bearer(string(tok))), "okera", true)
		})
	}
	t.Run("control: a surrogate pair is a character like any other", func(t *testing.T) {
		payload := fmt.Sprintf(`{"sub":"clef\ud834\udd1e","exp":%d}`, exp)
		tok, err := jws.Sign([]byte(payload), jws.WithKey(jwa.RS512, rsaKey(t, keyA)))
		if err != nil {
			t.Fatal(err)
		}
		if got := g.accept(t, bearer(string(tok))).Header.Get("X-Okera-User"); got != "clef\U0001D11E" {
			t.Errorf("X-Okera-User %q", got)
		}
	})

	t.Run("remote endpoint answer", func(t *testing.T) {
		ep := startSlowEndpoint(t, 0, jsonAnswer(200, `{"sub":"\ud800"}`))
		addr, _ := secretSite(t, fmt.Sprintf("remote_endpoint %s\nupstream_token none\n", ep.srv.URL))
		forged := sign(t, rsaKey(t, keyB), jwa.RS512, userClaims("bob"))
		if resp := get(t, "http://"+addr+"/data", bearer(forged)); resp.Status != 401 {
			t.Fatalf("endpoint sub \\ud800: %d %q, want 401", resp.Status, resp.Body)
		}
	})
	t.Run("group endpoint answer", func(t *testing.T) {
		ep := startGroupsEndpoint(t)
		ep.Reply("mallory", endpointReply{Status: 200, Body: `["\udc00admins"]`})
		gg := startGateway(t, gatewayConfig{Auth: groupsAuth(k, "group_resolvers endpoint", "groups_endpoint "+ep.URL())})
		assertUnavailable(t, gg.reject(t, bearer(userToken(t, "mallory"))))
	})
}
