package validator

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// idp is an identity provider's JWKS endpoint whose answer the test sets,
// counting the fetches it receives.
type idp struct {
	srv      *httptest.Server
	mu       sync.Mutex
	status   int
	body     []byte
	location string // sent as Location when set
	auth     string // the Authorization header of the latest fetch
	hits     atomic.Int64
}

func newIdP(t *testing.T) *idp {
	t.Helper()
	p := &idp{status: http.StatusOK, body: []byte(`{"keys":[]}`)}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.hits.Add(1)
		p.mu.Lock()
		status, body, location := p.status, p.body, p.location
		p.auth = r.Header.Get("Authorization")
		p.mu.Unlock()
		if location != "" {
			w.Header().Set("Location", location)
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.WriteHeader(status)
		w.Write(body)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *idp) set(status int, body []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status, p.body, p.location = status, body, ""
}

// redirect makes every later fetch answer status with Location: to.
func (p *idp) redirect(status int, to string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.status, p.body, p.location = status, nil, to
}

// lastAuth is the Authorization header the latest fetch carried.
func (p *idp) lastAuth() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.auth
}

// jwkOpt describes one key of a test JWK Set.
type jwkOpt struct {
	kid, alg, use string
	ops           []string
}

func jwkSet(t *testing.T, keys map[any]jwkOpt) []byte {
	t.Helper()
	set := jwk.NewSet()
	// Deterministic order: by kid.
	type pair struct {
		raw any
		opt jwkOpt
	}
	var pairs []pair
	for raw, opt := range keys {
		pairs = append(pairs, pair{raw, opt})
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if a.opt.kid < b.opt.kid {
			return -1
		}
		return 1
	})
	for _, p := range pairs {
		k, err := jwk.FromRaw(p.raw)
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range map[string]string{jwk.KeyIDKey: p.opt.kid, jwk.AlgorithmKey: p.opt.alg, jwk.KeyUsageKey: p.opt.use} {
			if v != "" {
				if err := k.Set(name, v); err != nil {
					t.Fatal(err)
				}
			}
		}
		if p.opt.ops != nil {
			if err := k.Set(jwk.KeyOpsKey, p.opt.ops); err != nil {
				t.Fatal(err)
			}
		}
		if err := set.AddKey(k); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newJWKS(t *testing.T, cfg JWKSConfig) *JWKSSource {
	t.Helper()
	if cfg.retryMin == 0 {
		cfg.retryMin = 20 * time.Millisecond
	}
	s, err := NewJWKSSource(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func jwksChain(t *testing.T, src KeySource, static ...Key) *Chain {
	t.Helper()
	kv := NewKeyValidator(static)
	kv.AddSource(src)
	return newChain(t, ChainConfig{Keys: kv})
}

func withKid(kid string) map[string]any { return map[string]any{"kid": kid} }

// Keys are chosen by kid; keys a verifier must not use (use enc, key_ops
// without verify, non-RSA, under 2048 bits, another alg, no kid) are skipped
// without spoiling the rest of the set.
func TestJWKSKeySelection(t *testing.T) {
	a, b, other := testKeys(t)
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := newIdP(t)
	p.set(http.StatusOK, jwkSet(t, map[any]jwkOpt{
		&a.PublicKey:     {kid: "a", alg: RS256, use: "sig"},
		&b.PublicKey:     {kid: "b"}, // no alg: RS256 and RS512
		&other.PublicKey: {kid: "enc", alg: RS256, use: "enc"},
		small:            {kid: "small", alg: RS256},
		&ec.PublicKey:    {kid: "ec", alg: "ES256"},
	}))
	// Keys the set cannot carry in the map above (same key twice).
	var raw map[string][]map[string]any
	if err := json.Unmarshal(p.body, &raw); err != nil {
		t.Fatal(err)
	}
	extra := func(kid, alg string, ops []string) map[string]any {
		k, _ := jwk.FromRaw(&other.PublicKey)
		m := map[string]any{}
		b, _ := json.Marshal(k)
		json.Unmarshal(b, &m)
		if kid != "" {
			m["kid"] = kid
		}
		if alg != "" {
			m["alg"] = alg
		}
		if ops != nil {
			m["key_ops"] = ops
		}
		return m
	}
	raw["keys"] = append(raw["keys"],
		extra("ps", "PS256", nil),
		extra("", RS256, nil),
		extra("wrapkey", RS256, []string{"wrapKey"}),
		map[string]any{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
		map[string]any{"kty": "RSA", "kid": "broken", "n": 12},
	)
	body, _ := json.Marshal(raw)
	p.set(http.StatusOK, body)

	src := newJWKS(t, JWKSConfig{URL: p.srv.URL})
	waitFor(t, "the first fetch", func() bool { return src.Unavailable() == nil })
	var got []string
	for _, k := range src.Keys() {
		got = append(got, k.ID+"/"+k.Algorithm)
	}
	slices.Sort(got)
	if want := []string{"a/RS256", "b/RS256", "b/RS512"}; !slices.Equal(got, want) {
		t.Fatalf("usable keys %v, want %v", got, want)
	}

	c := jwksChain(t, src)
	id := wantValid(t, c, sign(t, a, RS256, withKid("a"), claims(nil)))
	if id.By != ByJWKS {
		t.Errorf("By = %q, want %q", id.By, ByJWKS)
	}
	// A JWK without alg verifies either accepted algorithm.
	wantValid(t, c, sign(t, b, RS256, withKid("b"), claims(nil)))
	wantValid(t, c, sign(t, b, RS512, withKid("b"), claims(nil)))
	// A key declared RS256 does not verify RS512 tokens.
	wantReject(t, c, sign(t, a, RS512, withKid("a"), claims(nil)), ReasonNoMatchingKey)
	// The kid picks the key: a's signature under b's kid fails.
	wantReject(t, c, sign(t, a, RS256, withKid("b"), claims(nil)), ReasonBadSignature)
	// Skipped keys verify nothing.
	for _, kid := range []string{"enc", "ps", "wrapkey"} {
		wantReject(t, c, sign(t, other, RS256, withKid(kid), claims(nil)), ReasonNoMatchingKey)
	}
	wantReject(t, c, sign(t, small, RS256, withKid("small"), claims(nil)), ReasonNoMatchingKey)
	// No kid: JWKS keys are chosen by kid only.
	wantReject(t, c, sign(t, a, RS256, nil, claims(nil)), ReasonNoMatchingKey)
	// A jwk header naming the attacker's key is ignored.
	jk, _ := jwk.FromRaw(&other.PublicKey)
	wantReject(t, c, sign(t, other, RS256, map[string]any{"kid": "a", "jwk": jk}, claims(nil)), ReasonBadSignature)
}

// Unknown kids cause at most one fetch per cool-down, however many arrive:
// a caller cannot make the gateway hammer the identity provider.
func TestJWKSUnknownKidCooldown(t *testing.T) {
	a, b, _ := testKeys(t)
	p := newIdP(t)
	p.set(http.StatusOK, jwkSet(t, map[any]jwkOpt{&a.PublicKey: {kid: "a", alg: RS256}}))
	clk := &clock{t: time.Now()}
	src := newJWKS(t, JWKSConfig{URL: p.srv.URL, now: clk.now})
	waitFor(t, "the first fetch", func() bool { return src.Unavailable() == nil })
	c := jwksChain(t, src)
	base := p.hits.Load()

	// The first unknown kid right after the start-up fetch: within the
	// cool-down, nothing is fetched.
	wantReject(t, c, sign(t, b, RS256, withKid("new"), claims(nil)), ReasonNoMatchingKey)
	if n := p.hits.Load() - base; n != 0 {
		t.Fatalf("%d fetches within the cool-down, want 0", n)
	}

	// Past the cool-down: 200 requests with made-up kids, concurrently.
	clk.advance(JWKSKidCooldown + time.Second)
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tok := sign(t, b, RS256, withKid(fmt.Sprintf("made-up-%d", i)), claims(nil))
			if _, err := c.Validate(context.Background(), tok); err == nil {
				t.Error("a made-up kid validated")
			}
		}(i)
	}
	wg.Wait()
	if n := p.hits.Load() - base; n != 1 {
		t.Fatalf("%d fetches for 200 unknown kids, want exactly 1", n)
	}

	// The provider rotates to b. Within the cool-down b's kid is unknown;
	// after it, the first token with b's kid fetches the set and validates.
	p.set(http.StatusOK, jwkSet(t, map[any]jwkOpt{&b.PublicKey: {kid: "b", alg: RS256}}))
	tokB := sign(t, b, RS256, withKid("b"), claims(nil))
	wantReject(t, c, tokB, ReasonNoMatchingKey)
	clk.advance(JWKSKidCooldown)
	wantValid(t, c, tokB)
	if n := p.hits.Load() - base; n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
}

// A key removed from the set revokes the verifications cached for it; a key
// kept across a refresh keeps them.
func TestJWKSRemovedKeyRevokesCache(t *testing.T) {
	a, b, _ := testKeys(t)
	p := newIdP(t)
	p.set(http.StatusOK, jwkSet(t, map[any]jwkOpt{&a.PublicKey: {kid: "a", alg: RS256}, &b.PublicKey: {kid: "b", alg: RS256}}))
	clk := &clock{t: time.Now()}
	src := newJWKS(t, JWKSConfig{URL: p.srv.URL, now: clk.now})
	waitFor(t, "the first fetch", func() bool { return src.Unavailable() == nil })
	c := jwksChain(t, src)
	tokA := sign(t, a, RS256, withKid("a"), claims(nil))
	tokB := sign(t, b, RS256, withKid("b"), claims(nil))
	idA := wantValid(t, c, tokA)
	idB := wantValid(t, c, tokB)

	// a leaves the set; a fetch (caused by an unknown kid) installs it.
	p.set(http.StatusOK, jwkSet(t, map[any]jwkOpt{&b.PublicKey: {kid: "b", alg: RS256}}))
	clk.advance(JWKSKidCooldown)
	wantReject(t, c, sign(t, b, RS256, withKid("unknown"), claims(nil)), ReasonNoMatchingKey)
	wantReject(t, c, tokA, ReasonNoMatchingKey)
	if again := wantValid(t, c, tokB); again != idB {
		t.Error("the kept key's cached verification was dropped")
	}
	_ = idA
}

// A JWKS that cannot be fetched at start-up does not block the constructor;
// tokens only it could verify are Unavailable (503) until it is fetched,
// which the source retries in the background. Static keys keep working.
func TestJWKSStartupDownThenUp(t *testing.T) {
	a, b, attacker := testKeys(t)
	p := newIdP(t)
	p.set(http.StatusServiceUnavailable, []byte("down"))
	start := time.Now()
	src := newJWKS(t, JWKSConfig{URL: p.srv.URL})
	if d := time.Since(start); d > time.Second {
		t.Fatalf("NewJWKSSource took %s; it must not wait on the network", d)
	}
	c := jwksChain(t, src, staticKey(a, RS256, "a.pem"))
	tokB := sign(t, b, RS256, withKid("b"), claims(nil))
	waitFor(t, "a failed attempt", func() bool { return p.hits.Load() >= 2 })
	wantReject(t, c, tokB, ReasonUnavailable)
	// A token a static key verifies is not held up by the JWKS.
	wantValid(t, c, sign(t, a, RS256, withKid("b"), claims(nil)))

	p.set(http.StatusOK, jwkSet(t, map[any]jwkOpt{&b.PublicKey: {kid: "b", alg: RS256}}))
	waitFor(t, "the JWKS to come up", func() bool { return src.Unavailable() == nil })
	wantValid(t, c, tokB)
	// Available now: a token no key verifies is a plain rejection again.
	wantReject(t, c, sign(t, attacker, RS256, withKid("b"), claims(nil)), ReasonBadSignature)
}

// Unreachable (connection refused) is unavailable too, and the error says
// which URL.
func TestJWKSUnreachable(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	src := newJWKS(t, JWKSConfig{URL: url})
	waitFor(t, "a failed attempt", func() bool {
		err := src.Unavailable()
		return err != nil && src.startupErr.Load() != nil
	})
	if err := src.Unavailable(); err == nil || !strings.Contains(err.Error(), url) {
		t.Fatalf("Unavailable() = %v, want it to name %s", err, url)
	}
}

// jwk.Cache refreshes the set on its schedule.
func TestJWKSPeriodicRefresh(t *testing.T) {
	a, b, _ := testKeys(t)
	p := newIdP(t)
	p.set(http.StatusOK, jwkSet(t, map[any]jwkOpt{&a.PublicKey: {kid: "a", alg: RS256}}))
	src := newJWKS(t, JWKSConfig{URL: p.srv.URL, Refresh: time.Second, shortRefresh: true})
	waitFor(t, "the first fetch", func() bool { return src.Unavailable() == nil })
	p.set(http.StatusOK, jwkSet(t, map[any]jwkOpt{&b.PublicKey: {kid: "b", alg: RS256}}))
	waitFor(t, "the periodic refresh", func() bool {
		keys := src.Keys()
		return len(keys) == 1 && keys[0].ID == "b"
	})
	// A refresh that fails keeps the keys.
	p.set(http.StatusInternalServerError, nil)
	n := p.hits.Load()
	waitFor(t, "a failed refresh", func() bool { return p.hits.Load() > n })
	if keys := src.Keys(); len(keys) != 1 || keys[0].ID != "b" {
		t.Fatalf("keys after a failed refresh: %v", keys)
	}
}

func TestJWKSConfig(t *testing.T) {
	for _, cfg := range []JWKSConfig{
		{URL: "ftp://idp/keys"},
		{URL: "/relative"},
		{URL: "https://idp/keys", Refresh: 30 * time.Second},
	} {
		if s, err := NewJWKSSource(cfg); err == nil {
			s.Close()
			t.Errorf("%+v accepted", cfg)
		}
	}
}

// Close stops every goroutine the source started, even mid-retry or with a
// fetch hanging.
func TestJWKSCloseStopsGoroutines(t *testing.T) {
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(hang)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer down.Close()

	settle := func() int {
		time.Sleep(50 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	before := settle()
	for i := 0; i < 20; i++ {
		url := down.URL
		if i%2 == 0 {
			url = slow.URL
		}
		s, err := NewJWKSSource(JWKSConfig{URL: url, retryMin: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
		s.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := settle()
		if n <= before {
			break
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
	}
}

// TRUST-JWKS-01..03: no fetch of the JWK Set follows a redirect. An open
// redirect at the identity provider, or a plain-http hop that turns the
// answer into a 3xx pointing at its own set, would otherwise bring in the
// attacker's key and with it a token for any user, root in admins included,
// while the logs name only the configured URL (README "Validation",
// jwks_url). Every path that fetches is covered: the start-up fetch, jwk.Cache's
// periodic refresh and the refresh an unknown kid triggers; and with a
// caller's client whose redirect policy is Go's default, since the source
// must not rely on the caller to have turned redirects off.
func TestJWKSFollowsNoRedirect(t *testing.T) {
	a, _, attacker := testKeys(t)
	legit := jwkSet(t, map[any]jwkOpt{&a.PublicKey: {kid: "a", alg: RS256}})
	planted := jwkSet(t, map[any]jwkOpt{&attacker.PublicKey: {kid: "evil", alg: RS256}, &a.PublicKey: {kid: "a", alg: RS256}})
	callersClient := func() *http.Client { return &http.Client{Timeout: 5 * time.Second} }
	for _, tc := range []struct {
		id, path string
		status   int
		client   func() *http.Client
	}{
		{"TRUST-JWKS-01", "start-up", http.StatusFound, nil},
		{"TRUST-JWKS-01", "start-up", http.StatusMovedPermanently, callersClient},
		{"TRUST-JWKS-01", "start-up", http.StatusTemporaryRedirect, nil},
		{"TRUST-JWKS-02", "periodic refresh", http.StatusFound, nil},
		{"TRUST-JWKS-02", "periodic refresh", http.StatusPermanentRedirect, callersClient},
		{"TRUST-JWKS-03", "unknown kid", http.StatusFound, nil},
		{"TRUST-JWKS-03", "unknown kid", http.StatusSeeOther, callersClient},
	} {
		name := fmt.Sprintf("%s %s %d", tc.id, tc.path, tc.status)
		if tc.client != nil {
			name += " caller's client"
		}
		t.Run(name, func(t *testing.T) {
			evil := newIdP(t)
			evil.set(http.StatusOK, planted)
			p := newIdP(t)
			clk := &clock{t: time.Now()}
			cfg := JWKSConfig{URL: p.srv.URL + "/jwks", now: clk.now}
			if tc.client != nil {
				cfg.Client = tc.client()
			}
			forged := sign(t, attacker, RS256, withKid("evil"), claims(map[string]any{"sub": "root", "groups": []any{"admins"}}))
			switch tc.path {
			case "start-up":
				p.redirect(tc.status, evil.srv.URL+"/evil.json")
				src := newJWKS(t, cfg)
				waitFor(t, "a failed start-up fetch", func() bool { return src.startupErr.Load() != nil })
				c := jwksChain(t, src)
				wantReject(t, c, forged, ReasonUnavailable)
				if err := src.Unavailable(); err == nil || !strings.Contains(err.Error(), fmt.Sprint(tc.status)) {
					t.Errorf("Unavailable() = %v, want it to name the %d answer", err, tc.status)
				}
			case "periodic refresh":
				p.set(http.StatusOK, legit)
				cfg.Refresh, cfg.shortRefresh = time.Second, true
				src := newJWKS(t, cfg)
				waitFor(t, "the first fetch", func() bool { return src.Unavailable() == nil })
				p.redirect(tc.status, evil.srv.URL+"/evil.json")
				n := p.hits.Load()
				// Two more fetches: the first one's answer has been handled.
				waitFor(t, "periodic refreshes", func() bool { return p.hits.Load() >= n+2 })
				if keys := src.Keys(); len(keys) != 1 || keys[0].ID != "a" {
					t.Errorf("keys after redirected refreshes: %v, want only a", keys)
				}
				wantReject(t, jwksChain(t, src), forged, ReasonNoMatchingKey)
			case "unknown kid":
				p.set(http.StatusOK, legit)
				src := newJWKS(t, cfg)
				waitFor(t, "the first fetch", func() bool { return src.Unavailable() == nil })
				p.redirect(tc.status, evil.srv.URL+"/evil.json")
				clk.advance(JWKSKidCooldown + time.Second)
				n := p.hits.Load()
				wantReject(t, jwksChain(t, src), forged, ReasonNoMatchingKey)
				if got := p.hits.Load() - n; got != 1 {
					t.Errorf("the unknown kid caused %d fetches, want 1", got)
				}
				if keys := src.Keys(); len(keys) != 1 || keys[0].ID != "a" {
					t.Errorf("keys after the redirected fetch: %v, want only a", keys)
				}
			}
			if n := evil.hits.Load(); n != 0 {
				t.Errorf("the redirect target was fetched %d time(s)", n)
			}
		})
	}
}

// TRUST-LOG-01..07: a JWKS URL may carry Basic credentials for the identity
// provider (https://user:pass@idp/...). They are sent, but never logged:
// not in the "keys loaded" line, not in a fetch failure, not in what
// Unavailable returns (which ends up in the 503's log line), whichever of
// net/http, httprc or jwx wrote the message (README "Logs").
func TestJWKSLogsNoUserinfo(t *testing.T) {
	a, b, _ := testKeys(t)
	legit := jwkSet(t, map[any]jwkOpt{&a.PublicKey: {kid: "a", alg: RS256}})
	for _, tc := range []struct {
		id, name string
		// run drives the source into the state under test and returns the
		// message snippet of the log line that must have been written.
		run func(t *testing.T, p *idp, clk *clock, src func(JWKSConfig) *JWKSSource) string
	}{
		{"TRUST-LOG-01", "keys loaded, credentials sent", func(t *testing.T, p *idp, _ *clock, src func(JWKSConfig) *JWKSSource) string {
			p.set(http.StatusOK, legit)
			s := src(JWKSConfig{})
			waitFor(t, "the first fetch", func() bool { return s.Unavailable() == nil })
			want := "Basic " + base64.StdEncoding.EncodeToString([]byte("user:s3cretpw"))
			if got := p.lastAuth(); got != want {
				t.Errorf("the identity provider got Authorization %q, want %q", got, want)
			}
			return "JWKS keys loaded"
		}},
		{"TRUST-LOG-02", "start-up fetch answered 500", func(t *testing.T, p *idp, _ *clock, src func(JWKSConfig) *JWKSSource) string {
			p.set(http.StatusInternalServerError, []byte("down"))
			s := src(JWKSConfig{})
			waitFor(t, "a failed start-up fetch", func() bool { return s.startupErr.Load() != nil })
			return "cannot fetch the JWKS"
		}},
		{"TRUST-LOG-03", "identity provider down", func(t *testing.T, p *idp, _ *clock, src func(JWKSConfig) *JWKSSource) string {
			p.srv.Close()
			s := src(JWKSConfig{})
			waitFor(t, "a failed start-up fetch", func() bool { return s.startupErr.Load() != nil })
			return "cannot fetch the JWKS"
		}},
		{"TRUST-LOG-04", "answer is not a JWK Set", func(t *testing.T, p *idp, _ *clock, src func(JWKSConfig) *JWKSSource) string {
			p.set(http.StatusOK, []byte("<html>login</html>"))
			s := src(JWKSConfig{})
			waitFor(t, "a failed start-up fetch", func() bool { return s.startupErr.Load() != nil })
			return "cannot fetch the JWKS"
		}},
		{"TRUST-LOG-05", "set without a usable key", func(t *testing.T, p *idp, _ *clock, src func(JWKSConfig) *JWKSSource) string {
			p.set(http.StatusOK, []byte(`{"keys":[]}`))
			s := src(JWKSConfig{})
			waitFor(t, "the first fetch", func() bool { return s.Unavailable() == nil })
			return "no usable key"
		}},
		{"TRUST-LOG-06", "periodic refresh fails", func(t *testing.T, p *idp, _ *clock, src func(JWKSConfig) *JWKSSource) string {
			p.set(http.StatusOK, legit)
			s := src(JWKSConfig{Refresh: time.Second, shortRefresh: true})
			waitFor(t, "the first fetch", func() bool { return s.Unavailable() == nil })
			p.set(http.StatusInternalServerError, nil)
			n := p.hits.Load()
			waitFor(t, "a failed refresh", func() bool { return p.hits.Load() >= n+2 })
			return "JWKS refresh failed"
		}},
		{"TRUST-LOG-07", "fetch for an unknown kid fails", func(t *testing.T, p *idp, clk *clock, src func(JWKSConfig) *JWKSSource) string {
			p.set(http.StatusOK, legit)
			s := src(JWKSConfig{})
			waitFor(t, "the first fetch", func() bool { return s.Unavailable() == nil })
			p.redirect(http.StatusFound, "http://other:0therpw@127.0.0.1:1/evil.json")
			clk.advance(JWKSKidCooldown + time.Second)
			wantReject(t, jwksChain(t, s), sign(t, b, RS256, withKid("new"), claims(nil)), ReasonNoMatchingKey)
			return "JWKS fetch for an unknown kid failed"
		}},
	} {
		t.Run(tc.id+" "+tc.name, func(t *testing.T) {
			p := newIdP(t)
			host := strings.TrimPrefix(p.srv.URL, "http://")
			raw := "http://user:s3cretpw@" + host + "/jwks"
			core, logs := observer.New(zap.DebugLevel)
			clk := &clock{t: time.Now()}
			var sources []*JWKSSource
			want := tc.run(t, p, clk, func(cfg JWKSConfig) *JWKSSource {
				cfg.URL, cfg.Logger, cfg.now = raw, zap.New(core), clk.now
				s := newJWKS(t, cfg)
				sources = append(sources, s)
				return s
			})
			waitFor(t, "the log line "+want, func() bool { return logs.FilterMessageSnippet(want).Len() > 0 })
			var lines []string
			for _, e := range logs.All() {
				lines = append(lines, fmt.Sprintf("%s %s %v", e.Level, e.Message, e.ContextMap()))
			}
			for _, s := range sources {
				if err := s.Unavailable(); err != nil {
					lines = append(lines, "Unavailable: "+err.Error())
				}
			}
			named := false
			for _, line := range lines {
				for _, secret := range []string{"s3cretpw", "user:", "0therpw", "other:"} {
					if strings.Contains(line, secret) {
						t.Errorf("%q is logged: %s", secret, line)
					}
				}
				named = named || strings.Contains(line, host)
			}
			if !named {
				t.Errorf("no line names %s:\n%s", host, strings.Join(lines, "\n"))
			}
		})
	}
}

// noNetwork is a transport that never dials: the start-up warning must not
// depend on a fetch, and the tests reach no host outside loopback.
type noNetwork struct{}

func (noNetwork) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("test transport: no network")
}

// TRUST-JWKS-04: a JWK Set fetched over plain http from a host that is not
// loopback can be replaced by any hop on the way, and so every token with
// it; this is warned about when the source is built (during Provision),
// naming the URL without its userinfo. Loopback http (a sidecar) is
// silent (README "Validation", jwks_url).
func TestJWKSPlainHTTPWarning(t *testing.T) {
	for _, tc := range []struct {
		url  string
		warn bool
	}{
		{"http://idp.invalid/jwks", true},
		{"http://user:s3cretpw@idp.invalid/jwks", true},
		{"http://10.1.2.3:8080/jwks", true},
		{"http://[2001:db8::1]/jwks", true},
		{"http://localhost.idp.invalid/jwks", true},
		{"http://127.0.0.1.idp.invalid/jwks", true},
		{"HTTP://IDP.INVALID/jwks", true},
		{"http://127.0.0.1:8080/jwks", false},
		{"http://127.200.3.4/jwks", false},
		{"http://[::1]:8080/jwks", false},
		{"http://localhost:8080/jwks", false},
		{"http://LocalHost/jwks", false},
		{"http://user:s3cretpw@localhost/jwks", false},
		{"https://idp.invalid/jwks", false},
		{"https://10.1.2.3/jwks", false},
	} {
		t.Run(tc.url, func(t *testing.T) {
			core, logs := observer.New(zap.DebugLevel)
			src := newJWKS(t, JWKSConfig{URL: tc.url, Logger: zap.New(core), Client: &http.Client{Transport: noNetwork{}}})
			src.Close() // the warning is written before the constructor returns
			warned := logs.FilterMessageSnippet("plain http").FilterLevelExact(zap.WarnLevel).All()
			if got := len(warned) > 0; got != tc.warn {
				t.Fatalf("warned = %v, want %v; logs: %v", got, tc.warn, logs.All())
			}
			for _, e := range warned {
				u, _ := e.ContextMap()["url"].(string)
				if strings.Contains(u, "s3cretpw") || strings.Contains(u, "user") || !strings.Contains(strings.ToLower(u), "idp.invalid") && !strings.Contains(u, "10.1.2.3") && !strings.Contains(u, "2001:db8") {
					t.Errorf("the warning names url %q", u)
				}
				if !strings.Contains(e.Message, "substitute") {
					t.Errorf("the warning %q does not say a hop can substitute keys", e.Message)
				}
			}
		})
	}
}
