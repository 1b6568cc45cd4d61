package integration

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// allowListed are the `_` and `.` spellings of the identity headers that the
// gateway configs allow-list. Caddy 2.11 drops such header names itself unless
// they are allow-listed; with them allow-listed, only the handler stands
// between a spoofed X_Okera_User and the upstream (README "Security notes").
var allowListed = struct{ underscore, dot []string }{
	underscore: []string{"x_okera_user", "x_okera_groups", "x_remote_user", "x_remote_groups"},
	dot:        []string{"x.okera.user", "x.okera.groups", "x.remote.user", "x.remote.groups"},
}

// gatewayConfig describes one gateway instance: an okera_auth site in front
// of a recording upstream, plus a "plain" site (reverse_proxy only, same
// server options) that shows what Caddy alone would pass through.
type gatewayConfig struct {
	// Auth is the body of the okera_auth block.
	Auth string
	// Global holds extra global options.
	Global string
	// Site holds extra directives of the gateway site (respond routes,
	// handle_errors, log).
	Site string
	// NoAllowList leaves out expected_underscore_headers and
	// expected_dot_headers. Caddy then drops `_` and `.` header names on
	// its own, but keeps the hyphenated X-Okera-User that an allow-list
	// would make it drop (it removes the hyphenated twin of every
	// allow-listed name), so hyphenated spoofing is tested this way.
	NoAllowList bool
}

// placeholderHeaders are set by header_up on every proxied request, so each
// test can see the handler's placeholders as the upstream got them.
var placeholderHeaders = [...]struct{ header, placeholder string }{
	{"X-Test-User-Id", "{http.auth.user.id}"},
	{"X-Test-User-Groups", "{http.auth.user.groups}"},
	{"X-Test-Validator", "{http.auth.okera.validator}"},
	{"X-Test-Groups-Source", "{http.auth.okera.groups_source}"},
	{"X-Test-Token-Id", "{http.auth.okera.token_id}"},
}

func (c gatewayConfig) caddyfile(gatewayAddr, plainAddr, upstreamAddr string) string {
	var b strings.Builder
	b.WriteString("{\n")
	if !c.NoAllowList {
		fmt.Fprintf(&b, "\tservers {\n\t\texpected_underscore_headers %s\n\t\texpected_dot_headers %s\n\t}\n",
			strings.Join(allowListed.underscore, " "), strings.Join(allowListed.dot, " "))
	}
	b.WriteString(indent(c.Global, "\t"))
	b.WriteString("}\n\n")
	// No `order` line anywhere: okera_auth orders itself after basic_auth.
	fmt.Fprintf(&b, "http://%s {\n\tbind 127.0.0.1\n", gatewayAddr)
	fmt.Fprintf(&b, "\tokera_auth {\n%s\t}\n", indent(c.Auth, "\t\t"))
	fmt.Fprintf(&b, "\treverse_proxy %s {\n", upstreamAddr)
	for _, p := range placeholderHeaders {
		fmt.Fprintf(&b, "\t\theader_up %s %q\n", p.header, p.placeholder)
	}
	b.WriteString("\t}\n")
	b.WriteString(indent(c.Site, "\t"))
	b.WriteString("}\n\n")
	fmt.Fprintf(&b, "http://%s {\n\tbind 127.0.0.1\n\treverse_proxy %s\n}\n", plainAddr, upstreamAddr)
	return b.String()
}

// indent re-indents a block of Caddyfile lines: their common leading
// whitespace is replaced by prefix, so nested blocks keep their shape.
func indent(text, prefix string) string {
	text = strings.Trim(text, "\n")
	if strings.TrimSpace(text) == "" {
		return ""
	}
	lines := strings.Split(text, "\n")
	common := -1
	for _, line := range lines {
		if strings.TrimSpace(line) == "" {
			continue
		}
		n := len(line) - len(strings.TrimLeft(line, "\t "))
		if common < 0 || n < common {
			common = n
		}
	}
	var b strings.Builder
	for _, line := range lines {
		if strings.TrimSpace(line) == "" {
			b.WriteString("\n")
			continue
		}
		b.WriteString(prefix + line[common:] + "\n")
	}
	return b.String()
}

// gateway is a running gateway instance.
type gateway struct {
	*caddyProc
	URL      string // the okera_auth site
	PlainURL string // the same server options, no okera_auth
	Up       *upstream
}

// startGateway starts a gateway in front of a new recording upstream.
func startGateway(t testing.TB, cfg gatewayConfig) *gateway {
	t.Helper()
	return startGatewayEnv(t, cfg)
}

// startGatewayEnv is startGateway for a Caddy whose environment also holds
// env ("NAME=value").
func startGatewayEnv(t testing.TB, cfg gatewayConfig, env ...string) *gateway {
	t.Helper()
	up := startUpstream(t)
	for attempt := 1; ; attempt++ {
		gw, plain, admin := freeAddr(t), freeAddr(t), freeAddr(t)
		proc, err := tryStartCaddy(t, withAdmin(cfg.caddyfile(gw, plain, up.Addr()), admin), "caddyfile", admin, env...)
		if errors.Is(err, errPortTaken) && attempt < 3 {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return &gateway{caddyProc: proc, URL: "http://" + gw + "/data", PlainURL: "http://" + plain + "/data", Up: up}
	}
}

// reject sends a request that must be refused and checks that the upstream
// received nothing.
func (g *gateway) reject(t testing.TB, header http.Header) response {
	t.Helper()
	before := g.Up.Count()
	resp := get(t, g.URL, header)
	if n := g.Up.Count(); n != before {
		t.Errorf("the upstream received %d request(s) for a request answered %d", n-before, resp.Status)
	}
	return resp
}

// accept sends a request that must reach the upstream, and returns what the
// upstream saw.
func (g *gateway) accept(t testing.TB, header http.Header) recordedRequest {
	t.Helper()
	before := g.Up.Count()
	resp := get(t, g.URL, header)
	if resp.Status != http.StatusOK || resp.Body != upstreamBody {
		t.Fatalf("got %d %q, want 200 from the upstream", resp.Status, resp.Body)
	}
	if n := g.Up.Count(); n != before+1 {
		t.Fatalf("the upstream received %d request(s), want 1", n-before)
	}
	return g.Up.Last(t)
}

// challenge is the WWW-Authenticate value expected of a 401.
func challenge(realm string, tokenPresented bool) string {
	c := fmt.Sprintf("Bearer realm=%q", realm)
	if tokenPresented {
		c += `, error="invalid_token"`
	}
	return c
}

// assertNoStore: 401, 403 and 503 answers must not be cached (README "Status
// codes").
func assertNoStore(t testing.TB, resp response) {
	t.Helper()
	if got := resp.Header.Values("Cache-Control"); len(got) != 1 || got[0] != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}

// assertUnauthorized checks a 401: status, challenge (RFC 6750: error=
// only when a token was presented) and Cache-Control.
func assertUnauthorized(t testing.TB, resp response, realm string, tokenPresented bool) {
	t.Helper()
	if resp.Status != http.StatusUnauthorized {
		t.Errorf("status = %d, want 401", resp.Status)
	}
	want := challenge(realm, tokenPresented)
	if got := resp.Header.Values("WWW-Authenticate"); len(got) != 1 || got[0] != want {
		t.Errorf("WWW-Authenticate = %q, want %q", got, want)
	}
	assertNoStore(t, resp)
}

// assertUnavailable checks a 503: a validator could not answer, so the
// gateway fails closed and says when to retry.
func assertUnavailable(t testing.TB, resp response) {
	t.Helper()
	if resp.Status != http.StatusServiceUnavailable {
		t.Errorf("status = %d, want 503", resp.Status)
	}
	ra := resp.Header.Get("Retry-After")
	if ra == "" {
		t.Errorf("no Retry-After on a 503")
	} else if n, err := strconv.Atoi(ra); err != nil || n <= 0 {
		if _, err := http.ParseTime(ra); err != nil {
			t.Errorf("Retry-After = %q, want delay-seconds or an HTTP date", ra)
		}
	}
	assertNoStore(t, resp)
}

// assertForbidden checks a 403.
func assertForbidden(t testing.TB, resp response) {
	t.Helper()
	if resp.Status != http.StatusForbidden {
		t.Errorf("status = %d, want 403", resp.Status)
	}
	assertNoStore(t, resp)
}

// assertIdentity checks the identity headers the upstream got: exactly one
// value each, under the canonical names.
func assertIdentity(t testing.TB, rec recordedRequest, userHeader, groupsHeader, user, groups string) {
	t.Helper()
	if got := rec.Header.Values(userHeader); len(got) != 1 || got[0] != user {
		t.Errorf("upstream %s = %q, want [%q]", userHeader, got, user)
	}
	if got, ok := rec.Header[http.CanonicalHeaderKey(groupsHeader)]; !ok || len(got) != 1 || got[0] != groups {
		t.Errorf("upstream %s = %q (present %v), want [%q]", groupsHeader, got, ok, groups)
	}
}

// assertPlaceholders checks the values header_up copied from the handler's
// placeholders.
func assertPlaceholders(t testing.TB, rec recordedRequest, user, groups, validator, source, tokenID string) {
	t.Helper()
	for i, want := range []string{user, groups, validator, source, tokenID} {
		p := placeholderHeaders[i]
		if got := rec.Header.Get(p.header); got != want {
			t.Errorf("%s = %q, want %q", p.placeholder, got, want)
		}
	}
}

// assertTokenAbsent: the caller's token never reaches the upstream (README
// "Toward the upstream"), in any header or trailer value.
func assertTokenAbsent(t testing.TB, rec recordedRequest, tok string) {
	t.Helper()
	for _, h := range []http.Header{rec.Header, rec.Trailer} {
		for k, vv := range h {
			for _, v := range vv {
				if strings.Contains(v, tok) {
					t.Errorf("the upstream got the caller's token in %s", k)
				}
			}
		}
	}
}

// sameHeaderName folds case, '_' and '.' the way CGI-style back ends do.
func sameHeaderName(a, b string) bool {
	fold := strings.NewReplacer("_", "-", ".", "-")
	return strings.EqualFold(fold.Replace(a), fold.Replace(b))
}

// assertOnlyCanonical: of every spelling of name (any case, '_' or '.'), the
// upstream may see the canonical one only, holding want (or nothing at all
// when want is empty).
func assertOnlyCanonical(t testing.TB, h http.Header, name string, want []string) {
	t.Helper()
	canon := http.CanonicalHeaderKey(name)
	for k, vv := range h {
		if !sameHeaderName(k, name) {
			continue
		}
		if k != canon {
			t.Errorf("the upstream got a spoofed %q = %q", k, vv)
			continue
		}
		if strings.Join(vv, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("the upstream got %s = %q, want %q", k, vv, want)
		}
	}
	if len(want) > 0 && h[canon] == nil {
		t.Errorf("the upstream got no %s, want %q", canon, want)
	}
}

// waitUntil polls cond for up to d.
func waitUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}
