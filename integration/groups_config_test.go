package integration

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestGroupResolutionBindPassword: bind_password takes {env.X} so the
// secret stays out of the Caddyfile; a wrong password is a 503; and no
// password, right or wrong, ever reaches Caddy's log, even at DEBUG with
// access logs on (README "The okera_auth directive", "Groups", "Logs").
func TestGroupResolutionBindPassword(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	s := startSlapd(t, false)
	wrongEnv := "wrong-env-" + randomID()
	wrongLiteral := "wrong-literal-" + randomID()
	debug := func(password string) gatewayConfig {
		return gatewayConfig{
			Global: "log {\n\tlevel DEBUG\n}",
			Site:   "log",
			Auth:   groupsAuth(k, ldapBlockPassword(s.URL, password, "cache_ttl 0")),
		}
	}
	good := startGatewayEnv(t, debug("{env.LDAP_PW}"), "LDAP_PW="+s.BindPassword)
	badEnv := startGatewayEnv(t, debug("{env.LDAP_PW}"), "LDAP_PW="+wrongEnv)
	badLiteral := startGateway(t, debug(wrongLiteral))

	t.Run("{env.LDAP_PW} is the bind password", func(t *testing.T) {
		rec := good.accept(t, bearer(userToken(t, "alice")))
		assertGroups(t, rec, "alice", "ldap", "engineering", "analysts")
	})

	for name, g := range map[string]*gateway{"from {env.LDAP_PW}": badEnv, "written in the Caddyfile": badLiteral} {
		t.Run("a wrong password "+name+": 503, and the log says the bind failed", func(t *testing.T) {
			assertUnavailable(t, g.reject(t, bearer(userToken(t, "alice"))))
			// LDAP result 49: what an operator needs to know to fix it.
			if !waitForLog(g.caddyProc, 5*time.Second, "LDAP group resolver cannot reach or bind", "Invalid Credentials") {
				t.Errorf("Caddy's log does not say the bind was refused")
			}
		})
	}

	t.Run("no password appears in Caddy's output", func(t *testing.T) {
		for name, g := range map[string]*gateway{"good": good, "wrong env": badEnv, "wrong literal": badLiteral} {
			// The access log line is written once the response is done.
			if !waitForLog(g.caddyProc, 3*time.Second, `"msg":"handled request"`) {
				t.Errorf("%s: no access log line", name)
			}
			for i, line := range strings.Split(g.Output(), "\n") {
				if isCaddyConfigDump(line) {
					// At DEBUG, Caddy itself (http.auto_https, "adjusted
					// config") logs the whole HTTP app config, handlers
					// included, so a password written into the Caddyfile
					// shows there. No module can prevent that; it is why
					// bind_password takes {env.X} and {file.path}, and the
					// {env.LDAP_PW} gateways prove the placeholder stays a
					// placeholder in that line.
					if strings.Contains(line, s.BindPassword) || strings.Contains(line, wrongEnv) {
						t.Errorf("%s: Caddy's config dump holds the value of {env.LDAP_PW}", name)
					}
					continue
				}
				for what, secret := range map[string]string{"right": s.BindPassword, "wrong (env)": wrongEnv, "wrong (literal)": wrongLiteral} {
					if strings.Contains(line, secret) {
						t.Errorf("%s: line %d of Caddy's output holds the %s bind password:\n%s", name, i+1, what, line)
					}
				}
			}
		}
	})
}

// isCaddyConfigDump tells Caddy's own DEBUG line that prints the HTTP app's
// config as loaded.
func isCaddyConfigDump(line string) bool {
	return strings.Contains(line, `"logger":"http.auto_https"`) && strings.Contains(line, `"msg":"adjusted config"`)
}

// TestGroupResolutionStartup: Provision never dials the directory. One
// that is down or hung at start-up does not stop or delay Caddy; a check in
// the background says what is wrong, naming the url (README "Lifecycle").
func TestGroupResolutionStartup(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)

	t.Run("an unreachable directory: Caddy starts and the log names the url", func(t *testing.T) {
		t.Parallel()
		url := "ldap://" + freeAddr(t) // nothing listens there
		g := startGateway(t, gatewayConfig{Auth: groupsAuth(k, ldapBlockPassword(url, "secret-"+randomID()))})
		if !waitForLog(g.caddyProc, 5*time.Second, "LDAP group resolver cannot reach or bind", `"url":"`+url+`"`, "connection refused") {
			t.Errorf("Caddy's log does not say that %s refused the connection", url)
		}
		// A token with groups needs no directory; one without is denied.
		assertGroups(t, g.accept(t, bearer(userToken(t, "alice", "From-Claim"))), "alice", "claim", "from-claim")
		assertUnavailable(t, g.reject(t, bearer(userToken(t, "alice"))))
	})

	t.Run("a hung directory: Caddy starts without waiting for it", func(t *testing.T) {
		t.Parallel()
		s := startSlapd(t, false)
		s.Pause() // accepts connections, answers nothing
		defer s.Resume()
		start := time.Now()
		// A Provision that bound to the directory would wait the whole
		// 20s timeout.
		g := startGateway(t, gatewayConfig{Auth: groupsAuth(k, ldapBlock(s, s.URL, "timeout 20s"))})
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("Caddy took %s to start with a hung directory", d)
		}
		assertGroups(t, g.accept(t, bearer(userToken(t, "alice", "From-Claim"))), "alice", "claim", "from-claim")
		s.Resume()
		assertGroups(t, g.accept(t, bearer(userToken(t, "alice"))), "alice", "ldap", "engineering", "analysts")
	})
}

// TestGroupResolutionCaddyfileErrors: a broken ldap block stops Caddy at
// start-up with a message that names the problem and its Caddyfile line
// (an unknown subdirective is an error naming the file and line).
func TestGroupResolutionCaddyfileErrors(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	url := "ldap://" + freeAddr(t)

	t.Run("an unknown ldap subdirective names itself and its line", func(t *testing.T) {
		t.Parallel()
		out, written := startFailure(t, authSite(t, groupsAuth(k, ldapBlockPassword(url, "pw", "page_size 100"))))
		if !strings.Contains(out, "page_size") {
			t.Errorf("the error does not name page_size:\n%s", out)
		}
		n := errorLine(t, out, written)
		if line := strings.Split(written, "\n")[n-1]; !strings.Contains(line, "page_size") {
			t.Errorf("the error names line %d (%q), not the line of page_size:\n%s\n%s", n, line, numbered(written), out)
		}
	})

	t.Run("an ldap block without base_dn says so and names the block's line", func(t *testing.T) {
		t.Parallel()
		block := "ldap {\n\turl " + url + "\n\tbind_dn cn=admin,dc=example,dc=org\n\tbind_password pw\n}"
		out, written := startFailure(t, authSite(t, groupsAuth(k, block)))
		if !strings.Contains(out, "base_dn") {
			t.Errorf("the error does not name base_dn:\n%s", out)
		}
		n := errorLine(t, out, written)
		first, last := blockLines(written, "ldap {")
		if n < first || n > last {
			t.Errorf("the error names line %d, outside the ldap block (lines %d-%d):\n%s\n%s", n, first, last, numbered(written), out)
		}
	})

	t.Run("bind_password from an unset environment variable: start-up fails saying so", func(t *testing.T) {
		t.Parallel()
		// {env.X} of an unset X is empty, and an empty password would be
		// an unauthenticated bind: refused at start-up (README "Groups").
		out := expectStartFailure(t, authSite(t, groupsAuth(k, ldapBlockPassword(url, "{env.OKERA_TEST_UNSET_"+randomID()+"}"))))
		if !strings.Contains(out, "bind_password") {
			t.Errorf("the error does not name bind_password:\n%s", out)
		}
	})
}

// errorLine is the Caddyfile line number an error message names; the test
// fails when there is none, or it is not a line of written.
func errorLine(t testing.TB, out, written string) int {
	t.Helper()
	m := regexp.MustCompile(`Caddyfile:(\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("the error does not name a Caddyfile line:\n%s", out)
	}
	n, _ := strconv.Atoi(m[1])
	if n < 1 || n > len(strings.Split(written, "\n")) {
		t.Fatalf("the error names line %d of a %d-line Caddyfile:\n%s", n, len(strings.Split(written, "\n")), out)
	}
	return n
}

// blockLines are the 1-based numbers of the line holding opening and of
// the line closing that block.
func blockLines(text, opening string) (first, last int) {
	lines := strings.Split(text, "\n")
	for i, line := range lines {
		if first == 0 && strings.TrimSpace(line) == opening {
			first = i + 1
			continue
		}
		if first != 0 && strings.TrimSpace(line) == "}" {
			return first, i + 1
		}
	}
	return first, len(lines)
}
