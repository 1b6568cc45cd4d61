package resolver_test

import (
	"context"
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

	"github.com/okeragate/caddy-okera-auth/resolver"
)

// groupsServer is a fake group endpoint under /groups/. It answers by user
// (the escaped path segment as sent) and counts the calls per user.
type groupsServer struct {
	*httptest.Server
	mu    sync.Mutex
	calls map[string]int
	last  *http.Request // the last request, for header checks
}

func newGroupsServer(t *testing.T) *groupsServer {
	t.Helper()
	gs := &groupsServer{calls: map[string]int{}}
	answers := map[string]func(w http.ResponseWriter){
		"alice":    body(200, `["Engineering","Analysts"]`),
		"bob":      body(200, `{"groups":["Ops"]}`),
		"carol":    body(200, `["From-Endpoint"]`),
		"dup":      body(200, `["Dup-From-Endpoint"]`),
		"extra":    body(200, `{"groups":["Ops"],"user":"extra"}`),
		"empty":    body(200, `[]`),
		"emptyobj": body(200, `{"groups":[]}`),
		"spaced":   body(200, " \n [\"a\"] \n"),
		"unknown":  body(404, `{"error":"no such user"}`),
		"boom":     body(500, `["Engineering"]`),
		"denied":   body(403, `[]`),
		"garbage":  body(200, `<html>oops</html>`),
		"number":   body(200, `42`),
		"null":     body(200, `null`),
		"string":   body(200, `"Engineering"`),
		"nogroups": body(200, `{"users":["a"]}`),
		"nullgrp":  body(200, `{"groups":null}`),
		"strgrp":   body(200, `{"groups":"Engineering"}`),
		"mixed":    body(200, `["a",1]`),
		"nested":   body(200, `[["a"]]`),
		"trailing": body(200, `["a"] ["b"]`),
		"huge":     body(200, `["`+strings.Repeat("a", 1<<20)+`"]`),
		"redirect": func(w http.ResponseWriter) {
			w.Header().Set("Location", "/groups/alice")
			w.WriteHeader(http.StatusFound)
		},
		"a%2Fb%20c":     body(200, `["slash-space"]`),
		"%3Fx=1%23frag": body(200, `["query-fragment"]`),
		"%C3%A5lice":    body(200, `["unicode"]`),
	}
	gs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok := strings.CutPrefix(r.URL.EscapedPath(), "/groups/")
		gs.mu.Lock()
		gs.calls[user]++
		gs.last = r
		gs.mu.Unlock()
		if user == "slow" {
			select {
			case <-r.Context().Done(): // the client gave up
			case <-time.After(2 * time.Second):
				body(200, `["late"]`)(w)
			}
			return
		}
		answer, known := answers[user]
		if !ok || !known {
			http.NotFound(w, r)
			return
		}
		answer(w)
	}))
	t.Cleanup(gs.Close)
	return gs
}

func body(status int, s string) func(http.ResponseWriter) {
	return func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(s))
	}
}

func (gs *groupsServer) callCount(user string) int {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return gs.calls[user]
}

func (gs *groupsServer) lastRequest() *http.Request {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	return gs.last
}

func newEndpoint(t *testing.T, cfg resolver.EndpointConfig) *resolver.EndpointResolver {
	t.Helper()
	r, err := resolver.NewEndpointResolver(cfg)
	if err != nil {
		t.Fatalf("NewEndpointResolver: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestEndpointResolve pins the endpoint rules of README "Groups": two answer
// shapes, 404 is no answer, everything else unexpected is an error.
func TestEndpointResolve(t *testing.T) {
	gs := newGroupsServer(t)
	r := newEndpoint(t, resolver.EndpointConfig{BaseURL: gs.URL + "/groups", Timeout: 500 * time.Millisecond})
	tests := []struct {
		user    string
		want    []string // nil: no answer
		wantErr string
	}{
		{user: "alice", want: []string{"Engineering", "Analysts"}},
		{user: "bob", want: []string{"Ops"}},
		{user: "extra", want: []string{"Ops"}},
		{user: "empty", want: []string{}},
		{user: "emptyobj", want: []string{}},
		{user: "spaced", want: []string{"a"}},
		{user: "unknown"},
		{user: "never-heard-of"},
		{user: "boom", wantErr: "500"},
		{user: "denied", wantErr: "403"},
		{user: "garbage", wantErr: "not JSON"},
		{user: "number", wantErr: "a number"},
		{user: "null", wantErr: "null"},
		{user: "string", wantErr: "a string"},
		{user: "nogroups", wantErr: `without "groups"`},
		{user: "nullgrp", wantErr: "null"},
		{user: "strgrp", wantErr: "a string"},
		{user: "mixed", wantErr: "group 1 is a number"},
		{user: "nested", wantErr: "group 0 is an array"},
		{user: "trailing", wantErr: "not JSON"},
		{user: "huge", wantErr: "over 1048576 bytes"},
		// A redirect could carry the system token elsewhere.
		{user: "redirect", wantErr: "redirects are not followed"},
		{user: "slow", wantErr: "timed out"},
		{user: "..", wantErr: "cannot be a path segment"},
		{user: "", want: nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.user), func(t *testing.T) {
			start := time.Now()
			got, err := r.Resolve(context.Background(), resolver.Request{User: tt.user})
			if d := time.Since(start); d > time.Second {
				t.Errorf("took %s, over the 500ms timeout", d)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve(%q) = %v, %v; want an error containing %q", tt.user, got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tt.user, err)
			}
			if (got == nil) != (tt.want == nil) || !slices.Equal(got, tt.want) {
				t.Fatalf("Resolve(%q) = %#v, want %#v", tt.user, got, tt.want)
			}
		})
	}
	if n := gs.callCount("alice"); n != 1 {
		t.Errorf("the redirect was followed: alice called %d times, want 1", n)
	}
	if n := gs.callCount(".."); n != 0 {
		t.Errorf("%q reached the server", "..")
	}
}

func TestEndpointTimeoutIsDeadlineExceeded(t *testing.T) {
	gs := newGroupsServer(t)
	r := newEndpoint(t, resolver.EndpointConfig{BaseURL: gs.URL + "/groups", Timeout: 200 * time.Millisecond})
	_, err := r.Resolve(context.Background(), resolver.Request{User: "slow"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v is not context.DeadlineExceeded", err)
	}
}

// TestEndpointPath: the user is one escaped path segment, joined to the
// base URL with exactly one slash.
func TestEndpointPath(t *testing.T) {
	gs := newGroupsServer(t)
	tests := []struct {
		base, user, want string
	}{
		{gs.URL + "/groups", "a/b c", "/groups/a%2Fb%20c"},
		{gs.URL + "/groups/", "a/b c", "/groups/a%2Fb%20c"},
		{gs.URL + "/groups//", "alice", "/groups/alice"},
		{gs.URL + "/groups", "?x=1#frag", "/groups/%3Fx=1%23frag"},
		{gs.URL + "/groups", "ålice", "/groups/%C3%A5lice"},
		{gs.URL, "alice", "/alice"},
		{gs.URL + "/", "alice", "/alice"},
	}
	for _, tt := range tests {
		t.Run(tt.base+" "+tt.user, func(t *testing.T) {
			r := newEndpoint(t, resolver.EndpointConfig{BaseURL: tt.base})
			_, _ = r.Resolve(context.Background(), resolver.Request{User: tt.user})
			last := gs.lastRequest()
			if last == nil || last.RequestURI != tt.want {
				t.Fatalf("request URI %q, want %q", last.RequestURI, tt.want)
			}
		})
	}
}

// TestEndpointHeaders: JSON is asked for, and the system token is read for
// every call so a renewed token is used at once.
func TestEndpointHeaders(t *testing.T) {
	gs := newGroupsServer(t)
	var token atomic.Value
	token.Store("tok-1")
	r := newEndpoint(t, resolver.EndpointConfig{BaseURL: gs.URL + "/groups", Token: func() string { return token.Load().(string) }})
	for _, tok := range []string{"tok-1", "tok-2"} {
		token.Store(tok)
		if _, err := r.Resolve(context.Background(), resolver.Request{User: "alice"}); err != nil {
			t.Fatal(err)
		}
		last := gs.lastRequest()
		if got := last.Header.Get("Authorization"); got != "Bearer "+tok {
			t.Errorf("Authorization %q, want %q", got, "Bearer "+tok)
		}
		if got := last.Header.Get("Accept"); got != "application/json" {
			t.Errorf("Accept %q", got)
		}
		if last.Method != http.MethodGet {
			t.Errorf("method %s", last.Method)
		}
	}

	noToken := newEndpoint(t, resolver.EndpointConfig{BaseURL: gs.URL + "/groups"})
	if _, err := noToken.Resolve(context.Background(), resolver.Request{User: "alice"}); err != nil {
		t.Fatal(err)
	}
	if got := gs.lastRequest().Header.Get("Authorization"); got != "" {
		t.Errorf("Authorization %q sent without a token", got)
	}
}

// TestEndpointOwnClientRedirects: a caller's client is used, but the
// resolver's copy never follows redirects and the caller's is unchanged.
func TestEndpointOwnClientRedirects(t *testing.T) {
	gs := newGroupsServer(t)
	var used atomic.Bool
	client := &http.Client{Transport: roundTripFunc(func(req *http.Request) (*http.Response, error) {
		used.Store(true)
		return http.DefaultTransport.RoundTrip(req)
	})}
	r := newEndpoint(t, resolver.EndpointConfig{BaseURL: gs.URL + "/groups", Client: client})
	if _, err := r.Resolve(context.Background(), resolver.Request{User: "redirect"}); err == nil {
		t.Fatal("redirect followed")
	}
	if !used.Load() {
		t.Error("the configured client was not used")
	}
	if client.CheckRedirect != nil {
		t.Error("the caller's client was modified")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestEndpointCache: answers and 404s are kept for cache_ttl, errors never.
func TestEndpointCache(t *testing.T) {
	gs := newGroupsServer(t)
	const ttl = 300 * time.Millisecond
	r := newEndpoint(t, resolver.EndpointConfig{BaseURL: gs.URL + "/groups", CacheTTL: ttl})
	tests := []struct {
		user         string
		wantPerRound int
	}{
		{"alice", 1},
		{"unknown", 1},
		{"boom", 4},
	}
	for round := 1; round <= 2; round++ {
		for _, tt := range tests {
			for range 4 {
				_, _ = r.Resolve(context.Background(), resolver.Request{User: tt.user})
			}
			if n := gs.callCount(tt.user); n != round*tt.wantPerRound {
				t.Errorf("round %d: %s called %d times, want %d", round, tt.user, n, round*tt.wantPerRound)
			}
		}
		time.Sleep(ttl + 100*time.Millisecond)
	}

	off := newEndpoint(t, resolver.EndpointConfig{BaseURL: gs.URL + "/groups"})
	for range 3 {
		_, _ = off.Resolve(context.Background(), resolver.Request{User: "bob"})
	}
	if n := gs.callCount("bob"); n != 3 {
		t.Errorf("without a cache: bob called %d times, want 3", n)
	}
}

// TestEndpointConcurrentFirstLookups: 500 concurrent lookups of one user
// make one call, with or without a cache.
func TestEndpointConcurrentFirstLookups(t *testing.T) {
	for _, ttl := range []time.Duration{time.Minute, 0} {
		t.Run(fmt.Sprint("ttl ", ttl), func(t *testing.T) {
			var calls atomic.Int64
			gate := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				<-gate
				body(200, `["a"]`)(w)
			}))
			t.Cleanup(srv.Close)
			r := newEndpoint(t, resolver.EndpointConfig{BaseURL: srv.URL, CacheTTL: ttl})

			var started, done sync.WaitGroup
			var failures atomic.Int64
			for range 500 {
				started.Add(1)
				done.Go(func() {
					started.Done()
					got, err := r.Resolve(context.Background(), resolver.Request{User: "alice"})
					if err != nil || !slices.Equal(got, []string{"a"}) {
						failures.Add(1)
					}
				})
			}
			started.Wait()
			time.Sleep(300 * time.Millisecond) // for every goroutine to reach the shared call
			close(gate)
			done.Wait()
			if n := failures.Load(); n != 0 {
				t.Fatalf("%d lookups failed", n)
			}
			if n := calls.Load(); n != 1 {
				t.Fatalf("%d calls for 500 concurrent lookups, want 1", n)
			}
		})
	}
}

// TestEndpointCallerContext: a caller that gives up returns at once; the
// call goes on for the others and its answer is cached.
func TestEndpointCallerContext(t *testing.T) {
	var calls atomic.Int64
	abandoned := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			// The first call's only caller leaves: the gateway must hang
			// up rather than keep the endpoint busy for nobody.
			<-r.Context().Done()
			close(abandoned)
			return
		}
		body(200, `["a"]`)(w)
	}))
	t.Cleanup(srv.Close)
	r := newEndpoint(t, resolver.EndpointConfig{BaseURL: srv.URL, CacheTTL: time.Minute})

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := r.Resolve(ctx, resolver.Request{User: "alice"}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Resolve = %v, want the caller's deadline", err)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Fatalf("caller waited %s", d)
	}
	select {
	case <-abandoned:
	case <-time.After(5 * time.Second):
		t.Fatal("the abandoned call was not cancelled")
	}
	got, err := r.Resolve(context.Background(), resolver.Request{User: "alice"})
	if err != nil || !slices.Equal(got, []string{"a"}) {
		t.Fatalf("the next caller got %v, %v; want a fresh answer", got, err)
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d calls, want 2: nothing from the abandoned call may be cached", n)
	}
}

func TestNewEndpointResolverConfig(t *testing.T) {
	tests := []struct {
		name, url string
		mod       func(*resolver.EndpointConfig)
		wantErr   string
	}{
		{"https", "https://groups.example.org/api/groups", nil, ""},
		{"ftp", "ftp://groups.example.org/", nil, "scheme must be http or https"},
		{"relative", "/groups", nil, "scheme must be http or https"},
		{"no host", "http:///groups", nil, "no host"},
		{"query", "https://h/groups?x=1", nil, "query or fragment"},
		{"fragment", "https://h/groups#x", nil, "query or fragment"},
		{"credentials", "https://u:pw@h/groups", nil, "credentials"},
		{"negative timeout", "https://h", func(c *resolver.EndpointConfig) { c.Timeout = -1 }, "negative"},
		{"negative cache ttl", "https://h", func(c *resolver.EndpointConfig) { c.CacheTTL = -1 }, "negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := resolver.DefaultEndpointConfig()
			cfg.BaseURL = tt.url
			if tt.mod != nil {
				tt.mod(&cfg)
			}
			r, err := resolver.NewEndpointResolver(cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				r.Close()
				return
			}
			if err == nil {
				r.Close()
				t.Fatalf("accepted; want an error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tt.wantErr)
			}
			if strings.Contains(err.Error(), ":pw@") {
				t.Fatalf("error reveals URL credentials: %q", err)
			}
		})
	}
}

// TestEndpointClose: Close stops the cache's goroutine and the client's
// idle connections.
func TestEndpointClose(t *testing.T) {
	gs := newGroupsServer(t)
	before := runtime.NumGoroutine()
	r, err := resolver.NewEndpointResolver(resolver.EndpointConfig{BaseURL: gs.URL + "/groups", CacheTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob", "unknown"} {
		if _, err := r.Resolve(context.Background(), resolver.Request{User: u}); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	waitGoroutines(t, before)
	if _, err := r.Resolve(context.Background(), resolver.Request{User: "alice"}); err == nil {
		t.Error("Resolve after Close succeeded")
	}
}

// TRUST-LOG-08: a groups endpoint URL with credentials is refused, and the
// refusal, which Caddy logs at start-up, carries neither the password nor
// the user name, whatever part of the URL is wrong (README "Logs").
func TestNewEndpointResolverRedactsUserinfo(t *testing.T) {
	for _, raw := range []string{
		"https://user:s3cretpw@h/groups",
		"https://user:s3cretpw@h/groups?x=1",
		"ftp://user:s3cretpw@h/groups",
		"https://user:s3cretpw@h:notaport/groups",
		"https://user:s3cretpw@h/groups\x7f",
		"https://user@h/groups",
	} {
		t.Run(fmt.Sprintf("%q", raw), func(t *testing.T) {
			cfg := resolver.DefaultEndpointConfig()
			cfg.BaseURL = raw
			r, err := resolver.NewEndpointResolver(cfg)
			if err == nil {
				r.Close()
				t.Fatal("accepted a URL with credentials")
			}
			for _, secret := range []string{"s3cretpw", "user"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error reveals %q: %v", secret, err)
				}
			}
		})
	}
}
