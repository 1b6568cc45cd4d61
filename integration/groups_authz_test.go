package integration

import "testing"

// TestGroupResolutionRequiredGroup: required_group and admins (Okera's
// OKERA_REQUIRED_GROUP_MEMBERSHIP and OKERA_CATALOG_ADMINS) applied to
// groups that came from LDAP and from the group endpoint (README "Groups").
func TestGroupResolutionRequiredGroup(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	s := startSlapd(t, false)
	ep := startGroupsEndpoint(t)
	resolvers := []string{ldapBlock(s, s.URL), "groups_endpoint " + ep.URL()}
	// Written in another case than LDAP's Analysts: groups compare
	// case-insensitively.
	byDefault := startGateway(t, gatewayConfig{Auth: groupsAuth(k, append(resolvers, "required_group ANALYSTS")...)})
	listed := startGateway(t, gatewayConfig{Auth: groupsAuth(k, append(resolvers, "required_group analysts", "admins frank Catalog-Admins")...)})
	ep.Reply("ghost-admin", endpointReply{Status: 200, Body: `["CATALOG-ADMINS"]`})
	ep.Reply("ghost-analyst", endpointReply{Status: 200, Body: `{"groups":["Analysts"]}`})

	t.Run("a member by LDAP passes", func(t *testing.T) {
		assertGroups(t, byDefault.accept(t, bearer(userToken(t, "alice"))), "alice", "ldap", "engineering", "analysts")
	})
	t.Run("a member by the endpoint passes", func(t *testing.T) {
		assertGroups(t, byDefault.accept(t, bearer(userToken(t, "ghost-analyst"))), "ghost-analyst", "endpoint", "analysts")
	})
	t.Run("a user outside the required group gets 403", func(t *testing.T) {
		// bob: in LDAP, in no group, unknown to the endpoint (404).
		// carol: in 30 LDAP groups, none of them analysts.
		for _, user := range []string{"bob", "carol"} {
			assertForbidden(t, byDefault.reject(t, bearer(userToken(t, user))))
		}
	})
	t.Run("no default admin: a user named okera is not exempt", func(t *testing.T) {
		// okera is in no directory and has no groups at all.
		assertForbidden(t, byDefault.reject(t, bearer(userToken(t, "okera"))))
	})
	t.Run("admins: a listed user is exempt", func(t *testing.T) {
		assertGroups(t, listed.accept(t, bearer(userToken(t, "frank"))), "frank", "none")
	})
	t.Run("admins: a member of a listed group is exempt, by LDAP or by the endpoint", func(t *testing.T) {
		assertGroups(t, listed.accept(t, bearer(userToken(t, "dave"))), "dave", "ldap", "catalog-admins")
		assertGroups(t, listed.accept(t, bearer(userToken(t, "ghost-admin"))), "ghost-admin", "endpoint", "catalog-admins")
	})
	t.Run("admins: an explicit list replaces the default admin", func(t *testing.T) {
		assertForbidden(t, listed.reject(t, bearer(userToken(t, "okera"))))
		assertForbidden(t, listed.reject(t, bearer(userToken(t, "bob"))))
	})
}
