package resolver

import "testing"

// The user entry must name the user: directories match filters loosely, so
// only an exact (or, for AD, ASCII-case-insensitive) value of the user
// attribute hands over the entry's groups.
func TestASCIIEqualFold(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"alice", "alice", true},
		{"alice", "ALICE", true},
		{"Alice.Smith", "alice.smith", true},
		{"alice", "ALİCE", false},            // U+0130 is no I
		{"kafka", "\u212Aafka", false},       // the Kelvin sign is no K
		{"alice", "ａｌｉｃｅ", false},            // fullwidth
		{"john smith", "john  smith", false}, // two spaces
		{"john smith", "john\u00a0smith", false},
		{"alice", "alic", false},
		{"a@b", "A@B", true},
		{"[", "{", false}, // '[' + 32 is '{': only letters fold
	}
	for _, tt := range tests {
		if got := asciiEqualFold(tt.a, tt.b); got != tt.want {
			t.Errorf("asciiEqualFold(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

// A group entry with several names is named by its RDN, or skipped: an
// owner who adds cn: Admins to cn=Chess Club does not make its members
// admins.
func TestGroupName(t *testing.T) {
	tests := []struct {
		dn     string
		values []string
		want   string
		ok     bool
	}{
		{"cn=analysts,ou=groups,dc=example,dc=org", []string{"analysts"}, "analysts", true},
		{"cn=Chess Club,ou=groups,dc=example,dc=org", []string{"Chess Club", "Admins"}, "Chess Club", true},
		{"CN=Chess Club,ou=groups,dc=example,dc=org", []string{"Admins", "Chess Club"}, "Chess Club", true},
		{"ou=club,ou=groups,dc=example,dc=org", []string{"Chess Club", "Admins"}, "", false},
		{"cn=Other+ou=x,ou=groups,dc=example,dc=org", []string{"Chess Club", "Admins"}, "", false},
		{"ou=x+cn=Admins,ou=groups,dc=example,dc=org", []string{"Chess Club", "Admins"}, "Admins", true},
		{"not a dn", []string{"a", "b"}, "", false},
	}
	for _, tt := range tests {
		got, ok := groupName(tt.dn, tt.values, "cn")
		if got != tt.want || ok != tt.ok {
			t.Errorf("groupName(%q, %q) = %q, %v; want %q, %v", tt.dn, tt.values, got, ok, tt.want, tt.ok)
		}
	}
}
