package integration

import (
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// atkHMAC signs with HMAC under secret (HS256 or HS512).
func atkHMAC(h func() hash.Hash, secret []byte) signer {
	return func(input string) []byte {
		m := hmac.New(h, secret)
		m.Write([]byte(input))
		return m.Sum(nil)
	}
}

// fixedSig is a signer that returns the same bytes whatever it signs.
func fixedSig(b []byte) signer { return func(string) []byte { return b } }

// replaceSegment swaps one segment of a compact token.
func replaceSegment(tok string, i int, seg string) string {
	parts := strings.Split(tok, ".")
	parts[i] = seg
	return strings.Join(parts, ".")
}

// atkInvalid is a 401 for a presented token that no service behind the
// gateway may hear about except, when remote is 1, the remote endpoint (it
// is asked first about every token that passes the syntax and claim
// pre-checks: Okera's order, README "Validation").
func atkInvalid(id, name string, tok string, remote int) atkCase {
	return atkCase{id: id, name: name, header: bearer(tok), status: http.StatusUnauthorized, presented: true, remoteCalls: remote}
}

// atkTokenCases: forged signatures, algorithm confusion, keys and URLs in
// the token header, kid injection (RFC 8725 §2.1-2.2, §3.1-3.2; jwt_tool's
// attack classes). The gateway trusts key A (RSA512) and key B (RSA256).
func atkTokenCases(t *testing.T, k keyFiles, planted *hitCounter) []atkCase {
	a, b, evil := rsaKey(t, keyA), rsaKey(t, keyB), rsaKey(t, keyAttacker)
	good := func() claims { return atkClaims("alice", "analysts") }
	payload := func() []byte { return mustJSON(t, good()) }
	signA := rsaSigner(t, a, crypto.SHA512)
	derA, err := x509.MarshalPKIXPublicKey(&a.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pemB, err := os.ReadFile(k.B)
	if err != nil {
		t.Fatal(err)
	}
	validSigA := func() []byte {
		sig, err := base64.RawURLEncoding.DecodeString(strings.Split(sign(t, a, jwa.RS512, good()), ".")[2])
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	evilJWK, err := jwk.FromRaw(&evil.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	noHits := func(t *testing.T, _ response, _ *recordedRequest) {
		if n := planted.Hits(); n != 0 {
			t.Errorf("the gateway fetched a URL named in a token header %d time(s)", n)
		}
	}

	cases := []atkCase{
		// RFC 8725 §3.1, CVE-2015-9235 class: "alg":"none" in every spelling
		// jwt_tool tries. The empty signature segment already fails the
		// strict syntax (README "Validation"), so nobody else is asked.
		atkInvalid("ATK-001", "alg none, empty signature", rawToken([]byte(`{"alg":"none","typ":"JWT"}`), payload(), noSignature), 0),
		atkInvalid("ATK-002", "alg None, empty signature", rawToken([]byte(`{"alg":"None","typ":"JWT"}`), payload(), noSignature), 0),
		atkInvalid("ATK-003", "alg NONE, empty signature", rawToken([]byte(`{"alg":"NONE","typ":"JWT"}`), payload(), noSignature), 0),
		atkInvalid("ATK-004", "alg nOnE, empty signature", rawToken([]byte(`{"alg":"nOnE","typ":"JWT"}`), payload(), noSignature), 0),
		// With a signature segment present the syntax passes; README
		// "Validation": none is never used, however it is spelled.
		atkInvalid("ATK-005", `alg "none " (trailing space) with key A's signature`, rawToken([]byte(`{"alg":"none ","typ":"JWT"}`), payload(), signA), 1),
		atkInvalid("ATK-006", "alg nOnE with a one-byte junk signature", rawToken([]byte(`{"alg":"nOnE"}`), payload(), fixedSig([]byte{0})), 1),
		atkInvalid("ATK-007", "alg none carrying a valid RS512 signature by key A", rawToken([]byte(`{"alg":"none"}`), payload(), signA), 1),
		// RFC 8725 §2.1, CVE-2016-5431 class: RS→HS key confusion, the
		// public key's bytes used as the HMAC secret.
		atkInvalid("ATK-008", "HS256 keyed with key A's PEM file", rawToken([]byte(`{"alg":"HS256","typ":"JWT"}`), payload(), atkHMAC(sha256.New, k.APEM)), 1),
		atkInvalid("ATK-009", "HS256 keyed with key A's DER (SPKI) bytes", rawToken([]byte(`{"alg":"HS256","typ":"JWT"}`), payload(), atkHMAC(sha256.New, derA)), 1),
		atkInvalid("ATK-010", "HS512 keyed with key A's PEM file", rawToken([]byte(`{"alg":"HS512","typ":"JWT"}`), payload(), atkHMAC(sha512.New, k.APEM)), 1),
		atkInvalid("ATK-011", "HS256 keyed with key B's PKCS#1 PEM file", rawToken([]byte(`{"alg":"HS256","typ":"JWT"}`), payload(), atkHMAC(sha256.New, pemB)), 1),
		// README "Validation": each static key verifies with its own algorithm
		// only.
		atkInvalid("ATK-012", "RS256 by key A, which is pinned to RSA512", sign(t, a, jwa.RS256, good()), 1),
		atkInvalid("ATK-013", "RS512 by key B, which is pinned to RSA256", sign(t, b, jwa.RS512, good()), 1),
		atkInvalid("ATK-014", "PS512 (RSASSA-PSS) by key A", sign(t, a, jwa.PS512, good()), 1),
		atkInvalid("ATK-015", "ES256 header over key A's RS512 signature", rawToken([]byte(`{"alg":"ES256"}`), payload(), signA), 1),
		// jwt_tool: null, truncated and bit-flipped signatures (RFC 7515
		// §5.2: the signature is checked over the exact input).
		atkInvalid("ATK-016", "null signature (256 zero bytes)", rawToken([]byte(`{"alg":"RS512"}`), payload(), fixedSig(make([]byte, 256))), 1),
		atkInvalid("ATK-017", "truncated signature (255 of 256 bytes)", rawToken([]byte(`{"alg":"RS512"}`), payload(), func(in string) []byte { return signA(in)[:255] }), 1),
		atkInvalid("ATK-018", "bit-flipped signature", rawToken([]byte(`{"alg":"RS512"}`), payload(), func(in string) []byte {
			s := signA(in)
			s[100] ^= 0x10
			return s
		}), 1),
		atkInvalid("ATK-019", "signature of another token by key A", replaceSegment(sign(t, a, jwa.RS512, good()), 2, b64(validSigA())), 1),
		// Claim tampering: the payload changed, key A's signature kept.
		atkInvalid("ATK-020", "sub changed to admin after signing", replaceSegment(sign(t, a, jwa.RS512, good()), 1, b64(mustJSON(t, good().with("sub", "admin")))), 1),
		atkInvalid("ATK-021", "groups extended with root after signing", replaceSegment(sign(t, a, jwa.RS512, good()), 1, b64(mustJSON(t, good().with("groups", []string{"analysts", "root"})))), 1),
		atkInvalid("ATK-022", "signed by a key the gateway does not trust", sign(t, evil, jwa.RS512, good()), 1),
		// RFC 8725 §3.10 / CVE-2018-0114: keys and key URLs carried by the
		// token are never used (README "Validation"); a planted URL is never
		// fetched.
		atkInvalid("ATK-023", "embedded jwk header holding the attacker's key", signWithHeaders(t, evil, jwa.RS512, good(), map[string]any{jws.JWKKey: evilJWK}), 1),
		func() atkCase {
			c := atkInvalid("ATK-024", "jku header pointing at the attacker's JWKS on 127.0.0.1", signWithHeaders(t, evil, jwa.RS512, good(), map[string]any{jws.JWKSetURLKey: planted.srv.URL + "/jwks.json"}), 1)
			c.after = noHits
			return c
		}(),
		func() atkCase {
			c := atkInvalid("ATK-025", "x5u header pointing at the attacker's certificate on 127.0.0.1", signWithHeaders(t, evil, jwa.RS512, good(), map[string]any{jws.X509URLKey: planted.srv.URL + "/cert.pem"}), 1)
			c.after = noHits
			return c
		}(),
		atkInvalid("ATK-026", "x5c header holding the attacker's self-signed certificate", rawToken(
			mustJSON(t, map[string]any{"alg": "RS512", "x5c": []string{base64.StdEncoding.EncodeToString(selfSignedCert(t, evil))}}), payload(), rsaSigner(t, evil, crypto.SHA512)), 1),
		// jwt_tool's kid injection: a path, a query, a file, a huge value.
		// Static keys never look at kid (README "Validation").
		atkInvalid("ATK-027", "kid ../../../../dev/null with HS256 and an empty secret", rawToken([]byte(`{"alg":"HS256","kid":"../../../../dev/null"}`), payload(), atkHMAC(sha256.New, nil)), 1),
		atkInvalid("ATK-028", "kid SQL injection with HS256 keyed by the injected value", rawToken([]byte(`{"alg":"HS256","kid":"x' UNION SELECT 'secret'--"}`), payload(), atkHMAC(sha256.New, []byte("secret"))), 1),
		atkInvalid("ATK-029", "kid naming key A's file, HS256 keyed with that file", rawToken(mustJSON(t, map[string]any{"alg": "HS256", "kid": k.A}), payload(), atkHMAC(sha256.New, k.APEM)), 1),
		atkInvalid("ATK-030", "kid of 8 KiB with the attacker's signature", signWithHeaders(t, evil, jwa.RS512, good(), map[string]any{jws.KeyIDKey: strings.Repeat("k", 8192)}), 1),
		// Controls: kid means nothing to static keys, and key B's own
		// algorithm works; the attacks above fail for the right reason.
		{id: "ATK-031", name: "control: kid ../../dev/null on a token key A signed is irrelevant", header: bearer(signWithHeaders(t, a, jwa.RS512, good(), map[string]any{jws.KeyIDKey: "../../dev/null"})),
			status: http.StatusOK, wantUser: "alice", wantGroups: "analysts", remoteCalls: 1},
		{id: "ATK-032", name: "control: RS256 by key B is accepted", header: bearer(sign(t, b, jwa.RS256, good())),
			status: http.StatusOK, wantUser: "alice", wantGroups: "analysts", remoteCalls: 1},
		// Signature-length abuse (RFC 8017 §8.2.2: the length must be k).
		atkInvalid("ATK-033", "signature of 1 byte", rawToken([]byte(`{"alg":"RS512"}`), payload(), fixedSig([]byte{1})), 1),
		atkInvalid("ATK-034", "signature of 10 KiB", rawToken([]byte(`{"alg":"RS512"}`), payload(), fixedSig([]byte(strings.Repeat("\xa5", 10240)))), 1),
	}
	return cases
}

// atkJOSECases: JOSE parsing pitfalls that a lenient parser turns into a bypass
// or a disagreement (README "Validation"; RFC 7515 §3, §7.1, §4.1.11; RFC 7797;
// RFC 8725 §3.11-3.12). All are refused before any service is asked.
func atkJOSECases(t *testing.T) []atkCase {
	a := rsaKey(t, keyA)
	good := atkClaims("alice", "analysts")
	payload := string(mustJSON(t, good))
	rawA := func(header, payload string) string {
		return rawToken([]byte(header), []byte(payload), rsaSigner(t, a, crypto.SHA512))
	}
	flat, err := jws.Sign(mustJSON(t, good), jws.WithJSON(), jws.WithKey(jwa.RS512, a))
	if err != nil {
		t.Fatal(err)
	}
	general, err := jws.Sign(mustJSON(t, good), jws.WithJSON(), jws.WithKey(jwa.RS512, a), jws.WithKey(jwa.RS256, rsaKey(t, keyB)))
	if err != nil {
		t.Fatal(err)
	}
	// A payload segment with a non-zero unused trailing bit, signed over
	// exactly that text: a lenient decoder reads the same claims.
	nonCanonical := func() string {
		for i := 0; ; i++ {
			seg := b64(mustJSON(t, good.with("n", i)))
			if len(seg)%4 == 0 {
				continue
			}
			const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
			seg = seg[:len(seg)-1] + string(alphabet[strings.IndexByte(alphabet, seg[len(seg)-1])|1])
			input := b64([]byte(`{"alg":"RS512"}`)) + "." + seg
			return input + "." + b64(rsaSigner(t, a, crypto.SHA512)(input))
		}
	}
	unencoded := func() string {
		hdr := b64([]byte(`{"alg":"RS512","b64":false,"crit":["b64"]}`))
		input := hdr + "." + payload
		return input + "." + b64(rsaSigner(t, a, crypto.SHA512)(input))
	}
	tokA := sign(t, a, jwa.RS512, good)
	deep := `{"sub":"alice","n":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + "}"
	return []atkCase{
		// RFC 7515 §7.2 / README "Validation": only the compact serialization
		// is a token; jwx's jwt.Parse would take these.
		atkInvalid("ATK-040", "JWS JSON flattened serialization", string(flat), 0),
		atkInvalid("ATK-041", "JWS JSON general serialization, two signatures", string(general), 0),
		atkInvalid("ATK-042", "JWE compact (five segments)", strings.Join([]string{b64([]byte(`{"alg":"RSA-OAEP","enc":"A256GCM"}`)), b64([]byte("k")), b64([]byte("iv")), b64([]byte("ct")), b64([]byte("tag"))}, "."), 0),
		// RFC 7515 §4.1.11 (crit), RFC 7797 (b64), RFC 8725 §3.11 (nested
		// tokens): refused, not half-understood.
		atkInvalid("ATK-043", "crit naming an unknown extension", rawA(`{"alg":"RS512","crit":["urn:x:must-understand"],"urn:x:must-understand":1}`, payload), 0),
		atkInvalid("ATK-044", "b64:false unencoded payload (RFC 7797)", unencoded(), 0),
		atkInvalid("ATK-045", "cty JWT nested token", rawA(`{"alg":"RS512","cty":"JWT"}`, payload), 0),
		// RFC 7515 §2 / §3: base64url without padding, one spelling per
		// token (else one token has many cache keys and signing inputs).
		atkInvalid("ATK-046", "non-canonical base64url (unused bits set)", nonCanonical(), 0),
		atkInvalid("ATK-047", "base64 padding", paddedBase64Token(t), 0),
		atkInvalid("ATK-048", "standard base64 alphabet (+ and /)", stdAlphabetToken(t), 0),
		// RFC 7515 §7.1: no whitespace anywhere in the serialization.
		atkInvalid("ATK-049", "a space inside the token", strings.Replace(tokA, ".", ". ", 1), 0),
		atkInvalid("ATK-050", "two tokens in one header, comma-joined", tokA+", Bearer "+tokA, 0),
		// RFC 8259 §4 / RFC 7515 §5.2: duplicate member names, which
		// parsers resolve differently.
		atkInvalid("ATK-051", "duplicate alg in the header (none, then RS512)", rawA(`{"alg":"none","alg":"RS512"}`, payload), 0),
		atkInvalid("ATK-052", `duplicate alg spelled "\u0061lg"`, rawA(`{"alg":"RS512","\u0061lg":"none"}`, payload), 0),
		atkInvalid("ATK-053", `duplicate sub spelled "\u0073ub"`, rawA(`{"alg":"RS512"}`, strings.Replace(payload, "{", `{"\u0073ub":"admin",`, 1)), 0),
		atkInvalid("ATK-054", "duplicate member in a nested object", rawA(`{"alg":"RS512"}`, strings.Replace(payload, "{", `{"ext":{"role":"user","role":"admin"},`, 1)), 0),
		// RFC 8259 §8.1 / RFC 7515 §5.2: UTF-8 JSON, no BOM, objects only.
		atkInvalid("ATK-055", "UTF-8 BOM before the header JSON", rawA("\ufeff"+`{"alg":"RS512"}`, payload), 0),
		atkInvalid("ATK-056", "UTF-8 BOM before the payload JSON", rawA(`{"alg":"RS512"}`, "\ufeff"+payload), 0),
		atkInvalid("ATK-057", "invalid UTF-8 in a payload string", rawA(`{"alg":"RS512"}`, strings.Replace(payload, `"alice"`, "\"ali\xc3\x28ce\"", 1)), 0),
		atkInvalid("ATK-058", "invalid UTF-8 in the header's kid", rawA("{\"alg\":\"RS512\",\"kid\":\"\xff\"}", payload), 0),
		atkInvalid("ATK-059", "header is a JSON array", rawA(`["RS512"]`, payload), 0),
		// RFC 7515 §7.1: exactly three segments.
		atkInvalid("ATK-060", "four segments", tokA+"."+b64([]byte("x")), 0),
		atkInvalid("ATK-061", "two segments", strings.Join(strings.Split(tokA, ".")[:2], "."), 0),
		// Parser exhaustion and smuggling: nesting past the limit, a second
		// object after the first (README "Validation": one object, nothing
		// after it).
		atkInvalid("ATK-062", "payload nested 70 levels (past the depth limit)", rawA(`{"alg":"RS512"}`, deep), 0),
		atkInvalid("ATK-063", "data after the payload object", rawA(`{"alg":"RS512"}`, payload+`{"sub":"admin"}`), 0),
	}
}

// atkClaimCases: forced-error values in every claim (README "Validation",
// "Groups"; RFC 7519 §4.1; RFC 8725 §3.8-3.9). Time, issuer and audience are
// checked before any service is asked; sub and groups after the signature.
func atkClaimCases(t *testing.T) []atkCase {
	a := rsaKey(t, keyA)
	tok := func(c claims) string { return sign(t, a, jwa.RS512, c) }
	good := func() claims { return atkClaims("alice", "analysts") }
	now := time.Now()
	return []atkCase{
		// README "Validation", RFC 7519 §2 NumericDate: a JSON number within
		// 1970..9999; strings, null, booleans, objects and huge values are
		// rejections, never overflows.
		atkInvalid("ATK-070", "exp as a numeric string", tok(good().with("exp", fmt.Sprint(now.Add(time.Hour).Unix()))), 0),
		atkInvalid("ATK-071", "exp 1e400 (overflows float64)", tok(good().with("exp", json.RawMessage("1e400"))), 0),
		atkInvalid("ATK-072", "exp negative", tok(good().with("exp", -1)), 0),
		atkInvalid("ATK-073", "exp past year 9999", tok(good().with("exp", int64(253402300800))), 0),
		atkInvalid("ATK-074", "exp past int64 (9223372036854775808)", tok(good().with("exp", json.RawMessage("9223372036854775808"))), 0),
		atkInvalid("ATK-075", "exp null", tok(good().with("exp", json.RawMessage("null"))), 0),
		atkInvalid("ATK-076", "nbf a boolean", tok(good().with("nbf", true)), 0),
		atkInvalid("ATK-077", "iat an object", tok(good().with("iat", map[string]any{"t": 1})), 0),
		// RFC 7519 §4.1.4-4.1.5: exp and nbf enforced (leeway 0).
		atkInvalid("ATK-078", "expired", tok(good().with("exp", now.Add(-time.Minute).Unix())), 0),
		atkInvalid("ATK-079", "nbf in the future", tok(good().with("nbf", now.Add(time.Hour).Unix())), 0),
		// RFC 7519 §4.1.1, §4.1.3 / RFC 8725 §3.8-3.9: issuer and audience
		// allow-lists, strict about types.
		atkInvalid("ATK-080", "iss a number", tok(good().with("iss", 7)), 0),
		atkInvalid("ATK-081", "iss not allowed", tok(good().with("iss", "https://evil.example")), 0),
		atkInvalid("ATK-082", "aud an object", tok(good().with("aud", map[string]any{"okera": true})), 0),
		atkInvalid("ATK-083", "aud list holding a number next to ours", tok(good().with("aud", []any{"okera", 1})), 0),
		atkInvalid("ATK-084", "aud missing", tok(good().with("aud", nil)), 0),
		// README "Validation": sub is a non-blank UTF-8 string without control
		// characters; it becomes a header value and a log field.
		atkInvalid("ATK-085", "sub missing", tok(good().with("sub", nil)), 1),
		atkInvalid("ATK-086", "sub blank", tok(good().with("sub", " \t\u00a0")), 1),
		atkInvalid("ATK-087", "sub with a control character", tok(good().with("sub", "alice\u001b[31m")), 1),
		atkInvalid("ATK-088", "sub with NUL", tok(good().with("sub", "alice\u0000admin")), 1),
		atkInvalid("ATK-089", "sub with a CRLF header injection", tok(good().with("sub", "alice\r\nX-Okera-User: root")), 1),
		atkInvalid("ATK-090", "sub a number", tok(good().with("sub", 0)), 1),
		atkInvalid("ATK-091", "sub an array", tok(good().with("sub", []string{"alice"})), 1),
		atkInvalid("ATK-092", "sub an object", tok(good().with("sub", map[string]any{"name": "alice"})), 1),
		atkInvalid("ATK-093", "sub null", tok(good().with("sub", json.RawMessage("null"))), 1),
		// RFC 9110 §5.5: the header would drop the space and name alice.
		atkInvalid("ATK-099", "sub with a trailing space", tok(good().with("sub", "alice ")), 1),
		// README "Groups": a groups claim of another shape is the token's fault
		// (401) and stops resolution: LDAP and the group endpoint are not
		// asked.
		atkInvalid("ATK-094", "groups a string", tok(good().with("groups", "root")), 1),
		atkInvalid("ATK-095", "groups holding null", tok(good().with("groups", []any{"analysts", nil})), 1),
		atkInvalid("ATK-096", "groups an object", tok(good().with("groups", map[string]any{"root": true})), 1),
		atkInvalid("ATK-097", "groups holding a number", tok(good().with("groups", []any{"analysts", 0})), 1),
		// README "Groups": names with a comma or a control character are
		// dropped, so they cannot forge a second group in the joined header.
		{id: "ATK-098", name: "groups with a comma, a BEL and a CRLF injection are dropped",
			header: bearer(tok(good().with("groups", []string{"analysts,root", "ops\u0007", "x\r\nX-Okera-User: root", " Sales "}))),
			status: http.StatusOK, wantUser: "alice", wantGroups: "sales", remoteCalls: 1},
	}
}

// atkExhaustionCases: oversized and pathological tokens are refused
// quickly, unparsed when over max_token_size (65536 here), and a large
// genuine token still works (README "The okera_auth directive", "Validation").
func atkExhaustionCases(t *testing.T) []atkCase {
	a := rsaKey(t, keyA)
	sized := func(size int) string {
		base := sign(t, a, jwa.RS512, atkClaims("big", "analysts"))
		return sign(t, a, jwa.RS512, atkClaims("big", "analysts").with("pad", strings.Repeat("x", (size-len(base))*3/4)))
	}
	nested := `{"sub":"alice","iss":"` + atkIssuer + `","aud":"okera","n":` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + "}"
	quick := 2 * time.Second
	over := atkInvalid("ATK-120", "token over max_token_size (70000 bytes, validly signed)", sized(70000), 0)
	dots := atkInvalid("ATK-121", "token of 1,000,000 dots", strings.Repeat(".", 1_000_000), 0)
	segs := atkInvalid("ATK-122", "three 20000-character segments", strings.Repeat("A", 20000)+"."+strings.Repeat("A", 20000)+"."+strings.Repeat("A", 20000), 0)
	deep := atkInvalid("ATK-123", "payload nested 10000 levels, validly signed", rawToken([]byte(`{"alg":"RS512"}`), []byte(nested), rsaSigner(t, a, crypto.SHA512)), 0)
	for _, c := range []*atkCase{&over, &dots, &segs, &deep} {
		c.maxTime = quick
	}
	big := sized(60000)
	// README "The okera_auth directive" max_token_size, README "Validation" and
	// the JSON depth limit: each is refused before any service is asked, within
	// 2 s.
	return []atkCase{over, dots, segs, deep,
		// The limit is not a denial of service on real tokens.
		{id: "ATK-124", name: "a 60000-byte genuine token within max_token_size", header: bearer(big),
			status: http.StatusOK, wantUser: "big", wantGroups: "analysts", remoteCalls: 1, maxTime: quick,
			after: func(t *testing.T, _ response, _ *recordedRequest) {
				if len(big) < 59000 || len(big) > 65536 {
					t.Errorf("the token is %d bytes, meant to be about 60000", len(big))
				}
			}},
	}
}
