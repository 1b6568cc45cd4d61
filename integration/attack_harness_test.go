package integration

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/okeragate/caddy-okera-auth/internal/slapdtest"
)

// The attack suite (attack_*_test.go) runs tables of hostile requests
// against a real ./caddy. Each case has an id (ATK-nnn) and a comment naming
// the rule or the published attack it pins down. Cases run one after the
// other on a few shared Caddy instances; for each, the runner checks what
// the client got, what the upstream saw, and what the remote validation
// endpoint, the LDAP server and the group endpoint were asked. Each
// instance ends with the checks that span all its cases: no token, system
// token or bind password in Caddy's DEBUG output or in any answer, the same
// 401 for every kind of invalid token, no panic, and a goroutine count back
// near its baseline.

// Claims the attack gateways require (issuer and audience directives).
const (
	atkIssuer   = "https://idp.example"
	atkAudience = "okera"
)

// atkClaims is userClaims with the issuer and audience the attack gateway
// requires.
func atkClaims(sub string, groups ...string) claims {
	return userClaims(sub, groups...).with("iss", atkIssuer, "aud", atkAudience)
}

// atkReply is what a stub answers.
type atkReply struct {
	Status   int
	Body     string
	Location string
}

// atkGroupCall is one request the group endpoint received.
type atkGroupCall struct {
	User          string // the path after /groups/, unescaped
	RequestURI    string // as sent
	Authorization []string
}

// atkGroupEndpoint is a programmable stand-in for Okera's
// OKERA_GROUP_RESOLVER_URL: GET /groups/<user>. Users without a programmed
// reply get 404 (the endpoint does not know them: no answer). Unlike the
// group suite's groupsEndpoint it answers redirects (Location) and forgets
// its calls between cases, which the attack runner needs.
type atkGroupEndpoint struct {
	srv     *httptest.Server
	mu      sync.Mutex
	replies map[string]atkReply
	calls   []atkGroupCall
}

func startAtkGroupEndpoint(t testing.TB) *atkGroupEndpoint {
	t.Helper()
	e := &atkGroupEndpoint{replies: map[string]atkReply{}}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := strings.TrimPrefix(r.URL.Path, "/groups/")
		e.mu.Lock()
		e.calls = append(e.calls, atkGroupCall{User: user, RequestURI: r.RequestURI, Authorization: r.Header.Values("Authorization")})
		reply, ok := e.replies[user]
		e.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		if reply.Location != "" {
			w.Header().Set("Location", reply.Location)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(reply.Status)
		io.WriteString(w, reply.Body)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

// URL is the base URL to configure.
func (e *atkGroupEndpoint) URL() string { return e.srv.URL + "/groups" }

// Set programs the replies for the next case and forgets earlier calls.
func (e *atkGroupEndpoint) Set(replies map[string]atkReply) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.replies = replies
	if e.replies == nil {
		e.replies = map[string]atkReply{}
	}
	e.calls = nil
}

// Calls are the requests since the last Set.
func (e *atkGroupEndpoint) Calls() []atkGroupCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.calls)
}

// atkListener counts TCP connections and answers none: a referral target
// or a planted URL that must never be contacted.
type atkListener struct {
	ln    net.Listener
	mu    sync.Mutex
	count int
}

func startAtkListener(t testing.TB) *atkListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &atkListener{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.mu.Lock()
			l.count++
			l.mu.Unlock()
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return l
}

func (l *atkListener) Addr() string { return l.ln.Addr().String() }

func (l *atkListener) Count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.count
}

// atkCase is one hostile request and what must come of it.
type atkCase struct {
	id   string
	name string
	// header is sent as is (see send); raw, when set, sends the request
	// itself (for what net/http's client cannot produce).
	header http.Header
	raw    func(t *testing.T, gatewayAddr string) response
	// remote and groups program the stubs for this case; nil means the
	// defaults: the remote endpoint rejects (401), the group endpoint does
	// not know anyone (404).
	remote *remoteReply
	groups map[string]atkReply
	// before runs just before the request (e.g. stop the LDAP server).
	before func(t *testing.T)

	status    int  // 200, 401, 403 or 503
	presented bool // a 401 for a presented token: error="invalid_token"
	// For a 200: the identity the upstream must see.
	wantUser, wantGroups string
	// Calls the request may cause; -1 means not checked.
	remoteCalls, ldapSearches, groupCalls int
	// maxTime bounds the answer's time; 0 means 3 s.
	maxTime time.Duration
	// after checks more; rec is nil unless the upstream was reached.
	after func(t *testing.T, resp response, rec *recordedRequest)
}

// atkEnv is one Caddy instance under attack and the services around it.
type atkEnv struct {
	g      *gateway
	remote *remoteEndpoint   // nil when not configured
	groups *atkGroupEndpoint // nil when not configured
	ldap   *slapdtest.Server // nil when not configured
	system string            // the system token
	secret []string          // must never appear in logs or answers
	tokens []string          // every token presented, for the log check

	refusals []atkRefusal // 401 answers to presented tokens
	missing  []atkRefusal // 401 answers without a token
	baseline int          // goroutines after warm-up
}

type atkRefusal struct {
	id   string
	resp response
}

// bearerToken is the credential after "Bearer " in the one Authorization
// value of h, or "".
func bearerToken(h http.Header) string {
	var vals []string
	for k, vv := range h {
		if strings.EqualFold(k, "Authorization") {
			vals = append(vals, vv...)
		}
	}
	if len(vals) != 1 {
		return ""
	}
	v := vals[0]
	if i := strings.IndexAny(v, " \t"); i >= 0 {
		return strings.TrimLeft(v[i+1:], " \t")
	}
	return ""
}

// allPresented is every credential in h's Authorization values.
func allPresented(h http.Header) []string {
	var out []string
	for k, vv := range h {
		if !strings.EqualFold(k, "Authorization") {
			continue
		}
		for _, v := range vv {
			if i := strings.IndexAny(v, " \t"); i >= 0 {
				out = append(out, strings.TrimLeft(v[i+1:], " \t"))
			} else {
				out = append(out, v)
			}
		}
	}
	return out
}

// run executes the cases in order, each as a subtest.
func (e *atkEnv) run(t *testing.T, cases []atkCase) {
	t.Helper()
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.id] {
			t.Fatalf("duplicate case id %s", c.id)
		}
		seen[c.id] = true
		t.Run(c.id+" "+c.name, func(t *testing.T) { e.runCase(t, c) })
	}
}

func (e *atkEnv) runCase(t *testing.T, c atkCase) {
	if e.remote != nil {
		r := remoteReply{Status: http.StatusUnauthorized, Body: `{"error":"unknown token"}`}
		if c.remote != nil {
			r = *c.remote
		}
		e.remote.Set(r)
	}
	if e.groups != nil {
		e.groups.Set(c.groups)
	}
	if c.before != nil {
		c.before(t)
	}
	ldapBefore := 0
	if e.ldap != nil {
		ldapBefore = e.ldap.SearchCount("")
	}
	upBefore := e.g.Up.Count()
	e.tokens = append(e.tokens, allPresented(c.header)...)

	start := time.Now()
	var resp response
	if c.raw != nil {
		resp = c.raw(t, strings.TrimSuffix(strings.TrimPrefix(e.g.URL, "http://"), "/data"))
	} else {
		resp = get(t, e.g.URL, c.header)
	}
	elapsed := time.Since(start)
	maxTime := c.maxTime
	if maxTime == 0 {
		maxTime = 3 * time.Second
	}
	if elapsed > maxTime {
		t.Errorf("answered in %s, want under %s", elapsed, maxTime)
	}

	// The client's view.
	if resp.Status >= 500 && resp.Status != http.StatusServiceUnavailable {
		t.Errorf("status %d: no case may produce a 5xx other than 503", resp.Status)
	}
	var rec *recordedRequest
	switch c.status {
	case http.StatusOK:
		if resp.Status != http.StatusOK || resp.Body != upstreamBody {
			t.Fatalf("got %d %q, want 200 from the upstream", resp.Status, resp.Body)
		}
		if n := e.g.Up.Count() - upBefore; n != 1 {
			t.Fatalf("the upstream received %d requests, want 1", n)
		}
		r := e.g.Up.Last(t)
		rec = &r
		assertIdentity(t, r, "X-Okera-User", "X-Okera-Groups", c.wantUser, c.wantGroups)
		if got := r.Header.Values("Authorization"); len(got) != 1 || got[0] != "Bearer "+e.system {
			t.Errorf("upstream Authorization = %q, want the system token", got)
		}
		for _, tok := range allPresented(c.header) {
			if len(tok) >= 16 {
				assertTokenAbsent(t, r, tok)
			}
		}
	case http.StatusUnauthorized:
		assertUnauthorized(t, resp, "okera", c.presented)
	case http.StatusServiceUnavailable:
		assertUnavailable(t, resp)
	case http.StatusForbidden:
		assertForbidden(t, resp)
	default:
		// An answer from Caddy itself (431, 400): the handler never ran.
		if resp.Status != c.status {
			t.Errorf("status = %d, want %d", resp.Status, c.status)
		}
	}
	if c.status != http.StatusOK {
		if n := e.g.Up.Count() - upBefore; n != 0 {
			t.Errorf("the upstream received %d request(s) for a request answered %d", n, resp.Status)
		}
		if strings.Contains(resp.Body, upstreamBody) {
			t.Errorf("the answer carries the upstream's body")
		}
		switch {
		case c.status == http.StatusUnauthorized && c.presented:
			e.refusals = append(e.refusals, atkRefusal{c.id, resp})
		case c.status == http.StatusUnauthorized:
			e.missing = append(e.missing, atkRefusal{c.id, resp})
		}
	}
	for _, s := range append([]string{e.system}, e.secret...) {
		if s != "" && (strings.Contains(resp.Body, s) || strings.Contains(fmt.Sprint(resp.Header), s)) {
			t.Errorf("the answer holds a secret (system token or bind password)")
		}
	}

	// What the services behind the gateway were asked.
	if e.remote != nil {
		calls := e.remote.Calls()
		if c.remoteCalls >= 0 && len(calls) != c.remoteCalls {
			t.Errorf("the remote endpoint got %d call(s), want %d", len(calls), c.remoteCalls)
		}
		tok := bearerToken(c.header)
		for _, call := range calls {
			if c.raw != nil {
				break // the runner does not know what a raw request presented
			}
			// The endpoint is asked about the caller's token, and nothing else.
			if call.Method != http.MethodPost || call.Body != "" || len(call.Authorization) != 1 || call.Authorization[0] != "Bearer "+tok {
				t.Errorf("remote call %s %q body %q, want POST with the caller's token only", call.Method, call.Authorization, call.Body)
			}
		}
		if n := e.remote.OtherPathHits(); n != 0 {
			t.Errorf("the remote endpoint's server got %d request(s) on another path (a followed redirect)", n)
		}
	}
	if e.groups != nil {
		calls := e.groups.Calls()
		if c.groupCalls >= 0 && len(calls) != c.groupCalls {
			users := make([]string, len(calls))
			for i, call := range calls {
				users[i] = call.User // not the Authorization: it holds the system token
			}
			t.Errorf("the group endpoint got %d call(s) for %q, want %d", len(calls), users, c.groupCalls)
		}
		for _, call := range calls {
			// README "Groups": the group endpoint authenticates the gateway
			// with the system token; the caller's token must never reach it.
			if len(call.Authorization) != 1 || call.Authorization[0] != "Bearer "+e.system {
				t.Errorf("the group endpoint got %d Authorization value(s), not the system token (caller's token: %v)",
					len(call.Authorization), slices.Contains(call.Authorization, "Bearer "+bearerToken(c.header)))
			}
		}
	}
	if e.ldap != nil && c.ldapSearches >= 0 {
		if n := e.ldap.SearchCount("") - ldapBefore; n != c.ldapSearches {
			t.Errorf("the LDAP server got %d search(es), want %d", n, c.ldapSearches)
		}
	}
	if c.after != nil {
		c.after(t, resp, rec)
	}
}

// goroutineProfile is Caddy's goroutine profile, for a failure message.
func (e *atkEnv) goroutineProfile() string {
	resp, err := adminClient.Get("http://" + e.g.admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// closeIdle drops every idle keep-alive connection around Caddy, so the
// goroutines serving them end: ours to Caddy, Caddy's to the stubs.
func (e *atkEnv) closeIdle() {
	client.CloseIdleConnections()
	e.g.Up.srv.CloseClientConnections()
	if e.remote != nil {
		e.remote.srv.CloseClientConnections()
	}
	if e.groups != nil {
		e.groups.srv.CloseClientConnections()
	}
}

// startBaseline records the goroutine count once the instance has served
// its warm-up requests.
func (e *atkEnv) startBaseline(t *testing.T) {
	t.Helper()
	e.closeIdle()
	time.Sleep(200 * time.Millisecond)
	e.baseline = caddyGoroutines(t, e.g.caddyProc)
}

// finish runs the checks that span every case of the instance.
func (e *atkEnv) finish(t *testing.T) {
	t.Helper()
	t.Run("LEAK no token, system token or secret in Caddy's DEBUG output", func(t *testing.T) {
		// README "Logs": a raw token, system token or password never appears in a
		// log line. The access log redacts Authorization by itself, so a
		// hit here is the handler's own logging.
		if !waitUntil(3*time.Second, func() bool { return strings.Count(e.g.Output(), `"msg":"handled request"`) > 0 }) {
			t.Fatal("no access log line: is DEBUG logging on?")
		}
		out := e.g.Output()
		for _, tok := range e.tokens {
			if len(tok) < 24 {
				continue // too short to tell from other text
			}
			if strings.Contains(out, tok) {
				t.Errorf("the log holds a presented token (%.40s...)", tok)
			}
			if segs := strings.Split(tok, "."); len(segs) == 3 && len(segs[2]) >= 24 && strings.Contains(out, segs[2]) {
				t.Errorf("the log holds the signature of a presented token (%.40s...)", tok)
			}
		}
		for _, s := range append([]string{e.system}, e.secret...) {
			if s != "" && strings.Contains(out, s) {
				t.Errorf("the log holds a secret (%.12s...)", s)
			}
		}
		if e.ldap != nil {
			log := e.ldap.Log()
			for _, tok := range e.tokens {
				if len(tok) >= 24 && strings.Contains(log, tok) {
					t.Errorf("the LDAP server saw a presented token")
				}
			}
		}
	})
	t.Run("LEAK every invalid token gets the same answer", func(t *testing.T) {
		// The 401 must not tell an attacker which check failed: status,
		// headers (but Date) and body are identical.
		for _, group := range [][]atkRefusal{e.refusals, e.missing} {
			if len(group) < 2 {
				continue
			}
			first := group[0]
			for _, r := range group[1:] {
				if d := atkDiff(first.resp, r.resp); d != "" {
					t.Errorf("%s and %s answer differently: %s", first.id, r.id, d)
				}
			}
		}
	})
	t.Run("LIFE no panic, goroutines back near the baseline", func(t *testing.T) {
		if strings.Contains(strings.ToLower(e.g.Output()), "panic") {
			t.Errorf("Caddy's output mentions a panic")
		}
		// Keep-alive connections each hold goroutines; close them, then
		// give the transports a moment to notice.
		var n int
		ok := waitUntil(10*time.Second, func() bool {
			e.closeIdle()
			n = caddyGoroutines(t, e.g.caddyProc)
			return n <= e.baseline+atkGoroutineSlack
		})
		t.Logf("goroutines: %d at the baseline, %d after the suite", e.baseline, n)
		if !ok {
			t.Errorf("Caddy runs %d goroutines after the suite, %d before: something never ended\n%s", n, e.baseline, e.goroutineProfile())
		}
	})
}

// atkGoroutineSlack allows for pooled connections (LDAP, the transports)
// that a case may legitimately leave open.
const atkGoroutineSlack = 8

// atkDiff describes how two answers differ, ignoring Date.
func atkDiff(a, b response) string {
	if a.Status != b.Status {
		return fmt.Sprintf("status %d vs %d", a.Status, b.Status)
	}
	if a.Body != b.Body {
		return fmt.Sprintf("body %q vs %q", a.Body, b.Body)
	}
	keys := map[string]bool{}
	for k := range a.Header {
		keys[k] = true
	}
	for k := range b.Header {
		keys[k] = true
	}
	for k := range keys {
		if k == "Date" {
			continue
		}
		if !slices.Equal(a.Header[k], b.Header[k]) {
			return fmt.Sprintf("header %s %q vs %q", k, a.Header[k], b.Header[k])
		}
	}
	return ""
}

// writeRaw dials addr and writes request byte for byte, with deadline for
// the whole exchange; the caller closes the connection. It does not use
// testing.T, so goroutines may call it.
func writeRaw(addr, request string, deadline time.Duration) (*net.TCPConn, error) {
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return nil, err
	}
	_ = conn.SetDeadline(time.Now().Add(deadline))
	if _, err := io.WriteString(conn, request); err != nil {
		conn.Close()
		return nil, err
	}
	return conn.(*net.TCPConn), nil
}

// bearerGET is a raw HTTP/1.1 GET of /data with the bearer token.
func bearerGET(addr, token string) string {
	return "GET /data HTTP/1.1\r\nHost: " + addr + "\r\nAuthorization: Bearer " + token + "\r\n\r\n"
}

// rawRequest writes a request byte for byte on a new connection and reads
// the answer.
func rawRequest(t *testing.T, addr, request string) response {
	t.Helper()
	conn, err := writeRaw(addr, request, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}
