package integration

import (
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// TestPublicKeys runs one gateway with four public keys, each pinned to one
// algorithm, and pins down what is accepted (README "Validation", "Toward the
// upstream") and what the upstream then sees (README "Toward the upstream").
func TestPublicKeys(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf(`
		public_key %s
		public_key %s RSA256
		public_key %s rs512
		public_key file://%s RS256
		system_token %s
	`, k.A, k.B, k.C, k.D, k.SystemToken)})

	t.Run("valid token: identity, normalised groups, system token upstream", func(t *testing.T) {
		// README "Groups": groups are trimmed, lower-cased, de-duplicated in
		// first-seen order; a name with a comma would split into two groups
		// once joined, so it is dropped.
		tok := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice",
			"  Analysts ", "DATA-eng", "analysts", "a,b", "Ops", "data-ENG"))
		rec := g.accept(t, bearer(tok))
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "alice", "analysts,data-eng,ops")
		// README "Toward the upstream": upstream_token system (the default)
		// replaces the caller's Authorization with the system token; the
		// caller's token goes nowhere.
		if got := rec.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+k.System {
			t.Errorf("upstream Authorization = %q, want the system token", got)
		}
		assertTokenAbsent(t, rec, tok)
		assertPlaceholders(t, rec, "alice", "analysts,data-eng,ops", "public_key", "claim", fingerprint(tok))
	})

	t.Run("no groups claim: empty groups header, source none", func(t *testing.T) {
		// README "Toward the upstream": the groups header is set even when
		// empty, so a spoofed one can never survive by the gateway leaving it
		// out.
		tok := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("bob"))
		rec := g.accept(t, bearer(tok))
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "bob", "")
		assertPlaceholders(t, rec, "bob", "", "public_key", "none", fingerprint(tok))
	})

	t.Run("groups null or empty list: no groups", func(t *testing.T) {
		for _, v := range []any{[]string{}, json.RawMessage("null")} {
			tok := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("bob").with("groups", v))
			rec := g.accept(t, bearer(tok))
			assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "bob", "")
		}
	})

	accepted := []struct {
		name string
		key  string
		alg  jwa.SignatureAlgorithm
	}{
		// The default algorithm is RSA512.
		{"key A (SPKI, default RSA512) with RS512", keyA, jwa.RS512},
		// A token signed by key B is tried past key A, which is first.
		{"key B (PKCS#1, RSA256) with RS256", keyB, jwa.RS256},
		// "rs512" is a spelling of RSA512 (any case).
		{"key C (certificate, rs512) with RS512", keyC, jwa.RS512},
		// file:// URIs name key files.
		{"key D (file:// URI, RS256) with RS256", keyD, jwa.RS256},
	}
	for _, c := range accepted {
		t.Run("accepted: "+c.name, func(t *testing.T) {
			tok := sign(t, rsaKey(t, c.key), c.alg, userClaims("carol", "g1"))
			rec := g.accept(t, bearer(tok))
			assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "carol", "g1")
		})
	}

	t.Run("scheme is case-insensitive", func(t *testing.T) {
		// README "Validation": "bearer" and "BEARER" are Bearer.
		for _, scheme := range []string{"bearer", "BEARER", "BeArEr"} {
			tok := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("dave"))
			rec := g.accept(t, http.Header{"Authorization": {scheme + " " + tok}})
			assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "dave", "")
		}
	})

	t.Run("a token just under max_token_size (default 16384) is accepted", func(t *testing.T) {
		tok := paddedToken(t, 16000)
		g.accept(t, bearer(tok))
	})

	t.Run("a hand-built token is accepted (control for the attack tokens)", func(t *testing.T) {
		// The attacks below are built the same way; this shows they fail
		// for what they change, not for how they are built.
		p := mustJSON(t, userClaims("erin", "g"))
		tok := rawToken([]byte(`{"alg":"RS512","typ":"JWT"}`), p, rsaSigner(t, rsaKey(t, keyA), crypto.SHA512))
		rec := g.accept(t, bearer(tok))
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "erin", "g")
		tok = rawToken([]byte(`{"alg":"RS256"}`), p, rsaSigner(t, rsaKey(t, keyB), crypto.SHA256))
		g.accept(t, bearer(tok))
	})

	t.Run("the system token is refused although key A signed it", func(t *testing.T) {
		// Upstreams hold the system token: it is no caller's credential
		// unless accept_system_token says so.
		assertUnauthorized(t, g.reject(t, bearer(k.System)), "okera", true)
	})

	// Every one of these is refused with the same 401: the body must not
	// tell an attacker which check failed.
	rejected := rejectedTokens(t, k)
	var firstBody *string
	for _, c := range rejected {
		t.Run("rejected: "+c.name, func(t *testing.T) {
			resp := g.reject(t, c.header)
			assertUnauthorized(t, resp, "okera", c.presented)
			if firstBody == nil {
				firstBody = &resp.Body
			} else if resp.Body != *firstBody {
				t.Errorf("body %q differs from the other refusals' %q: it reveals why", resp.Body, *firstBody)
			}
			for _, word := range []string{"expired", "signature", "alg", "sub", "issuer", "kid", "key"} {
				if strings.Contains(strings.ToLower(resp.Body), word) {
					t.Errorf("the 401 body %q mentions %q", resp.Body, word)
				}
			}
		})
	}
}

// refusal is one request the gateway must refuse with 401.
type refusal struct {
	name      string
	header    http.Header
	presented bool // a token was presented: error="invalid_token"
}

// rejectedTokens lists the 401 cases for a gateway configured with keys A
// (RSA512), B (RSA256), C (RSA512) and D (RSA256), leeway 0, no require_exp.
func rejectedTokens(t testing.TB, k keyFiles) []refusal {
	t.Helper()
	a := rsaKey(t, keyA)
	now := time.Now()
	good := func() claims { return userClaims("alice", "analysts") }
	tokA := func(c claims) string { return sign(t, a, jwa.RS512, c) }
	rawA := func(header, payload string) string {
		return rawToken([]byte(header), []byte(payload), rsaSigner(t, a, crypto.SHA512))
	}
	payload := string(mustJSON(t, good()))
	var out []refusal
	add := func(name, tok string) {
		out = append(out, refusal{name: name, header: bearer(tok), presented: true})
	}

	// Time claims (README "Validation").
	add("expired", tokA(good().with("exp", now.Add(-5*time.Second).Unix())))
	add("nbf in the future", tokA(good().with("nbf", now.Add(time.Minute).Unix())))
	add("exp as a numeric string", tokA(good().with("exp", fmt.Sprint(now.Add(time.Hour).Unix()))))
	add("exp past year 9999 (no overflow)", tokA(good().with("exp", json.RawMessage("1e300"))))
	add("exp as an object", tokA(good().with("exp", map[string]any{"n": 1})))
	add("nbf as a boolean", tokA(good().with("nbf", true)))
	add("iat as a string", tokA(good().with("iat", "yesterday")))
	add("iat past year 9999", tokA(good().with("iat", int64(253402300800))))
	add("exp before 1970", tokA(good().with("exp", -1)))

	// The subject (README "Validation").
	add("missing sub", tokA(good().with("sub", nil)))
	add("empty sub", tokA(good().with("sub", "")))
	add("blank sub", tokA(good().with("sub", "  \t ")))
	add("sub not a string", tokA(good().with("sub", 42)))
	add("sub with a control character", tokA(good().with("sub", "alice\u0007")))
	add("sub with invalid UTF-8", rawA(`{"alg":"RS512","typ":"JWT"}`,
		strings.Replace(payload, `"sub":"alice"`, "\"sub\":\"al\xffice\"", 1)))

	// The groups claim: any type but a list of strings is malformed (README
	// "Groups").
	add("groups as a string", tokA(good().with("groups", "admins")))
	add("groups holding a number", tokA(good().with("groups", []any{"a", 7})))

	// Keys and algorithms (README "Validation").
	add("wrong key", sign(t, rsaKey(t, keyAttacker), jwa.RS512, good()))
	add("RS256 with key A configured RSA512 (algorithm confusion)", sign(t, a, jwa.RS256, good()))
	add("RS512 with key B configured RSA256 (algorithm confusion)", sign(t, rsaKey(t, keyB), jwa.RS512, good()))
	for _, alg := range []string{"none", "None", "NONE", "nOnE"} {
		hdr := fmt.Sprintf(`{"alg":%q,"typ":"JWT"}`, alg)
		add("alg "+alg+" with an empty signature", rawToken([]byte(hdr), []byte(payload), noSignature))
	}
	add("alg none with key A's signature", rawToken([]byte(`{"alg":"none"}`), []byte(payload), rsaSigner(t, a, crypto.SHA512)))
	// The classic confusion: the public key file's bytes as an HMAC secret.
	add("HS256 signed with public key A's PEM bytes", rawToken([]byte(`{"alg":"HS256","typ":"JWT"}`), []byte(payload), hmacSigner(k.APEM)))
	add("HS512 claimed, HS256 with the PEM bytes", rawToken([]byte(`{"alg":"HS512","typ":"JWT"}`), []byte(payload), hmacSigner(k.APEM)))
	add("no alg", rawA(`{"typ":"JWT"}`, payload))

	// Keys carried by the token itself are never used (README "Validation").
	attacker := rsaKey(t, keyAttacker)
	attackerJWK, err := jwk.FromRaw(&attacker.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	add("embedded jwk header with the attacker's key", signWithHeaders(t, attacker, jwa.RS512, good(), map[string]any{jws.JWKKey: attackerJWK}))
	x5c := mustJSON(t, map[string]any{"alg": "RS512", "x5c": []string{base64.StdEncoding.EncodeToString(selfSignedCert(t, attacker))}})
	add("x5c header with the attacker's certificate", rawToken(x5c, []byte(payload), rsaSigner(t, attacker, crypto.SHA512)))

	// Strict compact syntax (README "Validation").
	jsonFlat, err := jws.Sign(mustJSON(t, good()), jws.WithJSON(), jws.WithKey(jwa.RS512, a))
	if err != nil {
		t.Fatal(err)
	}
	add("JSON serialization (flattened)", string(jsonFlat))
	jsonGeneral, err := jws.Sign(mustJSON(t, good()), jws.WithJSON(), jws.WithKey(jwa.RS512, a), jws.WithKey(jwa.RS256, rsaKey(t, keyB)))
	if err != nil {
		t.Fatal(err)
	}
	add("JSON serialization (general, two signatures)", string(jsonGeneral))
	add("JWE (five segments)", strings.Join([]string{
		b64([]byte(`{"alg":"RSA-OAEP","enc":"A256GCM"}`)), b64([]byte("key")), b64([]byte("iv")), b64([]byte("ciphertext")), b64([]byte("tag")),
	}, "."))
	add("four segments", tokA(good())+"."+b64([]byte("extra")))
	add("two segments", strings.Join(strings.Split(tokA(good()), ".")[:2], "."))
	add("padded base64", paddedBase64Token(t))
	add("standard base64 alphabet", stdAlphabetToken(t))
	add("nested token (cty JWT)", rawA(`{"alg":"RS512","cty":"JWT"}`, payload))
	add("unknown crit entry", rawA(`{"alg":"RS512","crit":["urn:example:must-understand"],"urn:example:must-understand":true}`, payload))
	add("b64 false", func() string {
		hdr := b64([]byte(`{"alg":"RS512","b64":false,"crit":["b64"]}`))
		input := hdr + "." + payload
		return hdr + "." + payload + "." + b64(rsaSigner(t, a, crypto.SHA512)(input))
	}())
	// A parser that keeps the last duplicate sees RS512, one that keeps the
	// first sees none: the two must never disagree about a token.
	add("duplicate alg in the header", rawA(`{"alg":"none","alg":"RS512"}`, payload))
	add("duplicate sub in the payload", rawA(`{"alg":"RS512"}`, strings.Replace(payload, "{", `{"sub":"admin",`, 1)))
	add("duplicate member in a nested object", rawA(`{"alg":"RS512"}`, strings.Replace(payload, "{", `{"ext":{"role":"admin","role":"user"},`, 1)))
	add("payload is a JSON array", rawA(`{"alg":"RS512"}`, `["alice"]`))
	add("payload is not JSON", rawA(`{"alg":"RS512"}`, `sub=alice`))
	add("header is not JSON", rawToken([]byte(`alg=RS512`), []byte(payload), rsaSigner(t, a, crypto.SHA512)))
	add("signature of another token", func() string {
		p1, p2 := strings.Split(tokA(good()), "."), strings.Split(tokA(userClaims("admin")), ".")
		return p2[0] + "." + p2[1] + "." + p1[2]
	}())
	add("garbage", "not-a-token")
	add("over max_token_size (default 16384)", paddedToken(t, 17000))

	// Extraction (README "Validation").
	out = append(out,
		refusal{name: "no Authorization header", header: http.Header{}, presented: false},
		refusal{name: "Basic scheme", header: http.Header{"Authorization": {"Basic YWxpY2U6c2VjcmV0"}}, presented: false},
		refusal{name: "two Authorization headers", presented: true, header: http.Header{"Authorization": {
			"Bearer " + tokA(good()), "Bearer " + tokA(good()),
		}}},
	)
	return out
}

// paddedToken is a valid key-A token of about size bytes.
func paddedToken(t testing.TB, size int) string {
	t.Helper()
	base := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("padded"))
	pad := (size - len(base)) * 3 / 4
	if pad < 0 {
		pad = 0
	}
	return sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("padded").with("pad", strings.Repeat("x", pad)))
}

// paddedBase64Token is a key-A token whose payload segment carries base64
// padding, signed over those exact bytes: only a lax decoder accepts it.
func paddedBase64Token(t testing.TB) string {
	t.Helper()
	for i := 0; ; i++ {
		c := userClaims("alice").with("n", i)
		p := mustJSON(t, c)
		enc := base64.URLEncoding.EncodeToString(p)
		if !strings.HasSuffix(enc, "=") {
			continue
		}
		input := b64([]byte(`{"alg":"RS512","typ":"JWT"}`)) + "." + enc
		return input + "." + b64(rsaSigner(t, rsaKey(t, keyA), crypto.SHA512)(input))
	}
}

// stdAlphabetToken is a key-A token whose payload is in the standard base64
// alphabet ('+' or '/'), signed over those exact bytes.
func stdAlphabetToken(t testing.TB) string {
	t.Helper()
	for i := 0; ; i++ {
		p := mustJSON(t, userClaims("alice").with("n", i, "x", "???>>>"))
		enc := base64.RawStdEncoding.EncodeToString(p)
		if !strings.ContainsAny(enc, "+/") {
			continue
		}
		input := b64([]byte(`{"alg":"RS512","typ":"JWT"}`)) + "." + enc
		return input + "." + b64(rsaSigner(t, rsaKey(t, keyA), crypto.SHA512)(input))
	}
}

// TestTokenHeaderURLsNeverFetched: a jku or x5u header naming the attacker's
// key set must not make the gateway fetch it (README "Validation"), nor accept
// the token.
func TestTokenHeaderURLsNeverFetched(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	attacker := rsaKey(t, keyAttacker)
	pub, err := jwk.FromRaw(&attacker.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		t.Fatal(err)
	}
	setJSON, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	planted := startHitCounter(t, string(setJSON))
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf("public_key %s\nsystem_token %s", k.A, k.SystemToken)})

	for _, hdr := range []string{jws.JWKSetURLKey, jws.X509URLKey} {
		t.Run(hdr, func(t *testing.T) {
			tok := signWithHeaders(t, attacker, jwa.RS512, userClaims("mallory"), map[string]any{hdr: planted.srv.URL + "/keys"})
			resp := g.reject(t, bearer(tok))
			assertUnauthorized(t, resp, "okera", true)
		})
	}
	if n := planted.Hits(); n != 0 {
		t.Errorf("the gateway fetched a URL from a token header %d time(s)", n)
	}
}

// TestClaimPolicy covers leeway, require_exp, issuer, audience, max_token_size
// and realm (README "The okera_auth directive", "Validation", "Status codes").
func TestClaimPolicy(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf(`
		public_key %s
		leeway 30s
		require_exp
		issuer https://idp.example https://other-idp.example
		audience okera-api
		max_token_size 4096
		realm data-lake
		system_token %s
	`, k.A, k.SystemToken)})
	a := rsaKey(t, keyA)
	now := time.Now()
	good := func() claims {
		return userClaims("alice").with("iss", "https://idp.example", "aud", "okera-api")
	}

	ok := []struct {
		name string
		c    claims
	}{
		{"leeway admits a just-expired token", good().with("exp", now.Add(-10*time.Second).Unix())},
		{"leeway admits an nbf just ahead", good().with("nbf", now.Add(10*time.Second).Unix())},
		{"second issuer of the allow-list", good().with("iss", "https://other-idp.example")},
		{"aud as a list holding the audience", good().with("aud", []string{"billing", "okera-api"})},
	}
	for _, c := range ok {
		t.Run("accepted: "+c.name, func(t *testing.T) {
			rec := g.accept(t, bearer(sign(t, a, jwa.RS512, c.c)))
			assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "alice", "")
		})
	}

	bad := []struct {
		name string
		c    claims
	}{
		{"expired beyond the leeway", good().with("exp", now.Add(-2*time.Minute).Unix())},
		{"nbf beyond the leeway", good().with("nbf", now.Add(2*time.Minute).Unix())},
		{"require_exp: no exp", good().with("exp", nil)},
		{"issuer not in the allow-list", good().with("iss", "https://evil.example")},
		{"no issuer", good().with("iss", nil)},
		{"audience mismatch", good().with("aud", "billing")},
		{"audience list without ours", good().with("aud", []string{"billing", "hr"})},
		{"no audience", good().with("aud", nil)},
		{"over max_token_size 4096", good().with("pad", strings.Repeat("x", 4000))},
	}
	for _, c := range bad {
		t.Run("rejected: "+c.name, func(t *testing.T) {
			resp := g.reject(t, bearer(sign(t, a, jwa.RS512, c.c)))
			// The realm directive changes the challenge.
			assertUnauthorized(t, resp, "data-lake", true)
		})
	}

	t.Run("realm without a token", func(t *testing.T) {
		resp := g.reject(t, http.Header{})
		assertUnauthorized(t, resp, "data-lake", false)
	})
}
