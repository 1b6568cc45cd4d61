package integration

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// scrape reads the admin endpoint's /metrics into "name{labels}" → value,
// keeping only caddy_okera_auth series.
func scrape(t testing.TB, p *caddyProc) map[string]float64 {
	t.Helper()
	resp := get(t, "http://"+p.admin+"/metrics", nil)
	if resp.Status != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(resp.Body))
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "caddy_okera_auth_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// README "Metrics": every counter moves by exactly what the requests did.
func TestMetricsCountOutcomes(t *testing.T) {
	k := newKeyFiles(t)
	remote := startRemote(t)
	remote.Set(remoteReply{Status: http.StatusUnauthorized})
	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf(`
remote_endpoint %s {
	timeout 2s
}
public_key %s
system_token %s
required_group analysts
admins nobody`, remote.URL(), k.A, k.SystemToken)})

	before := scrape(t, g.caddyProc)
	good := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice", "analysts"))
	outsider := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("bob", "sales"))
	forged := sign(t, rsaKey(t, keyB), jwa.RS512, userClaims("alice", "analysts"))

	for range 3 {
		g.accept(t, bearer(good)) // 1 key validation, then 2 key-cache hits
	}
	assertForbidden(t, g.reject(t, bearer(outsider)))
	assertUnauthorized(t, g.reject(t, bearer(forged)), "okera", true)
	assertUnauthorized(t, g.reject(t, nil), "okera", false)
	assertUnauthorized(t, g.reject(t, nil), "okera", false)
	remote.Set(remoteReply{Status: http.StatusInternalServerError})
	assertUnavailable(t, g.reject(t, bearer(forged)))

	after := scrape(t, g.caddyProc)
	delta := func(series string) float64 { return after[series] - before[series] }
	want := map[string]float64{
		`caddy_okera_auth_requests_total{outcome="authenticated"}`: 3,
		`caddy_okera_auth_requests_total{outcome="forbidden"}`:     1,
		`caddy_okera_auth_requests_total{outcome="invalid_token"}`: 1,
		`caddy_okera_auth_requests_total{outcome="missing_token"}`: 2,
		`caddy_okera_auth_requests_total{outcome="unavailable"}`:   1,
		// The remote endpoint is asked for every token (no cache_ttl):
		// good ×3, outsider, forged ×2.
		`caddy_okera_auth_validations_total{result="rejected",validator="remote"}`:    5,
		`caddy_okera_auth_validations_total{result="unavailable",validator="remote"}`: 1,
		// Keys: good and outsider verify once each; forged fails twice.
		`caddy_okera_auth_validations_total{result="valid",validator="keys"}`:    2,
		`caddy_okera_auth_validations_total{result="rejected",validator="keys"}`: 2,
		`caddy_okera_auth_cache_requests_total{cache="keys",result="hit"}`:       2,
		// Claim groups are resolved once per token and kept with the cached
		// identity: good once, outsider once.
		`caddy_okera_auth_group_resolutions_total{result="groups",source="claim"}`: 2,
	}
	for series, w := range want {
		if got := delta(series); got != w {
			t.Errorf("%s moved by %v, want %v", series, got, w)
		}
	}
	if got := delta(`caddy_okera_auth_validation_duration_seconds_count{validator="remote"}`); got != 6 {
		t.Errorf("remote validation duration observed %v times, want 6", got)
	}
	exp := after["caddy_okera_auth_system_token_expiry_timestamp_seconds"]
	if exp < float64(time.Now().Unix()) {
		t.Errorf("system token expiry gauge = %v, want a future Unix time", exp)
	}
}
