package slapdtest_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/okeragate/caddy-okera-auth/internal/slapdtest"
)

func dial(t *testing.T, url string, tc *tls.Config) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(url, ldap.DialWithTLSConfig(tc))
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetTimeout(2 * time.Second)
	return c
}

func bind(t *testing.T, c *ldap.Conn, s *slapdtest.Server) {
	t.Helper()
	if err := c.Bind(s.BindDN, s.BindPassword); err != nil {
		t.Fatalf("bind: %v", err)
	}
}

func search(t *testing.T, c *ldap.Conn, filter string) []*ldap.Entry {
	t.Helper()
	res, err := c.Search(ldap.NewSearchRequest(slapdtest.Suffix, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, filter, []string{"cn"}, nil))
	if err != nil {
		t.Fatalf("search %s: %v", filter, err)
	}
	return res.Entries
}

// TestFixture pins the directory the resolver tests rely on, and that the
// search log counts what the server received.
func TestFixture(t *testing.T) {
	start := time.Now()
	s := slapdtest.New(t, slapdtest.Options{})
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("start-up took %s, want under 2s", d)
	}
	c := dial(t, s.URL, nil)
	bind(t, c, s)

	tests := []struct {
		filter string
		want   int
	}{
		{"(uid=alice)", 1},
		{"(uid=bob)", 1},
		{"(uid=dup)", 2},
		{`(uid=eve\2a\29\28uid=\2a)`, 1},
		{`(uid=back\5cslash)`, 1},
		{"(&(objectClass=groupOfNames)(member=uid=carol,ou=people,dc=example,dc=org))", slapdtest.ManyGroups},
		{`(&(objectClass=groupOfNames)(member=cn=Eve \28meta\2a\29,ou=people,dc=example,dc=org))`, 1},
		{"(&(objectClass=groupOfNames)(member=uid=bob,ou=people,dc=example,dc=org))", 0},
		{"(objectClass=groupOfUniqueNames)", 1},
	}
	for _, tt := range tests {
		if got := len(search(t, c, tt.filter)); got != tt.want {
			t.Errorf("%s: %d entries, want %d", tt.filter, got, tt.want)
		}
	}
	if got := s.SearchCount("(uid=alice)"); got != 1 {
		t.Errorf("SearchCount(uid=alice) = %d, want 1", got)
	}
	// slapd logs escapes in upper case; the count ignores case.
	if got := s.SearchCount(`(uid=eve\2a\29\28uid=\2a)`); got != 1 {
		t.Errorf("SearchCount(eve) = %d, want 1\n%s", got, s.Log())
	}
	search(t, c, "(uid=alice)")
	if got := s.SearchCount("(uid=alice)"); got != 2 {
		t.Errorf("SearchCount(uid=alice) after a second search = %d, want 2", got)
	}
	if got := s.SearchCount("(uid=nobody)"); got != 0 {
		t.Errorf("SearchCount(uid=nobody) = %d, want 0", got)
	}
}

func TestRestartSamePort(t *testing.T) {
	s := slapdtest.New(t, slapdtest.Options{})
	url := s.URL
	c := dial(t, url, nil)
	bind(t, c, s)
	search(t, c, "(uid=alice)")

	s.Stop()
	if _, err := ldap.DialURL(url); err == nil {
		t.Fatal("dial after Stop succeeded")
	}
	s.Start()
	if s.URL != url {
		t.Fatalf("URL changed across restart: %s -> %s", url, s.URL)
	}
	c2 := dial(t, url, nil)
	bind(t, c2, s)
	if n := len(search(t, c2, "(uid=alice)")); n != 1 {
		t.Fatalf("after restart: %d entries", n)
	}
	if got := s.SearchCount("(uid=alice)"); got != 2 {
		t.Errorf("SearchCount across restart = %d, want 2", got)
	}
	s.Restart()
	c3 := dial(t, url, nil)
	bind(t, c3, s)
}

func TestTLS(t *testing.T) {
	s := slapdtest.New(t, slapdtest.Options{TLS: true})
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CA file holds no certificate")
	}
	tc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}

	c := dial(t, s.LDAPSURL, tc)
	bind(t, c, s)
	search(t, c, "(uid=alice)")

	c2 := dial(t, s.URL, nil)
	if err := c2.StartTLS(tc); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}
	bind(t, c2, s)
	search(t, c2, "(uid=bob)")

	wrong := x509.NewCertPool()
	pem, _ = os.ReadFile(slapdtest.UnrelatedCAFile(t))
	wrong.AppendCertsFromPEM(pem)
	if c, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: wrong, ServerName: "127.0.0.1"})); err == nil {
		c.Close()
		t.Fatal("ldaps with an unrelated CA succeeded")
	}
}

func TestPause(t *testing.T) {
	s := slapdtest.New(t, slapdtest.Options{})
	c := dial(t, s.URL, nil)
	bind(t, c, s)
	s.Pause()
	c.SetTimeout(300 * time.Millisecond)
	start := time.Now()
	_, err := c.Search(ldap.NewSearchRequest(slapdtest.Suffix, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		0, 0, false, "(uid=alice)", nil, nil))
	if err == nil {
		t.Fatal("search on a paused server succeeded")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timeout took %s", d)
	}
	s.Resume()
	c2 := dial(t, s.URL, nil)
	bind(t, c2, s)
	search(t, c2, "(uid=alice)")
}
