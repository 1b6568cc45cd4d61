package integration

import (
	"testing"
	"time"
)

// TestGroupResolutionCache: LDAP and endpoint answers, "no answer"
// included, are cached per user for cache_ttl; errors never are; cache_ttl
// 0 turns the cache off (README "Groups"). Every request carries a new token, so
// the gateway's token cache cannot be what saves the queries.
func TestGroupResolutionCache(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	s := startSlapd(t, false)
	ep := startGroupsEndpoint(t)
	// Long enough that a handful of requests always fit in it.
	const ttl = 2 * time.Second
	cached := startGateway(t, gatewayConfig{Auth: groupsAuth(k,
		ldapBlock(s, s.URL, "cache_ttl 2s"),
		"groups_endpoint "+ep.URL()+" {\n\tcache_ttl 2s\n}",
	)})
	uncached := startGateway(t, gatewayConfig{Auth: groupsAuth(k,
		ldapBlock(s, s.URL, "cache_ttl 0"),
		"groups_endpoint "+ep.URL()+" {\n\tcache_ttl 0\n}",
	)})
	// past the TTL, with room for the cache's clock granularity
	afterTTL := func() { time.Sleep(ttl + 300*time.Millisecond) }
	const n = 5

	t.Run("cache_ttl 2s: an LDAP answer is reused, then expires", func(t *testing.T) {
		for range n {
			assertGroups(t, cached.accept(t, bearer(userToken(t, "alice"))), "alice", "ldap", "engineering", "analysts")
		}
		if got := userSearches(s, "alice"); got != 1 {
			t.Errorf("user searches for alice after %d requests within cache_ttl = %d, want 1", n, got)
		}
		if got := groupSearches(s, "alice"); got != 1 {
			t.Errorf("group searches for alice after %d requests within cache_ttl = %d, want 1", n, got)
		}
		afterTTL()
		assertGroups(t, cached.accept(t, bearer(userToken(t, "alice"))), "alice", "ldap", "engineering", "analysts")
		if got := userSearches(s, "alice"); got != 2 {
			t.Errorf("user searches for alice after cache_ttl passed = %d, want 2", got)
		}
	})

	t.Run("cache_ttl 2s: LDAP's no answer and the endpoint's answer are reused, then expire", func(t *testing.T) {
		ep.Reply("ghost", endpointReply{Status: 200, Body: `["Visitors"]`})
		for range n {
			assertGroups(t, cached.accept(t, bearer(userToken(t, "ghost"))), "ghost", "endpoint", "visitors")
		}
		if got := userSearches(s, "ghost"); got != 1 {
			t.Errorf("user searches for ghost = %d, want 1 (LDAP's no answer is cached)", got)
		}
		assertEndpointCalls(t, ep, "ghost", "ghost", k, 1)
		afterTTL()
		cached.accept(t, bearer(userToken(t, "ghost")))
		if got := userSearches(s, "ghost"); got != 2 {
			t.Errorf("user searches for ghost after cache_ttl passed = %d, want 2", got)
		}
		assertEndpointCalls(t, ep, "ghost", "ghost", k, 2)
	})

	t.Run("cache_ttl 2s: an endpoint 404 is cached too", func(t *testing.T) {
		for range n {
			assertGroups(t, cached.accept(t, bearer(userToken(t, "ghost-404"))), "ghost-404", "none")
		}
		assertEndpointCalls(t, ep, "ghost-404", "ghost-404", k, 1)
	})

	t.Run("errors are never cached", func(t *testing.T) {
		// A failed lookup must not stick for cache_ttl: the next request
		// asks again, and gets the recovered endpoint's answer at once.
		ep.Reply("flaky", endpointReply{Status: 500})
		assertUnavailable(t, cached.reject(t, bearer(userToken(t, "flaky"))))
		assertUnavailable(t, cached.reject(t, bearer(userToken(t, "flaky"))))
		ep.Reply("flaky", endpointReply{Status: 200, Body: `["Recovered"]`})
		assertGroups(t, cached.accept(t, bearer(userToken(t, "flaky"))), "flaky", "endpoint", "recovered")
		assertEndpointCalls(t, ep, "flaky", "flaky", k, 3)
	})

	t.Run("cache_ttl 0: every request searches LDAP", func(t *testing.T) {
		for range n {
			assertGroups(t, uncached.accept(t, bearer(userToken(t, "norma"))), "norma", "ldap", "data-science", "ops")
		}
		if got := userSearches(s, "norma"); got != n {
			t.Errorf("user searches for norma = %d after %d requests with cache_ttl 0, want %d", got, n, n)
		}
		if got := groupSearches(s, "norma"); got != n {
			t.Errorf("group searches for norma = %d after %d requests with cache_ttl 0, want %d", got, n, n)
		}
	})

	t.Run("cache_ttl 0: every request asks the endpoint", func(t *testing.T) {
		ep.Reply("ghost-uncached", endpointReply{Status: 200, Body: `{"groups":["Visitors"]}`})
		for range n {
			assertGroups(t, uncached.accept(t, bearer(userToken(t, "ghost-uncached"))), "ghost-uncached", "endpoint", "visitors")
		}
		if got := userSearches(s, "ghost-uncached"); got != n {
			t.Errorf("user searches for ghost-uncached = %d, want %d", got, n)
		}
		assertEndpointCalls(t, ep, "ghost-uncached", "ghost-uncached", k, n)
	})
}
