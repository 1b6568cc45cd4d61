package integration

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Key names used across the suite. Each is generated once per test binary.
const (
	keyA        = "A"        // the gateway's main key (RSA512)
	keyB        = "B"        // a second configured key (RSA256)
	keyC        = "C"        // configured through a certificate
	keyD        = "D"        // configured through a file:// URI
	keyIdP      = "idp"      // an identity provider only the remote endpoint knows
	keyAttacker = "attacker" // never configured anywhere
)

// rsaKeys caches generated keys: RSA generation is the slowest thing the
// suite does besides starting Caddy.
var rsaKeys = struct {
	sync.Mutex
	m map[string]*rsa.PrivateKey
}{m: map[string]*rsa.PrivateKey{}}

// rsaKey returns the 2048-bit key of that name.
func rsaKey(t testing.TB, name string) *rsa.PrivateKey {
	t.Helper()
	return rsaKeyBits(t, name, 2048)
}

func rsaKeyBits(t testing.TB, name string, bits int) *rsa.PrivateKey {
	t.Helper()
	rsaKeys.Lock()
	defer rsaKeys.Unlock()
	id := name + "/" + big.NewInt(int64(bits)).String()
	if k, ok := rsaKeys.m[id]; ok {
		return k
	}
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatalf("generating RSA key %s: %v", name, err)
	}
	rsaKeys.m[id] = k
	return k
}

func writePEM(t testing.TB, dir, file, blockType string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// writeSPKI writes a PUBLIC KEY (SubjectPublicKeyInfo) PEM file.
func writeSPKI(t testing.TB, dir, file string, key *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, file, "PUBLIC KEY", der)
}

// writePKCS1Public writes an RSA PUBLIC KEY (PKCS #1) PEM file.
func writePKCS1Public(t testing.TB, dir, file string, key *rsa.PrivateKey) string {
	t.Helper()
	return writePEM(t, dir, file, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&key.PublicKey))
}

// writeCertificate writes a self-signed CERTIFICATE PEM file for the key.
func writeCertificate(t testing.TB, dir, file string, key *rsa.PrivateKey) string {
	t.Helper()
	return writePEM(t, dir, file, "CERTIFICATE", selfSignedCert(t, key))
}

func selfSignedCert(t testing.TB, key *rsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "okera-test-signer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// writePKCS8Private writes a PRIVATE KEY (PKCS #8) PEM file.
func writePKCS8Private(t testing.TB, dir, file string, key *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, file, "PRIVATE KEY", der)
}

// writeFile writes a small text file and returns its path.
func writeFile(t testing.TB, dir, file, content string) string {
	t.Helper()
	path := filepath.Join(dir, file)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// claims is a JWT payload.
type claims map[string]any

// randomID makes every token unique, so the gateway's verification and
// remote caches never carry a result from one subtest into another.
func randomID() string {
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// userClaims is a well-formed payload for sub: iat now, exp in an hour, a
// unique jti, and the groups when given.
func userClaims(sub string, groups ...string) claims {
	now := time.Now()
	c := claims{
		"sub": sub,
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
		"jti": randomID(),
	}
	if groups != nil {
		c["groups"] = groups
	}
	return c
}

// with returns a copy of c with the given claims set (nil deletes).
func (c claims) with(kv ...any) claims {
	out := claims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
			continue
		}
		out[k] = kv[i+1]
	}
	return out
}

// sign makes a compact JWS with jwx, the way an identity provider would.
func sign(t testing.TB, key *rsa.PrivateKey, alg jwa.SignatureAlgorithm, c claims) string {
	t.Helper()
	return signWithHeaders(t, key, alg, c, nil)
}

// signWithHeaders is sign with extra protected header members.
func signWithHeaders(t testing.TB, key *rsa.PrivateKey, alg jwa.SignatureAlgorithm, c claims, extra map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	hdrs := jws.NewHeaders()
	if err := hdrs.Set(jws.TypeKey, "JWT"); err != nil {
		t.Fatal(err)
	}
	for k, v := range extra {
		if err := hdrs.Set(k, v); err != nil {
			t.Fatalf("setting header %s: %v", k, err)
		}
	}
	out, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return string(out)
}

// b64 is the JWS base64url encoding (no padding).
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signer produces a signature over a JWS signing input.
type signer func(input string) []byte

// rsaSigner signs with RSASSA-PKCS1-v1_5 (RS256 with crypto.SHA256, RS512
// with crypto.SHA512).
func rsaSigner(t testing.TB, key *rsa.PrivateKey, h crypto.Hash) signer {
	return func(input string) []byte {
		var digest []byte
		switch h {
		case crypto.SHA256:
			d := sha256.Sum256([]byte(input))
			digest = d[:]
		case crypto.SHA512:
			d := sha512.Sum512([]byte(input))
			digest = d[:]
		default:
			t.Fatalf("unsupported hash %v", h)
		}
		sig, err := rsa.SignPKCS1v15(rand.Reader, key, h, digest)
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
}

// hmacSigner signs with HMAC-SHA256 (HS256) under secret.
func hmacSigner(secret []byte) signer {
	return func(input string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(input))
		return m.Sum(nil)
	}
}

// noSignature is the empty signature of an alg "none" token.
func noSignature(string) []byte { return nil }

// rawToken hand-builds a compact token from the exact header and payload
// bytes, for the attacks a JOSE library refuses to produce.
func rawToken(header, payload []byte, s signer) string {
	input := b64(header) + "." + b64(payload)
	return input + "." + b64(s(input))
}

// fingerprint is the token's id in logs and {http.auth.okera.token_id}:
// the first 12 hex digits of its SHA-256.
func fingerprint(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:])[:12]
}

// keyFiles holds the public key files of one gateway configuration.
type keyFiles struct {
	Dir         string
	A           string // SPKI PUBLIC KEY
	APEM        []byte // A's exact file bytes (the HS256 confusion secret)
	B           string // PKCS #1 RSA PUBLIC KEY
	C           string // CERTIFICATE
	D           string // SPKI, to be named by a file:// URI
	SystemToken string // the system token file
	System      string // the system token itself
}

// newKeyFiles writes A, B, C and D's public keys and a system token (sub
// okera, signed by A) into a new directory.
func newKeyFiles(t testing.TB) keyFiles {
	t.Helper()
	// Every test that needs keys runs Caddy: skip before generating them.
	caddyBinary(t)
	dir := t.TempDir()
	k := keyFiles{Dir: dir}
	k.A = writeSPKI(t, dir, "a.pub.pem", rsaKey(t, keyA))
	pemA, err := os.ReadFile(k.A)
	if err != nil {
		t.Fatal(err)
	}
	k.APEM = pemA
	k.B = writePKCS1Public(t, dir, "b.rsa.pub.pem", rsaKey(t, keyB))
	k.C = writeCertificate(t, dir, "c.crt.pem", rsaKey(t, keyC))
	k.D = writeSPKI(t, dir, "d.pub.pem", rsaKey(t, keyD))
	k.System = sign(t, rsaKey(t, keyA), jwa.RS512, claims{
		"sub":    "okera",
		"groups": []string{"root"},
		"iat":    time.Now().Unix(),
		"exp":    time.Now().Add(2 * time.Hour).Unix(),
	})
	// Whitespace around the token is trimmed at start-up.
	k.SystemToken = writeFile(t, dir, "system.token", "\n"+k.System+"\n\n")
	return k
}
