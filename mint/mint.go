// Package mint signs the gateway's own tokens: the system token written by
// caddy okera-keygen, tokens printed by caddy okera-token, and (with
// signing_key) the tokens sent upstream. It knows nothing of Caddy.
package mint

import (
	"crypto"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Issuer is the iss claim of every token the gateway mints.
const Issuer = "caddy-okera-auth"

// Signer signs JWTs with one RSA private key and one algorithm. Every token
// carries the key's RFC 7638 thumbprint as kid, so a verifier holding a JWK
// Set can pick the key without trying them all.
type Signer struct {
	alg jwa.SignatureAlgorithm
	key jwk.Key
	pub *rsa.PublicKey
	kid string
}

// NewSigner prepares a signer. alg is "RS256" or "RS512".
func NewSigner(key *rsa.PrivateKey, alg string) (*Signer, error) {
	a := jwa.SignatureAlgorithm(alg)
	if a != jwa.RS256 && a != jwa.RS512 {
		return nil, fmt.Errorf("signing algorithm %q is not supported; use RS256 or RS512", alg)
	}
	k, err := jwk.FromRaw(key)
	if err != nil {
		return nil, fmt.Errorf("wrapping private key: %w", err)
	}
	kid, err := Thumbprint(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := k.Set(jwk.KeyIDKey, kid); err != nil {
		return nil, fmt.Errorf("setting kid: %w", err)
	}
	return &Signer{alg: a, key: k, pub: &key.PublicKey, kid: kid}, nil
}

// Thumbprint is the RFC 7638 SHA-256 thumbprint of an RSA public key,
// base64url-encoded without padding: the kid of the gateway's tokens.
func Thumbprint(pub *rsa.PublicKey) (string, error) {
	k, err := jwk.FromRaw(pub)
	if err != nil {
		return "", fmt.Errorf("wrapping public key: %w", err)
	}
	sum, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		return "", fmt.Errorf("computing key thumbprint: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(sum), nil
}

// KeyID is the kid header of this signer's tokens.
func (s *Signer) KeyID() string { return s.kid }

// Algorithm is "RS256" or "RS512".
func (s *Signer) Algorithm() string { return s.alg.String() }

// Public is the verifying half of the signing key.
func (s *Signer) Public() *rsa.PublicKey { return s.pub }

// Claims describes a token to mint. Extra claims never override the
// registered ones set from the other fields.
type Claims struct {
	Subject string
	Groups  []string // nil: no groups claim
	// Audience, when set, is the aud claim. Minted upstream tokens carry
	// minted_audience, which the gateway refuses from callers.
	Audience string
	TTL      time.Duration
	Extra    map[string]any
}

// Sign mints a token valid from now for c.TTL and returns it with its expiry.
func (s *Signer) Sign(c Claims, now time.Time) (string, time.Time, error) {
	if c.Subject == "" {
		return "", time.Time{}, fmt.Errorf("a token needs a subject")
	}
	if c.TTL <= 0 {
		return "", time.Time{}, fmt.Errorf("token lifetime must be positive, got %s", c.TTL)
	}
	exp := now.Add(c.TTL).Truncate(time.Second)
	payload := make(map[string]any, len(c.Extra)+6)
	for k, v := range c.Extra {
		payload[k] = v
	}
	payload["sub"] = c.Subject
	payload["iss"] = Issuer
	payload["iat"] = now.Unix()
	payload["nbf"] = now.Unix()
	payload["exp"] = exp.Unix()
	if c.Groups != nil {
		payload["groups"] = c.Groups
	}
	if c.Audience != "" {
		payload["aud"] = c.Audience
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("encoding claims: %w", err)
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.TypeKey, "JWT"); err != nil {
		return "", time.Time{}, fmt.Errorf("setting typ: %w", err)
	}
	out, err := jws.Sign(body, jws.WithKey(s.alg, s.key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("signing token: %w", err)
	}
	return string(out), exp, nil
}
