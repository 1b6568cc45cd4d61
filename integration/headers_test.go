package integration

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// spoofed finds the values the upstream got under any spelling of name
// other than the canonical one.
func spoofed(h http.Header, name string) map[string][]string {
	out := map[string][]string{}
	for k, vv := range h {
		if sameHeaderName(k, name) && k != http.CanonicalHeaderKey(name) {
			out[k] = vv
		}
	}
	return out
}

// TestCaddyHeaderAllowList pins down what Caddy 2.11.9 does on its own,
// without okera_auth, so the spoofing tests below know what they prove:
// with expected_underscore_headers / expected_dot_headers, the allow-listed
// `_` and `.` names pass and their hyphenated twin is dropped; without
// them, `_` and `.` names are dropped and the hyphenated name passes.
func TestCaddyHeaderAllowList(t *testing.T) {
	t.Parallel()
	caddyBinary(t)
	up := startUpstream(t)
	spoof := http.Header{"X_Okera_User": {"u"}, "X.Okera.User": {"d"}, "X-Okera-User": {"h"}}
	for _, c := range []struct {
		name   string
		global string
		want   map[string]string // canonical name received -> value; others absent
	}{
		{"allow-listed", fmt.Sprintf("{\n\tservers {\n\t\texpected_underscore_headers %s\n\t\texpected_dot_headers %s\n\t}\n}\n",
			strings.Join(allowListed.underscore, " "), strings.Join(allowListed.dot, " ")),
			map[string]string{"X_okera_user": "u", "X.okera.user": "d"}},
		{"default", "", map[string]string{"X-Okera-User": "h"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := freeAddr(t)
			startCaddy(t, c.global+fmt.Sprintf("http://%s {\n\tbind 127.0.0.1\n\treverse_proxy %s\n}\n", addr, up.Addr()))
			if resp := get(t, "http://"+addr+"/", spoof); resp.Status != 200 {
				t.Fatalf("status %d", resp.Status)
			}
			got := map[string]string{}
			for k, vv := range up.Last(t).Header {
				if sameHeaderName(k, "X-Okera-User") {
					got[k] = strings.Join(vv, ",")
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(c.want) {
				t.Errorf("Caddy passed %v, want %v", got, c.want)
			}
		})
	}
}

// TestSpoofedUnderscoreAndDotHeaders: a client sends X_Okera_User and
// X.Okera.User, which CGI, PHP and WSGI back ends fold into the same variable
// as X-Okera-User (README "Security notes"). The server allow-lists those
// names, so Caddy keeps them and only the handler can strip them.
func TestSpoofedUnderscoreAndDotHeaders(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf("public_key %s\nsystem_token %s", k.A, k.SystemToken)})
	spoof := http.Header{
		"X_Okera_User":   {"mallory"},
		"X.Okera.User":   {"mallory"},
		"x_okera_groups": {"admins"},
		"X.OKERA.GROUPS": {"admins"},
	}
	withSpoof := func(h http.Header) http.Header {
		for k, v := range spoof {
			h[k] = v
		}
		return h
	}

	t.Run("control: without okera_auth the allow-listed spellings reach the upstream", func(t *testing.T) {
		// Otherwise the tests below would prove nothing about the handler.
		before := g.Up.Count()
		resp := get(t, g.PlainURL, withSpoof(http.Header{}))
		if resp.Status != 200 || g.Up.Count() != before+1 {
			t.Fatalf("plain site: %d, upstream count %d -> %d", resp.Status, before, g.Up.Count())
		}
		rec := g.Up.Last(t)
		if got := spoofed(rec.Header, "X-Okera-User"); len(got) != 2 {
			t.Errorf("plain reverse_proxy passed %v of the X-Okera-User spellings, want both _ and .; is the allow-list in effect?", got)
		}
		if got := spoofed(rec.Header, "X-Okera-Groups"); len(got) != 2 {
			t.Errorf("plain reverse_proxy passed %v of the X-Okera-Groups spellings, want both", got)
		}
	})

	t.Run("valid token: the upstream sees only the gateway's values", func(t *testing.T) {
		tok := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice", "analysts"))
		rec := g.accept(t, withSpoof(bearer(tok)))
		assertOnlyCanonical(t, rec.Header, "X-Okera-User", []string{"alice"})
		assertOnlyCanonical(t, rec.Header, "X-Okera-Groups", []string{"analysts"})
	})

	t.Run("no token: 401, the upstream sees nothing", func(t *testing.T) {
		assertUnauthorized(t, g.reject(t, withSpoof(http.Header{})), "okera", false)
	})

	t.Run("invalid token: 401, the upstream sees nothing", func(t *testing.T) {
		tok := sign(t, rsaKey(t, keyAttacker), jwa.RS512, userClaims("alice"))
		assertUnauthorized(t, g.reject(t, withSpoof(bearer(tok))), "okera", true)
	})
}

// TestSpoofedHyphenatedHeaders: X-Okera-User in any letter case, and the
// Connection trick (README "Security notes"). No allow-list here: with one,
// Caddy itself drops the hyphenated twin of every allow-listed name, and the
// test would prove nothing about the handler.
func TestSpoofedHyphenatedHeaders(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	g := startGateway(t, gatewayConfig{
		NoAllowList: true,
		Auth:        fmt.Sprintf("public_key %s\nsystem_token %s", k.A, k.SystemToken),
	})
	token := func() string {
		return sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice", "analysts"))
	}

	t.Run("control: without okera_auth X-Okera-User reaches the upstream", func(t *testing.T) {
		resp := get(t, g.PlainURL, http.Header{"X-Okera-User": {"mallory"}, "x-okera-user": {"eve"}})
		if resp.Status != 200 {
			t.Fatalf("plain site: %d", resp.Status)
		}
		if got := g.Up.Last(t).Header.Values("X-Okera-User"); len(got) != 2 {
			t.Errorf("plain reverse_proxy passed X-Okera-User = %q, want both spoofed values", got)
		}
	})

	t.Run("valid token: spoofed values in any case are replaced", func(t *testing.T) {
		h := bearer(token())
		h["X-Okera-User"] = []string{"mallory"}
		h["x-okera-user"] = []string{"eve"}
		h["X-OKERA-USER"] = []string{"root"}
		h["X-Okera-Groups"] = []string{"admins"}
		h["x-okera-groups"] = []string{"root"}
		rec := g.accept(t, h)
		assertOnlyCanonical(t, rec.Header, "X-Okera-User", []string{"alice"})
		assertOnlyCanonical(t, rec.Header, "X-Okera-Groups", []string{"analysts"})
	})

	t.Run("control: Connection makes a plain proxy drop a header", func(t *testing.T) {
		// The attack: list the identity header as hop-by-hop so the proxy
		// removes the value the gateway sets.
		resp := get(t, g.PlainURL, http.Header{"Connection": {"X-Okera-User"}, "X-Okera-User": {"alice"}})
		if resp.Status != 200 {
			t.Fatalf("plain site: %d", resp.Status)
		}
		if got := g.Up.Last(t).Header.Values("X-Okera-User"); len(got) != 0 {
			t.Errorf("plain reverse_proxy kept X-Okera-User = %q although Connection named it", got)
		}
	})

	for _, conn := range []string{"X-Okera-User", "keep-alive, x-okera-user, X-Okera-Groups", "X_Okera_User, X.Okera.Groups"} {
		t.Run("valid token: Connection: "+conn+" cannot drop the gateway's headers", func(t *testing.T) {
			h := bearer(token())
			h["Connection"] = []string{conn}
			rec := g.accept(t, h)
			assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "alice", "analysts")
		})
	}

	t.Run("no token: 401, the upstream sees nothing", func(t *testing.T) {
		h := http.Header{"X-Okera-User": {"mallory"}, "X-Okera-Groups": {"admins"}, "Connection": {"X-Okera-User"}}
		assertUnauthorized(t, g.reject(t, h), "okera", false)
	})

	t.Run("control: without okera_auth request trailers reach the upstream", func(t *testing.T) {
		rec := postWithTrailers(t, g, g.PlainURL, http.Header{})
		if got := rec.Trailer.Get("X-Okera-User"); got != "mallory" {
			t.Errorf("plain reverse_proxy passed trailer X-Okera-User = %q, want mallory", got)
		}
	})

	t.Run("valid token: spoofed request trailers do not reach the upstream", func(t *testing.T) {
		// Every client-sent value of the identity headers is removed, and a
		// trailer field is one: a back end that merges trailers into its
		// headers would otherwise read the attacker's identity.
		rec := postWithTrailers(t, g, g.URL, bearer(token()))
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "alice", "analysts")
		for k, vv := range rec.Trailer {
			if sameHeaderName(k, "X-Okera-User") || sameHeaderName(k, "X-Okera-Groups") {
				t.Errorf("the upstream got the spoofed trailer %s = %q", k, vv)
			}
		}
	})
}

// postWithTrailers POSTs a chunked body followed by spoofed identity
// trailers and returns what the upstream saw.
func postWithTrailers(t testing.TB, g *gateway, url string, header http.Header) recordedRequest {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, io.NopCloser(strings.NewReader("payload")))
	if err != nil {
		t.Fatal(err)
	}
	for k, vv := range header {
		req.Header[k] = vv
	}
	req.ContentLength = -1
	req.Trailer = http.Header{"X-Okera-User": {"mallory"}, "X-Okera-Groups": {"admins"}}
	before := g.Up.Count()
	resp := do(t, req)
	if resp.Status != 200 || g.Up.Count() != before+1 {
		t.Fatalf("POST with trailers: %d %q, upstream count %d -> %d", resp.Status, resp.Body, before, g.Up.Count())
	}
	rec := g.Up.Last(t)
	if rec.Body != "payload" {
		t.Errorf("the upstream got body %q, want the client's", rec.Body)
	}
	return rec
}

// TestCustomHeadersAndOriginalToken: user_header and groups_header rename the
// identity headers and are stripped the same way; upstream_token original
// passes the caller's Authorization through unchanged (README "Toward the
// upstream").
func TestCustomHeadersAndOriginalToken(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	// No system_token: upstream_token original does not need one.
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf(`
		public_key %s
		upstream_token original
		user_header X-Remote-User
		groups_header X-Remote-Groups
	`, k.A)})
	spoof := func(h http.Header) http.Header {
		h["X_Remote_User"] = []string{"mallory"}
		h["X.Remote.User"] = []string{"mallory"}
		h["x_remote_groups"] = []string{"admins"}
		h["X.Remote.Groups"] = []string{"admins"}
		return h
	}

	t.Run("control: without okera_auth the spellings reach the upstream", func(t *testing.T) {
		get(t, g.PlainURL, spoof(http.Header{}))
		rec := g.Up.Last(t)
		if got := spoofed(rec.Header, "X-Remote-User"); len(got) != 2 {
			t.Errorf("plain reverse_proxy passed %v, want both spellings of X-Remote-User", got)
		}
	})

	t.Run("valid token: custom headers carry the identity, the token is passed as sent", func(t *testing.T) {
		tok := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice", "Analysts"))
		// The lower-case scheme shows the header is passed unchanged.
		h := spoof(http.Header{"Authorization": {"bearer " + tok}})
		rec := g.accept(t, h)
		assertOnlyCanonical(t, rec.Header, "X-Remote-User", []string{"alice"})
		assertOnlyCanonical(t, rec.Header, "X-Remote-Groups", []string{"analysts"})
		if got := rec.Header.Values("Authorization"); len(got) != 1 || got[0] != "bearer "+tok {
			t.Errorf("upstream Authorization = %q, want the caller's header unchanged", got)
		}
		for _, name := range []string{"X-Okera-User", "X-Okera-Groups"} {
			if v, ok := rec.Header[name]; ok {
				t.Errorf("the gateway set %s = %q although user_header/groups_header rename it", name, v)
			}
		}
	})

	t.Run("no token: 401, the upstream sees nothing", func(t *testing.T) {
		assertUnauthorized(t, g.reject(t, spoof(http.Header{})), "okera", false)
	})
}

// TestUpstreamTokenNone: no Authorization reaches the upstream, and custom
// hyphenated header names are stripped in any case and from Connection.
func TestUpstreamTokenNone(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	g := startGateway(t, gatewayConfig{NoAllowList: true, Auth: fmt.Sprintf(`
		public_key %s
		upstream_token none
		user_header X-Remote-User
		groups_header X-Remote-Groups
	`, k.A)})

	t.Run("control: without okera_auth X-Remote-User reaches the upstream", func(t *testing.T) {
		get(t, g.PlainURL, http.Header{"X-Remote-User": {"mallory"}})
		if got := g.Up.Last(t).Header.Get("X-Remote-User"); got != "mallory" {
			t.Errorf("plain reverse_proxy passed X-Remote-User = %q", got)
		}
	})

	t.Run("valid token: identity set, no Authorization at all", func(t *testing.T) {
		tok := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice", "analysts"))
		h := bearer(tok)
		h["x-remote-user"] = []string{"mallory"}
		h["X-REMOTE-GROUPS"] = []string{"admins"}
		h["Connection"] = []string{"X-Remote-User"}
		rec := g.accept(t, h)
		assertOnlyCanonical(t, rec.Header, "X-Remote-User", []string{"alice"})
		assertOnlyCanonical(t, rec.Header, "X-Remote-Groups", []string{"analysts"})
		if v, ok := rec.Header["Authorization"]; ok {
			t.Errorf("upstream_token none: the upstream got Authorization = %q", v)
		}
		assertTokenAbsent(t, rec, tok)
	})

	t.Run("no token: 401, the upstream sees nothing", func(t *testing.T) {
		assertUnauthorized(t, g.reject(t, http.Header{"X-Remote-User": {"mallory"}}), "okera", false)
	})
}
