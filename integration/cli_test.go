package integration

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readPEMType returns the type of the file's first PEM block.
func readPEMType(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s holds no PEM block", path)
	}
	return block.Type
}

// payloadOf decodes a compact token's payload without verifying it.
func payloadOf(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("%q is not a compact JWS", tok)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("payload of %q: %v", tok, err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("payload of %q: %v", tok, err)
	}
	return m
}

// TestCommandLine: okera-keygen and okera-token produce what the gateway
// accepts, like Okera's okctl (README "Commands").
func TestCommandLine(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	dir := filepath.Join(work, "auth")
	priv, pub, sys := filepath.Join(dir, "id_rsa"), filepath.Join(dir, "id_rsa.pub"), filepath.Join(dir, "system.token")

	res := runCaddy(t, work, "okera-keygen", "--dir", dir)
	if res.ExitCode != 0 {
		t.Fatalf("okera-keygen exited %d:\n%s", res.ExitCode, res.Output())
	}
	for path, mode := range map[string]os.FileMode{priv: 0o600, sys: 0o600} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatalf("okera-keygen did not write %s: %v", path, err)
		}
		if got := fi.Mode().Perm(); got != mode {
			t.Errorf("%s has mode %v, want %v", path, got, mode)
		}
	}
	if got := readPEMType(t, priv); got != "PRIVATE KEY" {
		t.Errorf("id_rsa is a %s block, want PRIVATE KEY (PKCS #8)", got)
	}
	if got := readPEMType(t, pub); got != "PUBLIC KEY" {
		t.Errorf("id_rsa.pub is a %s block, want PUBLIC KEY (SPKI)", got)
	}
	sysBytes, err := os.ReadFile(sys)
	if err != nil {
		t.Fatal(err)
	}
	system := strings.TrimSpace(string(sysBytes))
	p := payloadOf(t, system)
	if p["sub"] != "okera" {
		t.Errorf("system token sub = %v, want okera", p["sub"])
	}
	if g, _ := p["groups"].([]any); len(g) != 1 || g[0] != "root" {
		t.Errorf("system token groups = %v, want [root]", p["groups"])
	}

	t.Run("keygen refuses to overwrite without --force", func(t *testing.T) {
		before := map[string][]byte{}
		for _, f := range []string{priv, pub, sys} {
			before[f], _ = os.ReadFile(f)
		}
		res := runCaddy(t, work, "okera-keygen", "--dir", dir)
		if res.ExitCode == 0 {
			t.Fatalf("okera-keygen overwrote existing files without --force:\n%s", res.Output())
		}
		if !strings.Contains(res.Output(), "--force") {
			t.Errorf("the refusal does not mention --force:\n%s", res.Output())
		}
		for f, b := range before {
			if now, _ := os.ReadFile(f); !bytes.Equal(now, b) {
				t.Errorf("%s changed although okera-keygen refused", f)
			}
		}
	})

	t.Run("keygen --force overwrites", func(t *testing.T) {
		other := filepath.Join(work, "other")
		if res := runCaddy(t, work, "okera-keygen", "--dir", other); res.ExitCode != 0 {
			t.Fatalf("okera-keygen: %s", res.Output())
		}
		old, _ := os.ReadFile(filepath.Join(other, "id_rsa"))
		if res := runCaddy(t, work, "okera-keygen", "--dir", other, "--force"); res.ExitCode != 0 {
			t.Fatalf("okera-keygen --force exited %d:\n%s", res.ExitCode, res.Output())
		}
		if now, _ := os.ReadFile(filepath.Join(other, "id_rsa")); bytes.Equal(now, old) {
			t.Errorf("okera-keygen --force left id_rsa as it was")
		}
	})

	res = runCaddy(t, work, "okera-token", "--key", priv, "--sub", "alice", "--groups", "a,b")
	if res.ExitCode != 0 {
		t.Fatalf("okera-token exited %d:\n%s", res.ExitCode, res.Output())
	}
	tok := strings.TrimSpace(res.Stdout)
	res256 := runCaddy(t, work, "okera-token", "--key", priv, "--sub", "alice", "--alg", "RSA256")
	if res256.ExitCode != 0 {
		t.Fatalf("okera-token --alg RSA256 exited %d:\n%s", res256.ExitCode, res256.Output())
	}

	g := startGateway(t, gatewayConfig{Auth: fmt.Sprintf("public_key %s\nsystem_token %s", pub, sys)})

	t.Run("okera-token's token is accepted with public_key id_rsa.pub", func(t *testing.T) {
		rec := g.accept(t, bearer(tok))
		assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "alice", "a,b")
		if got := rec.Header.Get("Authorization"); got != "Bearer "+system {
			t.Errorf("upstream Authorization = %q, want keygen's system token", got)
		}
	})

	t.Run("the generated system token is refused from callers", func(t *testing.T) {
		assertUnauthorized(t, g.reject(t, bearer(system)), "okera", true)
	})

	t.Run("an RSA256 token against the default RSA512 key is refused", func(t *testing.T) {
		resp := g.reject(t, bearer(strings.TrimSpace(res256.Stdout)))
		assertUnauthorized(t, resp, "okera", true)
	})

	t.Run("no token is refused", func(t *testing.T) {
		assertUnauthorized(t, g.reject(t, http.Header{}), "okera", false)
	})
}

// TestTrustTokenRegisteredClaims: `okera-token --claim groups=["admins"]`
// without --groups minted an admin token, although the help said
// registered claims cannot be overridden. A --claim naming a registered
// claim is a usage error (exit 1) naming the claim and the flag to use;
// other claims still work (README "Commands").
func TestTrustTokenRegisteredClaims(t *testing.T) {
	t.Parallel()
	work := t.TempDir()
	dir := filepath.Join(work, "auth")
	if res := runCaddy(t, work, "okera-keygen", "--dir", dir); res.ExitCode != 0 {
		t.Fatalf("okera-keygen exited %d:\n%s", res.ExitCode, res.Output())
	}
	priv := filepath.Join(dir, "id_rsa")
	for _, tc := range []struct{ claim, flag string }{
		{`groups=["admins"]`, "--groups"},
		{"sub=root", "--sub"},
		{"iss=https://idp.example", ""},
		{"iat=0", "--ttl"},
		{"nbf=0", "--ttl"},
		{"exp=99999999999", "--ttl"},
		{"aud=okera", ""},
		{"jti=replayed", ""},
	} {
		name, _, _ := strings.Cut(tc.claim, "=")
		t.Run("TRUST-CLI-01 --claim "+tc.claim, func(t *testing.T) {
			t.Parallel()
			res := runCaddy(t, work, "okera-token", "--key", priv, "--sub", "alice", "--claim", "team=x", "--claim", tc.claim)
			if res.ExitCode != 1 {
				t.Fatalf("exit code %d, want 1; stdout %q stderr %q", res.ExitCode, res.Stdout, res.Stderr)
			}
			if strings.Contains(res.Stdout, "eyJ") {
				t.Errorf("a token was printed: %s", res.Stdout)
			}
			if !strings.Contains(res.Stderr, "registered claim "+name) {
				t.Errorf("the message does not name the claim %s:\n%s", name, res.Stderr)
			}
			if tc.flag != "" && !strings.Contains(res.Stderr, "use "+tc.flag) {
				t.Errorf("the message does not point to %s:\n%s", tc.flag, res.Stderr)
			}
		})
	}
	t.Run("TRUST-CLI-02 --claim team=x still works", func(t *testing.T) {
		t.Parallel()
		res := runCaddy(t, work, "okera-token", "--key", priv, "--sub", "alice", "--claim", "team=x", "--claim", "level=3")
		if res.ExitCode != 0 {
			t.Fatalf("exit code %d:\n%s", res.ExitCode, res.Output())
		}
		p := payloadOf(t, strings.TrimSpace(res.Stdout))
		if p["team"] != "x" || p["level"] != float64(3) || p["sub"] != "alice" {
			t.Errorf("payload %v, want team x, level 3, sub alice", p)
		}
		if _, has := p["groups"]; has {
			t.Errorf("groups %v without --groups", p["groups"])
		}
	})
}
