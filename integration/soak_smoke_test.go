package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// TestSoakSmoke is `make soak` (bench/soak_*_test.go) in miniature, short
// enough for `make test`: a few seconds of concurrent hostile load on one
// gateway, with every answer checked against the status its kind must get
// and every request that reaches the upstream checked against the identity
// its token carries; then the remote endpoint failing (500) and hanging
// (past its timeout), where a key-validated token must still get 200 and a
// forged one 503, within the timeout; then config reloads under load,
// where no request may fail. At the end Caddy's goroutines and open
// descriptors must be back where they were after warm-up.
//
// It does not run in parallel with the rest of the suite, so its timings
// and counts are its own.
func TestSoakSmoke(t *testing.T) {
	dir := t.TempDir()
	key := rsaKey(t, keyA)
	pub := writeSPKI(t, dir, "a.pub.pem", key)
	system := sign(t, key, jwa.RS512, claims{"sub": "okera", "groups": []string{"root"},
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	systemFile := writeFile(t, dir, "system.token", system+"\n")
	remote := startRemote(t) // answers 401: every token falls through to the key
	const remoteTimeout = 500 * time.Millisecond
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf(`
remote_endpoint %s {
	timeout %s
}
public_key %s
system_token %s
required_group analysts`, remote.URL(), remoteTimeout, pub, systemFile)})

	// Credentials, each with the identity the upstream must see.
	var valid []smokeCred
	for i := range 8 {
		user := fmt.Sprintf("u%d", i)
		groups := []string{"Analysts", fmt.Sprintf("team-%d", i%3), "DATA", "data"}
		valid = append(valid, smokeCred{"Bearer " + sign(t, key, jwa.RS512, userClaims(user, groups...)),
			smokeIdentity(user, groups...)})
	}
	forbidden := []smokeCred{{"Bearer " + sign(t, key, jwa.RS512, userClaims("sam", "sales")), ""}}
	past := time.Now().Add(-time.Hour).Unix()
	expired := []smokeCred{{"Bearer " + sign(t, key, jwa.RS512, userClaims("old", "analysts").with("exp", past, "iat", past-60)), ""}}
	prefix := valid[0].auth[:strings.LastIndexByte(valid[0].auth, '.')+1]
	forged := func() []smokeCred {
		sig := make([]byte, 256)
		_, _ = rand.Read(sig)
		return []smokeCred{{prefix + b64(sig), ""}}
	}
	fixed := func(c []smokeCred) func() []smokeCred { return func() []smokeCred { return c } }
	kinds := []smokeKind{
		{"valid", http.StatusOK, fixed(valid), false},
		{"valid + spoofed identity headers", http.StatusOK, fixed(valid), true},
		{"outside required_group + spoofed groups", http.StatusForbidden, fixed(forbidden), true},
		{"expired", http.StatusUnauthorized, fixed(expired), false},
		{"forged signature", http.StatusUnauthorized, forged, false},
		{"no token + spoofed identity headers", http.StatusUnauthorized, fixed([]smokeCred{{"", ""}}), true},
	}
	upstreamChecks := func(t *testing.T, from int) {
		t.Helper()
		reqs := g.Up.since(from)
		bad := 0
		for _, r := range reqs {
			if why := smokeCheckUpstream(r, "Bearer "+system); why != "" {
				if bad++; bad <= 3 {
					t.Errorf("upstream: %s", why)
				}
			}
		}
		if bad > 0 {
			t.Errorf("%d of %d requests reached the upstream with a spoofed or wrong identity", bad, len(reqs))
		}
	}

	// Warm up, then the baseline: every idle connection around Caddy closed.
	smokeLoad(t, g.URL, kinds, 4, 300*time.Millisecond)
	settle := func() (int, int) {
		client.CloseIdleConnections()
		g.Up.srv.CloseClientConnections()
		remote.srv.CloseClientConnections()
		time.Sleep(200 * time.Millisecond)
		return caddyGoroutines(t, g.caddyProc), caddyOpenFiles(g.caddyProc)
	}
	baseG, baseF := settle()

	t.Run("hostile mix", func(t *testing.T) {
		from := g.Up.Count()
		st := smokeLoad(t, g.URL, kinds, 8, 1500*time.Millisecond)
		st.check(t)
		upstreamChecks(t, from)
	})

	// Failing and hanging remote endpoint: the key decides valid tokens,
	// a forged token is 503 (a validator was unavailable), an expired one
	// still 401 without asking.
	outage := []smokeKind{
		{"valid", http.StatusOK, fixed(valid), false},
		{"forged signature", http.StatusServiceUnavailable, forged, false},
		{"expired", http.StatusUnauthorized, fixed(expired), false},
	}
	for _, tc := range []struct {
		name  string
		reply remoteReply
	}{
		{"remote endpoint answers 500", remoteReply{Status: http.StatusInternalServerError}},
		{"remote endpoint hangs", remoteReply{Status: http.StatusOK, Body: `{"sub":"late"}`, Delay: time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			remote.Set(tc.reply)
			defer remote.Set(remoteReply{Status: http.StatusUnauthorized})
			from := g.Up.Count()
			st := smokeLoad(t, g.URL, outage, 6, 1500*time.Millisecond)
			st.check(t)
			if limit := remoteTimeout + 1500*time.Millisecond; st.slowest > limit {
				t.Errorf("slowest answer %s, above the remote timeout %s plus 1.5s", st.slowest, remoteTimeout)
			}
			upstreamChecks(t, from)
		})
	}

	t.Run("reloads under load", func(t *testing.T) {
		from := g.Up.Count()
		done := make(chan *smokeStats)
		go func() { done <- smokeLoad(t, g.URL, kinds, 8, 2500*time.Millisecond) }()
		for i := range 3 {
			time.Sleep(500 * time.Millisecond)
			smokeReload(t, g.caddyProc, 100_001+i)
		}
		st := <-done
		st.check(t)
		upstreamChecks(t, from)
		t.Logf("%d requests under 3 reloads; %d retried on a new connection by http.Transport", st.total, st.retried)
	})

	var n, f int
	ok := waitUntil(10*time.Second, func() bool {
		n, f = settle()
		return n <= baseG+8 && (f < 0 || f <= baseF+4)
	})
	t.Logf("goroutines %d → %d, open files %d → %d", baseG, n, baseF, f)
	if !ok {
		t.Errorf("Caddy has %d goroutines and %d open files, %d and %d after warm-up\n%s", n, f, baseG, baseF,
			get(t, "http://"+g.admin+"/debug/pprof/goroutine?debug=1", nil).Body)
	}
}

// smokeCred is an Authorization value ("" for none) and the identity the
// upstream must see for it ("" when the request must be refused).
type smokeCred struct{ auth, identity string }

// smokeKind is one kind of request and the status it must get.
type smokeKind struct {
	name  string
	want  int
	creds func() []smokeCred
	spoof bool
}

// smokeIdentity is "user;groups", groups normalised (README "Groups") and sorted.
func smokeIdentity(user string, groups ...string) string {
	var out []string
	for _, g := range groups {
		if g = strings.ToLower(strings.TrimSpace(g)); g != "" && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	slices.Sort(out)
	return user + ";" + strings.Join(out, ",")
}

// smokeSpoofs are client-chosen identity headers in every spelling a back
// end may fold into X-Okera-User or X-Okera-Groups; the gateway allow-lists
// the `_` and `.` ones, so only okera_auth removes them.
var smokeSpoofs = []string{"X-Okera-User", "x-okera-groups", "X_Okera_User", "x_okera_groups", "X.Okera.User", "x.okera.groups"}

const smokeExpect = "X-Soak-Expect"

// smokeStats is what a load run got.
type smokeStats struct {
	total, retried int
	wrong          []string
	slowest        time.Duration
}

func (s *smokeStats) check(t *testing.T) {
	t.Helper()
	if s.total == 0 {
		t.Fatal("no request completed")
	}
	if len(s.wrong) > 0 {
		t.Errorf("%d of %d answers wrong, e.g. %s", len(s.wrong), s.total, strings.Join(s.wrong[:min(3, len(s.wrong))], "; "))
	}
}

// smokeLoad sends the kinds round-robin from workers keep-alive
// connections for d and checks every answer.
func smokeLoad(t testing.TB, url string, kinds []smokeKind, workers int, d time.Duration) *smokeStats {
	var mu sync.Mutex
	st := &smokeStats{}
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; time.Now().Before(deadline); i++ {
				k := kinds[i%len(kinds)]
				creds := k.creds()
				c := creds[i%len(creds)]
				req, err := http.NewRequest(http.MethodGet, url, nil)
				if err != nil {
					panic(err)
				}
				if c.auth != "" {
					req.Header.Set("Authorization", c.auth)
				}
				req.Header.Set(smokeExpect, c.identity)
				if k.spoof {
					for j, name := range smokeSpoofs {
						req.Header[name] = []string{[]string{"admin", "root", "analysts,root"}[(i+j)%3]}
					}
					if i%2 == 0 {
						req.Header["Connection"] = []string{"keep-alive, X-Okera-User"}
					}
				}
				conns := 0
				req = req.WithContext(withConnCount(req.Context(), &conns))
				t0 := time.Now()
				resp, err := client.Do(req)
				var why string
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					switch {
					case resp.StatusCode != k.want:
						why = fmt.Sprintf("%s: got %d, want %d", k.name, resp.StatusCode, k.want)
					case resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "":
						why = k.name + ": a 401 without WWW-Authenticate"
					case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "":
						why = k.name + ": a 503 without Retry-After"
					}
				} else {
					why = fmt.Sprintf("%s: %v", k.name, err)
				}
				lat := time.Since(t0)
				mu.Lock()
				st.total++
				if conns > 1 {
					st.retried++
				}
				st.slowest = max(st.slowest, lat)
				if why != "" {
					st.wrong = append(st.wrong, why)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return st
}

// smokeCheckUpstream checks one request the upstream got: refused kinds
// never arrive; the others carry exactly one X-Okera-User and one
// X-Okera-Groups, under the canonical names only, naming the token's
// identity, and the system token.
func smokeCheckUpstream(r recordedRequest, systemBearer string) string {
	want := r.Header.Get(smokeExpect)
	if want == "" {
		return "a request the gateway must refuse reached the upstream"
	}
	for k, vv := range r.Header {
		if k != "X-Okera-User" && k != "X-Okera-Groups" &&
			(sameHeaderName(k, "X-Okera-User") || sameHeaderName(k, "X-Okera-Groups")) {
			return fmt.Sprintf("client-chosen %s %q", k, vv)
		}
	}
	users, groups := r.Header.Values("X-Okera-User"), r.Header.Values("X-Okera-Groups")
	if len(users) != 1 || len(groups) != 1 {
		return fmt.Sprintf("X-Okera-User %q and X-Okera-Groups %q, want one of each", users, groups)
	}
	if got := smokeIdentity(users[0], strings.Split(groups[0], ",")...); got != want {
		return fmt.Sprintf("identity %q, the token says %q", got, want)
	}
	if a := r.Header.Values("Authorization"); len(a) != 1 || a[0] != systemBearer {
		return "an Authorization other than the system token"
	}
	return ""
}

// smokeReload posts the running config back with the verify cache size
// changed: an equivalent config that Caddy must still load afresh.
func smokeReload(t testing.TB, p *caddyProc, size int) {
	t.Helper()
	cfg := get(t, "http://"+p.admin+"/config/", nil)
	var v any
	if err := json.Unmarshal([]byte(cfg.Body), &v); err != nil {
		t.Fatalf("GET /config/: %v", err)
	}
	found := 0
	var walk func(any)
	walk = func(x any) {
		switch x := x.(type) {
		case map[string]any:
			if x["handler"] == "okera_auth" {
				x["verify_cache_size"] = size
				found++
			}
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	walk(v)
	if found == 0 {
		t.Fatal("no okera_auth handler in the running config")
	}
	body, _ := json.Marshal(v)
	req, _ := http.NewRequest(http.MethodPost, "http://"+p.admin+"/load", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}).Do(req)
	if err != nil {
		t.Fatalf("POST /load: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /load answered %s: %s", resp.Status, readAll(t, resp.Body))
	}
}

// withConnCount counts the connections http.Transport takes for a request:
// more than one means it retried the request on a new connection (an idle
// one the old server closed under it during a reload).
func withConnCount(ctx context.Context, n *int) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GetConn: func(string) { *n++ }})
}
