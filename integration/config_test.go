package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
)

// authSite is a one-site Caddyfile with the given okera_auth block.
func authSite(t testing.TB, auth string) string {
	return fmt.Sprintf("http://%s {\n\tbind 127.0.0.1\n\tokera_auth {\n%s\t}\n\trespond ok\n}\n", freeAddr(t), indent(auth, "\t\t"))
}

// TestStartupFailures: a config the gateway cannot honour stops Caddy at
// start-up with a message that says what to fix (README "The okera_auth
// directive", "Toward the upstream", "Troubleshooting"; an unknown
// subdirective is an error naming the file and line).
func TestStartupFailures(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	dir := t.TempDir()
	a := rsaKey(t, keyA)
	privatePath := writePKCS8Private(t, dir, "id_rsa", a)
	smallPath := writeSPKI(t, dir, "small.pub.pem", rsaKeyBits(t, "small", 1024))
	missingPath := filepath.Join(dir, "no-such-key.pem")
	expiredToken := writeFile(t, dir, "expired.token", sign(t, a, jwa.RS512, claims{
		"sub": "okera", "exp": time.Now().Add(-time.Hour).Unix(),
	}))
	noSubToken := writeFile(t, dir, "nosub.token", sign(t, a, jwa.RS512, claims{
		"groups": []string{"root"}, "exp": time.Now().Add(time.Hour).Unix(),
	}))
	notJWT := writeFile(t, dir, "garbage.token", "this is not a token\n")

	cases := []struct {
		name string
		auth string
		want []string // each must appear in the output (case-insensitive)
	}{
		{"public_key s3:// is an unsupported scheme",
			"public_key s3://bucket/key.pem\nsystem_token " + k.SystemToken,
			[]string{"s3://", "unsupported"}},
		{"missing key file names the path",
			"public_key " + missingPath + "\nsystem_token " + k.SystemToken,
			[]string{missingPath}},
		{"a private key given as public_key",
			"public_key " + privatePath + "\nsystem_token " + k.SystemToken,
			[]string{privatePath, "private key"}},
		{"a 1024-bit key is refused",
			"public_key " + smallPath + "\nsystem_token " + k.SystemToken,
			[]string{smallPath, "1024", "2048"}},
		{"an HMAC algorithm is refused",
			"public_key " + k.A + " HS256\nsystem_token " + k.SystemToken,
			[]string{"HS256"}},
		{"an expired system token",
			"public_key " + k.A + "\nsystem_token " + expiredToken,
			[]string{expiredToken, "expired"}},
		{"a system token without sub",
			"public_key " + k.A + "\nsystem_token " + noSubToken,
			[]string{noSubToken, "sub"}},
		{"a system token that is not a JWT",
			"public_key " + k.A + "\nsystem_token " + notJWT,
			[]string{notJWT, "jwt"}},
		{"upstream_token system without system_token",
			"public_key " + k.A + "\nupstream_token system",
			[]string{"system_token"}},
		{"no system_token with the default upstream_token",
			"public_key " + k.A,
			[]string{"system_token"}},
		{"nothing to validate tokens with",
			"system_token " + k.SystemToken,
			[]string{"remote", "public"}},
		{"upstream_token of an unknown kind",
			"public_key " + k.A + "\nupstream_token forged\nsystem_token " + k.SystemToken,
			[]string{"forged"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out := expectStartFailure(t, authSite(t, c.auth))
			for _, w := range c.want {
				if !strings.Contains(strings.ToLower(out), strings.ToLower(w)) {
					t.Errorf("the error does not mention %q:\n%s", w, out)
				}
			}
		})
	}

	unknown := []struct {
		name, auth, word string
	}{
		{"unknown subdirective", "public_key " + k.A + "\nsystem_token " + k.SystemToken + "\nbogus_option 1", "bogus_option"},
		{"unknown remote_endpoint subdirective", "remote_endpoint http://127.0.0.1:1/validate {\n\tretries 3\n}\npublic_key " + k.A + "\nsystem_token " + k.SystemToken, "retries"},
		{"unknown subdirective without arguments", "public_key " + k.A + "\nsystem_token " + k.SystemToken + "\nvalidate_everything", "validate_everything"},
	}
	for _, c := range unknown {
		t.Run(c.name+" names itself and its line", func(t *testing.T) {
			t.Parallel()
			out, written := startFailure(t, authSite(t, c.auth))
			if !strings.Contains(out, c.word) {
				t.Errorf("the error does not name %q:\n%s", c.word, out)
			}
			m := regexp.MustCompile(`Caddyfile:(\d+)`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("the error does not name the Caddyfile line:\n%s", out)
			}
			n, _ := strconv.Atoi(m[1])
			lines := strings.Split(written, "\n")
			if n < 1 || n > len(lines) || !strings.Contains(lines[n-1], c.word) {
				t.Errorf("the error names line %d, which is not the line of %q:\n%s\n%s", n, c.word, numbered(written), out)
			}
		})
	}

	t.Run("caddy run exits non-zero on an expired system token", func(t *testing.T) {
		t.Parallel()
		dir, path, _ := writeCaddyfile(t, authSite(t, "public_key "+k.A+"\nsystem_token "+expiredToken))
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, caddyBinary(t), "run", "--config", path, "--adapter", "caddyfile")
		cmd.Dir = dir
		cmd.Env = caddyEnv(dir)
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("caddy run kept running with an expired system token:\n%s", out)
		}
		if err == nil {
			t.Fatalf("caddy run exited 0 with an expired system token:\n%s", out)
		}
		if !strings.Contains(string(out), "expired") {
			t.Errorf("caddy run's output does not say expired:\n%s", out)
		}
	})

	t.Run("valid configs are accepted", func(t *testing.T) {
		t.Parallel()
		// upstream_token original and none need no system token; RS256 and
		// RS512 spellings in any case; a remote endpoint alone suffices.
		expectValid(t, authSite(t, "public_key "+k.A+" Rs256\nupstream_token original"))
		expectValid(t, authSite(t, "public_key file://"+k.A+" rsa512\nupstream_token none"))
		expectValid(t, authSite(t, "remote_endpoint http://127.0.0.1:1/validate\nsystem_token "+k.SystemToken))
	})
}

// handlerOrder walks an adapted config and lists the HTTP handlers in the
// order they run.
func handlerOrder(v any, out *[]string) {
	switch x := v.(type) {
	case map[string]any:
		if h, ok := x["handler"].(string); ok {
			*out = append(*out, h)
		}
		for _, key := range []string{"routes", "handle"} {
			if sub, ok := x[key]; ok {
				handlerOrder(sub, out)
			}
		}
		if apps, ok := x["apps"]; ok {
			handlerOrder(apps, out)
		}
		if h, ok := x["http"]; ok {
			handlerOrder(h, out)
		}
		if s, ok := x["servers"].(map[string]any); ok {
			for _, srv := range s {
				handlerOrder(srv, out)
			}
		}
	case []any:
		for _, e := range x {
			handlerOrder(e, out)
		}
	}
}

// TestAdaptOrder: okera_auth needs no global `order` line; it runs after
// basic_auth and before reverse_proxy wherever it is written (README "The
// okera_auth directive").
func TestAdaptOrder(t *testing.T) {
	t.Parallel()
	caddyfile := `http://127.0.0.1:8080 {
	reverse_proxy 127.0.0.1:9
	okera_auth {
		public_key /etc/okera/id_rsa.pub RSA256
		system_token /etc/okera/system.token
	}
	basic_auth {
		bob $2a$14$Zkx19XLiW6VYouLHR5NmfOFU0z2GTNmpkT/5qqR7hx4IjWJPDhjvG
	}
}
`
	out, err := adapt(t, caddyfile)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, `"handler":"okera_auth"`) {
		t.Fatalf(`caddy adapt output lacks "handler":"okera_auth":\n%s`, out)
	}
	var cfg any
	if err := json.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("caddy adapt printed invalid JSON: %v\n%s", err, out)
	}
	var order []string
	handlerOrder(cfg, &order)
	pos := map[string]int{}
	for i, h := range order {
		if _, seen := pos[h]; !seen {
			pos[h] = i
		}
	}
	for _, h := range []string{"authentication", "okera_auth", "reverse_proxy"} {
		if _, ok := pos[h]; !ok {
			t.Fatalf("handler %s missing from the adapted routes %v:\n%s", h, order, out)
		}
	}
	if !(pos["authentication"] < pos["okera_auth"] && pos["okera_auth"] < pos["reverse_proxy"]) {
		t.Errorf("handler order %v: want basic_auth (authentication), then okera_auth, then reverse_proxy", order)
	}
	for _, path := range []string{"/etc/okera/id_rsa.pub", "/etc/okera/system.token"} {
		if !strings.Contains(out, `"`+path+`"`) {
			t.Errorf("the adapted okera_auth lacks %s:\n%s", path, out)
		}
	}
}

// TestJSONConfig: the handler works from JSON config, here the adapted
// Caddyfile of a gateway (README "The okera_auth directive").
func TestJSONConfig(t *testing.T) {
	t.Parallel()
	k := newKeyFiles(t)
	up := startUpstream(t)
	gw, plain, admin := freeAddr(t), freeAddr(t), freeAddr(t)
	cfg := gatewayConfig{Auth: fmt.Sprintf("public_key %s\nsystem_token %s", k.A, k.SystemToken)}
	dir := t.TempDir()
	path := writeFile(t, dir, "Caddyfile", withAdmin(cfg.caddyfile(gw, plain, up.Addr()), admin))
	res := runCaddy(t, dir, "adapt", "--config", path, "--adapter", "caddyfile")
	if res.ExitCode != 0 {
		t.Fatalf("caddy adapt: %s", res.Output())
	}
	proc := startCaddyConfig(t, res.Stdout, "json", admin)
	g := &gateway{caddyProc: proc, URL: "http://" + gw + "/data", PlainURL: "http://" + plain + "/data", Up: up}

	tok := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice", "g"))
	rec := g.accept(t, bearer(tok))
	assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "alice", "g")
	assertUnauthorized(t, g.reject(t, nil), "okera", false)
}
