package validator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// endpoint is a counting stand-in for Okera's validation server.
type endpoint struct {
	*httptest.Server
	calls atomic.Int64
	mu    sync.Mutex
	last  *http.Request
	body  []byte
}

func newEndpoint(tb testing.TB, h http.HandlerFunc) *endpoint {
	tb.Helper()
	e := &endpoint{}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.calls.Add(1)
		body, _ := io.ReadAll(r.Body)
		e.mu.Lock()
		e.last, e.body = r, body
		e.mu.Unlock()
		h(w, r)
	}))
	tb.Cleanup(e.Close)
	return e
}

func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func TestRemote(t *testing.T) {
	a, _, evil := testKeys(t)
	keysA := []Key{staticKey(a, RS256, "a.pem")}
	// The token's own sub is bob; the endpoint names another user.
	byA := sign(t, a, RS256, nil, claims(map[string]any{"sub": "bob", "dept": "sales"}))
	byEvil := sign(t, evil, RS256, nil, claims(map[string]any{"sub": "bob", "dept": "sales"}))
	validated := `{"sub":"alice","groups":["remote-group"]}`

	target := newEndpoint(t, answer(200, validated)) // redirect target
	redirect := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, target.URL, code)
		}
	}
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	}
	big := `{"sub":"alice","pad":"` + strings.Repeat("x", maxRemoteAnswer) + `"}`
	exact := `{"sub":"alice","pad":"` + strings.Repeat("x", maxRemoteAnswer-len(`{"sub":"alice","pad":""}`)) + `"}`
	if len(exact) != maxRemoteAnswer {
		t.Fatalf("exact answer is %d bytes", len(exact))
	}

	tests := []struct {
		name    string
		handler http.HandlerFunc
		down    bool // the endpoint's URL refuses connections
		cfg     RemoteValidator
		keys    []Key // nil: no key validator
		token   string
		reason  string // "" = valid
		user    string
		by      string
	}{
		// Validated: the endpoint's sub is the user, whatever the token says.
		{name: "validated", handler: answer(200, validated), keys: keysA, token: byEvil, user: "alice", by: ByRemote},
		{name: "validated, no keys", handler: answer(200, validated), token: byEvil, user: "alice", by: ByRemote},
		{name: "validated with 201 and text type", handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(201)
			_, _ = io.WriteString(w, validated)
		}, token: byEvil, user: "alice", by: ByRemote},
		{name: "answer of exactly 1 MiB", handler: answer(200, exact), token: byEvil, user: "alice", by: ByRemote},
		// Rejections fall through to the keys.
		{name: "401, keys verify", handler: answer(401, `{"error":"bad"}`), keys: keysA, token: byA, user: "bob", by: ByPublicKey},
		{name: "403, keys verify", handler: answer(403, ``), keys: keysA, token: byA, user: "bob", by: ByPublicKey},
		{name: "401, keys fail: key reason", handler: answer(401, ``), keys: keysA, token: byEvil, reason: ReasonBadSignature},
		{name: "401, no keys", handler: answer(401, ``), token: byA, reason: ReasonRemoteRejected},
		{name: "2xx without sub, keys verify", handler: answer(200, `{"user":"alice"}`), keys: keysA, token: byA, user: "bob", by: ByPublicKey},
		{name: "2xx without sub, no keys", handler: answer(200, `{"user":"alice"}`), token: byA, reason: ReasonRemoteRejected},
		{name: "2xx empty sub", handler: answer(200, `{"sub":""}`), token: byA, reason: ReasonRemoteRejected},
		{name: "2xx blank sub", handler: answer(200, `{"sub":"  "}`), token: byA, reason: ReasonRemoteRejected},
		{name: "2xx numeric sub", handler: answer(200, `{"sub":5}`), token: byA, reason: ReasonRemoteRejected},
		{name: "2xx sub with newline", handler: answer(200, `{"sub":"alice\nX-Okera-User: root"}`), token: byA, reason: ReasonRemoteRejected},
		{name: "2xx JSON array", handler: answer(200, `[{"sub":"alice"}]`), token: byA, reason: ReasonRemoteRejected},
		{name: "2xx JSON string", handler: answer(200, `"alice"`), token: byA, reason: ReasonRemoteRejected},
		{name: "2xx duplicate sub", handler: answer(200, `{"sub":"alice","sub":"root"}`), token: byA, reason: ReasonRemoteRejected},
		{name: "2xx empty body", handler: answer(200, ``), token: byA, reason: ReasonRemoteRejected},
		{name: "204", handler: answer(204, ``), token: byA, reason: ReasonRemoteRejected},
		// Unavailable also falls through to the keys.
		{name: "500, keys verify", handler: answer(500, ``), keys: keysA, token: byA, user: "bob", by: ByPublicKey},
		{name: "500, keys fail", handler: answer(500, ``), keys: keysA, token: byEvil, reason: ReasonUnavailable},
		{name: "503, no keys", handler: answer(503, ``), token: byA, reason: ReasonUnavailable},
		{name: "500, no key for the alg", handler: answer(500, ``), keys: []Key{staticKey(a, RS512, "a")}, token: byA, reason: ReasonUnavailable},
		{name: "timeout, keys verify", handler: slow, cfg: RemoteValidator{Timeout: 100 * time.Millisecond}, keys: keysA, token: byA, user: "bob", by: ByPublicKey},
		{name: "timeout, keys fail", handler: slow, cfg: RemoteValidator{Timeout: 100 * time.Millisecond}, keys: keysA, token: byEvil, reason: ReasonUnavailable},
		{name: "302 not followed", handler: redirect(302), keys: keysA, token: byEvil, reason: ReasonUnavailable},
		{name: "307 not followed", handler: redirect(307), token: byA, reason: ReasonUnavailable},
		{name: "302, keys verify", handler: redirect(302), keys: keysA, token: byA, user: "bob", by: ByPublicKey},
		{name: "HTML body", handler: answer(200, `<html>gateway error</html>`), token: byA, reason: ReasonUnavailable},
		{name: "truncated JSON", handler: answer(200, `{"sub":"alice"`), token: byA, reason: ReasonUnavailable},
		{name: "JSON then garbage", handler: answer(200, `{"sub":"alice"} trailing`), token: byA, reason: ReasonUnavailable},
		{name: "over 1 MiB", handler: answer(200, big), token: byA, reason: ReasonUnavailable},
		{name: "over 1 MiB, keys verify", handler: answer(200, big), keys: keysA, token: byA, user: "bob", by: ByPublicKey},
		// Its first MiB alone is a valid answer: only the size limit refuses it.
		{name: "valid object, then over 1 MiB of whitespace", handler: answer(200, validated+strings.Repeat(" ", maxRemoteAnswer)), token: byA, reason: ReasonUnavailable},
		{name: "unknown status 999", handler: answer(999, ``), token: byA, reason: ReasonUnavailable},
		{name: "connection refused", down: true, keys: keysA, token: byEvil, reason: ReasonUnavailable},
		{name: "connection refused, keys verify", down: true, keys: keysA, token: byA, user: "bob", by: ByPublicKey},
		// Authoritative: a rejection is final, and so is unavailability
		// (503): the keys never stand in for a revoking endpoint.
		{name: "authoritative 401", handler: answer(401, ``), cfg: RemoteValidator{Authoritative: true}, keys: keysA, token: byA, reason: ReasonRemoteRejected},
		{name: "authoritative, 2xx without sub", handler: answer(200, `{}`), cfg: RemoteValidator{Authoritative: true}, keys: keysA, token: byA, reason: ReasonRemoteRejected},
		{name: "authoritative 503, keys would verify", handler: answer(503, ``), cfg: RemoteValidator{Authoritative: true}, keys: keysA, token: byA, reason: ReasonUnavailable},
		{name: "authoritative, connection refused, keys would verify", down: true, cfg: RemoteValidator{Authoritative: true}, keys: keysA, token: byA, reason: ReasonUnavailable},
		{name: "authoritative validated", handler: answer(200, validated), cfg: RemoteValidator{Authoritative: true}, keys: keysA, token: byEvil, user: "alice", by: ByRemote},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			var ep *endpoint
			if tt.down {
				srv := httptest.NewServer(http.NotFoundHandler())
				cfg.URL = srv.URL
				srv.Close()
			} else {
				ep = newEndpoint(t, tt.handler)
				cfg.URL = ep.URL
			}
			cc := ChainConfig{Remote: &cfg}
			if tt.keys != nil {
				cc.Keys = NewKeyValidator(tt.keys)
			}
			c := newChain(t, cc)
			before := target.calls.Load()
			if tt.reason != "" {
				wantReject(t, c, tt.token, tt.reason)
			} else {
				id := wantValid(t, c, tt.token)
				if id.User != tt.user || id.By != tt.by {
					t.Fatalf("user %q by %q, want %q by %q", id.User, id.By, tt.user, tt.by)
				}
			}
			if ep != nil && ep.calls.Load() != 1 {
				t.Fatalf("endpoint called %d times, want 1", ep.calls.Load())
			}
			if n := target.calls.Load() - before; n != 0 {
				t.Fatalf("redirect followed: target called %d times", n)
			}
		})
	}
}

// The request is exactly what README "Validation" describes.
func TestRemoteRequest(t *testing.T) {
	_, _, evil := testKeys(t)
	token := sign(t, evil, RS256, nil, claims(nil))
	ep := newEndpoint(t, answer(200, `{"sub":"alice"}`))
	c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL + "/validate?x=1"}})
	wantValid(t, c, token)

	ep.mu.Lock()
	defer ep.mu.Unlock()
	r := ep.last
	if r.Method != http.MethodPost {
		t.Errorf("method %s, want POST", r.Method)
	}
	if r.URL.RequestURI() != "/validate?x=1" {
		t.Errorf("URI %s", r.URL.RequestURI())
	}
	if got := r.Header.Get("Accept"); got != "application/json" {
		t.Errorf("Accept %q", got)
	}
	if got := r.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+token {
		t.Errorf("Authorization %q", got)
	}
	if len(ep.body) != 0 || r.ContentLength > 0 {
		t.Errorf("request has a body (%d bytes, Content-Length %d)", len(ep.body), r.ContentLength)
	}
}

func TestRemoteClaims(t *testing.T) {
	_, _, evil := testKeys(t)
	token := sign(t, evil, RS256, nil, claims(map[string]any{"sub": "bob", "dept": "sales"}))
	body := `{"sub":"alice","groups":["from-endpoint"],"n":1}`
	for _, trust := range []bool{false, true} {
		ep := newEndpoint(t, answer(200, body))
		c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL, TrustTokenClaims: trust}})
		id := wantValid(t, c, token)
		if id.User != "alice" || id.By != ByRemote || id.TokenID != Fingerprint(token) {
			t.Fatalf("trust=%v: identity %+v", trust, id)
		}
		if !id.Expiry.Equal(time.Unix(testExpUnix, 0)) {
			t.Fatalf("trust=%v: expiry %v", trust, id.Expiry)
		}
		if g := id.Claims["groups"].([]any); len(g) != 1 || g[0] != "from-endpoint" {
			t.Fatalf("trust=%v: groups %v; the endpoint's must win", trust, g)
		}
		if id.Claims["sub"] != "alice" {
			t.Fatalf("trust=%v: claims sub %v", trust, id.Claims["sub"])
		}
		_, hasDept := id.Claims["dept"]
		if hasDept != trust {
			t.Fatalf("trust=%v: token claim dept present=%v", trust, hasDept)
		}
	}
}

// Time, issuer and audience apply to remotely validated tokens, before the
// call.
func TestRemoteClaimChecks(t *testing.T) {
	_, _, evil := testKeys(t)
	tests := []struct {
		name   string
		policy ClaimPolicy
		over   map[string]any
		reason string
	}{
		{"expired", ClaimPolicy{}, map[string]any{"exp": testNowUnix - 1}, ReasonExpired},
		{"not yet valid", ClaimPolicy{}, map[string]any{"nbf": testNowUnix + 60}, ReasonNotYetValid},
		{"missing exp", ClaimPolicy{RequireExp: true}, map[string]any{"exp": nil}, ReasonMissingExp},
		{"exp string", ClaimPolicy{}, map[string]any{"exp": "soon"}, ReasonInvalidClaim},
		{"issuer", ClaimPolicy{Issuers: []string{"okera"}}, map[string]any{"iss": "evil"}, ReasonIssuer},
		{"audience", ClaimPolicy{Audiences: []string{"okera"}}, map[string]any{"aud": "evil"}, ReasonAudience},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ep := newEndpoint(t, answer(200, `{"sub":"alice"}`))
			c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL}, Claims: tt.policy})
			wantReject(t, c, sign(t, evil, RS256, nil, claims(tt.over)), tt.reason)
			if n := ep.calls.Load(); n != 0 {
				t.Fatalf("endpoint called %d times for a token no validator may accept", n)
			}
		})
	}
	// The token's own sub does not matter when the endpoint validates.
	ep := newEndpoint(t, answer(200, `{"sub":"alice"}`))
	c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL}})
	if id := wantValid(t, c, sign(t, evil, RS256, nil, claims(map[string]any{"sub": nil}))); id.User != "alice" {
		t.Fatalf("user %q", id.User)
	}
}

func TestRemoteCache(t *testing.T) {
	_, _, evil := testKeys(t)
	now := testNow
	tokenLong := sign(t, evil, RS256, nil, claims(nil)) // exp in an hour

	t.Run("off by default", func(t *testing.T) {
		ep := newEndpoint(t, answer(200, `{"sub":"alice"}`))
		c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL}, Now: fixedNow(&now)})
		for i := 0; i < 3; i++ {
			wantValid(t, c, tokenLong)
		}
		if n := ep.calls.Load(); n != 3 {
			t.Fatalf("%d calls, want 3", n)
		}
	})

	t.Run("TTL", func(t *testing.T) {
		now = testNow
		ep := newEndpoint(t, answer(200, `{"sub":"alice"}`))
		obs := newCountingObserver()
		c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL, CacheTTL: time.Minute}, Now: fixedNow(&now), Observer: obs})
		first := wantValid(t, c, tokenLong)
		now = testNow.Add(59 * time.Second)
		if again := wantValid(t, c, tokenLong); again != first {
			t.Fatal("cached answer not reused")
		}
		if n := ep.calls.Load(); n != 1 {
			t.Fatalf("%d calls within the TTL, want 1", n)
		}
		if obs.get(obs.cache, "remote/hit") != 1 || obs.get(obs.cache, "remote/miss") != 1 {
			t.Fatalf("cache events %v", obs.cache)
		}
		now = testNow.Add(time.Minute)
		wantValid(t, c, tokenLong)
		if n := ep.calls.Load(); n != 2 {
			t.Fatalf("%d calls after the TTL, want 2", n)
		}
	})

	t.Run("never past exp", func(t *testing.T) {
		now = testNow
		ep := newEndpoint(t, answer(200, `{"sub":"alice"}`))
		// A leeway keeps the token valid after exp, so only the cache's
		// own bound can explain the second call.
		c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL, CacheTTL: 10 * time.Minute},
			Claims: ClaimPolicy{Leeway: 5 * time.Minute}, Now: fixedNow(&now)})
		short := sign(t, evil, RS256, nil, claims(map[string]any{"exp": testNowUnix + 30}))
		wantValid(t, c, short)
		now = testNow.Add(29 * time.Second)
		wantValid(t, c, short)
		if n := ep.calls.Load(); n != 1 {
			t.Fatalf("%d calls before exp, want 1", n)
		}
		now = testNow.Add(30 * time.Second)
		wantValid(t, c, short)
		if n := ep.calls.Load(); n != 2 {
			t.Fatalf("%d calls at exp, want 2: the cached answer outlived the token", n)
		}
		// Past exp + leeway the token is expired, cached or not.
		now = testNow.Add(5*time.Minute + 30*time.Second)
		wantReject(t, c, short, ReasonExpired)
	})

	t.Run("rejections and failures are not cached", func(t *testing.T) {
		now = testNow
		for _, code := range []int{401, 503} {
			ep := newEndpoint(t, answer(code, ``))
			c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL, CacheTTL: time.Hour}, Now: fixedNow(&now)})
			for i := 0; i < 3; i++ {
				_, _ = c.Validate(context.Background(), tokenLong)
			}
			if n := ep.calls.Load(); n != 3 {
				t.Fatalf("status %d: %d calls, want 3", code, n)
			}
		}
	})

	t.Run("no exp: TTL only", func(t *testing.T) {
		now = testNow
		ep := newEndpoint(t, answer(200, `{"sub":"alice"}`))
		c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL, CacheTTL: time.Minute}, Now: fixedNow(&now)})
		noExp := sign(t, evil, RS256, nil, claims(map[string]any{"exp": nil}))
		wantValid(t, c, noExp)
		now = testNow.Add(30 * time.Second)
		wantValid(t, c, noExp)
		if n := ep.calls.Load(); n != 1 {
			t.Fatalf("%d calls, want 1", n)
		}
	})
}

// Concurrent first requests with one token make one call (README "Validation").
func TestRemoteSingleflight(t *testing.T) {
	_, _, evil := testKeys(t)
	token := sign(t, evil, RS256, nil, claims(nil))
	release := make(chan struct{})
	ep := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		answer(200, `{"sub":"alice"}`)(w, r)
	})
	// No cache: only singleflight can collapse the calls.
	c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL}})

	const n = 500 // issue 5: 500 concurrent first requests, one remote call
	var started, done sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, n)
	started.Add(n)
	done.Add(n)
	for i := 0; i < n; i++ {
		go func() {
			defer done.Done()
			started.Done()
			<-start
			id, err := c.Validate(context.Background(), token)
			if err == nil && id.User != "alice" {
				err = errors.New("wrong user " + id.User)
			}
			errs <- err
		}()
	}
	started.Wait()
	close(start)
	// Let every goroutine reach the flight before the endpoint answers.
	deadline := time.Now().Add(5 * time.Second)
	for ep.calls.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	close(release)
	done.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := ep.calls.Load(); got != 1 {
		t.Fatalf("%d remote calls for %d concurrent requests, want 1", got, n)
	}
}

// A caller that gives up does not cancel the call others wait on, and gets
// no decision itself.
func TestRemoteCallerCancel(t *testing.T) {
	_, _, evil := testKeys(t)
	token := sign(t, evil, RS256, nil, claims(nil))
	release := make(chan struct{})
	ep := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		answer(200, `{"sub":"alice"}`)(w, r)
	})
	c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL}})

	ctx, cancel := context.WithCancel(context.Background())
	impatient := make(chan error, 1)
	go func() {
		_, err := c.Validate(ctx, token)
		impatient <- err
	}()
	for ep.calls.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	patient := make(chan error, 1)
	go func() {
		_, err := c.Validate(context.Background(), token)
		patient <- err
	}()
	time.Sleep(50 * time.Millisecond)
	cancel()
	var err error
	select {
	case err = <-impatient:
	case <-time.After(5 * time.Second):
		close(release)
		t.Fatal("a cancelled caller kept waiting for the endpoint")
	}
	close(release)
	var verr *Error
	// Its departure is no decision: never "unavailable", which would let
	// the chain fall through to the keys (README "Security notes").
	if !errors.As(err, &verr) || !verr.CallerGone || verr.Unavailable || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller got %v, want caller_gone wrapping context.Canceled", err)
	}
	if err := <-patient; err != nil {
		t.Fatalf("the other caller failed: %v", err)
	}
	if n := ep.calls.Load(); n != 1 {
		t.Fatalf("%d calls, want 1", n)
	}
}

func TestRemoteConfig(t *testing.T) {
	a, _, _ := testKeys(t)
	kv := NewKeyValidator([]Key{staticKey(a, RS256, "a")})
	tests := []struct {
		name string
		cfg  ChainConfig
		want string
	}{
		{"nothing", ChainConfig{}, "no validator"},
		{"negative leeway", ChainConfig{Keys: kv, Claims: ClaimPolicy{Leeway: -time.Second}}, "leeway"},
		{"empty issuer", ChainConfig{Keys: kv, Claims: ClaimPolicy{Issuers: []string{"a", ""}}}, "issuer"},
		{"empty audience", ChainConfig{Keys: kv, Claims: ClaimPolicy{Audiences: []string{""}}}, "audience"},
		{"empty URL", ChainConfig{Remote: &RemoteValidator{}}, "absolute http"},
		{"relative URL", ChainConfig{Remote: &RemoteValidator{URL: "/validate"}}, "absolute http"},
		{"ftp URL", ChainConfig{Remote: &RemoteValidator{URL: "ftp://idp.example/v"}}, "absolute http"},
		{"no host", ChainConfig{Remote: &RemoteValidator{URL: "http:///v"}}, "absolute http"},
		{"bad URL", ChainConfig{Remote: &RemoteValidator{URL: "http://[::1"}}, "URL"},
		{"negative timeout", ChainConfig{Remote: &RemoteValidator{URL: "http://idp", Timeout: -1}}, "timeout"},
		{"negative cache_ttl", ChainConfig{Remote: &RemoteValidator{URL: "http://idp", CacheTTL: -1}}, "cache_ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := NewChain(tt.cfg)
			if err == nil {
				c.Close()
				t.Fatal("NewChain accepted the configuration")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q does not contain %q", err, tt.want)
			}
		})
	}

	t.Run("defaults, caller's struct untouched", func(t *testing.T) {
		rv := &RemoteValidator{URL: "https://user:secret@idp.example/validate"}
		c := newChain(t, ChainConfig{Remote: rv})
		if c.remote.cfg.Timeout != DefaultRemoteTimeout || c.remote.client.Timeout != DefaultRemoteTimeout {
			t.Fatalf("timeout %s / client %s, want %s", c.remote.cfg.Timeout, c.remote.client.Timeout, DefaultRemoteTimeout)
		}
		if rv.Timeout != 0 || rv.Client != nil {
			t.Fatal("NewChain modified the caller's RemoteValidator")
		}
		if c.remote.cache != nil {
			t.Fatal("remote cache created with CacheTTL 0")
		}
	})
	t.Run("URL secrets not in errors", func(t *testing.T) {
		_, err := NewChain(ChainConfig{Remote: &RemoteValidator{URL: "ftp://user:secret@idp.example/"}})
		if err == nil || strings.Contains(err.Error(), "secret") {
			t.Fatalf("error %v", err)
		}
	})
}

// A caller that goes away while the endpoint thinks gets no decision, and
// the chain never asks the keys for it: otherwise a client half-closing its
// connection turns a revocation (authoritative) or the endpoint's own user
// (non-authoritative) into the keys' verdict on the token's own claims.
func TestRemoteCallerGoneNeverFallsThrough(t *testing.T) {
	a, _, _ := testKeys(t)
	token := sign(t, a, RS256, nil, claims(nil)) // the keys would accept it
	for _, authoritative := range []bool{false, true} {
		t.Run(fmt.Sprintf("authoritative=%v", authoritative), func(t *testing.T) {
			release := make(chan struct{})
			var cancelled atomic.Bool
			ep := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
				select {
				case <-release:
					answer(401, ``)(w, r)
				case <-r.Context().Done():
					cancelled.Store(true)
				}
			})
			defer close(release)
			c := newChain(t, ChainConfig{
				Remote: &RemoteValidator{URL: ep.URL, Authoritative: authoritative},
				Keys:   NewKeyValidator([]Key{staticKey(a, RS256, "a")}),
			})
			ctx, cancel := context.WithCancel(context.Background())
			go func() {
				for ep.calls.Load() == 0 {
					time.Sleep(time.Millisecond)
				}
				cancel()
			}()
			id, err := c.Validate(ctx, token)
			var verr *Error
			if id != nil || !errors.As(err, &verr) || !verr.CallerGone || verr.Unavailable {
				t.Fatalf("departed caller got %+v, %v; want caller_gone and no identity", id, err)
			}
			// Nobody waits any more: the call to the endpoint is cancelled.
			for deadline := time.Now().Add(5 * time.Second); !cancelled.Load(); {
				if time.Now().After(deadline) {
					t.Fatal("the endpoint call went on after its only caller left")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// At most MaxInFlight calls run at once; past the bound a new token counts
// as unavailable at once instead of queueing behind a slow endpoint.
func TestRemoteMaxInFlight(t *testing.T) {
	_, _, evil := testKeys(t)
	release := make(chan struct{})
	ep := newEndpoint(t, func(w http.ResponseWriter, r *http.Request) {
		<-release
		answer(200, `{"sub":"alice"}`)(w, r)
	})
	c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL, MaxInFlight: 2}})
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Add(1)
		tok := sign(t, evil, RS256, nil, claims(map[string]any{"jti": fmt.Sprint("slow-", i)}))
		go func() { defer wg.Done(); _, _ = c.Validate(context.Background(), tok) }()
	}
	for ep.calls.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	wantReject(t, c, sign(t, evil, RS256, nil, claims(map[string]any{"jti": "third"})), ReasonUnavailable)
	if waited := time.Since(start); waited > 2*time.Second {
		t.Fatalf("the third call waited %s for a slot", waited)
	}
	if n := ep.calls.Load(); n != 2 {
		t.Fatalf("endpoint received %d calls, want 2", n)
	}
	close(release)
	wg.Wait()
	if id := wantValid(t, c, sign(t, evil, RS256, nil, claims(map[string]any{"jti": "fourth"}))); id.User != "alice" {
		t.Fatalf("after the slow calls ended: %+v", id)
	}
}
