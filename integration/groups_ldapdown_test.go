package integration

import (
	"strings"
	"testing"
	"time"
)

// TestGroupResolutionLDAPDown: a directory that goes away mid-run. With
// on_resolver_error deny (the default) the gateway fails closed with 503;
// with continue it logs the error and asks the next resolver; when the
// directory is back, the connection pool recovers on its own (README "Groups").
func TestGroupResolutionLDAPDown(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	s := startSlapd(t, false)
	ep := startGroupsEndpoint(t)
	ep.Reply("alice", endpointReply{Status: 200, Body: `["Endpoint-Fallback"]`})
	// cache_ttl 0: every request goes to the directory, so each step below
	// sees the directory as it is now.
	ldap := ldapBlock(s, s.URL, "cache_ttl 0", "timeout 1s")
	endpoint := "groups_endpoint " + ep.URL() + " {\n\tcache_ttl 0\n}"
	deny := startGateway(t, gatewayConfig{Auth: groupsAuth(k, ldap, endpoint)})
	cont := startGateway(t, gatewayConfig{Auth: groupsAuth(k, ldap, endpoint, "on_resolver_error continue")})
	fromLDAP := func(t *testing.T, g *gateway) {
		t.Helper()
		assertGroups(t, g.accept(t, bearer(userToken(t, "alice"))), "alice", "ldap", "engineering", "analysts")
	}

	t.Run("directory up: both gateways answer from LDAP", func(t *testing.T) {
		fromLDAP(t, deny)
		fromLDAP(t, cont)
	})

	t.Run("directory restarted between requests: the stale pooled connection is replaced", func(t *testing.T) {
		// The pooled connections died with the old slapd; the first
		// request after the restart must not fail on them (nor fall
		// through to the endpoint).
		s.Restart()
		fromLDAP(t, deny)
		fromLDAP(t, cont)
		if n := len(ep.Calls("alice")); n != 0 {
			t.Errorf("the group endpoint was asked %d time(s); LDAP should have answered", n)
		}
	})

	t.Run("directory stopped, deny: 503 with Retry-After and no-store", func(t *testing.T) {
		// README "Groups": deny → 503; the chain stops at the failing resolver.
		s.Stop()
		calls := len(ep.Calls("alice"))
		assertUnavailable(t, deny.reject(t, bearer(userToken(t, "alice"))))
		assertUnavailable(t, deny.reject(t, bearer(userToken(t, "alice"))))
		if n := len(ep.Calls("alice")) - calls; n != 0 {
			t.Errorf("with deny, the group endpoint was still asked %d time(s)", n)
		}
		if !strings.Contains(deny.Output(), "authentication dependency unavailable") {
			t.Errorf("the deny gateway did not log why it answered 503")
		}
	})

	t.Run("directory stopped, continue: the endpoint answers", func(t *testing.T) {
		// README "Groups": continue → log it and try the next resolver.
		tok := userToken(t, "alice")
		rec := cont.accept(t, bearer(tok))
		assertGroups(t, rec, "alice", "endpoint", "endpoint-fallback")
		assertSystemToken(t, rec, k, tok)
		assertEndpointCalls(t, ep, "alice", "alice", k, 1)
		if !waitForLog(cont.caddyProc, 3*time.Second, "group resolver failed; trying the next one", `"source":"ldap"`) {
			t.Errorf("the continue gateway did not log the LDAP failure it stepped over")
		}
	})

	t.Run("directory started again: LDAP answers again", func(t *testing.T) {
		s.Start()
		fromLDAP(t, deny)
		fromLDAP(t, cont)
		assertEndpointCalls(t, ep, "alice", "alice", k, 1)
	})

	t.Run("directory hung: deny answers 503 within the timeout, then recovers", func(t *testing.T) {
		// A frozen slapd accepts connections and never answers: the
		// operation timeout (1s here) bounds the wait, and the connection
		// it spoiled is not reused once the directory is back.
		s.Pause()
		defer s.Resume()
		start := time.Now()
		assertUnavailable(t, deny.reject(t, bearer(userToken(t, "alice"))))
		if d := time.Since(start); d > 4*time.Second {
			t.Errorf("the 503 took %s with timeout 1s", d)
		}
		s.Resume()
		fromLDAP(t, deny)
	})
}
