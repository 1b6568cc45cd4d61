package integration

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// README "Toward the upstream": with upstream_token minted the upstream gets a
// token the gateway signs with signing_key for the caller's user and groups,
// and verifies it the way a real service would: against the JWK Set that
// okera_jwks serves from the same Caddy, without a token (okera_jwks orders
// itself before okera_auth). Replacing the signing key file takes effect
// without a reload: the JWK Set and the minted tokens move to the new key.
func TestIssue4MintedTokenVerifiedAgainstOkeraJWKS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	gwKey, nextKey, idpKey := rsaKey(t, "issue4-gateway"), rsaKey(t, "issue4-gateway-next"), rsaKey(t, keyIdP)
	signingKey := writePKCS8Private(t, dir, "id_rsa", gwKey)
	idpPub := writeSPKI(t, dir, "idp.pub", idpKey)
	up := startVerifyingUpstream(t)
	gw := freeAddr(t)
	startCaddy(t, fmt.Sprintf(`
http://%s {
	bind 127.0.0.1
	okera_jwks /.well-known/jwks.json %s RS256
	okera_auth {
		public_key %s
		signing_key %s RSA256
		upstream_token minted
		minted_token_ttl 10m
	}
	reverse_proxy %s
}
`, gw, signingKey, idpPub, signingKey, up.Addr()))
	up.jwksURL = "http://" + gw + "/.well-known/jwks.json"

	// The JWK Set: public, cacheable, the public half only, kid = thumbprint.
	resp := get(t, up.jwksURL, nil)
	if resp.Status != http.StatusOK {
		t.Fatalf("GET the JWK Set: %d %s", resp.Status, resp.Body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Errorf("Content-Type = %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=300" {
		t.Errorf("Cache-Control = %q", cc)
	}
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(resp.Body), &set); err != nil {
		t.Fatal(err)
	}
	kid := thumbprint(t, &gwKey.PublicKey)
	if len(set.Keys) != 1 || set.Keys[0]["kid"] != kid || set.Keys[0]["alg"] != "RS256" || set.Keys[0]["use"] != "sig" {
		t.Fatalf("JWK Set = %s, want one key with kid %s, alg RS256, use sig", resp.Body, kid)
	}
	for _, private := range []string{"d", "p", "q", "dp", "dq", "qi"} {
		if _, ok := set.Keys[0][private]; ok {
			t.Fatalf("the JWK Set publishes private member %q", private)
		}
	}

	// A caller's token: the upstream gets a minted token that verifies
	// against the JWK Set and names the caller and the groups.
	caller := sign(t, idpKey, jwa.RS512, userClaims("alice", "Analysts", "data"))
	r := get(t, "http://"+gw+"/data", bearer(caller))
	if r.Status != http.StatusOK {
		t.Fatalf("got %d %q, want 200 (the upstream verified the minted token)", r.Status, r.Body)
	}
	call := up.Last(t)
	if call.Err != nil {
		t.Fatalf("the upstream could not verify the minted token: %v", call.Err)
	}
	if call.Token == caller {
		t.Fatal("the caller's token reached the upstream")
	}
	if call.Kid != kid {
		t.Errorf("kid = %q, want the signing key's thumbprint %q", call.Kid, kid)
	}
	c := call.Claims
	groups, _ := c["groups"].([]any)
	if c["sub"] != "alice" || c["iss"] != "caddy-okera-auth" || len(groups) != 2 || groups[0] != "analysts" || groups[1] != "data" {
		t.Errorf("minted claims = %v", c)
	}
	iat, exp := c["iat"].(time.Time), c["exp"].(time.Time)
	if c["nbf"] == nil || exp.Sub(iat) != 10*time.Minute {
		t.Errorf("iat %v nbf %v exp %v, want exp = iat + minted_token_ttl 10m", iat, c["nbf"], exp)
	}

	// Steady traffic reuses the minted token.
	first := call.Token
	get(t, "http://"+gw+"/data", bearer(caller))
	if again := up.Last(t).Token; again != first {
		t.Error("a second request of the same caller got a newly minted token")
	}
	// The gateway trusts signing_key's public half, yet refuses the tokens
	// it minted for an upstream (their aud is minted_audience): an upstream
	// must not replay them (README "Security notes").
	if r := get(t, "http://"+gw+"/data", bearer(first)); r.Status != http.StatusUnauthorized {
		t.Errorf("the gateway accepted its own minted token back: %d", r.Status)
	}

	// Key rotation by file replacement, no reload: the JWK Set and the
	// minted tokens move to the new key within 30 s.
	replaceFile(t, signingKey, pemPKCS8(t, nextKey))
	nextKid := thumbprint(t, &nextKey.PublicKey)
	ok := waitUntil(reloadWithin, func() bool {
		r := get(t, "http://"+gw+"/data", bearer(caller))
		last := up.Last(t)
		return r.Status == http.StatusOK && last.Err == nil && last.Kid == nextKid
	})
	if !ok {
		t.Fatalf("30 s after the signing key was replaced the upstream got kid %q (err %v), want %q", up.Last(t).Kid, up.Last(t).Err, nextKid)
	}
	if r := get(t, "http://"+gw+"/data", bearer(first)); r.Status != http.StatusUnauthorized {
		t.Errorf("a token minted with the replaced key got %d, want 401", r.Status)
	}
}
