package validator

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"
)

func jwkOf(pub *rsa.PublicKey, kid string) map[string]any {
	return map[string]any{
		"kty": "RSA",
		"kid": kid,
		"n":   base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e":   base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

func certOf(tb testing.TB, priv *rsa.PrivateKey) string {
	tb.Helper()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "attacker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(der)
}

func TestKeyValidation(t *testing.T) {
	a, b, evil := testKeys(t)
	good := claims(nil)
	payload := mustJSON(t, good)
	rs256 := sign(t, a, RS256, nil, good)
	parts := strings.Split(rs256, ".")

	// The HMAC-with-the-public-key attack: a verifier that lets the header
	// pick the algorithm would check this with the PEM text as HMAC secret.
	hsPEM := hs256(`{"alg":"HS256","typ":"JWT"}`, payload, publicPEM(t, &a.PublicKey))
	hsDER := hs256(`{"alg":"HS256"}`, payload, x509.MarshalPKCS1PublicKey(&a.PublicKey))

	// Tampered payload keeps the original signature.
	tampered := parts[0] + "." + b64(mustJSON(t, claims(map[string]any{"sub": "admin"}))) + "." + parts[2]
	// Signature of another valid token.
	otherSig := strings.Split(sign(t, a, RS256, nil, claims(map[string]any{"sub": "bob"})), ".")[2]
	swapped := parts[0] + "." + parts[1] + "." + otherSig
	// Signed with SHA-512 but labelled RS256.
	mislabelled := signRaw(t, a, crypto.SHA512, `{"alg":"RS256"}`, payload)

	// Keys carried in the header, all pointing at the attacker's key, which
	// also signed the token.
	withJWK := sign(t, evil, RS256, map[string]any{"jwk": jwkOf(&evil.PublicKey, "evil")}, good)
	withJKU := sign(t, evil, RS256, map[string]any{"jku": "https://evil.example/jwks.json", "kid": "evil"}, good)
	withX5U := sign(t, evil, RS256, map[string]any{"x5u": "https://evil.example/cert.pem"}, good)
	withX5C := sign(t, evil, RS256, map[string]any{"x5c": []any{certOf(t, evil)}}, good)
	withX5T := sign(t, evil, RS256, map[string]any{"x5t": "AAAA", "kid": "a.pem"}, good)

	sigA := strings.Split(rs256, ".")[2]
	noneSigned := func(alg string) string {
		return b64(`{"alg":"`+alg+`"}`) + "." + b64(payload) + "." + sigA
	}
	noneUnsigned := func(alg string) string {
		return b64(`{"alg":"`+alg+`"}`) + "." + b64(payload) + "."
	}

	onlyA256 := []Key{staticKey(a, RS256, "a.pem")}
	onlyA512 := []Key{staticKey(a, RS512, "a.pem")}
	both := []Key{staticKey(b, RS256, "b.pem"), staticKey(a, RS256, "a.pem"), staticKey(a, RS512, "a512.pem")}

	tests := []struct {
		name   string
		keys   []Key
		token  string
		reason string // "" = valid
	}{
		{"RS256 valid", onlyA256, rs256, ""},
		{"RS512 valid", onlyA512, sign(t, a, RS512, nil, good), ""},
		{"second key verifies", both, rs256, ""},
		{"RS512 among several", both, sign(t, a, RS512, nil, good), ""},
		{"static keys ignore kid", onlyA256, sign(t, a, RS256, map[string]any{"kid": "unknown"}, good), ""},
		{"RS256 token, RS512 key: not tried", onlyA512, rs256, ReasonNoMatchingKey},
		{"RS512 token, RS256 key: not tried", onlyA256, sign(t, a, RS512, nil, good), ReasonNoMatchingKey},
		{"no keys at all", nil, rs256, ReasonNoMatchingKey},
		{"wrong key", []Key{staticKey(b, RS256, "b.pem")}, rs256, ReasonBadSignature},
		{"tampered payload", onlyA256, tampered, ReasonBadSignature},
		{"signature of another token", onlyA256, swapped, ReasonBadSignature},
		{"SHA-512 signature labelled RS256", onlyA256, mislabelled, ReasonBadSignature},
		{"stripped signature", onlyA256, parts[0] + "." + parts[1] + ".", ReasonMalformed},
		{"truncated signature", onlyA256, parts[0] + "." + parts[1] + "." + parts[2][:40], ReasonBadSignature},
		{"HS256 with the PEM as secret", onlyA256, hsPEM, ReasonBadSignature},
		{"HS256 with the DER as secret", onlyA256, hsDER, ReasonBadSignature},
		{"alg none", onlyA256, noneSigned("none"), ReasonBadSignature},
		{"alg None", onlyA256, noneSigned("None"), ReasonBadSignature},
		{"alg NONE", onlyA256, noneSigned("NONE"), ReasonBadSignature},
		{"alg none unsigned", onlyA256, noneUnsigned("none"), ReasonMalformed},
		{"alg None unsigned", onlyA256, noneUnsigned("None"), ReasonMalformed},
		{"alg NONE unsigned", onlyA256, noneUnsigned("NONE"), ReasonMalformed},
		{"alg rs256 lower case", onlyA256, signRaw(t, a, crypto.SHA256, `{"alg":"rs256"}`, payload), ReasonBadSignature},
		{"alg PS256", onlyA256, signRaw(t, a, crypto.SHA256, `{"alg":"PS256"}`, payload), ReasonBadSignature},
		{"alg ES256", onlyA256, signRaw(t, a, crypto.SHA256, `{"alg":"ES256"}`, payload), ReasonBadSignature},
		{"embedded jwk", onlyA256, withJWK, ReasonBadSignature},
		{"jku", onlyA256, withJKU, ReasonBadSignature},
		{"x5u", onlyA256, withX5U, ReasonBadSignature},
		{"x5c", onlyA256, withX5C, ReasonBadSignature},
		{"x5t and kid naming our key", onlyA256, withX5T, ReasonBadSignature},
		{"embedded jwk, no keys configured", nil, withJWK, ReasonNoMatchingKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newChain(t, ChainConfig{Keys: NewKeyValidator(tt.keys)})
			if tt.reason != "" {
				wantReject(t, c, tt.token, tt.reason)
				return
			}
			id := wantValid(t, c, tt.token)
			if id.User != "alice" || id.By != ByPublicKey || id.TokenID != Fingerprint(tt.token) {
				t.Fatalf("identity %+v", id)
			}
			if id.Claims["groups"].([]any)[0] != "analysts" {
				t.Fatalf("claims %v", id.Claims)
			}
			if !id.Expiry.Equal(time.Unix(testExpUnix, 0)) {
				t.Fatalf("expiry %v", id.Expiry)
			}
		})
	}
}

// Every algorithm family jwx knows fails at the key validator before any key
// is looked at.
func TestKeyValidatorAlgorithmGate(t *testing.T) {
	a, _, _ := testKeys(t)
	kv := NewKeyValidator([]Key{staticKey(a, RS256, "a"), staticKey(a, RS512, "a")})
	for _, alg := range []string{"none", "HS256", "HS384", "HS512", "RS384", "PS256", "PS512", "ES256", "EdDSA", "RSA-OAEP", "rs256", "RS256 "} {
		_, _, err := kv.verify(context.Background(), "x", &Token{Alg: alg})
		if err == nil || err.Reason != ReasonBadSignature {
			t.Errorf("alg %q: %v, want bad_signature", alg, err)
		}
	}
}

func TestKeyValidate(t *testing.T) {
	a, _, _ := testKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  Key
		want string
	}{
		{"ok", staticKey(a, RS256, "a"), ""},
		{"ok jwks", Key{ID: "k", Algorithm: RS512, Public: &a.PublicKey, Source: ByJWKS}, ""},
		{"ok no source", Key{ID: "k", Algorithm: RS512, Public: &a.PublicKey}, ""},
		{"nil key", Key{ID: "k", Algorithm: RS256}, "no public key"},
		{"small", Key{ID: "k", Algorithm: RS256, Public: &small.PublicKey}, "1024 bits"},
		{"bad alg", Key{ID: "k", Algorithm: "RSA256", Public: &a.PublicKey}, "RS256 or RS512"},
		{"empty alg", Key{ID: "k", Public: &a.PublicKey}, "RS256 or RS512"},
		{"bad source", Key{ID: "k", Algorithm: RS256, Public: &a.PublicKey, Source: "remote"}, "source"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.key.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.want)
			}
		})
	}

	// Unusable keys are skipped, never used.
	kv := NewKeyValidator([]Key{{ID: "nil", Algorithm: RS256}, {ID: "small", Algorithm: RS256, Public: &small.PublicKey}, staticKey(a, RS256, "a")})
	if got := kv.Keys(); len(got) != 1 || got[0].ID != "a" {
		t.Fatalf("Keys() = %+v, want only a", got)
	}
	smallTok := sign(t, small, RS256, nil, claims(nil))
	c := newChain(t, ChainConfig{Keys: kv})
	wantReject(t, c, smallTok, ReasonBadSignature)
}

// A JWKS-like source: keys picked by kid, tried after the static keys.
type kidSource struct {
	keys map[string]*Key
}

func (s *kidSource) Candidates(_ context.Context, alg, kid string) []*Key {
	if k, ok := s.keys[kid]; ok && k.Algorithm == alg {
		return []*Key{k}
	}
	return nil
}

func (s *kidSource) Current(k *Key) bool { return s.keys[k.ID] == k }

func TestKeySource(t *testing.T) {
	a, b, _ := testKeys(t)
	src := &kidSource{keys: map[string]*Key{"kb": {ID: "kb", Algorithm: RS256, Public: &b.PublicKey, Source: ByJWKS}}}
	kv := NewKeyValidator([]Key{staticKey(a, RS256, "a.pem")})
	kv.AddSource(src)
	c := newChain(t, ChainConfig{Keys: kv})

	id := wantValid(t, c, sign(t, b, RS256, map[string]any{"kid": "kb"}, claims(nil)))
	if id.By != ByJWKS {
		t.Fatalf("By = %q, want jwks", id.By)
	}
	id = wantValid(t, c, sign(t, a, RS256, map[string]any{"kid": "kb"}, claims(nil)))
	if id.By != ByPublicKey {
		t.Fatalf("By = %q, want public_key (static keys come first)", id.By)
	}
	// Unknown kid: the JWKS has nothing, the static key was tried.
	wantReject(t, c, sign(t, b, RS256, map[string]any{"kid": "nope"}, claims(nil)), ReasonBadSignature)
	// A kid naming a JWKS key of another algorithm is not tried.
	c2 := newChain(t, ChainConfig{Keys: func() *KeyValidator {
		kv := NewKeyValidator(nil)
		kv.AddSource(src)
		return kv
	}()})
	wantReject(t, c2, sign(t, b, RS512, map[string]any{"kid": "kb"}, claims(nil)), ReasonNoMatchingKey)

	// Removing the key from the source revokes the cached verification.
	tok := sign(t, b, RS256, map[string]any{"kid": "kb"}, claims(map[string]any{"sub": "carol"}))
	first := wantValid(t, c2, tok)
	if again := wantValid(t, c2, tok); again != first {
		t.Fatal("second validation was not a cache hit")
	}
	src.keys["kb"] = &Key{ID: "kb", Algorithm: RS256, Public: &a.PublicKey, Source: ByJWKS} // rotated
	wantReject(t, c2, tok, ReasonBadSignature)
}

// SetKeys during Validate: every answer is either the old or the new set's.
func TestSetKeysConcurrent(t *testing.T) {
	a, b, _ := testKeys(t)
	kv := NewKeyValidator([]Key{staticKey(a, RS256, "a")})
	c := newChain(t, ChainConfig{Keys: kv, CacheSize: -1})
	tokA := sign(t, a, RS256, nil, claims(nil))
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if i%2 == 0 {
				kv.SetKeys([]Key{staticKey(b, RS256, "b")})
			} else {
				kv.SetKeys([]Key{staticKey(a, RS256, "a")})
			}
		}
	}()
	for i := 0; i < 50; i++ {
		_, err := c.Validate(context.Background(), tokA)
		if err != nil && err.(*Error).Reason != ReasonBadSignature {
			t.Errorf("unexpected %v", err)
		}
	}
	close(stop)
	wg.Wait()
}

// sloppySource hands out its keys whatever the algorithm asked for.
type sloppySource struct{ keys []*Key }

func (s *sloppySource) Candidates(context.Context, string, string) []*Key { return s.keys }
func (s *sloppySource) Current(*Key) bool                                 { return true }

// The validator itself, not only the static source, refuses to use a key
// with another algorithm than its own: a buggy source cannot reopen
// algorithm confusion.
func TestKeyValidatorIgnoresSourceAlgorithmMistakes(t *testing.T) {
	a, _, _ := testKeys(t)
	kv := NewKeyValidator(nil)
	kv.AddSource(&sloppySource{keys: []*Key{{ID: "a", Algorithm: RS512, Public: &a.PublicKey, Source: ByJWKS}}})
	c := newChain(t, ChainConfig{Keys: kv})
	wantReject(t, c, sign(t, a, RS256, nil, claims(nil)), ReasonNoMatchingKey)
	if id := wantValid(t, c, sign(t, a, RS512, nil, claims(nil))); id.By != ByJWKS {
		t.Fatalf("By %q", id.By)
	}
	// A source that leaves Source empty still yields a known By.
	kv2 := NewKeyValidator(nil)
	kv2.AddSource(&sloppySource{keys: []*Key{{ID: "a", Algorithm: RS512, Public: &a.PublicKey}}})
	c2 := newChain(t, ChainConfig{Keys: kv2})
	if id := wantValid(t, c2, sign(t, a, RS512, nil, claims(nil))); id.By != ByPublicKey {
		t.Fatalf("By %q, want public_key", id.By)
	}
}

func TestStaticCandidates(t *testing.T) {
	a, b, _ := testKeys(t)
	kv := NewKeyValidator([]Key{
		staticKey(a, RS512, "a512"), staticKey(b, RS256, "b256"), staticKey(a, RS256, "a256"),
		staticKey(b, RS256, "b256"), // listed twice
	})
	ids := func(alg string) string {
		var out []string
		for _, k := range kv.static.Candidates(context.Background(), alg, "ignored") {
			out = append(out, k.ID)
		}
		return strings.Join(out, ",")
	}
	if got := ids(RS256); got != "b256,a256" {
		t.Fatalf("RS256 candidates %s, want b256,a256 in configuration order", got)
	}
	if got := ids(RS512); got != "a512" {
		t.Fatalf("RS512 candidates %s", got)
	}
	if got := ids("HS256"); got != "" {
		t.Fatalf("HS256 candidates %s", got)
	}
}
