package integration

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// upstreamBody is what the recording upstream answers, so a test can tell
// a proxied answer from one Caddy made itself.
const upstreamBody = "upstream ok"

// recordedRequest is one request as the upstream saw it.
type recordedRequest struct {
	Method  string
	Path    string
	Header  http.Header
	Trailer http.Header // after the body was read to its end
	Body    string
}

// upstream is the service behind the gateway. It records every request in
// full and answers 200.
type upstream struct {
	srv  *httptest.Server
	mu   sync.Mutex
	reqs []recordedRequest
}

func startUpstream(t testing.TB) *upstream {
	t.Helper()
	u := new(upstream)
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := recordedRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()}
		body, _ := io.ReadAll(r.Body)
		rec.Body = string(body)
		rec.Trailer = r.Trailer.Clone()
		u.mu.Lock()
		u.reqs = append(u.reqs, rec)
		u.mu.Unlock()
		io.WriteString(w, upstreamBody)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

// Addr is the upstream's host:port, for reverse_proxy.
func (u *upstream) Addr() string { return strings.TrimPrefix(u.srv.URL, "http://") }

// Count is how many requests reached the upstream.
func (u *upstream) Count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.reqs)
}

// Last is the latest request; the test fails if there was none.
func (u *upstream) Last(t testing.TB) recordedRequest {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.reqs) == 0 {
		t.Fatal("the upstream received no request")
	}
	return u.reqs[len(u.reqs)-1]
}

// remoteReply is what the remote validation endpoint answers next.
type remoteReply struct {
	Status   int
	Body     string
	Delay    time.Duration
	Location string // for 3xx
}

// remoteCall is one call the endpoint received.
type remoteCall struct {
	Method        string
	Path          string
	Authorization []string
	Accept        string
	Body          string
}

// remoteEndpoint is a programmable stand-in for Okera's
// JWT_AUTHENTICATION_SERVER_URL. Calls to /validate are answered with the
// current reply; any other path is counted as a followed redirect.
type remoteEndpoint struct {
	srv          *httptest.Server
	mu           sync.Mutex
	reply        remoteReply
	calls        []remoteCall
	otherPathHit int
}

func startRemote(t testing.TB) *remoteEndpoint {
	t.Helper()
	e := &remoteEndpoint{reply: remoteReply{Status: http.StatusUnauthorized}}
	e.srv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *remoteEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	if r.URL.Path != "/validate" {
		e.otherPathHit++
		e.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"sub":"redirected-user"}`)
		return
	}
	e.calls = append(e.calls, remoteCall{
		Method:        r.Method,
		Path:          r.URL.Path,
		Authorization: r.Header.Values("Authorization"),
		Accept:        r.Header.Get("Accept"),
		Body:          string(body),
	})
	reply := e.reply
	e.mu.Unlock()
	if reply.Delay > 0 {
		select {
		case <-time.After(reply.Delay):
		case <-r.Context().Done():
			return
		}
	}
	if reply.Location != "" {
		w.Header().Set("Location", reply.Location)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(reply.Status)
	io.WriteString(w, reply.Body)
}

// URL is the validation URL to configure.
func (e *remoteEndpoint) URL() string { return e.srv.URL + "/validate" }

// Set programs the next answers and forgets the calls made so far.
func (e *remoteEndpoint) Set(r remoteReply) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.reply = r
	e.calls = nil
	e.otherPathHit = 0
}

// Calls are the calls made since the last Set.
func (e *remoteEndpoint) Calls() []remoteCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]remoteCall(nil), e.calls...)
}

// OtherPathHits counts requests to paths other than /validate (a followed
// redirect).
func (e *remoteEndpoint) OtherPathHits() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.otherPathHit
}

// hitCounter is a server that must never be asked (a jku or x5u URL planted
// in a token header).
type hitCounter struct {
	srv  *httptest.Server
	mu   sync.Mutex
	hits int
}

func startHitCounter(t testing.TB, body string) *hitCounter {
	t.Helper()
	h := new(hitCounter)
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.hits++
		h.mu.Unlock()
		io.WriteString(w, body)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hitCounter) Hits() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.hits
}
