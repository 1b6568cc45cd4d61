package caddymodule

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/okeragate/caddy-okera-auth/mint"
)

// Helpers of the tests of the gateway's own keys (signing, okera_jwks,
// jwks_url, reload, okera-verify).

var ownKeys = struct {
	once sync.Once
	keys [3]*rsa.PrivateKey
}{}

// ownKey returns one of three 2048-bit keys shared by these tests.
func ownKey(t testing.TB, i int) *rsa.PrivateKey {
	t.Helper()
	ownKeys.once.Do(func() {
		for j := range ownKeys.keys {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			ownKeys.keys[j] = k
		}
	})
	return ownKeys.keys[i]
}

func privatePEM(t testing.TB, key *rsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func spkiPEM(t testing.TB, key *rsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func writeTestFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// replaceAtomically swaps a file's content the way deployment tools do:
// write a new file, rename it over the old one (a new inode).
func replaceAtomically(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// rewriteInPlace truncates and rewrites the file (same inode).
func rewriteInPlace(t testing.TB, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

func newSigner(t testing.TB, key *rsa.PrivateKey, alg string) *mint.Signer {
	t.Helper()
	s, err := mint.NewSigner(key, alg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signFor(t testing.TB, s *mint.Signer, sub string, groups ...string) string {
	t.Helper()
	tok, _, err := s.Sign(mint.Claims{Subject: sub, Groups: groups, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// provisioned provisions h in a fresh Caddy context and cleans it up with
// the test.
func provisioned(t testing.TB, h *Handler) *Handler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		_ = h.Cleanup()
		t.Fatalf("Provision: %v", err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return h
}

// through sends a request with the bearer token through h and returns the
// request the next handler got (nil if it was not called) and the error.
func through(t testing.TB, h *Handler, tok string) (*http.Request, error) {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	if tok != "" {
		r.Header.Set("Authorization", "Bearer "+tok)
	}
	repl := caddy.NewReplacer()
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	var got *http.Request
	err := h.ServeHTTP(httptest.NewRecorder(), r, nextFunc(func(_ http.ResponseWriter, r *http.Request) error {
		got = r
		return nil
	}))
	return got, err
}

type nextFunc func(http.ResponseWriter, *http.Request) error

func (f nextFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// parseVerified verifies tok with pub and alg and returns its claims and
// protected header.
func parseVerified(t testing.TB, tok string, pub *rsa.PublicKey, alg jwa.SignatureAlgorithm) (jwt.Token, jws.Headers) {
	t.Helper()
	parsed, err := jwt.Parse([]byte(tok), jwt.WithKey(alg, pub), jwt.WithValidate(true))
	if err != nil {
		t.Fatalf("token does not verify: %v", err)
	}
	msg, err := jws.Parse([]byte(tok))
	if err != nil {
		t.Fatal(err)
	}
	return parsed, msg.Signatures()[0].ProtectedHeaders()
}

func bearerToken(t testing.TB, r *http.Request) string {
	t.Helper()
	v := r.Header.Values("Authorization")
	if len(v) != 1 || !strings.HasPrefix(v[0], "Bearer ") {
		t.Fatalf("Authorization = %q, want one Bearer token", v)
	}
	return strings.TrimPrefix(v[0], "Bearer ")
}
