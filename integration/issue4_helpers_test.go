package integration

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
)

// Helpers of the tests of the gateway's own keys (issue 4): minted upstream
// tokens, okera_jwks, jwks_url, the self-renewing system token, hot reload
// and okera-verify.

// adaptPatched adapts a Caddyfile (given an admin line for admin) and sets
// JSON-only fields on every handler of the named kind: the fields the
// Caddyfile does not offer, such as okera_auth's system_token_ttl and
// file_check_interval.
func adaptPatched(t testing.TB, caddyfile, admin string, patch map[string]map[string]any) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "Caddyfile")
	text := withAdmin(caddyfile, admin)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	res := runCaddy(t, dir, "adapt", "--config", path, "--adapter", "caddyfile")
	if res.ExitCode != 0 {
		t.Fatalf("caddy adapt exited %d:\n%s\n%s", res.ExitCode, numbered(text), res.Output())
	}
	var cfg any
	if err := json.Unmarshal([]byte(res.Stdout), &cfg); err != nil {
		t.Fatalf("caddy adapt printed no JSON: %v\n%s", err, res.Stdout)
	}
	found := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if name, ok := v["handler"].(string); ok {
				if fields, ok := patch[name]; ok {
					found[name] = true
					for k, f := range fields {
						v[k] = f
					}
				}
			}
			for _, child := range v {
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	walk(cfg)
	for name := range patch {
		if !found[name] {
			t.Fatalf("no %s handler in the adapted config to patch", name)
		}
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// startPatched runs a Caddyfile with JSON-only fields patched in.
func startPatched(t testing.TB, caddyfile string, patch map[string]map[string]any) *caddyProc {
	t.Helper()
	admin := freeAddr(t)
	return startCaddyConfig(t, adaptPatched(t, caddyfile, admin, patch), "json", admin)
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of a public key,
// base64url: the kid of the tokens the gateway mints.
func thumbprint(t testing.TB, pub *rsa.PublicKey) string {
	t.Helper()
	k, err := jwk.FromRaw(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum, err := k.Thumbprint(crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return b64(sum)
}

// jwkSetOf is the JSON of a JWK Set holding the keys under the given kids,
// with alg RS256 and use sig.
func jwkSetOf(t testing.TB, keys map[string]*rsa.PublicKey) []byte {
	t.Helper()
	set := jwk.NewSet()
	for kid, pub := range keys {
		k, err := jwk.FromRaw(pub)
		if err != nil {
			t.Fatal(err)
		}
		for name, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: "RS256", jwk.KeyUsageKey: "sig"} {
			if err := k.Set(name, v); err != nil {
				t.Fatal(err)
			}
		}
		if err := set.AddKey(k); err != nil {
			t.Fatal(err)
		}
	}
	return mustJSON(t, set)
}

// verifiedCall is one request as the verifying upstream saw it.
type verifiedCall struct {
	Token  string
	Kid    string
	Claims map[string]any
	Err    error // nil when the token verified against the JWK Set
}

// verifyingUpstream is a service that trusts the gateway's tokens the way a
// real one would: it fetches the gateway's JWK Set (okera_jwks) and
// verifies the bearer token of every request against it.
type verifyingUpstream struct {
	srv     *httptest.Server
	jwksURL string // set once the gateway's address is known
	mu      sync.Mutex
	calls   []verifiedCall
}

func startVerifyingUpstream(t testing.TB) *verifyingUpstream {
	t.Helper()
	u := new(verifyingUpstream)
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		call := u.verify(r)
		u.mu.Lock()
		u.calls = append(u.calls, call)
		u.mu.Unlock()
		if call.Err != nil {
			http.Error(w, "token not verified: "+call.Err.Error(), http.StatusForbidden)
			return
		}
		io.WriteString(w, upstreamBody)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *verifyingUpstream) Addr() string { return strings.TrimPrefix(u.srv.URL, "http://") }

func (u *verifyingUpstream) verify(r *http.Request) verifiedCall {
	auth := r.Header.Values("Authorization")
	if len(auth) != 1 || !strings.HasPrefix(auth[0], "Bearer ") {
		return verifiedCall{Err: fmt.Errorf("Authorization = %q", auth)}
	}
	call := verifiedCall{Token: strings.TrimPrefix(auth[0], "Bearer ")}
	if msg, err := jws.Parse([]byte(call.Token)); err == nil && len(msg.Signatures()) == 1 {
		call.Kid = msg.Signatures()[0].ProtectedHeaders().KeyID()
	}
	resp, err := client.Get(u.jwksURL)
	if err != nil {
		call.Err = err
		return call
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	set, err := jwk.Parse(body)
	if err != nil {
		call.Err = fmt.Errorf("the gateway's JWK Set: %w", err)
		return call
	}
	tok, err := jwt.Parse([]byte(call.Token), jwt.WithKeySet(set), jwt.WithValidate(true))
	if err != nil {
		call.Err = err
		return call
	}
	call.Claims, _ = tok.AsMap(context.Background())
	return call
}

func (u *verifyingUpstream) Last(t testing.TB) verifiedCall {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.calls) == 0 {
		t.Fatal("the upstream received no request")
	}
	return u.calls[len(u.calls)-1]
}

// switchableJWKS is an identity provider's JWKS endpoint: it answers with
// the current body, counts fetches, and can be started late on a fixed
// address (an IdP that comes up after the gateway).
type switchableJWKS struct {
	addr string
	mu   sync.Mutex
	body []byte
	hits int
	srv  *http.Server
}

func (s *switchableJWKS) URL() string { return "http://" + s.addr + "/jwks" }

func (s *switchableJWKS) Set(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

func (s *switchableJWKS) Hits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits
}

// Start listens on s.addr; the server stops with the test.
func (s *switchableJWKS) Start(t testing.TB) {
	t.Helper()
	s.srv = &http.Server{Addr: s.addr, Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		s.hits++
		body := s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Write(body)
	})}
	ready := make(chan error, 1)
	go func() {
		ln, err := net.Listen("tcp", s.addr)
		ready <- err
		if err == nil {
			_ = s.srv.Serve(ln)
		}
	}()
	if err := <-ready; err != nil {
		t.Fatalf("starting the JWKS endpoint on %s: %v", s.addr, err)
	}
	t.Cleanup(func() { _ = s.srv.Close() })
}

// caddyGoroutines reads the goroutine count of a running Caddy from its
// admin endpoint's pprof index.
func caddyGoroutines(t testing.TB, p *caddyProc) int {
	t.Helper()
	resp, err := adminClient.Get("http://" + p.admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, _, _ := strings.Cut(readAll(t, resp.Body), "\n")
	// "goroutine profile: total 42"
	n, err := strconv.Atoi(strings.TrimSpace(line[strings.LastIndexByte(line, ' ')+1:]))
	if err != nil {
		t.Fatalf("cannot read the goroutine count from %q", line)
	}
	return n
}

// caddyOpenFiles counts a running Caddy's open file descriptors (sockets
// included); -1 where /proc is not available.
func caddyOpenFiles(p *caddyProc) int {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	return len(entries)
}

// loadConfig posts a JSON config to the admin endpoint and forces the
// reload even when it is unchanged.
func loadConfig(t testing.TB, p *caddyProc, config string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://"+p.admin+"/load", strings.NewReader(config))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Cache-Control", "must-revalidate")
	resp, err := (&http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatalf("POST /load: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /load answered %s: %s", resp.Status, readAll(t, resp.Body))
	}
	// Connections kept alive with the previous config's server are closed
	// by it as it stops; a client reconnects, and so do the tests.
	client.CloseIdleConnections()
}

func readAll(t testing.TB, r io.Reader) string {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// replaceFile swaps a file's content by an atomic rename (a new inode).
func replaceFile(t testing.TB, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// rewriteFile truncates and rewrites a file in place (same inode).
func rewriteFile(t testing.TB, path string, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// pemPKCS8 is a private key's PKCS#8 PEM.
func pemPKCS8(t testing.TB, key *rsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// pemSPKI is a public key's SubjectPublicKeyInfo PEM.
func pemSPKI(t testing.TB, key *rsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// reloadWithin is the longest a replaced key or token file may take to be
// in force (README "Toward the upstream").
const reloadWithin = 30 * time.Second
