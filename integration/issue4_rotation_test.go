package integration

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// README "Toward the upstream": a public_key file replaced on disk is in force
// within 30 s, without a Caddy reload, whether it is replaced by an atomic
// rename (a deployment tool, a Kubernetes secret) or rewritten in place (an
// editor). Tokens of the key that left are refused from then on, even one the
// gateway had verified (and cached) before.
func TestIssue4PublicKeyRotationWithoutReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	oldKey, newKey := rsaKey(t, "issue4-rotate-old"), rsaKey(t, "issue4-rotate-new")
	keyFile := writeSPKI(t, dir, "current.pub", oldKey)
	g := startGateway(t, gatewayConfig{Auth: "public_key " + keyFile + " RSA256\nupstream_token none"})

	oldTok := sign(t, oldKey, jwa.RS256, userClaims("alice"))
	newTok := sign(t, newKey, jwa.RS256, userClaims("bob"))
	g.accept(t, bearer(oldTok)) // verified and cached
	assertUnauthorized(t, g.reject(t, bearer(newTok)), "okera", true)

	start := time.Now()
	replaceFile(t, keyFile, pemSPKI(t, newKey))
	if !waitUntil(reloadWithin, func() bool { return get(t, g.URL, bearer(newTok)).Status == http.StatusOK }) {
		t.Fatalf("the new key was not in force 30 s after the file was renamed into place")
	}
	t.Logf("the renamed key took effect after %s", time.Since(start).Round(100*time.Millisecond))
	assertUnauthorized(t, g.reject(t, bearer(oldTok)), "okera", true)
	assertIdentity(t, g.accept(t, bearer(newTok)), "X-Okera-User", "X-Okera-Groups", "bob", "")

	start = time.Now()
	rewriteFile(t, keyFile, pemSPKI(t, oldKey))
	if !waitUntil(reloadWithin, func() bool { return get(t, g.URL, bearer(oldTok)).Status == http.StatusOK }) {
		t.Fatalf("the key was not in force 30 s after the file was rewritten in place")
	}
	t.Logf("the rewritten key took effect after %s", time.Since(start).Round(100*time.Millisecond))
	assertUnauthorized(t, g.reject(t, bearer(newTok)), "okera", true)

	// A file that stops parsing keeps the key in force, and the log names
	// the file.
	rewriteFile(t, keyFile, []byte("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n"))
	if !waitUntil(reloadWithin, func() bool {
		return strings.Contains(g.Output(), "keeping the previous public key") && strings.Contains(g.Output(), keyFile)
	}) {
		t.Fatal("no error naming the broken key file was logged")
	}
	g.accept(t, bearer(sign(t, oldKey, jwa.RS256, userClaims("carol"))))
}

// README "Toward the upstream": a system_token file replaced on disk is sent
// upstream from then on; a replacement that is not a usable token keeps the
// previous one.
func TestIssue4SystemTokenFileReload(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	g := startGateway(t, gatewayConfig{Auth: "public_key " + k.A + "\nsystem_token " + k.SystemToken})
	caller := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice"))
	if got := g.accept(t, bearer(caller)).Header.Get("Authorization"); got != "Bearer "+k.System {
		t.Fatalf("upstream Authorization = %q, want the system token", got)
	}
	next := sign(t, rsaKey(t, keyA), jwa.RS512, claims{
		"sub": "okera", "groups": []string{"root"},
		"iat": time.Now().Unix(), "exp": time.Now().Add(3 * time.Hour).Unix(), "jti": randomID(),
	})
	replaceFile(t, k.SystemToken, []byte(next+"\n"))
	if !waitUntil(reloadWithin, func() bool {
		return g.accept(t, bearer(caller)).Header.Get("Authorization") == "Bearer "+next
	}) {
		t.Fatal("the replaced system token was not sent upstream within 30 s")
	}
	// The new token expires within 24 h: warned about, as at start-up.
	if !strings.Contains(g.Output(), "expires within 24 hours") {
		t.Error("no expiry warning for the reloaded system token")
	}

	rewriteFile(t, k.SystemToken, []byte("not a token\n"))
	if !waitUntil(reloadWithin, func() bool { return strings.Contains(g.Output(), "keeping the previous system token") }) {
		t.Fatal("no error for the broken system token file")
	}
	if got := g.accept(t, bearer(caller)).Header.Get("Authorization"); got != "Bearer "+next {
		t.Errorf("after a broken replacement the upstream got %q, want the previous token", got)
	}
}
