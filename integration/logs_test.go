package integration

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// TestLogsNeverHoldTokens: at DEBUG, with access logs on, Caddy's output
// holds no raw token, no part of one, and no system token; a rejected
// token is identified by its fingerprint (README "Logs").
func TestLogsNeverHoldTokens(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	remote := startRemote(t)
	g := startGateway(t, gatewayConfig{
		Global: "log {\n\tlevel DEBUG\n}",
		Site:   "log",
		Auth: fmt.Sprintf(`
			remote_endpoint %s {
				timeout 1s
			}
			public_key %s
			system_token %s
		`, remote.URL(), k.A, k.SystemToken),
	})
	a := rsaKey(t, keyA)

	remote.Set(remoteReply{Status: 401})
	valid := sign(t, a, jwa.RS512, userClaims("alice", "analysts"))
	g.accept(t, bearer(valid))
	expired := sign(t, a, jwa.RS512, userClaims("alice").with("exp", time.Now().Add(-time.Hour).Unix()))
	assertUnauthorized(t, g.reject(t, bearer(expired)), "okera", true)
	wrongKey := sign(t, rsaKey(t, keyAttacker), jwa.RS512, userClaims("mallory"))
	assertUnauthorized(t, g.reject(t, bearer(wrongKey)), "okera", true)
	lowerScheme := sign(t, rsaKey(t, keyAttacker), jwa.RS512, userClaims("eve"))
	assertUnauthorized(t, g.reject(t, http.Header{"Authorization": {"bearer " + lowerScheme}}), "okera", true)

	remote.Set(remoteReply{Status: 500, Body: "internal error"})
	unavailable := idpToken(t, userClaims("alice"))
	assertUnavailable(t, g.reject(t, bearer(unavailable)))

	remote.Set(remoteReply{Status: 200, Body: `{"sub":"remote-bob"}`})
	remoteOK := idpToken(t, userClaims("alice"))
	g.accept(t, bearer(remoteOK))

	// The access log line is written once the response is done.
	if !waitUntil(3*time.Second, func() bool { return strings.Count(g.Output(), `"msg":"handled request"`) >= 6 }) {
		t.Errorf("expected six access log lines")
	}
	out := g.Output()

	secrets := map[string]string{
		"valid token":             valid,
		"expired token":           expired,
		"wrong-key token":         wrongKey,
		"lower-case scheme token": lowerScheme,
		"unavailable token":       unavailable,
		"remote-validated token":  remoteOK,
		"system token":            k.System,
	}
	for name, tok := range secrets {
		if strings.Contains(out, tok) {
			t.Errorf("the log holds the %s", name)
			continue
		}
		// Neither the claims nor the signature may be logged raw.
		parts := strings.Split(tok, ".")
		for i, part := range parts[1:] {
			if strings.Contains(out, part) {
				t.Errorf("the log holds segment %d of the %s", i+2, name)
			}
		}
	}
	for name, tok := range map[string]string{"expired token": expired, "wrong-key token": wrongKey, "unavailable token": unavailable} {
		if !strings.Contains(out, fingerprint(tok)) {
			t.Errorf("the log lacks the fingerprint %s of the rejected %s", fingerprint(tok), name)
		}
	}
	// README "Logs": Caddy's access log shows {http.auth.user.id} as user_id.
	for _, user := range []string{"alice", "remote-bob"} {
		if !strings.Contains(out, `"user_id":"`+user+`"`) {
			t.Errorf("the access log lacks user_id %s", user)
		}
	}
}
