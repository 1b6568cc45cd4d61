package integration

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// idpToken is a token only the remote endpoint can vouch for: it is signed
// by a key no gateway is configured with.
func idpToken(t testing.TB, c claims) string {
	t.Helper()
	return sign(t, rsaKey(t, keyIdP), jwa.RS512, c)
}

// assertRemoteCall checks how the gateway asked the endpoint (README
// "Validation"): POST, the caller's token as bearer, Accept: application/json,
// no body.
func assertRemoteCall(t testing.TB, calls []remoteCall, tok string, want int) {
	t.Helper()
	if len(calls) != want {
		t.Fatalf("the remote endpoint got %d call(s), want %d", len(calls), want)
	}
	for _, c := range calls {
		if c.Method != http.MethodPost {
			t.Errorf("remote call method = %s, want POST", c.Method)
		}
		if len(c.Authorization) != 1 || c.Authorization[0] != "Bearer "+tok {
			t.Errorf("remote call Authorization = %q, want the caller's token as bearer", c.Authorization)
		}
		if c.Accept != "application/json" {
			t.Errorf("remote call Accept = %q, want application/json", c.Accept)
		}
		if c.Body != "" {
			t.Errorf("remote call body = %q, want none", c.Body)
		}
	}
}

// TestRemoteEndpoint: Okera's JWT_AUTHENTICATION_SERVER_URL, asked first;
// its rejection or unavailability falls through to the public keys.
func TestRemoteEndpoint(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	remote := startRemote(t)
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf(`
		remote_endpoint %s {
			timeout 1s
		}
		public_key %s
		system_token %s
	`, remote.URL(), k.A, k.SystemToken)})
	a := rsaKey(t, keyA)

	t.Run("validated: the endpoint's sub and groups, not the token's", func(t *testing.T) {
		// README "Validation", "Groups": the user is the endpoint's sub; the
		// groups come from its answer, not from the payload the gateway did not
		// verify.
		remote.Set(remoteReply{Status: 200, Body: `{"sub":"remote-bob","groups":["Remote-G"," Ops ","remote-g"]}`})
		tok := idpToken(t, userClaims("alice", "token-group"))
		rec := g.accept(t, bearer(tok))
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "remote-bob", "remote-g,ops")
		assertPlaceholders(t, rec, "remote-bob", "remote-g,ops", "remote", "claim", fingerprint(tok))
		if got := rec.Header.Get("Authorization"); got != "Bearer "+k.System {
			t.Errorf("upstream Authorization = %q, want the system token", got)
		}
		assertTokenAbsent(t, rec, tok)
		assertRemoteCall(t, remote.Calls(), tok, 1)
	})

	t.Run("validated without groups: the payload's groups are not read", func(t *testing.T) {
		remote.Set(remoteReply{Status: 200, Body: `{"sub":"remote-bob"}`})
		tok := idpToken(t, userClaims("alice", "admins"))
		rec := g.accept(t, bearer(tok))
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "remote-bob", "")
		assertPlaceholders(t, rec, "remote-bob", "", "remote", "none", fingerprint(tok))
	})

	t.Run("validated with a malformed groups list: 401", func(t *testing.T) {
		// README "Groups": the endpoint's groups are the claim; a claim of
		// another type than a list of strings makes the answer unusable.
		remote.Set(remoteReply{Status: 200, Body: `{"sub":"remote-bob","groups":"admins"}`})
		tok := idpToken(t, userClaims("alice"))
		assertUnauthorized(t, g.reject(t, bearer(tok)), "okera", true)
	})

	t.Run("singleflight without cache_ttl: concurrent requests share one call", func(t *testing.T) {
		remote.Set(remoteReply{Status: 200, Body: `{"sub":"remote-bob"}`, Delay: 500 * time.Millisecond})
		tok := idpToken(t, userClaims("alice"))
		concurrently(t, g, 20, bearer(tok))
		if n := len(remote.Calls()); n != 1 {
			t.Errorf("the remote endpoint got %d calls for 20 concurrent requests with one token, want 1", n)
		}
	})

	t.Run("without cache_ttl every request asks the endpoint", func(t *testing.T) {
		remote.Set(remoteReply{Status: 200, Body: `{"sub":"remote-bob"}`})
		tok := idpToken(t, userClaims("alice"))
		for i := 0; i < 3; i++ {
			g.accept(t, bearer(tok))
		}
		assertRemoteCall(t, remote.Calls(), tok, 3)
	})

	t.Run("validated but expired: time checks apply to remote tokens", func(t *testing.T) {
		remote.Set(remoteReply{Status: 200, Body: `{"sub":"remote-bob"}`})
		tok := idpToken(t, userClaims("alice").with("exp", time.Now().Add(-time.Minute).Unix()))
		assertUnauthorized(t, g.reject(t, bearer(tok)), "okera", true)
	})

	// A rejection (4xx, or 2xx without a usable sub) falls through to the
	// keys: a key-signed token still passes, an unknown one gets 401.
	rejections := []struct {
		name  string
		reply remoteReply
	}{
		{"401", remoteReply{Status: 401, Body: `{"error":"invalid"}`}},
		{"403", remoteReply{Status: 403}},
		{"404", remoteReply{Status: 404}},
		{"200 without sub", remoteReply{Status: 200, Body: `{"user":"bob"}`}},
		{"200 with an empty sub", remoteReply{Status: 200, Body: `{"sub":""}`}},
		{"200 with a blank sub", remoteReply{Status: 200, Body: `{"sub":"   "}`}},
		{"200 with a numeric sub", remoteReply{Status: 200, Body: `{"sub":42}`}},
	}
	for _, c := range rejections {
		t.Run("remote rejects ("+c.name+"): a key-signed token passes", func(t *testing.T) {
			remote.Set(c.reply)
			tok := sign(t, a, jwa.RS512, userClaims("carol", "Key-G"))
			rec := g.accept(t, bearer(tok))
			assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "carol", "key-g")
			assertPlaceholders(t, rec, "carol", "key-g", "public_key", "claim", fingerprint(tok))
			assertRemoteCall(t, remote.Calls(), tok, 1)
		})
		t.Run("remote rejects ("+c.name+"): an unknown token gets 401", func(t *testing.T) {
			remote.Set(c.reply)
			tok := idpToken(t, userClaims("alice"))
			assertUnauthorized(t, g.reject(t, bearer(tok)), "okera", true)
			assertRemoteCall(t, remote.Calls(), tok, 1)
		})
	}

	// Unavailable (5xx, 3xx, timeout, unparseable body): the keys still decide;
	// if none validates, 503 rather than 401 (README "Status codes"), because
	// the endpoint might have said yes.
	unavailable := []struct {
		name  string
		reply remoteReply
	}{
		{"500", remoteReply{Status: 500, Body: `{"sub":"remote-bob"}`}},
		{"502", remoteReply{Status: 502}},
		{"unparseable 200", remoteReply{Status: 200, Body: `{"sub":"remote-bob"`}},
		{"slow past the timeout", remoteReply{Status: 200, Body: `{"sub":"remote-bob"}`, Delay: 2 * time.Second}},
		// The body is read up to 1 MiB: a longer answer cannot be parsed.
		{"answer over 1 MiB", remoteReply{Status: 200, Body: `{"sub":"remote-bob","pad":"` + strings.Repeat("x", 1<<20+1024) + `"}`}},
	}
	for _, c := range unavailable {
		t.Run("remote unavailable ("+c.name+"): a key-signed token passes", func(t *testing.T) {
			remote.Set(c.reply)
			tok := sign(t, a, jwa.RS512, userClaims("carol"))
			rec := g.accept(t, bearer(tok))
			assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "carol", "")
			assertPlaceholders(t, rec, "carol", "", "public_key", "none", fingerprint(tok))
		})
		t.Run("remote unavailable ("+c.name+"): an unknown token gets 503", func(t *testing.T) {
			remote.Set(c.reply)
			tok := idpToken(t, userClaims("alice"))
			assertUnavailable(t, g.reject(t, bearer(tok)))
		})
	}

	t.Run("a 302 is not followed", func(t *testing.T) {
		remote.Set(remoteReply{Status: http.StatusFound, Location: "/elsewhere"})
		tok := idpToken(t, userClaims("alice"))
		assertUnavailable(t, g.reject(t, bearer(tok)))
		if n := remote.OtherPathHits(); n != 0 {
			t.Errorf("the gateway followed the endpoint's redirect %d time(s)", n)
		}
	})

	t.Run("the slow endpoint is given up on at the timeout", func(t *testing.T) {
		remote.Set(remoteReply{Status: 200, Body: `{"sub":"remote-bob"}`, Delay: 5 * time.Second})
		start := time.Now()
		assertUnavailable(t, g.reject(t, bearer(idpToken(t, userClaims("alice")))))
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("the 503 took %v; timeout is 1s", d)
		}
	})
}

// TestRemoteEndpointDown: a connection error is unavailability (README
// "Validation").
func TestRemoteEndpointDown(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	dead := freeAddr(t) // nothing listens there
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf(`
		remote_endpoint http://%s/validate {
			timeout 1s
		}
		public_key %s
		system_token %s
	`, dead, k.A, k.SystemToken)})

	t.Run("a key-signed token passes", func(t *testing.T) {
		rec := g.accept(t, bearer(sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("carol"))))
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "carol", "")
	})
	t.Run("an unknown token gets 503 with Retry-After", func(t *testing.T) {
		assertUnavailable(t, g.reject(t, bearer(idpToken(t, userClaims("alice")))))
	})
	t.Run("no token is still 401", func(t *testing.T) {
		assertUnauthorized(t, g.reject(t, http.Header{}), "okera", false)
	})
}

// TestRemoteEndpointOptions: authoritative, cache_ttl, singleflight and
// trust_token_claims (README "The okera_auth directive", "Validation", "Groups").
func TestRemoteEndpointOptions(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	remote := startRemote(t)
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf(`
		remote_endpoint %s {
			timeout 2s
			cache_ttl 1m
			authoritative
			trust_token_claims
		}
		public_key %s
		system_token %s
	`, remote.URL(), k.A, k.SystemToken)})
	a := rsaKey(t, keyA)

	t.Run("authoritative: a rejection is final even for a key-signed token", func(t *testing.T) {
		// For endpoints that revoke tokens: the key would say yes, the
		// endpoint said no.
		remote.Set(remoteReply{Status: 401})
		tok := sign(t, a, jwa.RS512, userClaims("carol"))
		assertUnauthorized(t, g.reject(t, bearer(tok)), "okera", true)
		assertRemoteCall(t, remote.Calls(), tok, 1)
	})

	t.Run("authoritative: rejections are not cached", func(t *testing.T) {
		remote.Set(remoteReply{Status: 401})
		tok := idpToken(t, userClaims("alice"))
		for i := 0; i < 2; i++ {
			assertUnauthorized(t, g.reject(t, bearer(tok)), "okera", true)
		}
		assertRemoteCall(t, remote.Calls(), tok, 2)
	})

	t.Run("authoritative: unavailability is 503, the keys never stand in", func(t *testing.T) {
		remote.Set(remoteReply{Status: 500})
		assertUnavailable(t, g.reject(t, bearer(sign(t, a, jwa.RS512, userClaims("carol")))))
	})

	t.Run("cache_ttl: N requests, one remote call", func(t *testing.T) {
		remote.Set(remoteReply{Status: 200, Body: `{"sub":"remote-bob","groups":["g"]}`})
		tok := idpToken(t, userClaims("alice"))
		for i := 0; i < 5; i++ {
			rec := g.accept(t, bearer(tok))
			assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "remote-bob", "g")
		}
		assertRemoteCall(t, remote.Calls(), tok, 1)
	})

	t.Run("singleflight: 50 concurrent first requests, one remote call", func(t *testing.T) {
		remote.Set(remoteReply{Status: 200, Body: `{"sub":"remote-bob"}`, Delay: 500 * time.Millisecond})
		tok := idpToken(t, userClaims("alice"))
		concurrently(t, g, 50, bearer(tok))
		if n := len(remote.Calls()); n != 1 {
			t.Errorf("the remote endpoint got %d calls for one token, want 1", n)
		}
	})

	t.Run("trust_token_claims: groups from the payload, user from the endpoint", func(t *testing.T) {
		remote.Set(remoteReply{Status: 200, Body: `{"sub":"remote-dave"}`})
		tok := idpToken(t, userClaims("alice", "Payload-G", "payload-g"))
		rec := g.accept(t, bearer(tok))
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "remote-dave", "payload-g")
		assertPlaceholders(t, rec, "remote-dave", "payload-g", "remote", "claim", fingerprint(tok))
	})
}

// concurrently sends n identical requests at once; each must reach the
// upstream.
func concurrently(t testing.TB, g *gateway, n int, header http.Header) {
	t.Helper()
	before := g.Up.Count()
	var wg sync.WaitGroup
	statuses := make([]int, n)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Do(mustRequest(t, g.URL, header))
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusOK {
			t.Errorf("request %d: status %d, want 200", i, s)
		}
	}
	if got := g.Up.Count() - before; got != n {
		t.Errorf("the upstream got %d requests, want %d", got, n)
	}
}

// TestCachesHonourExp: a cached verification re-checks exp on every hit,
// and a cached remote answer never outlives the token's exp, even when the
// leeway would still admit the token (README "Validation").
func TestCachesHonourExp(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	remote := startRemote(t)
	keys := startGateway(t, gatewayConfig{Auth: fmt.Sprintf("public_key %s\nsystem_token %s", k.A, k.SystemToken)})
	cached := startGateway(t, gatewayConfig{Auth: fmt.Sprintf(`
		remote_endpoint %s {
			cache_ttl 1h
		}
		leeway 1m
		system_token %s
	`, remote.URL(), k.SystemToken)})

	exp := time.Now().Add(2 * time.Second).Unix()
	keyTok := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice").with("exp", exp))
	remoteTok := idpToken(t, userClaims("alice").with("exp", exp))
	remote.Set(remoteReply{Status: 200, Body: `{"sub":"remote-bob"}`})
	for i := 0; i < 2; i++ {
		keys.accept(t, bearer(keyTok))
		cached.accept(t, bearer(remoteTok))
	}
	if n := len(remote.Calls()); n != 1 {
		t.Fatalf("the remote endpoint got %d calls before exp, want 1 (cache_ttl 1h)", n)
	}

	time.Sleep(time.Until(time.Unix(exp, 0).Add(1100 * time.Millisecond)))

	t.Run("verification cache: an expired token is refused", func(t *testing.T) {
		assertUnauthorized(t, keys.reject(t, bearer(keyTok)), "okera", true)
	})
	t.Run("remote cache: the endpoint is asked again after exp", func(t *testing.T) {
		rec := cached.accept(t, bearer(remoteTok)) // within the leeway
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "remote-bob", "")
		if n := len(remote.Calls()); n != 2 {
			t.Errorf("the remote endpoint got %d calls, want 2: the cached answer outlived exp", n)
		}
	})
}

// mustRequest builds a GET with the headers.
func mustRequest(t testing.TB, url string, header http.Header) *http.Request {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Error(err)
		return nil
	}
	for k, vv := range header {
		req.Header[k] = vv
	}
	return req
}
