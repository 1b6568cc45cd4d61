package integration

import (
	"crypto/rsa"
	"fmt"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// README "Lifecycle": fifty config reloads (admin API POST /load) of a gateway
// with every background part of issue 4 running — file watchers, a JWKS source
// and its refresher, a down JWKS retrying, the self-renewing system token, the
// minted token cache, okera_jwks — leave the goroutine count and the open file
// descriptors where they were: Cleanup stops what Provision started.
func TestIssue4ReloadsLeaveNoGoroutines(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gwKey, idpKey := rsaKey(t, "issue4-reload-gw"), rsaKey(t, "issue4-reload-idp")
	signingKey := writePKCS8Private(t, dir, "id_rsa", gwKey)
	pub := writeSPKI(t, dir, "idp.pub", idpKey)
	idp := &switchableJWKS{addr: freeAddr(t)}
	idp.Set(jwkSetOf(t, map[string]*rsa.PublicKey{"idp": &idpKey.PublicKey}))
	idp.Start(t)
	down := freeAddr(t) // nothing listens here
	up := startUpstream(t)
	gw := freeAddr(t)
	admin := freeAddr(t)
	config := adaptPatched(t, fmt.Sprintf(`
http://%s {
	bind 127.0.0.1
	okera_jwks /jwks %s
	okera_auth {
		public_key %s
		jwks_url %s
		jwks_url http://%s/jwks
		signing_key %s
		upstream_token minted
	}
	# Caddy's reverse_proxy keeps each old config's idle upstream
	# connections past a reload, until their keep-alive timeout (2m); that
	# is Caddy's, and would hide what this test measures.
	reverse_proxy %s {
		transport http {
			keepalive off
		}
	}
}
`, gw, signingKey, pub, idp.URL(), down, signingKey, up.Addr()), admin, map[string]map[string]any{
		"okera_auth": {"file_check_interval": "1s", "system_token_ttl": "2s"},
		"okera_jwks": {"file_check_interval": "1s"},
	})
	p := startCaddyConfig(t, config, "json", admin)

	tokens := []string{
		sign(t, idpKey, jwa.RS512, userClaims("alice", "a")),
		signWithHeaders(t, idpKey, jwa.RS256, userClaims("bob", "b"), map[string]any{"kid": "idp"}),
	}
	traffic := func() {
		t.Helper()
		for _, tok := range tokens {
			if r := get(t, "http://"+gw+"/data", bearer(tok)); r.Status != http.StatusOK {
				// The JWKS token may still be waiting for the first fetch.
				if r.Status != http.StatusServiceUnavailable {
					t.Fatalf("got %d %q", r.Status, r.Body)
				}
			}
		}
		if r := get(t, "http://"+gw+"/jwks", nil); r.Status != http.StatusOK {
			t.Fatalf("okera_jwks answered %d", r.Status)
		}
	}
	settle := func() (goroutines, files int) {
		// Idle keep-alive connections of the test's clients hold a
		// goroutine each on the server: drop them before counting.
		client.Transport.(*http.Transport).CloseIdleConnections()
		time.Sleep(300 * time.Millisecond)
		return caddyGoroutines(t, p), caddyOpenFiles(p)
	}

	// Warm up: a few reloads with traffic, so everything lazily started
	// once per process (Caddy's and the runtime's) is running.
	for i := 0; i < 3; i++ {
		traffic()
		loadConfig(t, p, config)
	}
	traffic()
	baseG, baseF := settle()

	for i := 0; i < 50; i++ {
		loadConfig(t, p, config)
		if i%10 == 0 {
			traffic()
		}
	}
	traffic()
	var g, f int
	ok := waitUntil(20*time.Second, func() bool {
		g, f = settle()
		return g <= baseG+2 && (f < 0 || f <= baseF+2)
	})
	if !ok {
		resp := get(t, "http://"+admin+"/debug/pprof/goroutine?debug=1", nil)
		if out, err := exec.Command("ss", "-tnp").CombinedOutput(); err == nil {
			t.Logf("ss -tnp:\n%s\nupstream %s idp %s gw %s admin %s", out, up.Addr(), idp.addr, gw, admin)
		}
		t.Fatalf("after 50 reloads: %d goroutines (%d before), %d open files (%d before)\n%s", g, baseG, f, baseF, resp.Body)
	}
	t.Logf("after 50 reloads: %d goroutines (%d before), %d open files (%d before)", g, baseG, f, baseF)
}
