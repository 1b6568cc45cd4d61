//go:build soak

package bench

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"time"
)

// Credentials and request kinds of the soak. Every token is made here, by
// hand like the bench's (no code shared with the gateway), and every
// request carries in expectHeader the identities its credentials allow, so
// the upstream can check what the gateway forwarded.

// cred is a ready Authorization value (empty: none) and what it entitles
// a request to.
type cred struct {
	auth   string
	expect string
}

// issuer signs the soak's tokens.
type issuer struct {
	s   signer
	now time.Time
}

func (is issuer) token(sub string, groups []string, life time.Duration) (string, error) {
	c := map[string]any{
		"sub": sub,
		"iat": is.now.Add(-time.Minute).Unix(),
		"exp": is.now.Add(life).Unix(),
		"jti": randomJTI(),
	}
	if life < 0 {
		c["iat"] = is.now.Add(life - time.Hour).Unix()
	}
	if groups != nil {
		c["groups"] = groups
	}
	return is.s.sign(c)
}

// valid is a token of sub (with the groups claim unless groups is nil),
// good for a day, expected to reach the upstream as one of expect.
func (is issuer) valid(sub string, groups []string, expect ...string) (cred, error) {
	tok, err := is.token(sub, groups, 24*time.Hour)
	return cred{auth: "Bearer " + tok, expect: expectation(expect...)}, err
}

func (is issuer) expired(sub string) (cred, error) {
	tok, err := is.token(sub, []string{"analysts"}, -time.Hour)
	return cred{auth: "Bearer " + tok, expect: expectRefused}, err
}

func randomJTI() string {
	var b [9]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// fromCreds draws one of creds per request; with spoof, the request also
// carries forged identity headers.
func fromCreds(creds []cred, spoof bool) func(*mrand.Rand, http.Header) bool {
	return func(rng *mrand.Rand, h http.Header) bool {
		c := creds[rng.IntN(len(creds))]
		if c.auth != "" {
			h["Authorization"] = []string{c.auth}
		}
		h[expectHeader] = []string{c.expect}
		if spoof {
			addSpoofs(rng, h)
		}
		return true
	}
}

// Spoofed identity headers: every spelling a back end may fold into
// X-Okera-User or X-Okera-Groups (case, '_' and '.'), and the identities an
// attacker would pick.
var (
	spoofNames = []string{
		"X-Okera-User", "x-okera-user", "X-OKERA-USER", "X_Okera_User", "x_okera_user", "X.Okera.User", "x.okera.user",
		"X-Okera-Groups", "x-okera-groups", "X_Okera_Groups", "x_okera_groups", "X.Okera.Groups", "x.okera.groups",
	}
	spoofValues = []string{"admin", "root", "okera", "analysts,root", "alice", " admin "}
)

// addSpoofs adds two to five spoofed identity headers (names as spelled:
// Go's client sends map keys as they are), and sometimes names them in
// Connection, which would make a proxy drop the real ones as hop-by-hop.
func addSpoofs(rng *mrand.Rand, h http.Header) {
	for range 2 + rng.IntN(4) {
		name := spoofNames[rng.IntN(len(spoofNames))]
		h[name] = append(h[name], spoofValues[rng.IntN(len(spoofValues))])
	}
	if rng.IntN(4) == 0 {
		h["Connection"] = []string{"keep-alive, X-Okera-User, x_okera_groups"}
	}
}

// forger makes tokens that are never valid but look it: the header and
// payload of a real token with random signature bytes, so each is distinct
// (a cache keyed by the token would see a million new keys).
type forger struct {
	prefix string // "header.payload." of a valid token
}

func newForger(validToken string) forger {
	i := strings.LastIndexByte(validToken, '.')
	return forger{prefix: validToken[:i+1]}
}

func (f forger) next(rng *mrand.Rand) string {
	var sig [256]byte
	for i := 0; i < len(sig); i += 8 {
		binary.LittleEndian.PutUint64(sig[i:], rng.Uint64())
	}
	return f.prefix + base64.RawURLEncoding.EncodeToString(sig[:])
}

// forged is a kind's fill that sends a fresh forged token each time.
func (f forger) forged(spoof bool) func(*mrand.Rand, http.Header) bool {
	return func(rng *mrand.Rand, h http.Header) bool {
		h["Authorization"] = []string{"Bearer " + f.next(rng)}
		h[expectHeader] = []string{expectRefused}
		if spoof {
			addSpoofs(rng, h)
		}
		return true
	}
}

// oddForgeries are other invalid tokens an attacker sends: alg none, an
// HMAC over the payload, a token cut short, noise, a token signed by a key
// the gateway does not know, and schemes other than Bearer.
func oddForgeries(valid string, stranger signer) ([]cred, error) {
	parts := strings.Split(valid, ".")
	enc := base64.RawURLEncoding.EncodeToString
	none := enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	hs := enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + parts[1] + "." + enc([]byte("not-a-real-hmac-but-32-bytes-ok!"))
	out := []cred{
		{auth: "Bearer " + none},
		{auth: "Bearer " + hs},
		{auth: "Bearer " + parts[0] + "." + parts[1]},
		{auth: "Bearer " + strings.Repeat("A", 120)},
		{auth: "Basic YWRtaW46YWRtaW4="},
		{auth: "Bearer"},
	}
	for i := range 8 {
		tok, err := stranger.sign(map[string]any{"sub": "admin", "groups": []string{"analysts", "root"},
			"exp": time.Now().Add(time.Hour).Unix(), "jti": fmt.Sprint("stranger-", i)})
		if err != nil {
			return nil, err
		}
		out = append(out, cred{auth: "Bearer " + tok})
	}
	for i := range out {
		out[i].expect = expectRefused
	}
	return out, nil
}

// strangerSigner is a key the gateways do not trust.
func strangerSigner() (signer, error) {
	k, err := rsa.GenerateKey(rand.Reader, keyBits)
	if err != nil {
		return signer{}, err
	}
	return newSigner(k, "RS256"), nil
}

// missing is a request without credentials (it may still spoof).
func missing(spoof bool) func(*mrand.Rand, http.Header) bool {
	return fromCreds([]cred{{expect: expectRefused}}, spoof)
}

// fromPool sends each token of a pre-signed pool once (the bench's pools:
// sub alice, groups analysts and data), so every request makes the
// gateway verify a signature; false once the pool is used up.
func fromPool(c *poolCursor) func(*mrand.Rand, http.Header) bool {
	want := expectation(identity("alice", benchGroups...))
	return func(_ *mrand.Rand, h http.Header) bool {
		auth, ok := c.next(0)
		if !ok {
			return false
		}
		h["Authorization"] = []string{auth}
		h[expectHeader] = []string{want}
		return true
	}
}
