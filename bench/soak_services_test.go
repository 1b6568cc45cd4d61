//go:build soak

package bench

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The services around the gateways under soak: the upstream, which checks
// the identity of every request it gets, and the dependencies that the
// faults break (the remote validation endpoint and the groups endpoint).
// They run inside the test binary, on their own listeners, so the test can
// switch a dependency to slow, failing or down at a precise moment and knows
// exactly which requests each one answered.

// Headers between the load driver and the upstream. The gateway passes them
// through untouched: they are not identity headers.
const (
	// expectHeader carries what the request's credentials entitle it to:
	// "user;group,group" alternatives separated by "|" (groups sorted), or
	// expectRefused for a request the gateway must answer itself.
	expectHeader  = "X-Soak-Expect"
	expectRefused = "refused"
	// verdictHeader is set on the upstream's answer when the identity it
	// received is not one the credentials allow; seenUserHeader echoes the
	// user it received, so the driver can tell which validator decided.
	verdictHeader  = "X-Soak-Verdict"
	seenUserHeader = "X-Soak-User"
)

// expectation is the value of expectHeader for the given identities.
func expectation(ids ...string) string { return strings.Join(ids, "|") }

// identity is "user;groups" with groups lower-cased, de-duplicated and sorted:
// the gateway normalises groups (README "Groups"), and LDAP returns them in the
// directory's order, so the check compares sets.
func identity(user string, groups ...string) string {
	return user + ";" + normalizedGroups(strings.Join(groups, ","))
}

func normalizedGroups(joined string) string {
	var out []string
	for _, g := range strings.Split(joined, ",") {
		if g = strings.ToLower(strings.TrimSpace(g)); g != "" && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// identityKey folds a header name the way CGI-style back ends do (case,
// '_' and '.' are all the same), to catch any spelling of an identity
// header.
func identityKey(name string) string {
	return strings.ToLower(strings.NewReplacer("_", "-", ".", "-").Replace(name))
}

// soakUpstream is the service behind every soak gateway. For each request
// it checks that the gateway sent exactly one X-Okera-User and one
// X-Okera-Groups, under their canonical names only, naming an identity the
// request's credentials allow, and the system token as Authorization (the
// caller's token must never arrive). It counts every request that fails a
// check, and flags it in its answer so the driver can attribute it.
type soakUpstream struct {
	addr         string
	srv          *http.Server
	systemBearer string

	requests atomic.Int64
	spoofed  atomic.Int64 // identity not one the credentials allow
	refused  atomic.Int64 // requests the gateway should have refused
	tokens   atomic.Int64 // Authorization other than the system token

	mu       sync.Mutex
	examples []string
}

func startSoakUpstream(systemToken string) (*soakUpstream, error) {
	u := &soakUpstream{systemBearer: "Bearer " + systemToken}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	u.addr = ln.Addr().String()
	u.srv = &http.Server{Handler: u, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	go func() { _ = u.srv.Serve(ln) }()
	return u, nil
}

func (u *soakUpstream) close() { _ = u.srv.Close() }

var upstreamOK = []byte("ok\n")

func (u *soakUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.requests.Add(1)
	verdict := u.check(r.Header)
	h := w.Header()
	h.Set(seenUserHeader, r.Header.Get("X-Okera-User"))
	if verdict != "" {
		h.Set(verdictHeader, verdict)
		u.mu.Lock()
		if len(u.examples) < 10 {
			u.examples = append(u.examples, verdict)
		}
		u.mu.Unlock()
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write(upstreamOK)
}

func (u *soakUpstream) check(h http.Header) string {
	want := h.Get(expectHeader)
	if want == "" || want == expectRefused {
		u.refused.Add(1)
		return "a request the gateway must refuse reached the upstream"
	}
	var users, groups []string
	for k, vv := range h {
		switch {
		case k == "X-Okera-User":
			users = vv
		case k == "X-Okera-Groups":
			groups = vv
		case identityKey(k) == "x-okera-user" || identityKey(k) == "x-okera-groups":
			u.spoofed.Add(1)
			return fmt.Sprintf("the upstream got a client-chosen %s: %q", k, vv)
		}
	}
	if len(users) != 1 || len(groups) != 1 {
		u.spoofed.Add(1)
		return fmt.Sprintf("the upstream got X-Okera-User %q and X-Okera-Groups %q, want one of each", users, groups)
	}
	got := users[0] + ";" + normalizedGroups(groups[0])
	if !slices.Contains(strings.Split(want, "|"), got) {
		u.spoofed.Add(1)
		return fmt.Sprintf("the upstream got identity %q, the credentials allow %q", got, want)
	}
	if a := h.Values("Authorization"); len(a) != 1 || a[0] != u.systemBearer {
		u.tokens.Add(1)
		return "the upstream got another Authorization than the system token"
	}
	return ""
}

// upstreamCounts is a snapshot of what the upstream counted.
type upstreamCounts struct {
	requests, spoofed, refused, tokens int64
	examples                           []string
}

func (u *soakUpstream) counts() upstreamCounts {
	u.mu.Lock()
	ex := slices.Clone(u.examples)
	u.mu.Unlock()
	return upstreamCounts{requests: u.requests.Load(), spoofed: u.spoofed.Load(), refused: u.refused.Load(),
		tokens: u.tokens.Load(), examples: ex}
}

func (c upstreamCounts) sub(o upstreamCounts) upstreamCounts {
	return upstreamCounts{requests: c.requests - o.requests, spoofed: c.spoofed - o.spoofed,
		refused: c.refused - o.refused, tokens: c.tokens - o.tokens, examples: c.examples}
}

// bad is every request the upstream should not have received as it did.
func (c upstreamCounts) bad() int64 { return c.spoofed + c.refused + c.tokens }

// Behaviours of a faultServer.
const (
	behaveNormal int32 = iota
	behaveSlow         // accepts the request and never answers
	behaveError        // answers 500 at once
)

// faultServer is a dependency of the gateway that the soak can break: slow
// (the request is read and never answered), failing (500), or down (the
// listener and every connection closed, so connecting is refused) and up
// again on the same port.
type faultServer struct {
	name    string
	addr    string
	handler http.Handler
	behave  atomic.Int32
	calls   atomic.Int64

	mu  sync.Mutex
	srv *http.Server // nil while down
}

func startFaultServer(name string, h http.Handler) (*faultServer, error) {
	f := &faultServer{name: name, handler: h}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	f.addr = ln.Addr().String()
	f.serve(ln)
	return f, nil
}

func (f *faultServer) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(f.serveHTTP), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: time.Minute}
	f.srv = srv
	go func() { _ = srv.Serve(ln) }()
}

func (f *faultServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	switch f.behave.Load() {
	case behaveSlow:
		// Never answer: the gateway's timeout has to end the call. The
		// bound only keeps a broken gateway from pinning this goroutine.
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Minute):
		}
		return
	case behaveError:
		http.Error(w, `{"error":"internal"}`, http.StatusInternalServerError)
		return
	}
	f.handler.ServeHTTP(w, r)
}

func (f *faultServer) set(b int32) { f.behave.Store(b) }

// down closes the listener and every connection: a crashed service.
func (f *faultServer) down() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.srv == nil {
		return nil
	}
	err := f.srv.Close()
	f.srv = nil
	return err
}

// up listens on the same address again.
func (f *faultServer) up() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.srv != nil {
		return nil
	}
	var err error
	for range 50 {
		var ln net.Listener
		if ln, err = net.Listen("tcp", f.addr); err == nil {
			f.serve(ln)
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: listening on %s again: %w", f.name, f.addr, err)
}

func (f *faultServer) close() { _ = f.down() }

// Who the remote validation endpoint says a valid token belongs to: another
// user than the token's own sub, so the upstream (and the report) can tell
// a remote validation from a key validation.
const remoteSoakUser = "alice-remote"

var remoteSoakGroups = []string{"analysts", "remote"}

// remoteValidator is Okera's external JWT authentication server as the
// identity provider would run it: it verifies the token's RS256 signature
// and exp itself, answers 200 {"sub", "groups"} to a good token and 401 to
// anything else.
func remoteValidator(pub *rsa.PublicKey) http.Handler {
	answer, _ := json.Marshal(map[string]any{"sub": remoteSoakUser, "groups": remoteSoakGroups})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<16))
		if r.Method != http.MethodPost || r.URL.Path != "/validate" {
			http.NotFound(w, r)
			return
		}
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || verifyRS256(pub, tok, time.Now()) != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":"invalid token"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	})
}

// verifyRS256 checks a compact JWS signed with RS256 and its exp.
func verifyRS256(pub *rsa.PublicKey, tok string, now time.Time) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return errors.New("not a compact JWS")
	}
	head, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return err
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(head, &h); err != nil || h.Alg != "RS256" {
		return errors.New("not RS256")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return err
	}
	body, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return err
	}
	var c struct {
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}
	if err := json.Unmarshal(body, &c); err != nil || c.Sub == "" {
		return errors.New("no sub")
	}
	if c.Exp != 0 && now.Unix() >= c.Exp {
		return errors.New("expired")
	}
	return nil
}

// endpointGroups are the groups endpoint's answers (OKERA_GROUP_RESOLVER_URL);
// a user it does not know gets 404, which is "no answer" (no groups).
var endpointGroups = map[string][]string{
	"dave": {"Ops", "analysts"},
	"erin": {"sales"},
}

func groupsEndpoint() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, ok := strings.CutPrefix(r.URL.Path, "/groups/")
		groups, known := endpointGroups[user]
		if !ok || r.Method != http.MethodGet || !known {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"groups": groups})
	})
}
