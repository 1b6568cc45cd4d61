package caddymodule

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/okeragate/caddy-okera-auth/mint"
	"github.com/okeragate/caddy-okera-auth/validator"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newTestMinter(t *testing.T, s *mint.Signer, ttl time.Duration, clk *testClock) *minter {
	t.Helper()
	m, err := newMinter(func() *mint.Signer { return s }, ttl, DefaultMintedAudience, clk.now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.close)
	return m
}

// A minted upstream token carries sub, groups, iss caddy-okera-auth, iat,
// nbf, exp = now + ttl, aud = minted_audience, and the signing key's RFC
// 7638 thumbprint as kid.
func TestMintedTokenClaims(t *testing.T) {
	key := ownKey(t, 0)
	s := newSigner(t, key, "RS512")
	clk := &testClock{t: time.Now().Truncate(time.Second)}
	m := newTestMinter(t, s, 5*time.Minute, clk)

	bearer, err := m.bearer("alice", []string{"analysts", "data"})
	if err != nil {
		t.Fatal(err)
	}
	tok, hdr := parseVerified(t, strings.TrimPrefix(bearer, "Bearer "), &key.PublicKey, jwa.RS512)
	kid, err := mint.Thumbprint(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if hdr.KeyID() != kid {
		t.Errorf("kid = %q, want the thumbprint %q", hdr.KeyID(), kid)
	}
	if hdr.Algorithm() != jwa.RS512 {
		t.Errorf("alg = %s", hdr.Algorithm())
	}
	if tok.Subject() != "alice" || tok.Issuer() != mint.Issuer {
		t.Errorf("sub %q iss %q", tok.Subject(), tok.Issuer())
	}
	// The audience marks the token as the gateway's, so it is refused if
	// an upstream ever presents it back.
	if aud := tok.Audience(); len(aud) != 1 || aud[0] != DefaultMintedAudience {
		t.Errorf("aud %q, want [%q]", aud, DefaultMintedAudience)
	}
	now := clk.now()
	if !tok.IssuedAt().Equal(now) || !tok.NotBefore().Equal(now) || !tok.Expiration().Equal(now.Add(5*time.Minute)) {
		t.Errorf("iat %s nbf %s exp %s, want %s and exp 5m later", tok.IssuedAt(), tok.NotBefore(), tok.Expiration(), now)
	}
	g, _ := tok.Get("groups")
	if list, ok := g.([]any); !ok || len(list) != 2 || list[0] != "analysts" || list[1] != "data" {
		t.Errorf("groups = %#v", g)
	}

	// No groups: an explicit empty list, so the upstream knows there are none.
	bearer, _ = m.bearer("bob", []string{})
	tok, _ = parseVerified(t, strings.TrimPrefix(bearer, "Bearer "), &key.PublicKey, jwa.RS512)
	if g, ok := tok.Get("groups"); !ok || len(g.([]any)) != 0 {
		t.Errorf("groups of a user without groups = %#v (present %v)", g, ok)
	}
}

// The token is reused for the same user and groups until 80% of its life,
// then re-minted; another group set or user gets its own.
func TestMintedTokenReuse(t *testing.T) {
	s := newSigner(t, ownKey(t, 0), "RS256")
	clk := &testClock{t: time.Now().Truncate(time.Second)}
	m := newTestMinter(t, s, 100*time.Second, clk)

	first, _ := m.bearer("alice", []string{"a", "b"})
	clk.advance(79 * time.Second)
	if again, _ := m.bearer("alice", []string{"a", "b"}); again != first {
		t.Fatal("re-minted before 80% of the token's life")
	}
	if n := m.signs.Load(); n != 1 {
		t.Fatalf("%d signatures, want 1", n)
	}
	// Another group set, another user, a split that concatenates the same.
	for _, c := range []struct {
		user   string
		groups []string
	}{{"alice", []string{"a"}}, {"alice", []string{"b", "a"}}, {"alice", []string{"a,b"}}, {"alicea", []string{"b"}}, {"bob", []string{"a", "b"}}} {
		if other, _ := m.bearer(c.user, c.groups); other == first {
			t.Errorf("%s %v got alice's [a b] token", c.user, c.groups)
		}
	}
	base := m.signs.Load()
	clk.advance(2 * time.Second) // 81 s: past 80%
	renewed, _ := m.bearer("alice", []string{"a", "b"})
	if renewed == first {
		t.Fatal("not re-minted after 80% of the token's life")
	}
	if n := m.signs.Load() - base; n != 1 {
		t.Fatalf("%d signatures for the renewal, want 1", n)
	}
	tok, err := jwt.ParseInsecure([]byte(strings.TrimPrefix(renewed, "Bearer ")))
	if err != nil {
		t.Fatal(err)
	}
	if !tok.IssuedAt().Equal(clk.now()) {
		t.Errorf("renewed token iat %s, want %s", tok.IssuedAt(), clk.now())
	}
}

// A burst of requests for a new user and group set signs once.
func TestMintedTokenSingleflight(t *testing.T) {
	s := newSigner(t, ownKey(t, 0), "RS512")
	m := newTestMinter(t, s, 5*time.Minute, &testClock{t: time.Now()})
	var wg sync.WaitGroup
	start := make(chan struct{})
	tokens := make([]string, 64)
	for i := range tokens {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			tokens[i], _ = m.bearer("carol", []string{"x"})
		}()
	}
	close(start)
	wg.Wait()
	if n := m.signs.Load(); n != 1 {
		t.Fatalf("%d signatures for a burst of 64, want 1", n)
	}
	for _, tok := range tokens {
		if tok != tokens[0] || tok == "" {
			t.Fatal("callers of one burst got different tokens")
		}
	}
}

// The hit path is on every request: it must not allocate.
func TestMintedTokenHitAllocations(t *testing.T) {
	s := newSigner(t, ownKey(t, 0), "RS512")
	m := newTestMinter(t, s, 5*time.Minute, &testClock{t: time.Now()})
	groups := []string{"analysts", "data-engineers", "finance"}
	if _, err := m.bearer("alice@example.com", groups); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := m.bearer("alice@example.com", groups); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 0 {
		t.Errorf("a cached minted token costs %.1f allocations per request, want 0", allocs)
	}
	if m.signs.Load() != 1 {
		t.Errorf("signed %d times", m.signs.Load())
	}
}

func BenchmarkMintedTokenHit(b *testing.B) {
	s := newSigner(b, ownKey(b, 0), "RS512")
	m, err := newMinter(func() *mint.Signer { return s }, 5*time.Minute, DefaultMintedAudience, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	defer m.close()
	groups := []string{"analysts", "data"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.bearer("alice", groups); err != nil {
			b.Fatal(err)
		}
	}
}

// upstream_token minted: the upstream gets a token for the caller's user
// and groups, signed by signing_key, which the gateway itself accepts (its
// public half is trusted automatically); the caller's token never reaches
// the upstream.
func TestUpstreamTokenMinted(t *testing.T) {
	dir := t.TempDir()
	gw, idp := ownKey(t, 0), ownKey(t, 1)
	h := provisioned(t, &Handler{
		PublicKeys:    []PublicKey{{Path: writeTestFile(t, dir, "idp.pub", spkiPEM(t, idp))}},
		SigningKey:    &SigningKey{Path: writeTestFile(t, dir, "id_rsa", privatePEM(t, gw)), Algorithm: "RSA256"},
		UpstreamToken: UpstreamMinted,
	})
	caller := signFor(t, newSigner(t, idp, "RS512"), "alice", "Analysts", "data")
	got, err := through(t, h, caller)
	if err != nil {
		t.Fatal(err)
	}
	minted := bearerToken(t, got)
	if minted == caller {
		t.Fatal("the caller's token reached the upstream")
	}
	tok, _ := parseVerified(t, minted, &gw.PublicKey, jwa.RS256)
	if g, _ := tok.Get("groups"); tok.Subject() != "alice" || len(g.([]any)) != 2 || g.([]any)[0] != "analysts" {
		t.Errorf("minted sub %q groups %v", tok.Subject(), g)
	}
	// The same caller again: the same minted token.
	got, _ = through(t, h, caller)
	if bearerToken(t, got) != minted {
		t.Error("the minted token was not reused")
	}
	// Its signature verifies with the gateway's own key, yet the gateway
	// refuses it: an upstream must not replay what it was given.
	_, err = h.validate.Validate(t.Context(), minted)
	var verr *validator.Error
	if !errors.As(err, &verr) || verr.Reason != validator.ReasonGatewayToken {
		t.Fatalf("the gateway's own minted token: %v, want reason %s", err, validator.ReasonGatewayToken)
	}
	// Without a system_token the gateway minted its own (sub okera,
	// groups [root], 1 h); without accept_system_token it is no admin.
	sys, _ := parseVerified(t, h.system.value(), &gw.PublicKey, jwa.RS256)
	if g, _ := sys.Get("groups"); sys.Subject() != "okera" || len(g.([]any)) != 1 || g.([]any)[0] != "root" {
		t.Errorf("self-minted system token sub %q groups %v", sys.Subject(), g)
	}
	if life := sys.Expiration().Sub(sys.IssuedAt()); life != time.Hour {
		t.Errorf("self-minted system token life %s, want 1h", life)
	}
	if h.isAdmin("okera", nil) {
		t.Error("okera is an admin without accept_system_token")
	}
	if h.isSystemToken(h.system.value()) != true {
		t.Error("the self-minted system token is not refused from callers")
	}
}

// With signing_key and no system_token, the system token is renewed at 80%
// of its life, and upstream_token system sends the renewed one.
func TestSelfMintedSystemTokenRenewal(t *testing.T) {
	dir := t.TempDir()
	gw := ownKey(t, 0)
	h := provisioned(t, &Handler{
		SigningKey:     &SigningKey{Path: writeTestFile(t, dir, "id_rsa", privatePEM(t, gw))},
		SystemTokenTTL: caddy.Duration(2 * time.Second),
	})
	caller := signFor(t, newSigner(t, gw, "RS512"), "alice")
	got, err := through(t, h, caller)
	if err != nil {
		t.Fatal(err)
	}
	first := bearerToken(t, got)
	if first != h.system.value() {
		t.Fatal("upstream_token system did not send the self-minted token")
	}
	deadline := time.Now().Add(5 * time.Second)
	for h.system.value() == first {
		if time.Now().After(deadline) {
			t.Fatal("the self-minted system token was not renewed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	got, _ = through(t, h, caller)
	if renewed := bearerToken(t, got); renewed == first {
		t.Error("the upstream still gets the old system token")
	} else {
		tok, _ := parseVerified(t, renewed, &gw.PublicKey, jwa.RS512)
		if tok.Subject() != "okera" {
			t.Errorf("renewed token sub %q", tok.Subject())
		}
	}
}

func TestOwnKeysCaddyfile(t *testing.T) {
	var h Handler
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`okera_auth {
		signing_key file:///keys/id_rsa rs256
		upstream_token minted
		minted_token_ttl 2m
		jwks_url https://idp.example.com/.well-known/jwks.json
		jwks_url https://other.example.com/keys 1h
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if h.SigningKey == nil || h.SigningKey.Path != "file:///keys/id_rsa" || h.SigningKey.Algorithm != "rs256" {
		t.Errorf("signing_key = %+v", h.SigningKey)
	}
	if h.UpstreamToken != UpstreamMinted || h.MintedTokenTTL != caddy.Duration(2*time.Minute) {
		t.Errorf("upstream_token %q minted_token_ttl %s", h.UpstreamToken, time.Duration(h.MintedTokenTTL))
	}
	want := []JWKSURL{{URL: "https://idp.example.com/.well-known/jwks.json"}, {URL: "https://other.example.com/keys", Refresh: caddy.Duration(time.Hour)}}
	if len(h.JWKS) != 2 || h.JWKS[0] != want[0] || h.JWKS[1] != want[1] {
		t.Errorf("jwks = %+v", h.JWKS)
	}

	for _, c := range []struct{ input, want string }{
		{"signing_key", "wrong argument count"},
		{"signing_key a RS256 b", "wrong argument count"},
		{"signing_key a HS256", "unsupported algorithm"},
		{"signing_key a\n\tsigning_key b", "signing_key given twice"},
		{"minted_token_ttl soon", "invalid duration"},
		{"jwks_url", "wrong argument count"},
		{"jwks_url ftp://idp/keys", "http:// or https://"},
		{"jwks_url https://idp/keys 10s", "under the minimum of 1m"},
		{"jwks_url https://idp/keys often", "invalid refresh duration"},
	} {
		var h Handler
		err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("okera_auth {\n\t" + c.input + "\n}"))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.input, err, c.want)
		}
	}
}

func TestOwnKeysValidate(t *testing.T) {
	key := PublicKey{Path: "/k.pub"}
	for _, c := range []struct {
		name string
		h    Handler
		want string
	}{
		{"minted without signing_key", Handler{PublicKeys: []PublicKey{key}, UpstreamToken: UpstreamMinted}, "upstream_token minted needs signing_key"},
		{"system without token or key", Handler{PublicKeys: []PublicKey{key}, UpstreamToken: UpstreamSystem}, "system_token"},
		{"tiny minted ttl", Handler{SigningKey: &SigningKey{Path: "/k"}, UpstreamToken: UpstreamMinted, MintedTokenTTL: caddy.Duration(time.Millisecond)}, "minted_token_ttl"},
		{"jwks refresh", Handler{JWKS: []JWKSURL{{URL: "https://idp/k", Refresh: caddy.Duration(time.Second)}}, UpstreamToken: UpstreamNone}, "under the minimum"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := c.h
			h.applyDefaults()
			if err := h.checkConfig(); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("checkConfig = %v, want %q", err, c.want)
			}
		})
	}
	// A signing_key alone is enough: it validates tokens and mints the
	// system token.
	h := Handler{SigningKey: &SigningKey{Path: "/k"}}
	h.applyDefaults()
	if err := h.checkConfig(); err != nil {
		t.Errorf("signing_key alone: %v", err)
	}
	h = Handler{JWKS: []JWKSURL{{URL: "https://idp/k"}}, UpstreamToken: UpstreamOriginal}
	h.applyDefaults()
	if err := h.checkConfig(); err != nil {
		t.Errorf("jwks_url alone: %v", err)
	}
}
