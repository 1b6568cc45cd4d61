package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// TestPlaceholders: the values later handlers see on success, and what
// handle_errors sees after a failure (README "Status codes", "Toward the
// upstream").
func TestPlaceholders(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	g := startGateway(t, gatewayConfig{
		Auth: fmt.Sprintf("public_key %s\nsystem_token %s", k.A, k.SystemToken),
		Site: `
			respond /whoami "user={http.auth.user.id} groups={http.auth.user.groups} validator={http.auth.okera.validator} source={http.auth.okera.groups_source} token_id={http.auth.okera.token_id}" 200
			handle_errors {
				respond "error={http.auth.okera.error} user={http.auth.user.id} token_id={http.auth.okera.token_id}" {http.error.status_code}
			}
		`,
	})
	whoami := g.URL[:len(g.URL)-len("/data")] + "/whoami"
	a := rsaKey(t, keyA)

	t.Run("success: a respond route sees the identity", func(t *testing.T) {
		tok := sign(t, a, jwa.RS512, userClaims("alice", "Analysts", "ops"))
		resp := get(t, whoami, bearer(tok))
		want := "user=alice groups=analysts,ops validator=public_key source=claim token_id=" + fingerprint(tok)
		if resp.Status != 200 || resp.Body != want {
			t.Errorf("got %d %q, want 200 %q", resp.Status, resp.Body, want)
		}
	})

	t.Run("success: header_up sees the identity", func(t *testing.T) {
		tok := sign(t, a, jwa.RS512, userClaims("alice", "ops"))
		rec := g.accept(t, bearer(tok))
		assertPlaceholders(t, rec, "alice", "ops", "public_key", "claim", fingerprint(tok))
	})

	failures := []struct {
		name   string
		header http.Header
		reason string // "" when any non-empty reason will do
		status int
	}{
		{"expired token", bearer(sign(t, a, jwa.RS512, userClaims("alice").with("exp", time.Now().Add(-time.Hour).Unix()))), "expired", 401},
		{"bad signature", bearer(sign(t, rsaKey(t, keyAttacker), jwa.RS512, userClaims("alice"))), "bad_signature", 401},
		{"no token", http.Header{}, "", 401},
		{"malformed token", bearer("a.b.c"), "", 401},
	}
	for _, c := range failures {
		t.Run("failure: handle_errors sees only the reason ("+c.name+")", func(t *testing.T) {
			resp := g.reject(t, c.header)
			// The handler's headers survive Caddy's error handling.
			assertUnauthorized(t, resp, "okera", len(c.header) > 0)
			reason, rest, _ := strings.Cut(strings.TrimPrefix(resp.Body, "error="), " ")
			if !strings.HasPrefix(resp.Body, "error=") || reason == "" {
				t.Errorf("handle_errors answered %q: want error=<a non-empty reason>", resp.Body)
			}
			// Unset placeholders are left as written by respond; either way
			// no identity may be visible after a failure.
			if rest != "user= token_id=" && rest != "user={http.auth.user.id} token_id={http.auth.okera.token_id}" {
				t.Errorf("handle_errors answered %q: identity placeholders must be unset after a failure", resp.Body)
			}
			if c.reason != "" && reason != c.reason {
				t.Errorf("{http.auth.okera.error} = %q, want %q", reason, c.reason)
			}
		})
	}
}
