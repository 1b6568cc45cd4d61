package slapdtest

import (
	"fmt"
	"strings"
)

// fixtureLDIF is the directory the package comment describes. The odd
// entries are there for the resolver's escaping: eve's uid holds the filter
// metacharacters of the classic injection "*)(uid=*", her DN holds
// parentheses and a star (so the member filter must escape the DN too), and
// back\slash has a backslash in both uid and DN. The two dup entries make a
// user filter match twice. Unique-Alice is a groupOfUniqueNames, which the
// default group filter must not pick up.
func fixtureLDIF() string {
	var b strings.Builder
	entry := func(dn string, attrs ...string) {
		fmt.Fprintf(&b, "dn: %s\n", dn)
		for _, a := range attrs {
			b.WriteString(a)
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
	}
	people := "ou=people," + Suffix
	groups := "ou=groups," + Suffix

	entry(Suffix, "objectClass: dcObject", "objectClass: organization", "dc: example", "o: Example")
	entry(people, "objectClass: organizationalUnit", "ou: people")
	entry(groups, "objectClass: organizationalUnit", "ou: groups")

	person := func(rdn, uid, cn string) string {
		dn := rdn + "," + people
		entry(dn, "objectClass: inetOrgPerson", "cn: "+cn, "sn: "+cn, "uid: "+uid)
		return dn
	}
	alice := person("uid=alice", "alice", "Alice")
	person("uid=bob", "bob", "Bob")
	carol := person("uid=carol", "carol", "Carol")
	eve := person("cn=Eve (meta*)", "eve*)(uid=*", "Eve (meta*)")
	back := person(`uid=back\5Cslash`, `back\slash`, "Back Slash")
	dup1 := person("cn=Dup One", "dup", "Dup One")
	dup2 := person("cn=Dup Two", "dup", "Dup Two")

	group := func(cn string, members ...string) {
		attrs := []string{"objectClass: groupOfNames", "cn: " + cn}
		for _, m := range members {
			attrs = append(attrs, "member: "+m)
		}
		entry("cn="+cn+","+groups, attrs...)
	}
	group("Engineering", alice)
	group("Analysts", alice)
	for i := range ManyGroups {
		group(fmt.Sprintf("Many-%02d", i), carol)
	}
	group("Meta", eve)
	group("Backslash", back)
	group("Dup", dup1, dup2)
	entry("cn=Unique-Alice,"+groups, "objectClass: groupOfUniqueNames", "cn: Unique-Alice", "uniqueMember: "+alice)
	return b.String()
}
