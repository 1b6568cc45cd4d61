package integration

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// TestAttackJWKS: tokens aimed at the JWKS key source (README "Validation"; RFC
// 8725 §3.10): kid storms that would make the gateway hammer the identity
// provider, keys the set marks for encryption, algorithm confusion with a set
// key, and key URLs in the token header.
func TestAttackJWKS(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	idp, evil := rsaKey(t, keyIdP), rsaKey(t, keyAttacker)

	// The set publishes the identity provider's key and, marked "use":
	// "enc", the attacker's: a key for encryption never verifies.
	var set map[string][]map[string]any
	if err := json.Unmarshal(jwkSetOf(t, map[string]*rsa.PublicKey{"idp-1": &idp.PublicKey, "enc-1": &evil.PublicKey}), &set); err != nil {
		t.Fatal(err)
	}
	for _, key := range set["keys"] {
		if key["kid"] == "enc-1" {
			key["use"] = "enc"
		}
	}
	setJSON := mustJSON(t, set)
	provider := &switchableJWKS{addr: freeAddr(t), body: setJSON}
	provider.Start(t)
	evilJWK, err := jwk.FromRaw(&evil.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	planted := startHitCounter(t, string(jwkSetOf(t, map[string]*rsa.PublicKey{"attacker-1": &evil.PublicKey})))

	g := startGateway(t, gatewayConfig{
		Global: "log {\n\tlevel DEBUG\n}",
		Site:   "log",
		Auth: fmt.Sprintf(`
			public_key %s
			jwks_url %s
			issuer %s
			audience %s
			system_token %s
		`, k.A, provider.URL(), atkIssuer, atkAudience, k.SystemToken),
	})
	e := &atkEnv{g: g, system: k.System}
	byIdP := func(kid string, alg jwa.SignatureAlgorithm) string {
		return signWithHeaders(t, idp, alg, atkClaims("alice", "analysts"), map[string]any{jws.KeyIDKey: kid})
	}
	// The set is fetched in the background: wait until it serves.
	if !waitUntil(10*time.Second, func() bool { return get(t, g.URL, bearer(byIdP("idp-1", jwa.RS256))).Status == http.StatusOK }) {
		t.Fatal("the JWKS key never validated a token")
	}
	e.startBaseline(t)
	fetches := provider.Hits()

	payload := mustJSON(t, atkClaims("alice", "analysts"))
	e.run(t, []atkCase{
		{id: "ATK-220", name: "control: kid idp-1 signed by the identity provider", header: bearer(byIdP("idp-1", jwa.RS256)),
			status: http.StatusOK, wantUser: "alice", wantGroups: "analysts"},
		// README "Validation": an unknown kid refetches the set at most once a
		// minute, whatever a caller sends.
		{id: "ATK-221", name: "25 tokens with made-up kids cause at most one fetch", status: http.StatusUnauthorized, presented: true,
			raw: func(t *testing.T, _ string) response {
				var last response
				for i := 0; i < 25; i++ {
					tok := byIdP("made-up-"+randomID(), jwa.RS256)
					e.tokens = append(e.tokens, tok)
					last = get(t, g.URL, bearer(tok))
					if last.Status != http.StatusUnauthorized {
						t.Errorf("made-up kid %d: status %d, want 401", i, last.Status)
					}
				}
				return last
			},
			after: func(t *testing.T, _ response, _ *recordedRequest) {
				if n := provider.Hits() - fetches; n > 1 {
					t.Errorf("the identity provider was asked %d times for 25 unknown kids, want at most 1", n)
				}
			}},
		atkInvalid("ATK-222", `kid of a key the set marks "use": "enc", signed with it`, signWithHeaders(t, evil, jwa.RS256, atkClaims("alice"), map[string]any{jws.KeyIDKey: "enc-1"}), 0),
		atkInvalid("ATK-223", "kid idp-1 (alg RS256) with an RS512 signature by that key", byIdP("idp-1", jwa.RS512), 0),
		atkInvalid("ATK-224", "kid idp-1 with HS256 keyed by the published JWK Set", rawToken([]byte(`{"alg":"HS256","kid":"idp-1"}`), payload, atkHMAC(sha256.New, setJSON)), 0),
		atkInvalid("ATK-225", "kid idp-1 with the attacker's signature and embedded jwk", signWithHeaders(t, evil, jwa.RS256, atkClaims("alice"), map[string]any{jws.KeyIDKey: "idp-1", jws.JWKKey: evilJWK}), 0),
		// jwx's rule: a token without kid gets no key of a set.
		atkInvalid("ATK-226", "no kid, signed by the identity provider's key", rawToken([]byte(`{"alg":"RS256"}`), payload, rsaSigner(t, idp, crypto.SHA256)), 0),
		func() atkCase {
			c := atkInvalid("ATK-227", "jku naming the attacker's set, kid from it", signWithHeaders(t, evil, jwa.RS256, atkClaims("alice"),
				map[string]any{jws.KeyIDKey: "attacker-1", jws.JWKSetURLKey: planted.srv.URL + "/jwks.json"}), 0)
			c.after = func(t *testing.T, _ response, _ *recordedRequest) {
				if n := planted.Hits(); n != 0 {
					t.Errorf("the gateway fetched the jku URL %d time(s)", n)
				}
			}
			return c
		}(),
	})
	t.Run("LEAK the identity provider was not hammered", func(t *testing.T) {
		if n := provider.Hits() - fetches; n > 1 {
			t.Errorf("%d fetches of the JWK Set during the suite, want at most 1", n)
		}
	})
	e.finish(t)
}
