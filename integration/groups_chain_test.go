package integration

import (
	"fmt"
	"net/http"
	"net/http/httptrace"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// TestGroupResolutionChain: the default resolver order claim → ldap →
// endpoint against a real slapd and a real group endpoint (README "Groups"): the
// first non-empty answer wins, answers are normalised, and the user never
// reaches an LDAP filter or the endpoint's URL unescaped.
func TestGroupResolutionChain(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	s := startSlapd(t, false)
	ep := startGroupsEndpoint(t)
	g := startGateway(t, gatewayConfig{Auth: groupsAuth(k,
		ldapBlock(s, s.URL),
		"groups_endpoint "+ep.URL()+" {\n\ttimeout 1s\n}",
	)})

	t.Run("claim present: LDAP is never searched and the endpoint never called", func(t *testing.T) {
		// README "Groups": the first resolver with a non-empty answer wins;
		// answers are never merged, so a token with groups costs the directory
		// nothing.
		searches, calls := s.CountLog(" SRCH "), ep.Total()
		tok := userToken(t, "alice", "Claim-Group")
		rec := g.accept(t, bearer(tok))
		assertGroups(t, rec, "alice", "claim", "claim-group")
		assertSystemToken(t, rec, k, tok)
		if n := s.CountLog(" SRCH ") - searches; n != 0 {
			t.Errorf("the directory got %d search(es) for a token with a groups claim, want 0", n)
		}
		if n := ep.Total() - calls; n != 0 {
			t.Errorf("the group endpoint got %d call(s) for a token with a groups claim, want 0", n)
		}
	})

	t.Run("claim absent: LDAP's groups, lower-cased", func(t *testing.T) {
		// README "Groups" ldap: one user search, one group search; Okera treats
		// groups case-insensitively, so Engineering arrives as engineering.
		tok := userToken(t, "alice")
		rec := g.accept(t, bearer(tok))
		assertGroups(t, rec, "alice", "ldap", "engineering", "analysts")
		assertSystemToken(t, rec, k, tok)
		if n := userSearches(s, "alice"); n != 1 {
			t.Errorf("user searches for alice = %d, want 1", n)
		}
		if n := groupSearches(s, "alice"); n != 1 {
			t.Errorf("group searches for alice = %d, want 1", n)
		}
		if n := len(ep.Calls("alice")); n != 0 {
			t.Errorf("the group endpoint was asked about alice %d time(s) although LDAP answered", n)
		}
	})

	t.Run("an empty or null groups claim is no answer: LDAP is asked", func(t *testing.T) {
		// README "Groups" claim: absent, null or [] → try the next resolver.
		rec := g.accept(t, bearer(sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("carol").with("groups", []string{}))))
		want := make([]string, 0, 30)
		for i := range 30 {
			want = append(want, fmt.Sprintf("many-%02d", i))
		}
		assertGroups(t, rec, "carol", "ldap", want...)

		tok := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("norma").with("groups", nullClaim{}))
		rec = g.accept(t, bearer(tok))
		// README "Groups" normalisation: Ops and OPS (two entries) are one group;
		// "R&D, Europe" holds a comma, which would split into two groups in
		// the joined header, so it is dropped and logged.
		assertGroups(t, rec, "norma", "ldap", "data-science", "ops")
		if !waitForLog(g.caddyProc, 3*time.Second, "dropped group names", "r&d, europe") {
			t.Errorf("Caddy did not log the dropped group \"r&d, europe\"")
		}
	})

	t.Run("LDAP has no entry for the user: the endpoint answers", func(t *testing.T) {
		// README "Groups" ldap: no entry → no answer; endpoint: GET <base>/<path-
		// escaped user> with Accept: application/json and the system token.
		// The user holds a space, a slash, a non-ASCII letter, ? and #: one
		// path segment, nothing that reaches another path or a query.
		const user = "new hire/ü?#"
		ep.Reply(user, endpointReply{Status: 200, Body: `["Contractors"," contractors ","Temps"]`})
		tok := userToken(t, user)
		rec := g.accept(t, bearer(tok))
		assertGroups(t, rec, user, "endpoint", "contractors", "temps")
		assertSystemToken(t, rec, k, tok)
		assertEndpointCalls(t, ep, user, "new%20hire%2F%C3%BC%3F%23", k, 1)
		if n := s.SearchCount("(uid=new hire/"); n != 1 {
			t.Errorf("user searches for %q = %d, want 1 (LDAP is asked first)", user, n)
		}
	})

	t.Run("LDAP knows the user but not in any group: the endpoint answers", func(t *testing.T) {
		// README "Groups": an empty answer is no answer; the next resolver is
		// asked.
		ep.Reply("bob", endpointReply{Status: 200, Body: `{"groups":["From-Endpoint"]}`})
		rec := g.accept(t, bearer(userToken(t, "bob")))
		assertGroups(t, rec, "bob", "endpoint", "from-endpoint")
		assertEndpointCalls(t, ep, "bob", "bob", k, 1)
		if n := groupSearches(s, "bob"); n != 1 {
			t.Errorf("group searches for bob = %d, want 1", n)
		}
	})

	shapes := []struct {
		name, user, body string
		want             []string
	}{
		// README "Groups" endpoint: ["a","b"] or {"groups":["a","b"]}.
		{"a JSON list", "ghost-list", `["Readers","WRITERS","readers"]`, []string{"readers", "writers"}},
		{"an object with groups", "ghost-object", `{"groups":["Auditors"],"other":1}`, []string{"auditors"}},
	}
	for _, c := range shapes {
		t.Run("endpoint answers "+c.name, func(t *testing.T) {
			ep.Reply(c.user, endpointReply{Status: 200, Body: c.body})
			tok := userToken(t, c.user)
			rec := g.accept(t, bearer(tok))
			assertGroups(t, rec, c.user, "endpoint", c.want...)
			assertSystemToken(t, rec, k, tok)
			assertEndpointCalls(t, ep, c.user, c.user, k, 1)
		})
	}

	t.Run("endpoint 404: no groups, source none", func(t *testing.T) {
		// README "Groups": 404 → no answer; no resolver answered, so the user
		// has no groups, and the groups header is still set (empty): README
		// "Toward the upstream".
		tok := userToken(t, "ghost-404")
		rec := g.accept(t, bearer(tok))
		assertGroups(t, rec, "ghost-404", "none")
		assertSystemToken(t, rec, k, tok)
		assertEndpointCalls(t, ep, "ghost-404", "ghost-404", k, 1)
	})

	failures := []struct {
		name, user string
		reply      endpointReply
	}{
		// README "Groups": other non-2xx, timeouts or other shapes → error; with
		// on_resolver_error deny (the default) an error is a 503.
		{"500", "ghost-500", endpointReply{Status: 500, Body: `["admins"]`}},
		{"an unknown shape", "ghost-shape", endpointReply{Status: 200, Body: `{"roles":["admins"]}`}},
		{"a list holding a number", "ghost-number", endpointReply{Status: 200, Body: `["a",1]`}},
		{"no answer within timeout", "ghost-slow", endpointReply{Status: 200, Body: `["a"]`, Delay: 3 * time.Second}},
	}
	for _, c := range failures {
		t.Run("endpoint "+c.name+": 503 with deny", func(t *testing.T) {
			ep.Reply(c.user, c.reply)
			start := time.Now()
			assertUnavailable(t, g.reject(t, bearer(userToken(t, c.user))))
			if d := time.Since(start); d > 2500*time.Millisecond {
				t.Errorf("the 503 took %s; the endpoint's timeout is 1s", d)
			}
			assertEndpointCalls(t, ep, c.user, c.user, k, 1)
		})
	}

	injections := []struct {
		sub      string
		filter   string // the user search filter value as slapd logs it
		endpoint string // the escaped path segment the endpoint must get
	}{
		// README "Groups" ldap: {0} is the RFC 4515-escaped user. Unescaped,
		// each of these would match every entry (several → error) or break the
		// filter; escaped, each is a literal uid nobody has.
		{`*)(uid=*`, `\2a\29\28uid=\2a`, `%2A%29%28uid=%2A`},
		{`*`, `\2a`, `%2A`},
		{`\`, `\5c`, `%5C`},
		{`admin)(|(uid=*`, `admin\29\28|\28uid=\2a`, `admin%29%28%7C%28uid=%2A`},
	}
	for _, c := range injections {
		t.Run("filter injection "+c.sub+": a literal uid, found nowhere, no error", func(t *testing.T) {
			ep.Reply(c.sub, endpointReply{Status: 200, Body: `["Endpoint-Answer"]`})
			members := s.SearchCount("(member=")
			rec := g.accept(t, bearer(userToken(t, c.sub)))
			assertGroups(t, rec, c.sub, "endpoint", "endpoint-answer")
			if n := userSearches(s, c.filter); n != 1 {
				t.Errorf("searches with the escaped filter (uid=%s) = %d, want 1\n%s", c.filter, n, s.Log())
			}
			if n := s.SearchCount("(member=") - members; n != 0 {
				t.Errorf("the directory got %d group search(es): the injected filter matched an entry", n)
			}
			assertEndpointCalls(t, ep, c.sub, c.endpoint, k, 1)
		})
	}
	t.Run("filter injection: no unescaped wildcard ever reached the directory", func(t *testing.T) {
		if n := s.CountLog("filter=", "(uid=*)"); n != 0 {
			t.Errorf("slapd logged %d search(es) with a (uid=*) presence filter", n)
		}
	})
	positives := []struct{ sub, filter, group string }{
		// The fixture's users whose uids hold the metacharacters: escaping
		// keeps their lookups working, DN in the member filter included.
		{`eve*)(uid=*`, `eve\2a\29\28uid=\2a`, "meta"},
		{`back\slash`, `back\5cslash`, "backslash"},
	}
	for _, c := range positives {
		t.Run("a uid holding filter metacharacters finds its own entry: "+c.sub, func(t *testing.T) {
			rec := g.accept(t, bearer(userToken(t, c.sub)))
			assertGroups(t, rec, c.sub, "ldap", c.group)
			if n := userSearches(s, c.filter); n != 1 {
				t.Errorf("searches with (uid=%s) = %d, want 1", c.filter, n)
			}
			if n := len(ep.Calls(c.sub)); n != 0 {
				t.Errorf("the group endpoint was asked about %q although LDAP answered", c.sub)
			}
		})
	}

	t.Run("200 concurrent first requests, one LDAP search", func(t *testing.T) {
		// README "Groups": concurrent lookups of one user make one query. slapd
		// is frozen while the requests arrive, so none can be answered from the
		// cache: only the shared lookup (singleflight) keeps it at one. Each
		// request carries its own token, so the gateway's token cache cannot
		// make them one request.
		tokens := distinctTokens(t, "crowd", 200)
		before := g.Up.Count()
		s.Pause()
		defer s.Resume()
		statuses := burst(t, g.URL, tokens, func() {
			time.Sleep(500 * time.Millisecond)
			s.Resume()
		})
		assertAllOK(t, statuses)
		if n := userSearches(s, "crowd"); n != 1 {
			t.Errorf("user searches for crowd = %d after 200 concurrent first requests, want 1", n)
		}
		if n := groupSearches(s, "crowd"); n != 1 {
			t.Errorf("group searches for crowd = %d after 200 concurrent first requests, want 1", n)
		}
		recs := g.Up.since(before)
		if len(recs) != len(tokens) {
			t.Fatalf("the upstream got %d requests, want %d", len(recs), len(tokens))
		}
		for _, rec := range recs {
			assertGroups(t, rec, "crowd", "ldap", "crowd")
		}
	})

	t.Run("200 concurrent first requests, LDAP has no entry: one search, one endpoint call", func(t *testing.T) {
		// README "Groups": the endpoint answers slowly, so all requests wait on
		// the same call; "no answer" from LDAP is shared and cached too.
		ep.Reply("ghost-crowd", endpointReply{Status: 200, Body: `["Crowd-From-Endpoint"]`, Delay: 500 * time.Millisecond})
		tokens := distinctTokens(t, "ghost-crowd", 200)
		before := g.Up.Count()
		assertAllOK(t, burst(t, g.URL, tokens, nil))
		assertEndpointCalls(t, ep, "ghost-crowd", "ghost-crowd", k, 1)
		if n := userSearches(s, "ghost-crowd"); n != 1 {
			t.Errorf("user searches for ghost-crowd = %d, want 1", n)
		}
		recs := g.Up.since(before)
		if len(recs) != len(tokens) {
			t.Fatalf("the upstream got %d requests, want %d", len(recs), len(tokens))
		}
		for _, rec := range recs {
			assertGroups(t, rec, "ghost-crowd", "endpoint", "crowd-from-endpoint")
		}
	})
}

// nullClaim marshals as JSON null (a nil value in claims.with deletes).
type nullClaim struct{}

func (nullClaim) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

// distinctTokens signs n tokens for sub without a groups claim; each is
// unique (userClaims sets a random jti).
func distinctTokens(t testing.TB, sub string, n int) []string {
	t.Helper()
	tokens := make([]string, n)
	for i := range tokens {
		tokens[i] = userToken(t, sub)
	}
	return tokens
}

// burst sends one GET per token, all at once. Once every request has been
// written to its connection, inFlight (if any) runs while they wait for
// their answers. It returns the statuses (0 for a transport error).
func burst(t testing.TB, url string, tokens []string, inFlight func()) []int {
	t.Helper()
	statuses := make([]int, len(tokens))
	var written, done sync.WaitGroup
	written.Add(len(tokens))
	done.Add(len(tokens))
	for i, tok := range tokens {
		go func() {
			defer done.Done()
			var once sync.Once
			wrote := func() { once.Do(written.Done) }
			defer wrote()
			req, err := http.NewRequest(http.MethodGet, url, nil)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
				WroteRequest: func(httptrace.WroteRequestInfo) { wrote() },
			}))
			resp, err := client.Do(req)
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	written.Wait()
	if inFlight != nil {
		inFlight()
	}
	done.Wait()
	return statuses
}

// assertAllOK: every status is 200; a summary rather than one line per request.
func assertAllOK(t testing.TB, statuses []int) {
	t.Helper()
	bad := map[int]int{}
	for _, s := range statuses {
		if s != http.StatusOK {
			bad[s]++
		}
	}
	if len(bad) > 0 {
		t.Errorf("of %d requests, some were not answered 200 (status: count): %v", len(statuses), bad)
	}
}
