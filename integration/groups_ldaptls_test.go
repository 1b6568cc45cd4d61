package integration

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/okeragate/caddy-okera-auth/internal/slapdtest"
)

// TestGroupResolutionLDAPTLS: ldaps:// and start_tls verify the directory
// against ca_file. With a CA that did not sign the server's certificate the
// handshake fails and lookups are a 503: the gateway never falls back to
// plain LDAP, which would send the bind password in clear (README "Groups").
func TestGroupResolutionLDAPTLS(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	trusted := startSlapd(t, true)
	// A second directory that only the wrong-CA gateways talk to, so its
	// log shows everything they did.
	untrusted := startSlapd(t, true)
	wrongCA := slapdtest.UnrelatedCAFile(t)

	cases := []struct {
		name   string
		ldap   string
		starts bool // whether a StartTLS request is expected
	}{
		{"ldaps with ca_file", ldapBlock(trusted, trusted.LDAPSURL, "ca_file "+trusted.CAFile), false},
		{"start_tls with ca_file", ldapBlock(trusted, trusted.URL, "start_tls", "ca_file "+trusted.CAFile), true},
	}
	for _, c := range cases {
		t.Run(c.name+": LDAP answers", func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, gatewayConfig{Auth: groupsAuth(k, c.ldap)})
			rec := g.accept(t, bearer(userToken(t, "alice")))
			assertGroups(t, rec, "alice", "ldap", "engineering", "analysts")
			if c.starts && trusted.CountLog("EXT oid=1.3.6.1.4.1.1466.20037") == 0 {
				t.Errorf("the directory received no StartTLS request")
			}
			if overTLS, plain := bindsByTransport(trusted.Log()); overTLS == 0 || plain != 0 {
				t.Errorf("binds over TLS: %d, in clear: %d; want every bind over TLS\n%s", overTLS, plain, trusted.Log())
			}
		})
	}

	wrong := []struct{ name, ldap string }{
		{"ldaps with the wrong CA", ldapBlock(untrusted, untrusted.LDAPSURL, "ca_file "+wrongCA, "cache_ttl 0")},
		{"start_tls with the wrong CA", ldapBlock(untrusted, untrusted.URL, "start_tls", "ca_file "+wrongCA, "cache_ttl 0")},
	}
	for _, c := range wrong {
		t.Run(c.name+": 503, never plain LDAP", func(t *testing.T) {
			t.Parallel()
			g := startGateway(t, gatewayConfig{Auth: groupsAuth(k, c.ldap)})
			for range 2 {
				assertUnavailable(t, g.reject(t, bearer(userToken(t, "alice"))))
			}
			// Caddy's start-up check says what is wrong in words an
			// operator can act on.
			if !waitForLog(g.caddyProc, 5*time.Second, "LDAP group resolver cannot reach or bind", "certificate") {
				t.Errorf("Caddy's log does not report the certificate failure")
			}
			// No bind and no search ever reached the directory: the
			// password was never sent, over TLS or in clear.
			if n := untrusted.CountLog("BIND dn="); n != 0 {
				t.Errorf("the directory received %d bind(s) from a gateway that does not trust it\n%s", n, untrusted.Log())
			}
			if n := untrusted.CountLog(" SRCH "); n != 0 {
				t.Errorf("the directory received %d search(es) from a gateway that does not trust it", n)
			}
			if strings.Contains(g.Output(), untrusted.BindPassword) {
				t.Errorf("Caddy's output holds the bind password")
			}
		})
	}
}

// slapdConn picks the connection number out of a slapd stats log line.
var slapdConn = regexp.MustCompile(`\bconn=(\d+) `)

// bindsByTransport counts the binds in a slapd stats log by whether their
// connection had completed a TLS handshake (ldaps:// or StartTLS) before.
func bindsByTransport(log string) (overTLS, plain int) {
	secured := map[string]bool{}
	for _, line := range strings.Split(log, "\n") {
		m := slapdConn.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		switch {
		case strings.Contains(line, " TLS established "):
			secured[m[1]] = true
		case strings.Contains(line, " BIND dn=") && strings.Contains(line, " method="):
			if secured[m[1]] {
				overTLS++
			} else {
				plain++
			}
		}
	}
	return overTLS, plain
}
