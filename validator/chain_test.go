package validator

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestFingerprint(t *testing.T) {
	// SHA-256("abc") = ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad
	if got := Fingerprint("abc"); got != "ba7816bf8f01" {
		t.Fatalf("Fingerprint(abc) = %q", got)
	}
	if Fingerprint("a.b.c") == Fingerprint("a.b.d") {
		t.Fatal("different tokens, same fingerprint")
	}
}

func TestErrorFormat(t *testing.T) {
	inner := errors.New("expired at 2030-01-01T00:00:00Z")
	e := &Error{Reason: ReasonExpired, Err: inner}
	if e.Error() != "token expired: expired at 2030-01-01T00:00:00Z" {
		t.Fatalf("Error() = %q", e.Error())
	}
	if !errors.Is(e, inner) {
		t.Fatal("Unwrap does not reach the detail")
	}
	if (&Error{Reason: ReasonMalformed}).Error() != "token malformed" {
		t.Fatal("Error() without detail")
	}
}

func TestKeyCache(t *testing.T) {
	a, b, _ := testKeys(t)
	now := testNow
	token := sign(t, a, RS256, nil, claims(map[string]any{"nbf": testNowUnix - 10}))

	setup := func(t *testing.T, policy ClaimPolicy) (*Chain, *KeyValidator, *countingObserver) {
		now = testNow
		kv := NewKeyValidator([]Key{staticKey(a, RS256, "a.pem")})
		obs := newCountingObserver()
		return newChain(t, ChainConfig{Keys: kv, Claims: policy, Now: fixedNow(&now), Observer: obs}), kv, obs
	}

	t.Run("hit returns the cached identity", func(t *testing.T) {
		c, _, obs := setup(t, ClaimPolicy{})
		first := wantValid(t, c, token)
		second := wantValid(t, c, token)
		if first != second {
			t.Fatal("second validation did not come from the cache")
		}
		if v, h := obs.get(obs.validations, "keys/valid"), obs.get(obs.cache, "keys/hit"); v != 1 || h != 1 {
			t.Fatalf("%d verifications, %d hits; want 1 and 1", v, h)
		}
	})

	t.Run("hit re-checks exp", func(t *testing.T) {
		c, _, obs := setup(t, ClaimPolicy{Leeway: 10 * time.Second})
		wantValid(t, c, token)
		now = time.Unix(testExpUnix+9, 0) // within the leeway: still a hit
		wantValid(t, c, token)
		now = time.Unix(testExpUnix+10, 0)
		wantReject(t, c, token, ReasonExpired)
		if h := obs.get(obs.cache, "keys/hit"); h != 2 {
			t.Fatalf("%d cache hits, want 2: the expiry must be caught on the hit path", h)
		}
		if v := obs.get(obs.validations, "keys/valid"); v != 1 {
			t.Fatalf("%d verifications, want 1", v)
		}
		// The expired entry is gone.
		now = testNow
		wantValid(t, c, token)
		if v := obs.get(obs.validations, "keys/valid"); v != 2 {
			t.Fatalf("%d verifications, want 2 after the expired entry was dropped", v)
		}
	})

	t.Run("hit re-checks nbf", func(t *testing.T) {
		c, _, obs := setup(t, ClaimPolicy{})
		wantValid(t, c, token)
		now = testNow.Add(-time.Minute) // clock stepped back before nbf
		wantReject(t, c, token, ReasonNotYetValid)
		if h := obs.get(obs.cache, "keys/hit"); h != 1 {
			t.Fatalf("%d hits, want 1", h)
		}
	})

	t.Run("SetKeys drops results of removed keys", func(t *testing.T) {
		c, kv, obs := setup(t, ClaimPolicy{})
		wantValid(t, c, token)
		kv.SetKeys([]Key{staticKey(b, RS256, "b.pem")})
		wantReject(t, c, token, ReasonBadSignature)
		kv.SetKeys(nil)
		wantReject(t, c, token, ReasonNoMatchingKey)
		kv.SetKeys([]Key{staticKey(a, RS256, "a.pem")})
		wantValid(t, c, token)
		if v := obs.get(obs.validations, "keys/valid"); v != 2 {
			t.Fatalf("%d verifications, want 2 (the re-added key verifies afresh)", v)
		}
	})

	t.Run("SetKeys keeps results of kept keys", func(t *testing.T) {
		c, kv, obs := setup(t, ClaimPolicy{})
		first := wantValid(t, c, token)
		// Same key, a new Key value (as a reload of an unchanged file gives).
		kv.SetKeys([]Key{staticKey(b, RS256, "b.pem"), staticKey(a, RS256, "a.pem")})
		if again := wantValid(t, c, token); again != first {
			t.Fatal("the kept key's cached result was dropped")
		}
		if v := obs.get(obs.validations, "keys/valid"); v != 1 {
			t.Fatalf("%d verifications, want 1", v)
		}
		// Same material under another algorithm is another key.
		kv.SetKeys([]Key{staticKey(a, RS512, "a.pem")})
		wantReject(t, c, token, ReasonNoMatchingKey)
	})

	t.Run("disabled", func(t *testing.T) {
		now = testNow
		obs := newCountingObserver()
		c := newChain(t, ChainConfig{Keys: NewKeyValidator([]Key{staticKey(a, RS256, "a")}), CacheSize: -1, Observer: obs})
		if wantValid(t, c, token) == wantValid(t, c, token) {
			t.Fatal("identity cached with the cache disabled")
		}
		if v := obs.get(obs.validations, "keys/valid"); v != 2 || len(obs.cache) != 0 {
			t.Fatalf("verifications %d, cache events %v", v, obs.cache)
		}
	})

	t.Run("rejections are not cached", func(t *testing.T) {
		c, _, obs := setup(t, ClaimPolicy{})
		bad := sign(t, b, RS256, nil, claims(nil))
		wantReject(t, c, bad, ReasonBadSignature)
		wantReject(t, c, bad, ReasonBadSignature)
		if r := obs.get(obs.validations, "keys/rejected"); r != 2 {
			t.Fatalf("%d key rejections, want 2", r)
		}
	})
}

func TestKeyCacheTTL(t *testing.T) {
	tests := []struct {
		name string
		tc   timeClaims
		want time.Duration
	}{
		{"no exp", timeClaims{}, noExpCacheTTL},
		{"exp in an hour", timeClaims{hasExp: true, exp: testNow.Add(time.Hour)}, time.Hour + time.Second},
		{"exp in a year", timeClaims{hasExp: true, exp: testNow.Add(365 * 24 * time.Hour)}, maxKeyCacheTTL},
		{"exp passed, within leeway", timeClaims{hasExp: true, exp: testNow.Add(-time.Millisecond)}, time.Second - time.Millisecond},
	}
	for _, tt := range tests {
		if got := keyCacheTTL(tt.tc, time.Second, testNow); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// How answers combine when both validators are configured (README "Status
// codes").
func TestOutcome(t *testing.T) {
	a, _, evil := testKeys(t)
	keysA := NewKeyValidator([]Key{staticKey(a, RS256, "a")})

	t.Run("unavailable, then a verified token without sub: missing_sub", func(t *testing.T) {
		ep := newEndpoint(t, answer(503, ``))
		c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL}, Keys: keysA})
		wantReject(t, c, sign(t, a, RS256, nil, claims(map[string]any{"sub": nil})), ReasonMissingSub)
	})
	t.Run("unavailable, keys have nothing: unavailable", func(t *testing.T) {
		ep := newEndpoint(t, answer(503, ``))
		c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL}, Keys: NewKeyValidator(nil)})
		e := wantReject(t, c, sign(t, a, RS256, nil, claims(nil)), ReasonUnavailable)
		if !strings.Contains(e.Error(), "503") {
			t.Fatalf("detail %q does not say what happened", e)
		}
	})
	t.Run("unavailable, token malformed: malformed", func(t *testing.T) {
		ep := newEndpoint(t, answer(503, ``))
		c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL}, Keys: keysA})
		wantReject(t, c, "not.a.token!", ReasonMalformed)
		if n := ep.calls.Load(); n != 0 {
			t.Fatalf("a malformed token reached the endpoint (%d calls)", n)
		}
	})
	t.Run("rejected, keys have no key for the alg: no_matching_key", func(t *testing.T) {
		ep := newEndpoint(t, answer(401, ``))
		c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL}, Keys: keysA})
		wantReject(t, c, sign(t, evil, RS512, nil, claims(nil)), ReasonNoMatchingKey)
	})
	t.Run("rejected, sub missing in a verified token", func(t *testing.T) {
		ep := newEndpoint(t, answer(401, ``))
		c := newChain(t, ChainConfig{Remote: &RemoteValidator{URL: ep.URL}, Keys: keysA})
		wantReject(t, c, sign(t, a, RS256, nil, claims(map[string]any{"sub": "\x1b[31m"})), ReasonInvalidClaim)
	})
}

// With a remote endpoint, the key cache only stands in for the keys: the
// endpoint is asked first on every request.
func TestKeyCacheBehindRemote(t *testing.T) {
	a, _, _ := testKeys(t)
	token := sign(t, a, RS256, nil, claims(nil))
	var status atomic.Int64
	status.Store(503)
	ep := newEndpoint(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(status.Load()))
		_, _ = io.WriteString(w, `{"sub":"from-endpoint"}`)
	})
	obs := newCountingObserver()
	c := newChain(t, ChainConfig{
		Remote:   &RemoteValidator{URL: ep.URL},
		Keys:     NewKeyValidator([]Key{staticKey(a, RS256, "a")}),
		Observer: obs,
	})

	// Endpoint down: the keys validate, and the result is cached.
	first := wantValid(t, c, token)
	if first.By != ByPublicKey {
		t.Fatalf("By %q", first.By)
	}
	if again := wantValid(t, c, token); again != first {
		t.Fatal("key result not cached")
	}
	if n := ep.calls.Load(); n != 2 {
		t.Fatalf("%d endpoint calls, want 2: a key-cache hit must not skip the endpoint", n)
	}
	if h := obs.get(obs.cache, "keys/hit"); h != 1 {
		t.Fatalf("%d key-cache hits, want 1", h)
	}
	// The endpoint is back and names the user: its answer wins over the cache.
	status.Store(200)
	if id := wantValid(t, c, token); id.User != "from-endpoint" || id.By != ByRemote {
		t.Fatalf("identity %+v, want the endpoint's", id)
	}
}

// An authoritative endpoint's word is final both ways: the keys (and their
// cache) never stand in for it, neither when it revokes a token nor when it
// cannot answer (README "Security notes").
func TestAuthoritativeRemoteIsFinal(t *testing.T) {
	a, _, _ := testKeys(t)
	token := sign(t, a, RS256, nil, claims(nil))
	var status atomic.Int64
	status.Store(200)
	ep := newEndpoint(t, func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(int(status.Load()))
		_, _ = io.WriteString(w, `{"sub":"from-endpoint"}`)
	})
	c := newChain(t, ChainConfig{
		Remote: &RemoteValidator{URL: ep.URL, Authoritative: true},
		Keys:   NewKeyValidator([]Key{staticKey(a, RS256, "a")}),
	})
	steps := []struct {
		status int
		reason string // "" = valid, by the endpoint
	}{
		{200, ""},
		{401, ReasonRemoteRejected},
		{503, ReasonUnavailable},
		{302, ReasonUnavailable},
		{200, ""},
	}
	for _, st := range steps {
		status.Store(int64(st.status))
		if st.reason == "" {
			if id := wantValid(t, c, token); id.By != ByRemote {
				t.Fatalf("endpoint %d: validated by %q, want the endpoint", st.status, id.By)
			}
			continue
		}
		wantReject(t, c, token, st.reason)
	}
}

// Validate never panics, whatever the token, and always answers *Error.
func TestValidateOddInputs(t *testing.T) {
	a, _, _ := testKeys(t)
	c := newChain(t, ChainConfig{Keys: NewKeyValidator([]Key{staticKey(a, RS256, "a")})})
	inputs := []string{"", ".", "..", "...", "a.b.c", "Bearer x.y.z", strings.Repeat("A", 1<<16),
		strings.Repeat("A", 100) + "." + strings.Repeat("B", 100) + "." + strings.Repeat("C", 100),
		b64(`{"alg":"RS256"}`) + "." + b64(strings.Repeat("[", 100000)) + ".AAAA"}
	for _, in := range inputs {
		_, err := c.Validate(context.Background(), in)
		var verr *Error
		if !errors.As(err, &verr) || verr.Reason != ReasonMalformed {
			t.Fatalf("input of %d bytes: %v, want malformed", len(in), err)
		}
	}
}

// Derive runs once per new identity, before it is cached: its value is
// kept and, when it says so, the claims are dropped; a cache hit returns the
// same identity without deriving again.
func TestChainDerive(t *testing.T) {
	a, _, _ := testKeys(t)
	calls := 0
	c := newChain(t, ChainConfig{
		Keys:       NewKeyValidator([]Key{staticKey(a, RS256, "k")}),
		KeepClaims: []string{"groups"},
		Derive: func(id *Identity) (any, bool) {
			calls++
			if _, ok := id.Claims["groups"]; !ok || len(id.Claims) != 1 {
				t.Errorf("Derive saw claims %v, want only groups", id.Claims)
			}
			return "derived:" + id.User, false
		},
	})
	tok := sign(t, a, RS256, map[string]any{"alg": "RS256"}, claims(nil))
	for range 3 {
		id := wantValid(t, c, tok)
		if id.Derived != "derived:alice" || id.Claims != nil {
			t.Fatalf("identity: Derived %v, Claims %v", id.Derived, id.Claims)
		}
	}
	if calls != 1 {
		t.Errorf("Derive ran %d times, want 1", calls)
	}
}

func TestKeepClaims(t *testing.T) {
	claims := map[string]any{"sub": "alice", "groups": []any{"a"}, "big": "x"}
	if got := keepClaims(claims, nil); len(got) != 3 {
		t.Errorf("nil keep dropped claims: %v", got)
	}
	got := keepClaims(claims, []string{"groups", "absent"})
	if len(got) != 1 || got["groups"] == nil {
		t.Errorf("keep [groups] = %v", got)
	}
}
