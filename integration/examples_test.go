package integration

import (
	"crypto/rsa"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"

	"github.com/okeragate/caddy-okera-auth/internal/slapdtest"
)

// runExample starts examples/<name>.caddyfile with env, the way an operator
// would: the file unchanged, its {$VARS} from the environment.
func runExample(t *testing.T, name string, env map[string]string) *caddyProc {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("..", "examples", name+".caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	admin := freeAddr(t)
	t.Setenv("ADMIN_ADDR", admin)
	for k, v := range env {
		t.Setenv(k, v)
	}
	return startCaddyConfig(t, string(text), "caddyfile", admin)
}

// Every example is a complete Caddyfile that `caddy adapt` accepts.
func TestExamplesAdapt(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "examples", "*.caddyfile"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no examples: %v", err)
	}
	for _, file := range files {
		file, err := filepath.Abs(file)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(file), func(t *testing.T) {
			res := runCaddy(t, t.TempDir(), "adapt", "--config", file, "--adapter", "caddyfile")
			if res.ExitCode != 0 || !strings.Contains(res.Stdout, `"handler":"okera_auth"`) {
				t.Fatalf("caddy adapt %s: exit %d\n%s", file, res.ExitCode, res.Output())
			}
		})
	}
}

func TestExampleRemoteEndpoint(t *testing.T) {
	k := newKeyFiles(t)
	remote := startRemote(t)
	up := startUpstream(t)
	gw := freeAddr(t)
	runExample(t, "remote-endpoint", map[string]string{
		"GATEWAY_ADDR": gw, "AUTH_URL": remote.URL(), "SYSTEM_TOKEN": k.SystemToken, "DATA_ADDR": up.Addr(),
	})
	// A token the keys would accept is still refused: the endpoint is
	// authoritative and there are no keys.
	tok := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice"))
	remote.Set(remoteReply{Status: http.StatusOK, Body: `{"sub":"alice@corp","groups":["Analysts"]}`})
	if resp := get(t, "http://"+gw+"/", bearer(tok)); resp.Status != http.StatusOK {
		t.Fatalf("validated token: %d", resp.Status)
	}
	rec := up.Last(t)
	assertIdentity(t, rec, "X-Okera-User", "X-Okera-Groups", "alice@corp", "analysts")
	if got := rec.Header.Get("Authorization"); got != "Bearer "+k.System {
		t.Errorf("upstream Authorization is not the system token")
	}
	// cache_ttl 1m: the second request is answered from the cache.
	get(t, "http://"+gw+"/", bearer(tok))
	if n := len(remote.Calls()); n != 1 {
		t.Errorf("remote called %d times, want 1 (cache_ttl)", n)
	}
	other := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("bob"))
	remote.Set(remoteReply{Status: http.StatusUnauthorized})
	assertUnauthorized(t, get(t, "http://"+gw+"/", bearer(other)), "okera", true)
}

func TestExampleKeysLDAP(t *testing.T) {
	k := newKeyFiles(t)
	ldap := slapdtest.New(t, slapdtest.Options{})
	up := startUpstream(t)
	gw := freeAddr(t)
	runExample(t, "keys-ldap", map[string]string{
		"GATEWAY_ADDR": gw, "PUBLIC_KEY": k.A, "SYSTEM_TOKEN": k.SystemToken, "DATA_ADDR": up.Addr(),
		"LDAP_URL": ldap.URL, "LDAP_BIND_DN": ldap.BindDN, "LDAP_PASSWORD": ldap.BindPassword, "LDAP_BASE_DN": ldap.BaseDN,
	})
	alice := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice"))
	if resp := get(t, "http://"+gw+"/", bearer(alice)); resp.Status != http.StatusOK {
		t.Fatalf("alice: %d %s", resp.Status, resp.Body)
	}
	assertIdentity(t, up.Last(t), "X-Okera-User", "X-Okera-Groups", "alice", "engineering,analysts")
	bob := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("bob"))
	assertForbidden(t, get(t, "http://"+gw+"/", bearer(bob)))
	// The token's own groups claim comes first and LDAP is not asked.
	before := ldap.SearchCount("uid=carol")
	carol := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("carol", "analysts"))
	if resp := get(t, "http://"+gw+"/", bearer(carol)); resp.Status != http.StatusOK {
		t.Fatalf("carol: %d", resp.Status)
	}
	if n := ldap.SearchCount("uid=carol") - before; n != 0 {
		t.Errorf("LDAP searched %d times for a user whose token has groups", n)
	}
}

func TestExampleMultiService(t *testing.T) {
	k := newKeyFiles(t)
	var catalogHits, plannerHits atomic.Int64
	serve := func(hits *atomic.Int64, name string) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits.Add(1)
			fmt.Fprintf(w, "%s %s %s", name, r.URL.Path, r.Header.Get("X-Okera-User"))
		}))
		t.Cleanup(s.Close)
		return s
	}
	catalog, planner := serve(&catalogHits, "catalog"), serve(&plannerHits, "planner")
	gw := freeAddr(t)
	runExample(t, "multi-service", map[string]string{
		"GATEWAY_ADDR": gw, "PUBLIC_KEY": k.A, "SYSTEM_TOKEN": k.SystemToken,
		"CATALOG_ADDR": strings.TrimPrefix(catalog.URL, "http://"), "PLANNER_ADDR": strings.TrimPrefix(planner.URL, "http://"),
	})
	tok := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice"))
	if resp := get(t, "http://"+gw+"/catalog/tables", bearer(tok)); resp.Body != "catalog /tables alice" {
		t.Errorf("catalog answered %d %q", resp.Status, resp.Body)
	}
	if resp := get(t, "http://"+gw+"/planner/plan", bearer(tok)); resp.Body != "planner /plan alice" {
		t.Errorf("planner answered %d %q", resp.Status, resp.Body)
	}
	assertUnauthorized(t, get(t, "http://"+gw+"/catalog/tables", nil), "okera", false)
	// A preflight needs no token and never reaches a data service.
	resp := send(t, http.MethodOptions, "http://"+gw+"/catalog/tables", http.Header{"Origin": {"https://app.example"}}, nil)
	if resp.Status != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("preflight: %d %v", resp.Status, resp.Header)
	}
	if catalogHits.Load() != 1 || plannerHits.Load() != 1 {
		t.Errorf("data services hit %d and %d times, want 1 each", catalogHits.Load(), plannerHits.Load())
	}
}

func TestExampleJWKSIdP(t *testing.T) {
	k := newKeyFiles(t)
	idpKey := rsaKey(t, keyIdP)
	idp := &switchableJWKS{addr: freeAddr(t)}
	idp.Set(jwkSetOf(t, map[string]*rsa.PublicKey{"idp-1": &idpKey.PublicKey}))
	idp.Start(t)
	up := startUpstream(t)
	gw := freeAddr(t)
	runExample(t, "jwks-idp", map[string]string{
		"GATEWAY_ADDR": gw, "JWKS_URL": idp.URL(), "ISSUER": "https://idp.test", "AUDIENCE": "data",
		"SYSTEM_TOKEN": k.SystemToken, "DATA_ADDR": up.Addr(),
	})
	c := userClaims("alice").with("iss", "https://idp.test", "aud", "data", "roles", []string{"Analysts"})
	delete(c, "groups")
	tok := signWithHeaders(t, idpKey, jwa.RS256, c, map[string]any{"kid": "idp-1"})
	if resp := get(t, "http://"+gw+"/", bearer(tok)); resp.Status != http.StatusOK {
		t.Fatalf("IdP token: %d", resp.Status)
	}
	assertIdentity(t, up.Last(t), "X-Okera-User", "X-Okera-Groups", "alice", "analysts")
	// Another audience, and a token whose kid the IdP does not publish, are refused.
	other := signWithHeaders(t, idpKey, jwa.RS256, userClaims("alice").with("iss", "https://idp.test", "aud", "billing"), map[string]any{"kid": "idp-1"})
	assertUnauthorized(t, get(t, "http://"+gw+"/", bearer(other)), "okera", true)
	unknown := signWithHeaders(t, rsaKey(t, keyB), jwa.RS256, c, map[string]any{"kid": "idp-2"})
	assertUnauthorized(t, get(t, "http://"+gw+"/", bearer(unknown)), "okera", true)
}

func TestExampleMintedJWKS(t *testing.T) {
	dir := t.TempDir()
	gwKey := rsaKey(t, "issue4-gateway")
	signing := writePKCS8Private(t, dir, "id_rsa", gwKey)
	callers := writeSPKI(t, dir, "callers.pub", rsaKey(t, keyA))
	up := startVerifyingUpstream(t)
	gw := freeAddr(t)
	runExample(t, "minted-jwks", map[string]string{
		"GATEWAY_ADDR": gw, "SIGNING_KEY": signing, "PUBLIC_KEY": callers, "DATA_ADDR": up.Addr(),
	})
	up.jwksURL = "http://" + gw + "/.well-known/jwks.json"
	tok := sign(t, rsaKey(t, keyA), jwa.RS512, userClaims("alice", "Analysts"))
	if resp := get(t, "http://"+gw+"/tables", bearer(tok)); resp.Status != http.StatusOK {
		t.Fatalf("request: %d %s", resp.Status, resp.Body)
	}
	call := up.Last(t)
	if call.Err != nil {
		t.Fatalf("the upstream could not verify the minted token against okera_jwks: %v", call.Err)
	}
	if call.Claims["sub"] != "alice" || call.Claims["iss"] != "caddy-okera-auth" || call.Token == tok {
		t.Errorf("minted claims = %v", call.Claims)
	}
}
