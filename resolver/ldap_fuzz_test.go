package resolver

import (
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// filterMarker stands for the user when the template is compiled on its
// own; it holds no filter metacharacter, so it cannot change the shape.
const filterMarker = "qqFuzzUserMarkerqq"

// FuzzLDAPUserFilter pins down README "Groups": "{0} is the user, escaped per
// RFC 4515" against arbitrary users and user_filter templates that
// NewLDAPResolver accepts: the user's filter always compiles, and it has
// exactly the template's structure (same filter types, same attributes, same
// number of components) with the user only inside assertion values, verbatim.
// So a user named "*)(uid=*", "*" or "x)(|(objectClass=*" cannot widen the
// search or add a component. The group filter built from an arbitrary DN obeys
// the same rule.
//
//	go test ./resolver -run '^$' -fuzz '^FuzzLDAPUserFilter$' -fuzztime 60s
func FuzzLDAPUserFilter(f *testing.F) {
	for _, s := range []struct{ tmpl, user string }{
		{DefaultUserFilter, "alice"},
		{DefaultUserFilter, "*)(uid=*"},
		{DefaultUserFilter, "*"},
		{DefaultUserFilter, "x)(|(objectClass=*"},
		{DefaultUserFilter, `back\slash`},
		{DefaultUserFilter, "\x00"},
		{DefaultUserFilter, "é\xff"},
		{"(uid={0})", "{0}"},
		{"uid={0}", "a)(b=c"},
		{"(|(uid={0})(mail={0}@example.org))", "*"},
		{"(cn=*{0}*)", "a*b"},
		{"(&(objectClass=user)(sAMAccountName={0})(!(userAccountControl:1.2.840.113556.1.4.803:=2)))", "admin)(x=*"},
		{"(uid:caseExactMatch:={0})", ")("},
		{"(uid~={0})", "*"},
		{"(uid>={0})", "\\2a"},
	} {
		f.Add(s.tmpl, s.user)
	}
	f.Fuzz(func(t *testing.T, tmpl, user string) {
		if strings.Contains(tmpl, filterMarker) {
			return
		}
		cfg := LDAPConfig{
			URL:          "ldap://127.0.0.1:1",
			BindDN:       "cn=admin,dc=example,dc=org",
			BindPassword: "secret",
			BaseDN:       "dc=example,dc=org",
			UserFilter:   tmpl,
		}
		r, err := NewLDAPResolver(cfg, nil)
		if err != nil {
			return // refused at start-up
		}
		defer r.Close()

		shape, err := ldap.CompileFilter(strings.ReplaceAll(r.userFilter, userPlaceholder, filterMarker))
		if err != nil {
			t.Fatalf("the template %q was accepted, but does not compile with a plain user: %v", tmpl, err)
		}
		if markerOutsideValues(shape) {
			// {0} stands for an attribute name or a matching rule: the
			// operator's choice, not something a user can exploit through
			// value escaping. Out of scope here.
			return
		}
		if user == "" {
			// Resolve never searches for an empty user: with a template
			// such as (uid={0}*) it would become the presence filter
			// (uid=*). TestLDAPEmptyUser pins that.
			return
		}
		filter := r.userSearchFilter(user)
		got, err := ldap.CompileFilter(filter)
		if err != nil {
			t.Fatalf("user %q makes the filter %q, which does not compile: %v", user, filter, err)
		}
		if path, ok := sameShape(shape, got, user); !ok {
			t.Fatalf("user %q changes the filter's structure at %s:\ntemplate %q\nfilter   %q", user, path, r.userFilter, filter)
		}

		// The group search: the user's DN comes from the directory, but is
		// escaped the same way.
		dn := user
		gf := r.groupSearchFilter(dn)
		g, err := ldap.CompileFilter(gf)
		if err != nil {
			t.Fatalf("DN %q makes the group filter %q, which does not compile: %v", dn, gf, err)
		}
		if g.Tag != ldap.FilterAnd || len(g.Children) != 2 {
			t.Fatalf("group filter %q is not an and of two components", gf)
		}
		m := g.Children[1]
		if m.Tag != ldap.FilterEqualityMatch || len(m.Children) != 2 ||
			leafText(m.Children[0]) != r.cfg.MemberAttribute || leafText(m.Children[1]) != dn {
			t.Fatalf("group filter %q does not end in an exact (%s=<dn>) match", gf, r.cfg.MemberAttribute)
		}
	})
}

// leafText is a primitive packet's bytes.
func leafText(p *ber.Packet) string {
	if p.Data == nil {
		return ""
	}
	return p.Data.String()
}

// isValueLeaf reports whether a primitive packet of a compiled filter is an
// assertion value (where an escaped user belongs) rather than an attribute
// description or a matching rule.
func isValueLeaf(p, parent *ber.Packet) bool {
	if parent == nil {
		return false // a presence filter: its only text is the attribute
	}
	switch parent.Tag {
	case ldap.FilterEqualityMatch, ldap.FilterGreaterOrEqual, ldap.FilterLessOrEqual, ldap.FilterApproxMatch:
		return parent.ClassType == ber.ClassContext && len(parent.Children) == 2 && parent.Children[1] == p
	case ldap.FilterExtensibleMatch:
		return p.Tag == ldap.MatchingRuleAssertionMatchValue
	}
	// The Substrings sequence (universal class) holds only values.
	return parent.ClassType == ber.ClassUniversal && parent.Tag == ber.TagSequence
}

func markerOutsideValues(p *ber.Packet) bool {
	var walk func(p, parent *ber.Packet) bool
	walk = func(p, parent *ber.Packet) bool {
		if len(p.Children) == 0 {
			return !isValueLeaf(p, parent) && strings.Contains(leafText(p), filterMarker)
		}
		for _, c := range p.Children {
			if walk(c, p) {
				return true
			}
		}
		return false
	}
	return walk(p, nil)
}

// sameShape compares the template compiled with the marker against the
// filter compiled with the user: the same tree of filter types and
// attributes, and each value the template's with the marker replaced by
// the user, byte for byte. It returns where they differ.
func sameShape(tmpl, got *ber.Packet, user string) (string, bool) {
	var walk func(a, b, parent *ber.Packet, path string) (string, bool)
	walk = func(a, b, parent *ber.Packet, path string) (string, bool) {
		if a.ClassType != b.ClassType || a.TagType != b.TagType || a.Tag != b.Tag || len(a.Children) != len(b.Children) {
			return path, false
		}
		if len(a.Children) == 0 {
			want := leafText(a)
			if isValueLeaf(a, parent) {
				want = strings.ReplaceAll(want, filterMarker, user)
			}
			if leafText(b) != want {
				return path + " (value)", false
			}
			return "", true
		}
		for i := range a.Children {
			if where, ok := walk(a.Children[i], b.Children[i], a, path+"/"+a.Description); !ok {
				return where, false
			}
		}
		return "", true
	}
	return walk(tmpl, got, nil, "")
}
