package caddymodule

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/okeragate/caddy-okera-auth/keyfile"
)

// caddy okera-keygen writes what okctl writes: a PKCS#8 private key (0600),
// an SPKI public key, and a system token (0600) signed by the key for sub
// okera with groups [root].
func TestKeygen(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".auth")
	now := time.Now()
	files, err := keygen(keygenOptions{Dir: dir, Alg: "RSA512", Bits: 2048, TTL: time.Hour}, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 3 {
		t.Fatalf("files = %v", files)
	}
	for name, mode := range map[string]os.FileMode{"id_rsa": 0o600, "id_rsa.pub": 0o644, "system.token": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s mode = %v, want %v", name, fi.Mode().Perm(), mode)
		}
	}
	privPEM, _ := os.ReadFile(filepath.Join(dir, "id_rsa"))
	if !bytes.HasPrefix(privPEM, []byte("-----BEGIN PRIVATE KEY-----")) {
		t.Errorf("id_rsa is not PKCS#8 PEM: %.40s", privPEM)
	}
	pub, err := keyfile.LoadPublicKey(filepath.Join(dir, "id_rsa.pub"))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, "system.token"))
	tok, err := jwt.Parse(bytes.TrimSpace(raw), jwt.WithKey(jwa.RS512, pub), jwt.WithValidate(true))
	if err != nil {
		t.Fatalf("system token does not verify with id_rsa.pub: %v", err)
	}
	if tok.Subject() != "okera" {
		t.Errorf("sub = %q", tok.Subject())
	}
	if g, _ := tok.Get("groups"); !strings.Contains(strings.Join(anyStrings(g), ","), "root") {
		t.Errorf("groups = %v", g)
	}
	if d := tok.Expiration().Sub(now); d < 59*time.Minute || d > time.Hour {
		t.Errorf("lifetime = %s, want 1h", d)
	}

	// A second run refuses to overwrite; --force replaces the key.
	if _, err := keygen(keygenOptions{Dir: dir, Alg: "RSA512", Bits: 2048, TTL: time.Hour}, now); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("second keygen: err = %v, want a refusal naming --force", err)
	}
	if _, err := keygen(keygenOptions{Dir: dir, Alg: "RSA512", Bits: 2048, TTL: time.Hour, Force: true}, now); err != nil {
		t.Fatal(err)
	}
	again, _ := os.ReadFile(filepath.Join(dir, "id_rsa"))
	if bytes.Equal(again, privPEM) {
		t.Error("--force did not replace the key")
	}
}

func TestKeygenRefusesBadOptions(t *testing.T) {
	dir := t.TempDir()
	for _, opts := range []keygenOptions{
		{Dir: dir, Alg: "RSA512", Bits: 1024, TTL: time.Hour},
		{Dir: dir, Alg: "HS256", Bits: 2048, TTL: time.Hour},
		{Dir: dir, Alg: "RSA256", Bits: 2048, TTL: 0},
	} {
		if _, err := keygen(opts, time.Now()); err == nil {
			t.Errorf("keygen(%+v) succeeded", opts)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("a refused keygen wrote %d files", len(entries))
	}
}

func TestPrintToken(t *testing.T) {
	dir := t.TempDir()
	if _, err := keygen(keygenOptions{Dir: dir, Alg: "RSA256", Bits: 2048, TTL: time.Hour}, time.Now()); err != nil {
		t.Fatal(err)
	}
	pub, err := keyfile.LoadPublicKey(filepath.Join(dir, "id_rsa.pub"))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	opts := tokenOptions{
		Key: "file://" + filepath.Join(dir, "id_rsa"), Sub: "alice", Groups: "a, b,,c", TTL: 10 * time.Minute, Alg: "rs256",
		Claims: []string{"team=data", "level=3", "tags=[\"x\"]"},
	}
	if err := printToken(&out, opts, time.Now()); err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Parse(bytes.TrimSpace(out.Bytes()), jwt.WithKey(jwa.RS256, pub), jwt.WithValidate(true))
	if err != nil {
		t.Fatal(err)
	}
	if tok.Subject() != "alice" {
		t.Errorf("sub = %q, want --sub's alice", tok.Subject())
	}
	if g, _ := tok.Get("groups"); strings.Join(anyStrings(g), ",") != "a,b,c" {
		t.Errorf("groups = %v", g)
	}
	if team, _ := tok.Get("team"); team != "data" {
		t.Errorf("team = %#v, want the string data", team)
	}
	if lvl, _ := tok.Get("level"); lvl != float64(3) {
		t.Errorf("level = %#v, want the JSON number 3", lvl)
	}
	for _, bad := range []tokenOptions{
		{Sub: "alice", Alg: "RSA512", TTL: time.Hour},
		{Key: filepath.Join(dir, "id_rsa"), Alg: "RSA512", TTL: time.Hour},
		{Key: filepath.Join(dir, "id_rsa.pub"), Sub: "alice", Alg: "RSA512", TTL: time.Hour},
		{Key: filepath.Join(dir, "id_rsa"), Sub: "alice", Alg: "RSA512", TTL: time.Hour, Claims: []string{"novalue"}},
	} {
		if err := printToken(&out, bad, time.Now()); err == nil {
			t.Errorf("printToken(%+v) succeeded", bad)
		}
	}
}

func anyStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// TRUST-CLI-01: --claim cannot set a registered claim. Such a --claim used
// to be dropped for some names and applied for others (groups=["admins"]
// without --groups made an admin token while the help said registered
// claims cannot be overridden), so what was signed was not what the
// operator read. Naming one is now a usage error that names the claim and
// the flag that sets it (README "Commands").
func TestPrintTokenRefusesRegisteredClaims(t *testing.T) {
	dir := t.TempDir()
	if _, err := keygen(keygenOptions{Dir: dir, Alg: "RSA512", Bits: 2048, TTL: time.Hour}, time.Now()); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "id_rsa")
	for _, tc := range []struct {
		claim, groups string
		want          []string // in the error
	}{
		{`groups=["admins"]`, "", []string{"registered claim groups", "--groups"}},
		{`groups=["admins"]`, "analysts", []string{"registered claim groups", "--groups"}},
		{"groups=admins", "", []string{"registered claim groups", "--groups"}},
		{"sub=root", "", []string{"registered claim sub", "--sub"}},
		{"iss=https://idp.example", "", []string{"registered claim iss"}},
		{"iat=0", "", []string{"registered claim iat", "--ttl"}},
		{"nbf=0", "", []string{"registered claim nbf", "--ttl"}},
		{"exp=99999999999", "", []string{"registered claim exp", "--ttl"}},
		{"aud=data", "", []string{"registered claim aud"}},
		{"jti=abc", "", []string{"registered claim jti"}},
		{" groups =[\"admins\"]", "", []string{"registered claim groups", "--groups"}},
		{"=x", "", []string{"name=value"}},
	} {
		t.Run(tc.claim, func(t *testing.T) {
			var out bytes.Buffer
			opts := tokenOptions{Key: key, Sub: "alice", Groups: tc.groups, TTL: time.Hour, Alg: "RSA512",
				Claims: []string{"team=x", tc.claim}}
			err := printToken(&out, opts, time.Now())
			if err == nil {
				t.Fatalf("--claim %s was accepted; printed %s", tc.claim, out.String())
			}
			if out.Len() != 0 {
				t.Errorf("a refused --claim still printed %q", out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}
