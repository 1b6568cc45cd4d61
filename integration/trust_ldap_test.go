package integration

import (
	"strings"
	"testing"
	"time"
)

// TestTrustLDAPLookalikeUsers (TRUST-LDAP-01): directories match filters
// loosely, so the entry a filter finds must also name the user in
// user_attribute; a look-alike of alice or john smith gets no LDAP groups,
// even under caseExactMatch, while the upstream still sees the look-alike
// as it was signed (README "Group resolution").
func TestTrustLDAPLookalikeUsers(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	s := startSlapd(t, false)
	caseExact := "user_filter (&(objectClass=person)(uid:caseExactMatch:={0}))"
	plain := startGateway(t, gatewayConfig{Auth: groupsAuth(k, "group_resolvers ldap", ldapBlock(s, s.URL))})
	exact := startGateway(t, gatewayConfig{Auth: groupsAuth(k, "group_resolvers ldap", ldapBlock(s, s.URL, caseExact))})
	required := startGateway(t, gatewayConfig{Auth: groupsAuth(k, "group_resolvers ldap", ldapBlock(s, s.URL), "required_group engineering")})
	asciiCase := startGateway(t, gatewayConfig{Auth: groupsAuth(k, "group_resolvers ldap", ldapBlock(s, s.URL, "user_match ascii_case"))})

	lookalikes := []string{
		"ALICE",
		"ａｌｉｃｅ", // fullwidth
		"𝐚𝐥𝐢𝐜𝐞", // mathematical bold
		"ⓐⓛⓘⓒⓔ", // circled
		"ALİCE", // U+0130
		"john  smith",
		"john\u00a0smith",
		"JOHN SMITH",
	}
	for _, user := range lookalikes {
		t.Run("no groups for "+user, func(t *testing.T) {
			assertGroups(t, plain.accept(t, bearer(userToken(t, user))), user, "none")
			assertGroups(t, exact.accept(t, bearer(userToken(t, user))), user, "none")
			assertForbidden(t, required.reject(t, bearer(userToken(t, user))))
		})
	}
	t.Run("ascii_case folds A-Z and nothing else", func(t *testing.T) {
		assertGroups(t, asciiCase.accept(t, bearer(userToken(t, "ALICE"))), "ALICE", "ldap", "engineering", "analysts")
		assertGroups(t, asciiCase.accept(t, bearer(userToken(t, "John Smith"))), "John Smith", "ldap", "smiths")
		for _, user := range []string{"ａｌｉｃｅ", "ALİCE", "john  smith", "john\u00a0smith"} {
			assertGroups(t, asciiCase.accept(t, bearer(userToken(t, user))), user, "none")
		}
	})
	t.Run("control: the users themselves", func(t *testing.T) {
		assertGroups(t, plain.accept(t, bearer(userToken(t, "alice"))), "alice", "ldap", "engineering", "analysts")
		assertGroups(t, exact.accept(t, bearer(userToken(t, "john smith"))), "john smith", "ldap", "smiths")
		required.accept(t, bearer(userToken(t, "alice")))
	})
	t.Run("the refusal is logged at DEBUG only, without groups", func(t *testing.T) {
		if strings.Contains(plain.Output(), "does not name the user") {
			t.Errorf("a look-alike is logged at the default level:\n%s", plain.Output())
		}
	})
}

// TestTrustLDAPGroupNames (TRUST-LDAP-02): a group owner who adds
// "cn: Admins" to cn=Chess Club does not make its members admins; the RDN
// names the group, and an entry whose several names the RDN does not
// settle is skipped and logged (README "Group resolution").
func TestTrustLDAPGroupNames(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	s := startSlapd(t, false)
	g := startGateway(t, gatewayConfig{Auth: groupsAuth(k, "group_resolvers ldap", ldapBlock(s, s.URL))})
	admins := startGateway(t, gatewayConfig{Auth: groupsAuth(k, "group_resolvers ldap", ldapBlock(s, s.URL), "required_group admins")})

	assertGroups(t, g.accept(t, bearer(userToken(t, "chess"))), "chess", "ldap", "chess club")
	assertForbidden(t, admins.reject(t, bearer(userToken(t, "chess"))))
	if !waitForLog(g.caddyProc, 3*time.Second, "skipped an LDAP group", "ou=Board") {
		t.Errorf("the ou=Board entry was not logged as skipped:\n%s", g.Output())
	}
}
