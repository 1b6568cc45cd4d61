package integration

import (
	"crypto/rsa"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// README "Toward the upstream": with signing_key and no system_token the
// gateway mints its own system token (sub okera, groups [root]) and renews it
// at 80% of its life; the upstream sees the renewed token. The life is
// shortened to 3 s with the JSON-only system_token_ttl (default 1h).
func TestIssue4SelfMintedSystemTokenRenewal(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gwKey := rsaKey(t, "issue4-system")
	signingKey := writePKCS8Private(t, dir, "id_rsa", gwKey)
	up := startVerifyingUpstream(t)
	gw := freeAddr(t)
	startPatched(t, fmt.Sprintf(`
http://%s {
	bind 127.0.0.1
	okera_jwks /jwks %s
	okera_auth {
		signing_key %s
	}
	reverse_proxy %s
}
`, gw, signingKey, signingKey, up.Addr()), map[string]map[string]any{
		"okera_auth": {"system_token_ttl": "3s"},
	})
	up.jwksURL = "http://" + gw + "/jwks"

	// The caller's token is signed by the gateway's own key: its public
	// half validates tokens without a public_key line.
	caller := sign(t, gwKey, jwa.RS512, userClaims("alice"))
	send := func() verifiedCall {
		t.Helper()
		if r := get(t, "http://"+gw+"/data", bearer(caller)); r.Status != http.StatusOK {
			t.Fatalf("got %d %q, want 200", r.Status, r.Body)
		}
		return up.Last(t)
	}
	first := send()
	if first.Err != nil {
		t.Fatalf("the self-minted system token does not verify against the JWK Set: %v", first.Err)
	}
	groups, _ := first.Claims["groups"].([]any)
	if first.Claims["sub"] != "okera" || len(groups) != 1 || groups[0] != "root" {
		t.Fatalf("system token claims %v, want sub okera and groups [root]", first.Claims)
	}
	if life := first.Claims["exp"].(time.Time).Sub(first.Claims["iat"].(time.Time)); life != 3*time.Second {
		t.Errorf("system token life %s, want the configured 3s", life)
	}
	var renewed verifiedCall
	if !waitUntil(10*time.Second, func() bool {
		renewed = send()
		return renewed.Token != first.Token
	}) {
		t.Fatal("the self-minted system token was not renewed")
	}
	if renewed.Err != nil {
		t.Fatalf("the renewed system token does not verify: %v", renewed.Err)
	}
	// Renewed before it expired: at 80% of its life.
	if exp := first.Claims["exp"].(time.Time); !renewed.Claims["iat"].(time.Time).Before(exp) {
		t.Errorf("renewed at %v, after the first token expired at %v", renewed.Claims["iat"], exp)
	}
}

// README "Validation": a JWKS that cannot be fetched at start-up does not stop
// Caddy from starting. Meanwhile tokens only its keys could verify get 503 with
// Retry-After (the gateway cannot tell a bad token from a key it could not
// fetch); the fetch is retried in the background, and once the identity
// provider is up its tokens validate, by kid, as validator jwks. Made-up kids
// do not make the gateway hammer the identity provider.
func TestIssue4JWKSEndpointStartsAfterCaddy(t *testing.T) {
	t.Parallel()
	idpKey := rsaKey(t, "issue4-jwks-idp")
	idp := &switchableJWKS{addr: freeAddr(t)}
	idp.Set(jwkSetOf(t, map[string]*rsa.PublicKey{"idp-2024": &idpKey.PublicKey}))
	g := startGateway(t, gatewayConfig{Auth: "jwks_url " + idp.URL() + "\nupstream_token none"})

	tok := signWithHeaders(t, idpKey, jwa.RS256, userClaims("alice", "analysts"), map[string]any{"kid": "idp-2024"})
	resp := g.reject(t, bearer(tok))
	assertUnavailable(t, resp)
	assertNoStore(t, resp)

	time.Sleep(500 * time.Millisecond)
	idp.Start(t)
	var status int
	if !waitUntil(40*time.Second, func() bool {
		status = get(t, g.URL, bearer(tok)).Status
		return status == http.StatusOK
	}) {
		t.Fatalf("the JWKS endpoint is up, but the token still gets %d", status)
	}
	rec := g.accept(t, bearer(signWithHeaders(t, idpKey, jwa.RS256, userClaims("bob"), map[string]any{"kid": "idp-2024"})))
	if got := rec.Header.Get("X-Test-Validator"); got != "jwks" {
		t.Errorf("{http.auth.okera.validator} = %q, want jwks", got)
	}
	if got := rec.Header.Get("X-Okera-User"); got != "bob" {
		t.Errorf("user %q", got)
	}

	// Tokens with kids the set does not hold: refused, and at most one
	// fetch of the set per minute whatever their number.
	before := idp.Hits()
	for i := 0; i < 30; i++ {
		forged := signWithHeaders(t, rsaKey(t, keyAttacker), jwa.RS256, userClaims("mallory"), map[string]any{"kid": fmt.Sprintf("kid-%d", i)})
		assertUnauthorized(t, g.reject(t, bearer(forged)), "okera", true)
	}
	if n := idp.Hits() - before; n > 1 {
		t.Errorf("30 unknown kids made %d fetches of the JWK Set, want at most 1", n)
	}
	// A kid the set holds but signed by another key: refused.
	forged := signWithHeaders(t, rsaKey(t, keyAttacker), jwa.RS256, userClaims("mallory"), map[string]any{"kid": "idp-2024"})
	assertUnauthorized(t, g.reject(t, bearer(forged)), "okera", true)
	if !strings.Contains(g.Output(), "JWKS keys loaded") {
		t.Error("the loaded JWKS keys were not logged")
	}
}
