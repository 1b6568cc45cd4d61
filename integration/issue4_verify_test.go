package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// README "Commands": caddy okera-verify runs the handler's validation chain. A
// valid token prints {user, groups, validator, claims} as JSON and exits 0; an
// invalid one prints the reason on stderr and exits non-zero (2: the token's
// fault; 3: a validator could not answer; 1: bad usage).
func TestIssue4OkeraVerify(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	work := t.TempDir()
	keyAPub, keyB := rsaKey(t, keyA), rsaKey(t, keyB)
	good := sign(t, keyAPub, jwa.RS512, userClaims("alice", "Analysts", "data"))

	type result struct {
		User      string         `json:"user"`
		Groups    []string       `json:"groups"`
		Validator string         `json:"validator"`
		Claims    map[string]any `json:"claims"`
	}
	decode := func(t *testing.T, res cmdResult) result {
		t.Helper()
		if res.ExitCode != 0 {
			t.Fatalf("exit %d, want 0:\n%s", res.ExitCode, res.Output())
		}
		var r result
		if err := json.Unmarshal([]byte(res.Stdout), &r); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, res.Stdout)
		}
		return r
	}

	t.Run("valid token as argument", func(t *testing.T) {
		r := decode(t, runCaddy(t, work, "okera-verify", "--public-key", k.B+":RSA256", "--public-key", k.A, good))
		if r.User != "alice" || strings.Join(r.Groups, ",") != "analysts,data" || r.Validator != "public_key" || r.Claims["sub"] != "alice" {
			t.Errorf("result %+v", r)
		}
	})
	t.Run("valid token on stdin", func(t *testing.T) {
		r := decode(t, runCaddyStdin(t, work, "Bearer "+good+"\n", "okera-verify", "--public-key", "file://"+k.A+":RS512", "-"))
		if r.User != "alice" {
			t.Errorf("result %+v", r)
		}
	})

	expired := sign(t, keyAPub, jwa.RS512, userClaims("alice").with("exp", time.Now().Add(-time.Hour).Unix()))
	for _, c := range []struct {
		name, token, reason string
		args                []string
	}{
		{"another key's signature", sign(t, keyB, jwa.RS512, userClaims("alice")), "bad_signature", []string{"--public-key", k.A}},
		{"expired", expired, "expired", []string{"--public-key", k.A}},
		{"algorithm confusion", rawToken(mustJSON(t, map[string]any{"alg": "HS256", "typ": "JWT"}), mustJSON(t, userClaims("mallory")), hmacSigner(k.APEM)), "bad_signature", []string{"--public-key", k.A}},
		{"not a token", "hello", "malformed", []string{"--public-key", k.A}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := runCaddy(t, work, append(append([]string{"okera-verify"}, c.args...), c.token)...)
			if res.ExitCode != 2 {
				t.Fatalf("exit %d, want 2:\n%s", res.ExitCode, res.Output())
			}
			if res.Stdout != "" || !strings.Contains(res.Stderr, c.reason) {
				t.Errorf("stdout %q, stderr %q; want the reason %q on stderr", res.Stdout, res.Stderr, c.reason)
			}
		})
	}

	t.Run("remote endpoint", func(t *testing.T) {
		remote := startRemote(t)
		remote.Set(remoteReply{Status: http.StatusOK, Body: `{"sub":"remote-alice","groups":["ops"]}`})
		r := decode(t, runCaddy(t, work, "okera-verify", "--remote", remote.URL(), good))
		if r.User != "remote-alice" || r.Validator != "remote" || strings.Join(r.Groups, ",") != "ops" {
			t.Errorf("result %+v", r)
		}
		remote.Set(remoteReply{Status: http.StatusBadGateway})
		res := runCaddy(t, work, "okera-verify", "--remote", remote.URL(), good)
		if res.ExitCode != 3 || !strings.Contains(res.Stderr, "unavailable") {
			t.Errorf("endpoint down: exit %d, want 3:\n%s", res.ExitCode, res.Output())
		}
		// Down, but a key verifies: valid, as in okera_auth.
		decode(t, runCaddy(t, work, "okera-verify", "--remote", remote.URL(), "--public-key", k.A, good))
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{
			{"okera-verify", good},
			{"okera-verify", "--public-key", work + "/missing.pub", good},
			{"okera-verify", "--public-key", "s3://bucket/key.pub", good},
		} {
			if res := runCaddy(t, work, args...); res.ExitCode != 1 {
				t.Errorf("%v: exit %d, want 1:\n%s", args[1:], res.ExitCode, res.Output())
			}
		}
	})

	t.Run("help", func(t *testing.T) {
		res := runCaddy(t, work, "help", "okera-verify")
		for _, want := range []string{"--public-key", "--remote", "exit"} {
			if !strings.Contains(res.Output(), want) {
				t.Errorf("help does not mention %q:\n%s", want, res.Output())
			}
		}
	})
}
