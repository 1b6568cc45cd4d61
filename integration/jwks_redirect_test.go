package integration

import (
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Trust tests of jwks_url against the built binary: redirects, credentials
// in the URL and plain http (README "Validation", "Logs").

// trustIdP is an identity provider's JWKS endpoint that serves a set,
// answers with a redirect or with an error, as the test says, and records
// what each fetch carried.
type trustIdP struct {
	srv      *httptest.Server
	mu       sync.Mutex
	status   int    // 0: serve body
	body     []byte // the JWK Set
	location string // for a 3xx
	hits     int
	auth     []string // Authorization of each fetch
}

func startTrustIdP(t testing.TB, body []byte) *trustIdP {
	t.Helper()
	p := &trustIdP{body: body}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.hits++
		p.auth = append(p.auth, r.Header.Get("Authorization"))
		status, body, location := p.status, p.body, p.location
		p.mu.Unlock()
		if location != "" {
			w.Header().Set("Location", location)
		}
		if status != 0 {
			w.WriteHeader(status)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(body)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// answer makes every later fetch answer status (with Location when given)
// instead of the set; 0 serves the set again.
func (p *trustIdP) answer(status int, location string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status, p.location = status, location
}

func (p *trustIdP) Hits() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits
}

func (p *trustIdP) Auth() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.auth...)
}

// hostPort is the server's 127.0.0.1:port.
func (p *trustIdP) hostPort() string { return strings.TrimPrefix(p.srv.URL, "http://") }

// assertNeverAccepted checks a forged token's answer: refused (401) or
// unavailable (503), never passed to the upstream.
func assertNeverAccepted(t testing.TB, g *gateway, tok string) response {
	t.Helper()
	resp := g.reject(t, bearer(tok))
	if resp.Status != http.StatusUnauthorized && resp.Status != http.StatusServiceUnavailable {
		t.Errorf("the attacker's token got %d, want 401 or 503", resp.Status)
	}
	return resp
}

// TestTrustJWKSRedirect: the attack the red team ran. The https JWK Set
// answered `302 Location: http://…/evil.json`; the gateway followed it,
// loaded the attacker's key, and a token it signed for sub root in admins
// passed, while the log named only the configured URL. No JWKS fetch
// follows a redirect: a 3xx is a failed fetch (README "Validation").
func TestTrustJWKSRedirect(t *testing.T) {
	t.Parallel()
	idpKey, evilKey := rsaKey(t, keyIdP), rsaKey(t, keyAttacker)
	legit := jwkSetOf(t, map[string]*rsa.PublicKey{"idp-2024": &idpKey.PublicKey})
	// The attacker's set reuses the provider's kid, and adds one of its own
	// for the unknown-kid path.
	evil := startHitCounter(t, string(jwkSetOf(t, map[string]*rsa.PublicKey{"idp-2024": &evilKey.PublicKey, "evil-1": &evilKey.PublicKey})))
	evilURL := evil.srv.URL + "/evil.json"
	forged := func(kid string) string {
		return signWithHeaders(t, evilKey, jwa.RS256, userClaims("root", "admins"), map[string]any{jws.KeyIDKey: kid})
	}
	byIdP := func() string {
		return signWithHeaders(t, idpKey, jwa.RS256, userClaims("alice", "analysts"), map[string]any{jws.KeyIDKey: "idp-2024"})
	}

	t.Run("TRUST-JWKS-01 the start-up fetch answered 302 to the attacker's set", func(t *testing.T) {
		t.Parallel()
		idp := startTrustIdP(t, legit)
		idp.answer(http.StatusFound, evilURL)
		g := startGateway(t, gatewayConfig{Auth: "jwks_url " + idp.srv.URL + "/jwks.json\nupstream_token none"})
		// Across the start-up fetch and its first retries (1 s, 2 s).
		deadline := time.Now().Add(4 * time.Second)
		for i := 0; i < 40 && time.Now().Before(deadline); i++ {
			assertNeverAccepted(t, g, forged("idp-2024"))
			time.Sleep(100 * time.Millisecond)
		}
		if idp.Hits() < 2 {
			t.Errorf("the JWK Set was fetched %d time(s); the start-up retries did not run", idp.Hits())
		}
		// Never fetched: tokens only the JWKS could verify are unavailable.
		assertUnavailable(t, g.reject(t, bearer(forged("idp-2024"))))
		if n := evil.Hits(); n != 0 {
			t.Errorf("the redirect target was fetched %d time(s)", n)
		}
		if !strings.Contains(g.Output(), "redirects are not followed") {
			t.Error("the failed fetch does not say that the redirect was not followed")
		}
	})

	t.Run("TRUST-JWKS-02 an unknown kid refetches a set that now answers 302", func(t *testing.T) {
		t.Parallel()
		idp := startTrustIdP(t, legit)
		started := time.Now()
		g := startGateway(t, gatewayConfig{Auth: "jwks_url " + idp.srv.URL + "/jwks.json\nupstream_token none"})
		if !waitUntil(10*time.Second, func() bool { return get(t, g.URL, bearer(byIdP())).Status == http.StatusOK }) {
			t.Fatal("the identity provider's token never validated")
		}
		idp.answer(http.StatusFound, evilURL)
		// An unknown kid refetches at most once a minute, counted from the
		// start-up fetch: wait it out so that the token below does fetch.
		time.Sleep(time.Until(started.Add(62 * time.Second)))
		before := idp.Hits()
		assertNeverAccepted(t, g, forged("evil-1"))
		if n := idp.Hits() - before; n != 1 {
			t.Errorf("the unknown kid caused %d fetch(es), want 1", n)
		}
		assertUnauthorized(t, g.reject(t, bearer(forged("idp-2024"))), "okera", true)
		if n := evil.Hits(); n != 0 {
			t.Errorf("the redirect target was fetched %d time(s)", n)
		}
		// The keys fetched before stay in force.
		g.accept(t, bearer(byIdP()))
	})
}

// TestTrustJWKSUserinfoNotLogged: jwks_url https://user:pass@idp/... sends
// Basic credentials to the provider, but the password was in the start-up
// INFO line, the "JWKS keys loaded" line and every fetch failure. Caddy's
// whole output, at debug level, names the provider's host and never its
// credentials (README "Logs").
func TestTrustJWKSUserinfoNotLogged(t *testing.T) {
	t.Parallel()
	idpKey := rsaKey(t, keyIdP)
	legit := jwkSetOf(t, map[string]*rsa.PublicKey{"idp-2024": &idpKey.PublicKey})
	tok := func() string {
		return signWithHeaders(t, idpKey, jwa.RS256, userClaims("alice", "analysts"), map[string]any{jws.KeyIDKey: "idp-2024"})
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:s3cretpw"))
	for _, tc := range []struct {
		id, name string
		status   int  // what the provider answers; 0 serves the set
		down     bool // nothing listens
	}{
		{"TRUST-LOG-01", "provider down", 0, true},
		{"TRUST-LOG-02", "provider answers 500", http.StatusInternalServerError, false},
		{"TRUST-LOG-03", "provider up", 0, false},
	} {
		t.Run(tc.id+" "+tc.name, func(t *testing.T) {
			t.Parallel()
			idp := startTrustIdP(t, legit)
			host := idp.hostPort()
			if tc.down {
				idp.srv.Close()
			}
			idp.answer(tc.status, "")
			g := startGateway(t, gatewayConfig{
				Global: "debug",
				Auth:   fmt.Sprintf("jwks_url http://user:s3cretpw@%s/jwks.json\nupstream_token none", host),
			})
			if tc.down || tc.status != 0 {
				if !waitUntil(10*time.Second, func() bool { return strings.Count(g.Output(), "cannot fetch the JWKS") >= 2 }) {
					t.Error("the failed fetches were not logged")
				}
				assertUnavailable(t, g.reject(t, bearer(tok())))
			} else {
				if !waitUntil(10*time.Second, func() bool { return get(t, g.URL, bearer(tok())).Status == http.StatusOK }) {
					t.Fatal("the provider's token never validated")
				}
				if !strings.Contains(g.Output(), "JWKS keys loaded") {
					t.Error("the loaded keys were not logged")
				}
			}
			if !tc.down {
				auth := idp.Auth()
				if len(auth) == 0 || auth[0] != basic {
					t.Errorf("the provider got Authorization %q, want the URL's Basic credentials", auth)
				}
			}
			g.stop() // the shutdown lines too
			out := g.Output()
			for _, line := range strings.Split(out, "\n") {
				if isConfigDump(line) {
					continue
				}
				for _, secret := range []string{"s3cretpw", "user:"} {
					if strings.Contains(line, secret) {
						t.Errorf("Caddy's output holds %q: %.600s", secret, line)
					}
				}
			}
			if !strings.Contains(out, host) {
				t.Errorf("Caddy's output never names %s", host)
			}
		})
	}
}

// isConfigDump reports whether line is Caddy's own DEBUG dump of the whole
// configuration (logger http.auto_https, "adjusted config"), written while
// the http app provisions, before any handler runs. It prints every
// handler's JSON as configured, so a URL with a password in the config is
// there as written, as it is in the admin API's /config/ and in
// autosave.json: no module can redact it. Every other line is ours to
// keep clean.
func isConfigDump(line string) bool {
	return strings.Contains(line, `"logger":"http.auto_https"`) && strings.Contains(line, `"msg":"adjusted config"`)
}

// TestTrustJWKSPlainHTTPWarning: a JWK Set over plain http from a host
// that is not this machine can be swapped by any hop on the way, and every
// token with it. That is warned about at start-up, naming the URL without
// its userinfo; loopback http (a sidecar) is not (README "Validation"). The
// remote host is never reached: a loopback proxy stands in for the
// network, and Provision does not wait for it.
func TestTrustJWKSPlainHTTPWarning(t *testing.T) {
	t.Parallel()
	proxy := startHitCounter(t, "")
	loopback := startTrustIdP(t, nil)
	port := loopback.srv.URL[strings.LastIndexByte(loopback.srv.URL, ':')+1:]
	env := []string{"HTTP_PROXY=" + proxy.srv.URL, "http_proxy=" + proxy.srv.URL, "NO_PROXY=", "no_proxy="}
	const warning = "jwks_url is plain http:// to a host that is not loopback"
	for _, tc := range []struct {
		id, url, logged string // logged: the url the warning names; "" for no warning
	}{
		{"TRUST-JWKS-04", "http://idp.invalid/jwks", "http://idp.invalid/jwks"},
		{"TRUST-JWKS-05", "http://user:s3cretpw@idp.invalid/jwks", "http://idp.invalid/jwks"},
		{"TRUST-JWKS-06", "http://127.0.0.1:" + port + "/jwks", ""},
		{"TRUST-JWKS-07", "http://localhost:" + port + "/jwks", ""},
	} {
		// The id alone: the URL would put the password into the temporary
		// directory's name, which Caddy logs.
		t.Run(tc.id, func(t *testing.T) {
			t.Parallel()
			begin := time.Now()
			g := startGatewayEnv(t, gatewayConfig{Auth: "jwks_url " + tc.url + "\nupstream_token none"}, env...)
			if d := time.Since(begin); d > 10*time.Second {
				t.Errorf("start-up took %s", d)
			}
			out := g.Output()
			var lines []string
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, warning) {
					lines = append(lines, line)
				}
			}
			switch {
			case tc.logged == "" && len(lines) > 0:
				t.Errorf("a loopback http URL was warned about: %s", lines[0])
			case tc.logged != "" && len(lines) != 1:
				t.Errorf("%d warnings about plain http, want 1:\n%s", len(lines), out)
			case tc.logged != "":
				if !strings.Contains(lines[0], `"level":"warn"`) || !strings.Contains(lines[0], `"url":"`+tc.logged+`"`) || !strings.Contains(lines[0], "substitute") {
					t.Errorf("the warning is not a WARN naming %s and key substitution: %s", tc.logged, lines[0])
				}
			}
			if strings.Contains(out, "s3cretpw") {
				t.Error("the password is in Caddy's output")
			}
		})
	}
}
