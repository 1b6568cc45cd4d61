package caddymodule

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/okeragate/caddy-okera-auth/mint"
)

var (
	testKeyOnce sync.Once
	testKey     *rsa.PrivateKey
)

func rsaKey(t testing.TB) *rsa.PrivateKey {
	testKeyOnce.Do(func() {
		var err error
		if testKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return testKey
}

// fixture writes a public key and a system token and returns a provisioned
// handler using them, plus a signer for callers' tokens.
func fixture(t testing.TB, configure func(h *Handler)) (*Handler, *mint.Signer) {
	t.Helper()
	dir := t.TempDir()
	key := rsaKey(t)
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPath := filepath.Join(dir, "id_rsa.pub")
	if err := os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	signer, err := mint.NewSigner(key, "RS512")
	if err != nil {
		t.Fatal(err)
	}
	sys, _, err := signer.Sign(mint.Claims{Subject: "okera", Groups: []string{"root"}, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	sysPath := filepath.Join(dir, "system.token")
	if err := os.WriteFile(sysPath, []byte(sys+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &Handler{PublicKeys: []PublicKey{{Path: pubPath}}, SystemToken: sysPath}
	if configure != nil {
		configure(h)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := h.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Cleanup() })
	return h, signer
}

func token(t testing.TB, s *mint.Signer, sub string, groups []string) string {
	t.Helper()
	tok, _, err := s.Sign(mint.Claims{Subject: sub, Groups: groups, TTL: time.Hour}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// recorder is the next handler: it keeps the request it was given.
type recorder struct{ got *http.Request }

func (rec *recorder) ServeHTTP(_ http.ResponseWriter, r *http.Request) error {
	rec.got = r
	return nil
}

func serve(h *Handler, r *http.Request) (*httptest.ResponseRecorder, *recorder, *caddy.Replacer, error) {
	repl := caddy.NewReplacer()
	r = r.WithContext(context.WithValue(r.Context(), caddy.ReplacerCtxKey, repl))
	w := httptest.NewRecorder()
	next := new(recorder)
	err := h.ServeHTTP(w, r, next)
	return w, next, repl, err
}

func statusOf(err error) int {
	var he caddyhttp.HandlerError
	if errors.As(err, &he) {
		return he.StatusCode
	}
	return 0
}

func TestServeHTTPAuthenticated(t *testing.T) {
	h, signer := fixture(t, nil)
	tok := token(t, signer, "alice", []string{"Analysts", "analysts", " data "})
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "bearer "+tok)
	r.Header.Set("X-Okera-User", "admin")
	r.Header["X_okera_groups"] = []string{"root"}
	_, next, repl, err := serve(h, r)
	if err != nil {
		t.Fatal(err)
	}
	if next.got == nil {
		t.Fatal("next handler not called")
	}
	hdr := next.got.Header
	if got := hdr.Values("X-Okera-User"); len(got) != 1 || got[0] != "alice" {
		t.Errorf("X-Okera-User = %q", got)
	}
	if got := hdr.Get("X-Okera-Groups"); got != "analysts,data" {
		t.Errorf("X-Okera-Groups = %q", got)
	}
	if _, ok := hdr["X_okera_groups"]; ok {
		t.Error("the underscore spelling reached the upstream")
	}
	if got := hdr.Get("Authorization"); got != h.system.header() || strings.Contains(got, tok) {
		t.Errorf("Authorization = %.30q…, want the system token", got)
	}
	for ph, want := range map[string]string{
		phUser: "alice", phGroups: "analysts,data", phValidator: "public_key", phGroupsSource: "claim",
	} {
		if got, _ := repl.GetString(ph); got != want {
			t.Errorf("{%s} = %q, want %q", ph, got, want)
		}
	}
	if id, _ := repl.GetString(phTokenID); len(id) != 12 {
		t.Errorf("token id %q is not a 12-digit fingerprint", id)
	}
}

func TestServeHTTPRefusals(t *testing.T) {
	h, signer := fixture(t, func(h *Handler) { h.MaxTokenSize = 2000; h.RequiredGroup = "Analysts" })
	good := token(t, signer, "alice", []string{"analysts"})
	outsider := token(t, signer, "bob", []string{"sales"})
	tests := []struct {
		name      string
		auth      []string
		status    int
		challenge string
		reason    string
	}{
		{"no header", nil, 401, `Bearer realm="okera"`, "missing_token"},
		{"basic scheme", []string{"Basic YTpi"}, 401, `Bearer realm="okera"`, "missing_token"},
		{"empty token", []string{"Bearer "}, 401, `Bearer realm="okera", error="invalid_token"`, "empty_token"},
		{"two headers", []string{"Bearer " + good, "Bearer " + good}, 401, `Bearer realm="okera", error="invalid_token"`, "duplicate_authorization"},
		{"too large", []string{"Bearer " + good + strings.Repeat("A", 2000)}, 401, `Bearer realm="okera", error="invalid_token"`, "token_too_large"},
		{"garbage", []string{"Bearer a.b.c"}, 401, `Bearer realm="okera", error="invalid_token"`, ""},
		{"outside required group", []string{"Bearer " + outsider}, 403, "", "not_in_required_group"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header["Authorization"] = tt.auth
			w, next, repl, err := serve(h, r)
			if got := statusOf(err); got != tt.status {
				t.Fatalf("status = %d (%v), want %d", got, err, tt.status)
			}
			if next.got != nil {
				t.Error("the request reached the upstream")
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.challenge)
			}
			if got := w.Header().Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q", got)
			}
			reason, _ := repl.GetString(phError)
			if tt.reason != "" && reason != tt.reason {
				t.Errorf("{%s} = %q, want %q", phError, reason, tt.reason)
			}
			if reason == "" {
				t.Errorf("{%s} is empty", phError)
			}
			if u, _ := repl.GetString(phUser); u != "" {
				t.Errorf("{%s} = %q after a failure", phUser, u)
			}
		})
	}

	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("Authorization", "Bearer "+good)
	if _, next, _, err := serve(h, r); err != nil || next.got == nil {
		t.Fatalf("member of the required group refused: %v", err)
	}
}

// admins are exempt from required_group. By default nobody is: a token
// whose sub happens to be okera is no admin. With accept_system_token the
// system token's sub is (Okera's default).
func TestServeHTTPAdminsExempt(t *testing.T) {
	tests := []struct {
		name         string
		admins       []string
		acceptSystem bool
		sub          string
		groups       []string
		want         int
	}{
		{"no default admin", nil, false, "okera", nil, 403},
		{"with accept_system_token, the system token's sub", nil, true, "okera", nil, 0},
		{"with accept_system_token, another sub", nil, true, "alice", nil, 403},
		{"admin user", []string{"carol"}, false, "carol", nil, 0},
		{"admin group", []string{"DBA"}, false, "dave", []string{"dba"}, 0},
		{"not admin", []string{"carol"}, true, "okera", nil, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, signer := fixture(t, func(h *Handler) {
				h.RequiredGroup = "analysts"
				h.Admins = tt.admins
				h.AcceptSystemToken = tt.acceptSystem
			})
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "Bearer "+token(t, signer, tt.sub, tt.groups))
			_, _, _, err := serve(h, r)
			if got := statusOf(err); got != tt.want {
				t.Fatalf("status = %d (%v), want %d", got, err, tt.want)
			}
		})
	}
}

func TestServeHTTPUpstreamTokenModes(t *testing.T) {
	for _, mode := range []string{UpstreamOriginal, UpstreamNone} {
		t.Run(mode, func(t *testing.T) {
			h, signer := fixture(t, func(h *Handler) { h.UpstreamToken = mode })
			tok := token(t, signer, "alice", nil)
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			_, next, _, err := serve(h, r)
			if err != nil {
				t.Fatal(err)
			}
			got := next.got.Header.Values("Authorization")
			switch mode {
			case UpstreamOriginal:
				if len(got) != 1 || got[0] != "Bearer "+tok {
					t.Errorf("Authorization = %q, want the caller's", got)
				}
			case UpstreamNone:
				if len(got) != 0 {
					t.Errorf("Authorization = %q, want none", got)
				}
			}
			if g := next.got.Header.Values("X-Okera-Groups"); len(g) != 1 || g[0] != "" {
				t.Errorf("X-Okera-Groups = %q, want one empty value", g)
			}
		})
	}
}

func TestProvisionErrors(t *testing.T) {
	dir := t.TempDir()
	expired := filepath.Join(dir, "expired.token")
	signer, _ := mint.NewSigner(rsaKey(t), "RS256")
	tok, _, _ := signer.Sign(mint.Claims{Subject: "okera", TTL: time.Minute}, time.Now().Add(-time.Hour))
	_ = os.WriteFile(expired, []byte(tok), 0o600)
	nosub := filepath.Join(dir, "nosub.token")
	_ = os.WriteFile(nosub, []byte("eyJhbGciOiJSUzI1NiJ9.eyJncm91cHMiOltdfQ.c2ln"), 0o600)
	garbage := filepath.Join(dir, "garbage.token")
	_ = os.WriteFile(garbage, []byte("not a token"), 0o600)
	tests := []struct {
		name string
		h    Handler
		want string
	}{
		{"s3 key", Handler{PublicKeys: []PublicKey{{Path: "s3://bucket/key.pub"}}, UpstreamToken: "none"}, "s3"},
		{"missing key", Handler{PublicKeys: []PublicKey{{Path: filepath.Join(dir, "nope.pub")}}, UpstreamToken: "none"}, "nope.pub"},
		{"bad algorithm", Handler{PublicKeys: []PublicKey{{Path: "x.pub", Algorithm: "HS256"}}, UpstreamToken: "none"}, "HS256"},
		{"expired system token", Handler{RemoteEndpoint: &RemoteEndpoint{URL: "http://127.0.0.1:1/v"}, SystemToken: expired}, "expired"},
		{"system token without sub", Handler{RemoteEndpoint: &RemoteEndpoint{URL: "http://127.0.0.1:1/v"}, SystemToken: nosub}, "sub"},
		{"system token not a JWT", Handler{RemoteEndpoint: &RemoteEndpoint{URL: "http://127.0.0.1:1/v"}, SystemToken: garbage}, "not a JWT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			h := tt.h
			err := h.Provision(ctx)
			_ = h.Cleanup()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Provision error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

// TestCheckConfigErrors: each configuration rule, checked once by
// checkConfig at the top of Provision (README "Configuration errors").
func TestCheckConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		h    Handler
		want string
	}{
		{"no validator", Handler{UpstreamToken: "none", OnResolverError: "deny"}, "needs a remote_endpoint or at least one public_key"},
		{"system mode without token", Handler{PublicKeys: []PublicKey{{Path: "a"}}, UpstreamToken: "system", OnResolverError: "deny"}, "needs system_token"},
		{"ldap listed, not configured", Handler{PublicKeys: []PublicKey{{Path: "a"}}, UpstreamToken: "none", GroupResolvers: []string{"claim", "ldap"}, OnResolverError: "deny"}, "no ldap block"},
		{"endpoint listed, not configured", Handler{PublicKeys: []PublicKey{{Path: "a"}}, UpstreamToken: "none", GroupResolvers: []string{"endpoint"}}, "no groups_endpoint"},
		{"unknown resolver", Handler{PublicKeys: []PublicKey{{Path: "a"}}, UpstreamToken: "none", GroupResolvers: []string{"claims"}}, "unknown resolver"},
		{"same header twice", Handler{PublicKeys: []PublicKey{{Path: "a"}}, UpstreamToken: "none", OnResolverError: "deny", UserHeader: "X-A", GroupsHeader: "x-a"}, "name the same header"},
		{"headers that fold together", Handler{PublicKeys: []PublicKey{{Path: "a"}}, UpstreamToken: "none", UserHeader: "X_Okera_User", GroupsHeader: "X-Okera.User"}, "name the same header"},
		{"authorization as identity header", Handler{PublicKeys: []PublicKey{{Path: "a"}}, UpstreamToken: "none", OnResolverError: "deny", UserHeader: "Authorization", GroupsHeader: "X-G"}, "cannot be an identity header"},
		{"folded authorization as identity header", Handler{PublicKeys: []PublicKey{{Path: "a"}}, UpstreamToken: "none", GroupsHeader: "AUTHORIZATION"}, "cannot be an identity header"},
		{"header name with a space", Handler{PublicKeys: []PublicKey{{Path: "a"}}, UpstreamToken: "none", UserHeader: "X Okera"}, "not a valid header name"},
		{"audience is the minted audience", Handler{PublicKeys: []PublicKey{{Path: "a"}}, UpstreamToken: "none", Audiences: []string{"okera-upstream"}}, "minted_audience"},
		{"negative max_in_flight", Handler{RemoteEndpoint: &RemoteEndpoint{URL: "https://auth/v", MaxInFlight: -1}, UpstreamToken: "none"}, "max_in_flight"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.h
			h.applyDefaults()
			if err := h.checkConfig(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("checkConfig = %v, want %q", err, tt.want)
			}
		})
	}
}

// BenchmarkServeHTTPCached is the gateway's steady state: a token seen
// before, groups from its claim, the system token upstream.
func BenchmarkServeHTTPCached(b *testing.B) {
	h, signer := fixture(b, nil)
	tok := token(b, signer, "alice", []string{"analysts", "data"})
	auth := "Bearer " + tok
	repl := caddy.NewReplacer()
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	base := httptest.NewRequest("GET", "/", nil)
	base = base.WithContext(context.WithValue(base.Context(), caddy.ReplacerCtxKey, repl))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := *base
		r.Header = http.Header{"Authorization": {auth}, "Accept": {"*/*"}}
		if err := h.ServeHTTP(w, &r, next); err != nil {
			b.Fatal(err)
		}
	}
}

// The steady state (a token seen before, groups from its claim) stays cheap:
// the bound is 10 allocations per request inside the handler.
func TestServeHTTPCachedAllocations(t *testing.T) {
	h, signer := fixture(t, nil)
	auth := "Bearer " + token(t, signer, "alice", []string{"analysts"})
	repl := caddy.NewReplacer()
	w := httptest.NewRecorder()
	next := caddyhttp.HandlerFunc(func(http.ResponseWriter, *http.Request) error { return nil })
	base := httptest.NewRequest("GET", "/", nil)
	base = base.WithContext(context.WithValue(base.Context(), caddy.ReplacerCtxKey, repl))
	hdr := http.Header{}
	allocs := testing.AllocsPerRun(200, func() {
		r := *base
		clear(hdr)
		hdr["Authorization"] = []string{auth}
		r.Header = hdr
		if err := h.ServeHTTP(w, &r, next); err != nil {
			t.Fatal(err)
		}
	})
	// One of them is the test's own Authorization slice.
	if allocs > 10 {
		t.Errorf("cached ServeHTTP allocates %v times per request, want at most 10", allocs)
	}
}

// Groups are kept with a cached identity only when they depend on the token
// alone: when the claim is empty and the group endpoint answers, the
// endpoint is asked again (here its cache is off).
func TestServeHTTPDerivedOnlyFromToken(t *testing.T) {
	var calls int
	groups := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		w.Write([]byte(`["from-endpoint"]`))
	}))
	defer groups.Close()
	off := caddy.Duration(0)
	h, signer := fixture(t, func(h *Handler) {
		h.GroupsEndpoint = &GroupsEndpoint{URL: groups.URL, CacheTTL: &off}
	})
	withClaim := token(t, signer, "alice", []string{"analysts"})
	without := token(t, signer, "bob", nil)
	for range 3 {
		for _, tok := range []string{withClaim, without} {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Authorization", "Bearer "+tok)
			if _, next, _, err := serve(h, r); err != nil || next.got == nil {
				t.Fatalf("request refused: %v", err)
			}
		}
	}
	if calls != 3 {
		t.Errorf("group endpoint called %d times, want 3 (once per request without a groups claim)", calls)
	}
}

// readSpy counts reads of a request body.
type readSpy struct{ reads int }

func (s *readSpy) Read(p []byte) (int, error) { s.reads++; return 0, io.EOF }
func (s *readSpy) Close() error               { return nil }

// README "Security notes": the request body is never read, whether the request
// is accepted or refused (and with trailers announced, when the body gets
// wrapped).
func TestServeHTTPNeverReadsBody(t *testing.T) {
	h, signer := fixture(t, nil)
	good := "Bearer " + token(t, signer, "alice", nil)
	for _, auth := range []string{good, "Bearer a.b.c", ""} {
		for _, trailer := range []http.Header{nil, {"X-Okera-User": nil}} {
			spy := new(readSpy)
			r := httptest.NewRequest("POST", "/", nil)
			r.Body = spy
			r.Trailer = trailer
			if auth != "" {
				r.Header.Set("Authorization", auth)
			}
			_, _, _, _ = serve(h, r)
			if spy.reads != 0 {
				t.Errorf("Authorization %.12q, trailer %v: body read %d times", auth, trailer, spy.reads)
			}
		}
	}
}
