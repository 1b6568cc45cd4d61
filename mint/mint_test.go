package mint

import (
	"crypto/rand"
	"crypto/rsa"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

func TestSign(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(key, "RS256")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_900_000_000, 500_000_000)
	tok, exp, err := s.Sign(Claims{Subject: "alice", Groups: []string{"a"}, TTL: time.Minute, Extra: map[string]any{"sub": "mallory", "env": "prod"}}, now)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.Parse([]byte(tok), jwt.WithKey(jwa.RS256, &key.PublicKey), jwt.WithClock(jwt.ClockFunc(func() time.Time { return now })))
	if err != nil {
		t.Fatal(err)
	}
	// Registered claims come from the fields; Extra cannot override them.
	if parsed.Subject() != "alice" || parsed.Issuer() != Issuer {
		t.Errorf("sub %q iss %q", parsed.Subject(), parsed.Issuer())
	}
	if env, _ := parsed.Get("env"); env != "prod" {
		t.Errorf("extra claim env = %v", env)
	}
	if !parsed.Expiration().Equal(exp) || exp.Unix() != now.Unix()+60 || parsed.IssuedAt().Unix() != now.Unix() || parsed.NotBefore().Unix() != now.Unix() {
		t.Errorf("iat %v nbf %v exp %v (returned %v)", parsed.IssuedAt(), parsed.NotBefore(), parsed.Expiration(), exp)
	}
	// The kid header is the RFC 7638 thumbprint of the public key.
	msg, err := jws.Parse([]byte(tok))
	if err != nil {
		t.Fatal(err)
	}
	kid, err := Thumbprint(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	h := msg.Signatures()[0].ProtectedHeaders()
	if h.KeyID() != kid || s.KeyID() != kid || h.Type() != "JWT" {
		t.Errorf("kid %q (signer %q) typ %q, want kid %q", h.KeyID(), s.KeyID(), h.Type(), kid)
	}
	if len(kid) != 43 || strings.ContainsAny(kid, "+/=") {
		t.Errorf("thumbprint %q is not unpadded base64url SHA-256", kid)
	}

	for _, c := range []Claims{{Subject: "", TTL: time.Minute}, {Subject: "a", TTL: 0}} {
		if _, _, err := s.Sign(c, now); err == nil {
			t.Errorf("%+v signed", c)
		}
	}
	if _, err := NewSigner(key, "HS256"); err == nil {
		t.Error("HS256 signer created")
	}
}
