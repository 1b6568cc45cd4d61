package integration

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// TestRequiredGroup: Okera's OKERA_REQUIRED_GROUP_MEMBERSHIP and
// OKERA_CATALOG_ADMINS (README "Groups"). Without an admins line the admin is the
// system token's sub (okera).
func TestRequiredGroup(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf(`
		public_key %s
		required_group analysts
		system_token %s
	`, k.A, k.SystemToken)})
	tok := func(sub string, groups ...string) http.Header {
		return bearer(sign(t, rsaKey(t, keyA), jwa.RS512, userClaims(sub, groups...)))
	}

	t.Run("member passes (groups compare case-insensitively)", func(t *testing.T) {
		rec := g.accept(t, tok("alice", "Sales", " ANALYSTS "))
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "alice", "sales,analysts")
	})
	t.Run("outsider gets 403", func(t *testing.T) {
		resp := g.reject(t, tok("bob", "sales"))
		assertForbidden(t, resp)
	})
	t.Run("user without groups gets 403", func(t *testing.T) {
		assertForbidden(t, g.reject(t, tok("bob")))
	})
	t.Run("a user named like the group is not in it", func(t *testing.T) {
		assertForbidden(t, g.reject(t, tok("analysts")))
	})
	t.Run("no default admin: a user named okera is not exempt", func(t *testing.T) {
		assertForbidden(t, g.reject(t, tok("okera")))
	})
	t.Run("a spoofed group header does not make a member", func(t *testing.T) {
		h := tok("bob", "sales")
		h["X_Okera_Groups"] = []string{"analysts"}
		h["X.Okera.Groups"] = []string{"analysts"}
		assertForbidden(t, g.reject(t, h))
	})
}

// TestAdmins: an explicit admins list replaces the default; a user or a
// group in it is exempt from required_group.
func TestAdmins(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf(`
		public_key %s
		required_group analysts
		admins carol root-admins
		system_token %s
	`, k.A, k.SystemToken)})
	tok := func(sub string, groups ...string) http.Header {
		return bearer(sign(t, rsaKey(t, keyA), jwa.RS512, userClaims(sub, groups...)))
	}

	t.Run("admin user is exempt", func(t *testing.T) {
		rec := g.accept(t, tok("carol"))
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "carol", "")
	})
	t.Run("admin group is exempt", func(t *testing.T) {
		rec := g.accept(t, tok("dave", "Root-Admins"))
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "dave", "root-admins")
	})
	t.Run("the system token's sub is no longer an admin", func(t *testing.T) {
		assertForbidden(t, g.reject(t, tok("okera")))
	})
	t.Run("member still passes", func(t *testing.T) {
		g.accept(t, tok("alice", "analysts"))
	})
	t.Run("outsider gets 403", func(t *testing.T) {
		assertForbidden(t, g.reject(t, tok("bob", "sales")))
	})
}

// TestGroupsClaim: groups_claim names the claim the claim resolver reads;
// a malformed claim is the token's fault, so it is a 401 whatever
// on_resolver_error says (README "Groups").
func TestGroupsClaim(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf(`
		public_key %s
		group_resolvers claim
		groups_claim roles
		on_resolver_error continue
		system_token %s
	`, k.A, k.SystemToken)})
	a := rsaKey(t, keyA)

	t.Run("groups come from the configured claim only", func(t *testing.T) {
		tok := sign(t, a, jwa.RS512, userClaims("alice", "ignored").with("roles", []string{"Reader", "WRITER"}))
		rec := g.accept(t, bearer(tok))
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "alice", "reader,writer")
		assertPlaceholders(t, rec, "alice", "reader,writer", "public_key", "claim", fingerprint(tok))
	})
	t.Run("without the configured claim there are no groups", func(t *testing.T) {
		tok := sign(t, a, jwa.RS512, userClaims("alice", "ignored"))
		rec := g.accept(t, bearer(tok))
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "alice", "")
		assertPlaceholders(t, rec, "alice", "", "public_key", "none", fingerprint(tok))
	})
	t.Run("a malformed claim is 401 even with on_resolver_error continue", func(t *testing.T) {
		tok := sign(t, a, jwa.RS512, userClaims("alice").with("roles", map[string]any{"admin": true}))
		assertUnauthorized(t, g.reject(t, bearer(tok)), "okera", true)
	})
}
