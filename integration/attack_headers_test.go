package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// TestAttackHyphenatedHeaders: identity spoofing under the hyphenated names, in
// any letter case, repeated, through Connection and through trailers (README
// "Security notes"; RFC 9110 §7.6.1 hop-by-hop fields, §6.5 trailers). No
// allow-list here: with one, Caddy itself drops the hyphenated twin of every
// allow-listed name and these cases would prove nothing.
func TestAttackHyphenatedHeaders(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	g := startGateway(t, gatewayConfig{
		NoAllowList: true,
		Global:      "log {\n\tlevel DEBUG\n}",
		Site:        "log",
		Auth:        fmt.Sprintf("public_key %s\nissuer %s\naudience %s\nsystem_token %s", k.A, atkIssuer, atkAudience, k.SystemToken),
	})
	e := &atkEnv{g: g, system: k.System}
	a := rsaKey(t, keyA)
	tok := func() string { return sign(t, a, jwa.RS512, atkClaims("alice", "analysts")) }
	g.accept(t, bearer(tok()))
	e.startBaseline(t)

	with := func(h http.Header, kv ...string) http.Header {
		for i := 0; i+1 < len(kv); i += 2 {
			h[kv[i]] = append(h[kv[i]], kv[i+1])
		}
		return h
	}
	onlyCanonical := func(t *testing.T, _ response, rec *recordedRequest) {
		if rec != nil {
			assertOnlyCanonical(t, rec.Header, "X-Okera-User", []string{"alice"})
			assertOnlyCanonical(t, rec.Header, "X-Okera-Groups", []string{"analysts"})
		}
	}
	ok := func(id, name string, h http.Header) atkCase {
		return atkCase{id: id, name: name, header: h, status: http.StatusOK, wantUser: "alice", wantGroups: "analysts", after: onlyCanonical}
	}
	// A chunked POST with identity trailers; declare names them in the
	// Trailer header (or not, when empty).
	trailers := func(declare string) func(t *testing.T, addr string) response {
		return func(t *testing.T, addr string) response {
			req := "POST /data HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + tok() + "\r\n"
			if declare != "" {
				req += "Trailer: " + declare + "\r\n"
			}
			return rawRequest(t, addr, req+"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"+
				"7\r\npayload\r\n0\r\nX-Okera-User: root\r\nx-okera-groups: admins\r\nX-OKERA-USER: root\r\n\r\n")
		}
	}
	noTrailers := func(t *testing.T, resp response, rec *recordedRequest) {
		onlyCanonical(t, resp, rec)
		if rec == nil {
			return
		}
		for k, v := range rec.Trailer {
			if sameHeaderName(k, "X-Okera-User") || sameHeaderName(k, "X-Okera-Groups") {
				t.Errorf("the upstream got the spoofed trailer %s = %q", k, v)
			}
		}
		if rec.Body != "payload" {
			t.Errorf("the upstream got body %q", rec.Body)
		}
	}
	raw := func(id, name, declare string) atkCase {
		return atkCase{id: id, name: name, raw: trailers(declare), status: http.StatusOK, wantUser: "alice", wantGroups: "analysts", after: noTrailers}
	}

	e.run(t, []atkCase{
		// README "Security notes": every client-sent value, in any letter case,
		// repeated or empty, is replaced by the gateway's one value.
		ok("ATK-200", "X-Okera-User in lower, upper and canonical case", with(bearer(tok()), "x-okera-user", "root", "X-OKERA-USER", "admin", "X-Okera-User", "okera")),
		ok("ATK-201", "X-Okera-Groups repeated three times", with(bearer(tok()), "X-Okera-Groups", "root", "X-Okera-Groups", "admins", "x-okera-groups", "analysts,root")),
		ok("ATK-202", "X-Okera-User with an empty value", with(bearer(tok()), "X-Okera-User", "")),
		// Listing the identity header as hop-by-hop would make the proxy
		// drop the value the gateway sets.
		ok("ATK-203", "Connection: X-Okera-User", with(bearer(tok()), "Connection", "X-Okera-User")),
		ok("ATK-204", "Connection: keep-alive, x-okera-groups, X-OKERA-USER", with(bearer(tok()), "Connection", "keep-alive, x-okera-groups, X-OKERA-USER")),
		ok("ATK-205", "Connection tokens split over two headers", with(bearer(tok()), "Connection", "x-okera-user", "Connection", "X-Okera-Groups")),
		// Refused requests reach nobody, spoofed headers or not.
		{id: "ATK-206", name: "spoofed identity and Connection with an invalid token", status: http.StatusUnauthorized, presented: true,
			header: with(bearer(sign(t, rsaKey(t, keyAttacker), jwa.RS512, atkClaims("alice"))), "X-Okera-User", "root", "Connection", "X-Okera-User")},
		{id: "ATK-207", name: "spoofed identity without a token", status: http.StatusUnauthorized,
			header: http.Header{"X-Okera-User": {"root"}, "X-Okera-Groups": {"admins"}}},
		// README "Security notes" and RFC 9110 §6.5: trailers are client-sent
		// fields; net/http fills them at the body's end, after the handler ran,
		// and merges undeclared ones too.
		raw("ATK-208", "identity trailers declared in Trailer", "X-Okera-User, X-Okera-Groups"),
		raw("ATK-209", "identity trailers sent without being declared", ""),
		raw("ATK-210", "identity trailers behind an innocent declaration", "X-Checksum"),
		// Caddy's own 16 KiB header limit answers first: the handler never
		// parses a megabyte (a max_token_size above ~20 KB needs the
		// servers option max_header_size).
		{id: "ATK-211", name: "1 MB Authorization under Caddy's default header limit: 431", header: bearer(strings.Repeat(".", 1_000_000)),
			status: http.StatusRequestHeaderFieldsTooLarge, maxTime: 2 * time.Second},
	})
	e.finish(t)
}
