package validator

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"strings"
	"testing"
)

// benchToken is a token of typical size: a kid, the registered claims and a
// short groups list.
func benchToken(b *testing.B, priv *rsa.PrivateKey, alg string) string {
	b.Helper()
	return sign(b, priv, alg, map[string]any{"kid": "gateway-2030"}, claims(map[string]any{
		"iss":    "https://idp.example.com",
		"aud":    []any{"okera", "gateway"},
		"nbf":    testNowUnix - 60,
		"jti":    "0f8e6a34-4a1f-4b52-8c0c-1b2d3e4f5a6b",
		"groups": []any{"analysts", "finance", "marketing-readers"},
	}))
}

func BenchmarkParseCompact(b *testing.B) {
	a, _, _ := testKeys(b)
	token := benchToken(b, a, RS256)
	b.SetBytes(int64(len(token)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCompact(token); err != nil {
			b.Fatal(err)
		}
	}
}

func benchChain(b *testing.B, priv *rsa.PrivateKey, alg string, cacheSize int) *Chain {
	b.Helper()
	return newChain(b, ChainConfig{
		Keys:      NewKeyValidator([]Key{staticKey(priv, alg, "k")}),
		Claims:    ClaimPolicy{Issuers: []string{"https://idp.example.com"}, Audiences: []string{"okera"}},
		CacheSize: cacheSize,
	})
}

// The common case: a token seen before.
func BenchmarkValidateCachedHit(b *testing.B) {
	a, _, _ := testKeys(b)
	token := benchToken(b, a, RS256)
	c := benchChain(b, a, RS256, 0)
	ctx := context.Background()
	if _, err := c.Validate(ctx, token); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Validate(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}

func benchCold(b *testing.B, alg string) {
	a, _, _ := testKeys(b)
	token := benchToken(b, a, alg)
	c := benchChain(b, a, alg, -1)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Validate(ctx, token); err != nil {
			b.Fatal(err)
		}
	}
}

// A token seen for the first time: syntax, claims, jwx verification.
func BenchmarkValidateColdRS256(b *testing.B) { benchCold(b, RS256) }
func BenchmarkValidateColdRS512(b *testing.B) { benchCold(b, RS512) }

// The floor: crypto/rsa alone on the same tokens.
func benchRawRSA(b *testing.B, alg string) {
	a, _, _ := testKeys(b)
	token := benchToken(b, a, alg)
	i := strings.LastIndexByte(token, '.')
	input, sig := token[:i], token[i+1:]
	hash := hashFor(alg)
	b.ReportAllocs()
	for b.Loop() {
		raw, err := base64.RawURLEncoding.DecodeString(sig)
		if err != nil {
			b.Fatal(err)
		}
		h := hash.New()
		h.Write([]byte(input))
		if err := rsa.VerifyPKCS1v15(&a.PublicKey, hash, h.Sum(nil), raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRawVerifyPKCS1v15RS256(b *testing.B) { benchRawRSA(b, RS256) }
func BenchmarkRawVerifyPKCS1v15RS512(b *testing.B) { benchRawRSA(b, RS512) }
