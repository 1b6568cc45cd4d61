package caddymodule

import (
	"context"
	"crypto/rsa"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/okeragate/caddy-okera-auth/mint"
)

func provisionedJWKS(t *testing.T, j *JWKSHandler) *JWKSHandler {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := j.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := j.Provision(ctx); err != nil {
		_ = j.Cleanup()
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Cleanup() })
	return j
}

func fetchJWKS(t *testing.T, j *JWKSHandler, method string) (*httptest.ResponseRecorder, error) {
	t.Helper()
	w := httptest.NewRecorder()
	err := j.ServeHTTP(w, httptest.NewRequest(method, "/.well-known/jwks.json", nil), nextFunc(func(http.ResponseWriter, *http.Request) error {
		t.Fatal("okera_jwks called the next handler")
		return nil
	}))
	return w, err
}

func jwksKids(t *testing.T, body string) []string {
	t.Helper()
	set, err := jwk.Parse([]byte(body))
	if err != nil {
		t.Fatalf("the answer is not a JWK Set: %v\n%s", err, body)
	}
	var kids []string
	for i := 0; i < set.Len(); i++ {
		k, _ := set.Key(i)
		kids = append(kids, k.KeyID())
	}
	return kids
}

// okera_jwks publishes the public half of each key with its thumbprint as
// kid, its alg and use sig; a verifier holding the set verifies the tokens
// the gateway mints.
func TestJWKSHandlerServesKeys(t *testing.T) {
	dir := t.TempDir()
	gw, other := ownKey(t, 0), ownKey(t, 1)
	j := provisionedJWKS(t, &JWKSHandler{Keys: []JWKSKey{
		{Path: writeTestFile(t, dir, "id_rsa", privatePEM(t, gw)), Algorithm: "RSA256"},
		{Path: "file://" + writeTestFile(t, dir, "other.pub", spkiPEM(t, other))},
	}})
	w, err := fetchJWKS(t, j, http.MethodGet)
	if err != nil {
		t.Fatal(err)
	}
	if w.Code != http.StatusOK {
		t.Fatalf("status %d", w.Code)
	}
	for name, want := range map[string]string{"Content-Type": "application/jwk-set+json", "Cache-Control": "public, max-age=300"} {
		if got := w.Header().Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	body := w.Body.String()
	if strings.Contains(body, `"d"`) || strings.Contains(body, `"p"`) {
		t.Fatalf("private key material published: %s", body)
	}
	set, err := jwk.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if set.Len() != 2 {
		t.Fatalf("%d keys, want 2", set.Len())
	}
	for i, want := range []struct {
		alg jwa.SignatureAlgorithm
		pub *rsa.PublicKey
	}{{jwa.RS256, &gw.PublicKey}, {jwa.RS512, &other.PublicKey}} {
		k, _ := set.Key(i)
		kid, err := mint.Thumbprint(want.pub)
		if err != nil {
			t.Fatal(err)
		}
		if k.KeyID() != kid || k.Algorithm() != want.alg || k.KeyUsage() != "sig" {
			t.Errorf("key %d: kid %q alg %s use %q; want kid %q alg %s use sig", i, k.KeyID(), k.Algorithm(), k.KeyUsage(), kid, want.alg)
		}
		var raw rsa.PublicKey
		if err := k.Raw(&raw); err != nil || !raw.Equal(want.pub) {
			t.Errorf("key %d is not the configured key (%v)", i, err)
		}
	}

	// A token minted upstream-style verifies against the published set.
	s := newSigner(t, gw, "RS256")
	m, err := newMinter(func() *mint.Signer { return s }, time.Minute, DefaultMintedAudience, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer m.close()
	bearer, _ := m.bearer("alice", []string{"analysts"})
	tok, err := jwt.Parse([]byte(strings.TrimPrefix(bearer, "Bearer ")), jwt.WithKeySet(set), jwt.WithValidate(true))
	if err != nil {
		t.Fatalf("a minted token does not verify with the published set: %v", err)
	}
	if tok.Subject() != "alice" {
		t.Errorf("sub %q", tok.Subject())
	}

	// HEAD: headers only. Other methods: 405 with Allow.
	w, err = fetchJWKS(t, j, http.MethodHead)
	if err != nil || w.Code != http.StatusOK || w.Body.Len() != 0 || w.Header().Get("Content-Length") == "" {
		t.Errorf("HEAD: %v %d %q", err, w.Code, w.Body.String())
	}
	w, err = fetchJWKS(t, j, http.MethodPost)
	if httpStatus(err) != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %v, Allow %q", err, w.Header().Get("Allow"))
	}
}

func httpStatus(err error) int {
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		return he.StatusCode
	}
	return 0
}

// A key listed twice (its private and its public file) is published once.
func TestJWKSHandlerDeduplicates(t *testing.T) {
	dir := t.TempDir()
	gw := ownKey(t, 0)
	j := provisionedJWKS(t, &JWKSHandler{Keys: []JWKSKey{
		{Path: writeTestFile(t, dir, "id_rsa", privatePEM(t, gw))},
		{Path: writeTestFile(t, dir, "id_rsa.pub", spkiPEM(t, gw))},
	}})
	w, _ := fetchJWKS(t, j, http.MethodGet)
	if kids := jwksKids(t, w.Body.String()); len(kids) != 1 {
		t.Errorf("kids %v, want one", kids)
	}
}

// The set follows its key files: a replaced key is published within the
// check interval; a file that stops parsing leaves the published key.
func TestJWKSHandlerReload(t *testing.T) {
	dir := t.TempDir()
	a, b := ownKey(t, 0), ownKey(t, 1)
	path := writeTestFile(t, dir, "id_rsa", privatePEM(t, a))
	j := provisionedJWKS(t, &JWKSHandler{Keys: []JWKSKey{{Path: path}}, FileCheckInterval: caddy.Duration(20 * time.Millisecond)})
	kidA, _ := mint.Thumbprint(&a.PublicKey)
	kidB, _ := mint.Thumbprint(&b.PublicKey)
	kids := func() []string {
		w, _ := fetchJWKS(t, j, http.MethodGet)
		return jwksKids(t, w.Body.String())
	}
	waitKid := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			if k := kids(); len(k) == 1 && k[0] == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("kids %v, want [%s]", kids(), want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitKid(kidA)
	replaceAtomically(t, path, spkiPEM(t, b))
	waitKid(kidB)
	rewriteInPlace(t, path, []byte("-----BEGIN PUBLIC KEY-----\ngarbage\n-----END PUBLIC KEY-----\n"))
	time.Sleep(100 * time.Millisecond)
	waitKid(kidB)
	rewriteInPlace(t, path, privatePEM(t, a))
	waitKid(kidA)
}

func TestJWKSHandlerCaddyfile(t *testing.T) {
	var j JWKSHandler
	if err := j.UnmarshalCaddyfile(caddyfile.NewTestDispenser("okera_jwks .auth/id_rsa RS256 file:///keys/old.pub .auth/next.pub rsa512")); err != nil {
		t.Fatal(err)
	}
	want := []JWKSKey{{Path: ".auth/id_rsa", Algorithm: "RS256"}, {Path: "file:///keys/old.pub"}, {Path: ".auth/next.pub", Algorithm: "rsa512"}}
	if len(j.Keys) != len(want) {
		t.Fatalf("keys %+v", j.Keys)
	}
	for i := range want {
		if j.Keys[i] != want[i] {
			t.Errorf("key %d = %+v, want %+v", i, j.Keys[i], want[i])
		}
	}
	for input, msg := range map[string]string{
		"okera_jwks":                   "needs at least one key file",
		"okera_jwks a {\n\tfoo bar\n}": "unrecognized okera_jwks subdirective 'foo'",
	} {
		var j JWKSHandler
		if err := j.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: %v, want %q", input, err, msg)
		}
	}
	if err := (&JWKSHandler{Keys: []JWKSKey{{Path: "k", Algorithm: "PS256"}}}).Validate(); err == nil {
		t.Error("PS256 accepted")
	}
}
