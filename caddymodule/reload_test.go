package caddymodule

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/okeragate/caddy-okera-auth/mint"
)

const fastCheck = caddy.Duration(20 * time.Millisecond)

// eventually polls cond for up to 5 s (the files are checked every 20 ms).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func accepted(t *testing.T, h *Handler, tok string) bool {
	t.Helper()
	got, err := through(t, h, tok)
	if err != nil && httpStatus(err) != http.StatusUnauthorized {
		t.Fatalf("unexpected error %v", err)
	}
	return err == nil && got != nil
}

// A public_key file replaced by an atomic rename, or rewritten in place,
// takes effect without a reload; tokens of the removed key are refused at
// once, even those whose verification was cached.
func TestPublicKeyReload(t *testing.T) {
	dir := t.TempDir()
	a, b := ownKey(t, 0), ownKey(t, 1)
	path := writeTestFile(t, dir, "key.pub", spkiPEM(t, a))
	h := provisioned(t, &Handler{
		PublicKeys:        []PublicKey{{Path: path, Algorithm: "RS256"}},
		UpstreamToken:     UpstreamNone,
		FileCheckInterval: fastCheck,
	})
	tokA := signFor(t, newSigner(t, a, "RS256"), "alice")
	tokB := signFor(t, newSigner(t, b, "RS256"), "bob")
	if !accepted(t, h, tokA) || accepted(t, h, tokB) {
		t.Fatal("before the change: want A accepted, B refused")
	}

	replaceAtomically(t, path, spkiPEM(t, b))
	eventually(t, "the renamed-in key to take effect", func() bool { return accepted(t, h, tokB) })
	if accepted(t, h, tokA) {
		t.Error("a token of the replaced key (cached before) is still accepted")
	}

	rewriteInPlace(t, path, spkiPEM(t, a))
	eventually(t, "the rewritten key to take effect", func() bool { return accepted(t, h, tokA) })
	if accepted(t, h, tokB) {
		t.Error("a token of the key rewritten away is still accepted")
	}
}

// A file that no longer parses (or disappears) leaves the previous key in
// force, and the error names the file, once.
func TestReloadBrokenFileKeepsKey(t *testing.T) {
	dir := t.TempDir()
	a, b := ownKey(t, 0), ownKey(t, 1)
	path := writeTestFile(t, dir, "key.pub", spkiPEM(t, a))
	core, logs := observer.New(zapcore.InfoLevel)
	k := newKeyring(20*time.Millisecond, zap.New(core))
	defer k.close()
	if err := k.loadPublicKeys([]PublicKey{{Path: path}}); err != nil {
		t.Fatal(err)
	}
	kv := k.keyValidator(false)
	same := func(want any) bool {
		keys := kv.Keys()
		return len(keys) == 1 && keys[0].Public.Equal(want)
	}

	for i, broken := range [][]byte{
		[]byte("not a key at all"),
		privatePEM(t, b), // a private key where a public one belongs
		spkiPEM(t, b)[:100],
	} {
		rewriteInPlace(t, path, broken)
		eventually(t, "the error to be logged", func() bool {
			return logs.FilterLevelExact(zapcore.ErrorLevel).FilterField(zap.String("file", path)).Len() == i+1
		})
		if !same(&a.PublicKey) {
			t.Fatalf("broken file %d replaced the key", i)
		}
	}
	entry := logs.FilterLevelExact(zapcore.ErrorLevel).All()[0]
	if !strings.Contains(entry.Message, "keeping the previous public key") {
		t.Errorf("log message %q", entry.Message)
	}
	// Logged once per change, not on every check.
	time.Sleep(100 * time.Millisecond)
	if n := logs.FilterLevelExact(zapcore.ErrorLevel).Len(); n != 3 {
		t.Errorf("%d error lines for 3 broken versions", n)
	}

	replaceAtomically(t, path, spkiPEM(t, b))
	eventually(t, "the good file to be loaded", func() bool { return same(&b.PublicKey) })
	if logs.FilterMessage("reloaded public key").Len() == 0 {
		t.Error("the reload was not logged")
	}
}

// A replaced signing key signs the next minted tokens (new kid) and the
// renewed self-minted system token; the old key's public half is no longer
// trusted.
func TestSigningKeyReload(t *testing.T) {
	dir := t.TempDir()
	a, b := ownKey(t, 0), ownKey(t, 1)
	path := writeTestFile(t, dir, "id_rsa", privatePEM(t, a))
	h := provisioned(t, &Handler{
		SigningKey:        &SigningKey{Path: path},
		UpstreamToken:     UpstreamMinted,
		FileCheckInterval: fastCheck,
	})
	idp := newSigner(t, a, "RS512") // callers' tokens are signed by the gateway key here
	callerA := signFor(t, idp, "alice", "x")
	got, err := through(t, h, callerA)
	if err != nil {
		t.Fatal(err)
	}
	mintedA := bearerToken(t, got)
	systemA := h.system.value()
	kidB, _ := mint.Thumbprint(&b.PublicKey)

	replaceAtomically(t, path, privatePEM(t, b))
	eventually(t, "the system token to be re-minted with the new key", func() bool { return h.system.value() != systemA })
	parseVerified(t, h.system.value(), &b.PublicKey, jwa.RS512)

	callerB := signFor(t, newSigner(t, b, "RS512"), "alice", "x")
	got, err = through(t, h, callerB)
	if err != nil {
		t.Fatalf("a token of the new signing key is refused: %v", err)
	}
	mintedB := bearerToken(t, got)
	if mintedB == mintedA {
		t.Fatal("the minted token of the old key was reused")
	}
	_, hdr := parseVerified(t, mintedB, &b.PublicKey, jwa.RS512)
	if hdr.KeyID() != kidB {
		t.Errorf("kid %q, want the new key's %q", hdr.KeyID(), kidB)
	}
	if accepted(t, h, callerA) {
		t.Error("a token of the replaced signing key is still accepted")
	}
}

// A replaced system_token file is sent upstream from then on; a file that
// holds no usable token (not a JWT, expired) keeps the previous one.
func TestSystemTokenFileReload(t *testing.T) {
	dir := t.TempDir()
	a := ownKey(t, 0)
	s := newSigner(t, a, "RS512")
	sys := func(ttl time.Duration, issued time.Time) string {
		tok, _, err := s.Sign(mint.Claims{Subject: "okera", Groups: []string{"root"}, TTL: ttl}, issued)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	first := sys(48*time.Hour, time.Now())
	path := writeTestFile(t, dir, "system.token", []byte(first+"\n"))
	h := provisioned(t, &Handler{
		PublicKeys:        []PublicKey{{Path: writeTestFile(t, dir, "a.pub", spkiPEM(t, a))}},
		SystemToken:       path,
		FileCheckInterval: fastCheck,
	})
	caller := signFor(t, s, "alice")
	upstreamAuth := func() string {
		got, err := through(t, h, caller)
		if err != nil {
			t.Fatal(err)
		}
		return bearerToken(t, got)
	}
	if upstreamAuth() != first {
		t.Fatal("the upstream did not get the system token")
	}
	second := sys(48*time.Hour, time.Now().Add(-time.Second))
	replaceAtomically(t, path, []byte(second+"\n"))
	eventually(t, "the new system token", func() bool { return upstreamAuth() == second })

	for _, bad := range []string{"not-a-jwt", sys(time.Hour, time.Now().Add(-2*time.Hour))} {
		rewriteInPlace(t, path, []byte(bad))
		time.Sleep(150 * time.Millisecond)
		if got := upstreamAuth(); got != second {
			t.Fatalf("an unusable system token file replaced the token")
		}
	}
	third := sys(2*time.Hour, time.Now().Add(-2*time.Second))
	rewriteInPlace(t, path, []byte(third))
	eventually(t, "the third system token", func() bool { return upstreamAuth() == third })
}

// Every goroutine Provision starts (file watchers, JWKS fetchers, the system
// token renewer, caches) stops in Cleanup: many provision/cleanup cycles,
// as config reloads make, leave the goroutine count where it was. Partial
// provisions (a bad file after the watchers started) clean up too.
func TestProvisionCleanupLeavesNoGoroutines(t *testing.T) {
	dir := t.TempDir()
	a, b := ownKey(t, 0), ownKey(t, 1)
	priv := writeTestFile(t, dir, "id_rsa", privatePEM(t, a))
	pub := writeTestFile(t, dir, "b.pub", spkiPEM(t, b))
	broken := writeTestFile(t, dir, "broken.pub", []byte("nope"))
	sysTok := writeTestFile(t, dir, "system.token", []byte(signFor(t, newSigner(t, a, "RS512"), "okera", "root")))
	set := jwk.NewSet()
	k, _ := jwk.FromRaw(&b.PublicKey)
	_ = k.Set(jwk.KeyIDKey, "b")
	_ = set.AddKey(k)
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		buf, _ := json.Marshal(set)
		w.Write(buf)
	}))
	defer idp.Close()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusBadGateway) }))
	defer down.Close()

	configs := []func() (caddy.Module, bool){
		func() (caddy.Module, bool) {
			return &Handler{
				PublicKeys:        []PublicKey{{Path: pub}},
				SigningKey:        &SigningKey{Path: priv},
				UpstreamToken:     UpstreamMinted,
				JWKS:              []JWKSURL{{URL: idp.URL}, {URL: down.URL}},
				FileCheckInterval: fastCheck,
			}, true
		},
		func() (caddy.Module, bool) {
			return &Handler{PublicKeys: []PublicKey{{Path: pub}}, SystemToken: sysTok, FileCheckInterval: fastCheck}, true
		},
		func() (caddy.Module, bool) {
			// Fails after the signing key's watcher and renewer started.
			return &Handler{SigningKey: &SigningKey{Path: priv}, PublicKeys: []PublicKey{{Path: pub}, {Path: broken}}}, false
		},
		func() (caddy.Module, bool) {
			return &JWKSHandler{Keys: []JWKSKey{{Path: priv}, {Path: pub}}, FileCheckInterval: fastCheck}, true
		},
	}
	cycle := func() {
		for i, mk := range configs {
			m, ok := mk()
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			err := m.(caddy.Provisioner).Provision(ctx)
			if (err == nil) != ok {
				t.Fatalf("config %d: Provision = %v", i, err)
			}
			if i == 0 && err == nil {
				// Serve a request, so the minter and caches are in use.
				tok := signFor(t, newSigner(t, b, "RS512"), "alice")
				if _, err := through(t, m.(*Handler), tok); err != nil {
					t.Fatalf("request: %v", err)
				}
			}
			time.Sleep(2 * time.Millisecond)
			_ = m.(caddy.CleanerUpper).Cleanup()
			cancel()
		}
	}
	cycle() // warm up: lazily started runtime and library goroutines
	time.Sleep(200 * time.Millisecond)
	base := runtime.NumGoroutine()
	for i := 0; i < 25; i++ {
		cycle()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after 25 provision/cleanup cycles, %d before:\n%s", n, base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}
