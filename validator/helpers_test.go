package validator

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // crypto.SHA512 for RS512 tokens
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

// RSA key generation is slow: three keys serve the whole test binary.
var (
	keysOnce                sync.Once
	keyA, keyB, attackerKey *rsa.PrivateKey
	errKeygen               error
)

// testNow is the chains' clock unless a test moves it; tokens expire an
// hour later by default.
var (
	testNow     = time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	testNowUnix = testNow.Unix()
	testExpUnix = testNowUnix + 3600
)

func testKeys(tb testing.TB) (a, b, attacker *rsa.PrivateKey) {
	tb.Helper()
	keysOnce.Do(func() {
		for _, k := range []**rsa.PrivateKey{&keyA, &keyB, &attackerKey} {
			if *k, errKeygen = rsa.GenerateKey(rand.Reader, 2048); errKeygen != nil {
				return
			}
		}
	})
	if errKeygen != nil {
		tb.Fatal(errKeygen)
	}
	return keyA, keyB, attackerKey
}

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func mustJSON(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return string(b)
}

// signRaw signs base64url(header).base64url(payload) with RSASSA-PKCS1-v1_5
// using hash, straight from crypto/rsa, so the tests do not check jwx
// against itself. header and payload are raw JSON text.
func signRaw(tb testing.TB, priv *rsa.PrivateKey, hash crypto.Hash, header, payload string) string {
	tb.Helper()
	input := b64(header) + "." + b64(payload)
	h := hash.New()
	h.Write([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, priv, hash, h.Sum(nil))
	if err != nil {
		tb.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func hashFor(alg string) crypto.Hash {
	if alg == RS512 {
		return crypto.SHA512
	}
	return crypto.SHA256
}

// sign builds a token with the given header members (alg defaults to the
// argument) and payload.
func sign(tb testing.TB, priv *rsa.PrivateKey, alg string, header, payload map[string]any) string {
	tb.Helper()
	h := map[string]any{"alg": alg, "typ": "JWT"}
	for k, v := range header {
		h[k] = v
	}
	return signRaw(tb, priv, hashFor(alg), mustJSON(tb, h), mustJSON(tb, payload))
}

// claims returns a valid payload for testNow, with overrides; a nil value
// deletes the member.
func claims(over map[string]any) map[string]any {
	p := map[string]any{"sub": "alice", "exp": testExpUnix, "iat": testNowUnix, "groups": []any{"analysts"}}
	for k, v := range over {
		if v == nil {
			delete(p, k)
			continue
		}
		p[k] = v
	}
	return p
}

// hs256 signs with HMAC-SHA256 under secret.
func hs256(header, payload string, secret []byte) string {
	input := b64(header) + "." + b64(payload)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func publicPEM(tb testing.TB, pub *rsa.PublicKey) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func staticKey(priv *rsa.PrivateKey, alg, id string) Key {
	return Key{ID: id, Algorithm: alg, Public: &priv.PublicKey, Source: ByPublicKey}
}

func fixedNow(t *time.Time) func() time.Time {
	return func() time.Time { return *t }
}

// newChain builds a chain and closes it with the test.
func newChain(tb testing.TB, cfg ChainConfig) *Chain {
	tb.Helper()
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return testNow }
	}
	c, err := NewChain(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	return c
}

// wantReject asserts a rejection with reason and checks the error's hygiene.
func wantReject(tb testing.TB, c *Chain, token, reason string) *Error {
	tb.Helper()
	id, err := c.Validate(context.Background(), token)
	if err == nil {
		tb.Fatalf("token accepted as %+v; want rejection %q", id, reason)
	}
	if id != nil {
		tb.Fatalf("Validate returned an identity with an error")
	}
	var verr *Error
	if !errors.As(err, &verr) {
		tb.Fatalf("error %T is not *Error", err)
	}
	if verr.Reason != reason {
		tb.Fatalf("reason %q (%v), want %q", verr.Reason, err, reason)
	}
	if verr.Unavailable != (reason == ReasonUnavailable) {
		tb.Fatalf("Unavailable = %v for reason %q", verr.Unavailable, reason)
	}
	checkNoToken(tb, err, token)
	return verr
}

// checkNoToken asserts that an error does not reveal the token or any of
// its segments.
func checkNoToken(tb testing.TB, err error, token string) {
	tb.Helper()
	msg := err.Error()
	for _, seg := range strings.Split(token, ".") {
		if len(seg) >= 16 && strings.Contains(msg, seg) {
			tb.Fatalf("error %q reveals a token segment", msg)
		}
	}
}

func wantValid(tb testing.TB, c *Chain, token string) *Identity {
	tb.Helper()
	id, err := c.Validate(context.Background(), token)
	if err != nil {
		tb.Fatalf("Validate: %v", err)
	}
	if id == nil {
		tb.Fatal("Validate returned neither identity nor error")
	}
	return id
}

// countingObserver records Observer events.
type countingObserver struct {
	mu          sync.Mutex
	validations map[string]int // "validator/result"
	cache       map[string]int // "cache/hit" or "cache/miss"
}

func newCountingObserver() *countingObserver {
	return &countingObserver{validations: map[string]int{}, cache: map[string]int{}}
}

func (o *countingObserver) ObserveValidation(validator, result string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.validations[validator+"/"+result]++
}

func (o *countingObserver) ObserveCache(cache string, hit bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	r := "miss"
	if hit {
		r = "hit"
	}
	o.cache[cache+"/"+r]++
}

func (o *countingObserver) get(m map[string]int, k string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return m[k]
}
