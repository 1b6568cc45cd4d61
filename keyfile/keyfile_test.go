package keyfile

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// RSA key generation is slow; one key of each size serves the whole binary.
var (
	keysOnce sync.Once
	rsa2048  *rsa.PrivateKey
	rsa1024  *rsa.PrivateKey
)

func testKeys(t testing.TB) (*rsa.PrivateKey, *rsa.PrivateKey) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsa2048, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		// crypto/rsa refuses to generate keys under 1024 bits; 1024 is small
		// enough to prove the 2048-bit floor.
		if rsa1024, err = rsa.GenerateKey(rand.Reader, 1024); err != nil {
			panic(err)
		}
	})
	return rsa2048, rsa1024
}

func pemBytes(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func mustPKIX(t *testing.T, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func mustPKCS8(t *testing.T, priv any) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func selfSigned(t *testing.T, priv *rsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "okera test"},
		NotBefore:    time.Now().Add(-time.Hour),
		// Already expired: the key is still usable, as with Okera.
		NotAfter: time.Now().Add(-time.Minute),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &priv.PublicKey, priv)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestResolvePath(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
		scheme  bool // error wraps ErrUnsupportedScheme
	}{
		{in: "/etc/okera/key.pub", want: "/etc/okera/key.pub"},
		{in: "relative/key.pub", want: "relative/key.pub"},
		{in: "key.pub", want: "key.pub"},
		{in: "C:key", want: "C:key"},           // a colon alone is not a scheme
		{in: "odd:name/x", want: "odd:name/x"}, // neither is scheme-like text without //
		{in: "./a://b", want: "./a://b"},       // "./a" is not a valid scheme
		{in: "file:///etc/okera/key.pub", want: "/etc/okera/key.pub"},
		{in: "FILE:///etc/okera/key.pub", want: "/etc/okera/key.pub"},
		{in: "file://localhost/etc/key.pub", want: "/etc/key.pub"},
		{in: "file://keys/key.pub", want: "keys/key.pub"},
		{in: "file:///dir/my%20key.pem", want: "/dir/my key.pem"},
		{in: "", wantErr: "empty path"},
		{in: "file://", wantErr: "names no file"},
		{in: "file:///bad%zzescape", wantErr: "invalid URL escape"},
		{in: "file:///nul%00byte", wantErr: "NUL"},
		{in: "s3://bucket/key.pub", wantErr: `"s3://"`, scheme: true},
		{in: "S3://bucket/key.pub", wantErr: `"s3://"`, scheme: true},
		{in: "gs://bucket/key.pub", wantErr: "only local paths and file:// URIs", scheme: true},
		{in: "http://example.com/key.pub", wantErr: `"http://"`, scheme: true},
		{in: "https://example.com/key.pub", wantErr: `"https://"`, scheme: true},
		{in: "abfs://c@a.dfs.core.windows.net/k", wantErr: `"abfs://"`, scheme: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ResolvePath(tt.in)
			if tt.wantErr != "" {
				if err == nil {
					t.Fatalf("ResolvePath(%q) = %q, want error containing %q", tt.in, got, tt.wantErr)
				}
				if !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %q does not contain %q", err, tt.wantErr)
				}
				if got := errors.Is(err, ErrUnsupportedScheme); got != tt.scheme {
					t.Fatalf("errors.Is(err, ErrUnsupportedScheme) = %v, want %v", got, tt.scheme)
				}
				return
			}
			if err != nil {
				t.Fatalf("ResolvePath(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ResolvePath(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseAlgorithm(t *testing.T) {
	tests := []struct {
		in, want string
		wantErr  bool
	}{
		{"", RS512, false},
		{"RSA256", RS256, false},
		{"rsa256", RS256, false},
		{"Rsa256", RS256, false},
		{"RS256", RS256, false},
		{"rs256", RS256, false},
		{"RSA512", RS512, false},
		{"rsa512", RS512, false},
		{"RS512", RS512, false},
		{"rS512", RS512, false},
		{"RSA384", "", true},
		{"RS384", "", true},
		{"HS256", "", true},
		{"ES256", "", true},
		{"none", "", true},
		{"PS256", "", true},
		{" RS256", "", true},
		{"RSA", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAlgorithm(tt.in)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseAlgorithm(%q) = %q, want error", tt.in, got)
				}
				for _, name := range []string{"RSA256", "RSA512"} {
					if !strings.Contains(err.Error(), name) {
						t.Fatalf("error %q does not name %s", err, name)
					}
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseAlgorithm(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	k2048, k1024 := testKeys(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	spki := pemBytes("PUBLIC KEY", mustPKIX(t, &k2048.PublicKey))

	tests := []struct {
		name    string
		data    []byte
		wantErr []string // substrings; empty means success
		is      error
	}{
		{name: "SPKI", data: spki},
		{name: "SPKI after text", data: append([]byte("comment line\n"), spki...)},
		{name: "PKCS1", data: pemBytes("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&k2048.PublicKey))},
		{name: "certificate", data: pemBytes("CERTIFICATE", selfSigned(t, k2048))},
		{name: "empty", data: nil, wantErr: []string{"no PEM block", "BEGIN PUBLIC KEY"}, is: ErrNoPEM},
		{name: "DER not PEM", data: mustPKIX(t, &k2048.PublicKey), wantErr: []string{"no PEM block"}, is: ErrNoPEM},
		{name: "PKCS8 private", data: pemBytes("PRIVATE KEY", mustPKCS8(t, k2048)),
			wantErr: []string{"PEM block is PRIVATE KEY", "PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE", "-pubout"}, is: ErrWrongBlock},
		{name: "PKCS1 private", data: pemBytes("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k2048)),
			wantErr: []string{"PEM block is RSA PRIVATE KEY"}, is: ErrWrongBlock},
		{name: "CSR", data: pemBytes("CERTIFICATE REQUEST", []byte{1}), wantErr: []string{"PEM block is CERTIFICATE REQUEST"}, is: ErrWrongBlock},
		{name: "small RSA", data: pemBytes("PUBLIC KEY", mustPKIX(t, &k1024.PublicKey)),
			wantErr: []string{"1024 bits", "2048"}, is: ErrKeyTooSmall},
		{name: "small RSA PKCS1", data: pemBytes("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&k1024.PublicKey)),
			wantErr: []string{"1024 bits"}, is: ErrKeyTooSmall},
		{name: "ECDSA", data: pemBytes("PUBLIC KEY", mustPKIX(t, &ecKey.PublicKey)), wantErr: []string{"ECDSA", "only RSA"}, is: ErrNotRSA},
		{name: "Ed25519", data: pemBytes("PUBLIC KEY", mustPKIX(t, edPub)), wantErr: []string{"Ed25519"}, is: ErrNotRSA},
		{name: "garbage SPKI", data: pemBytes("PUBLIC KEY", []byte("junk")), wantErr: []string{"parsing PUBLIC KEY block"}},
		{name: "garbage PKCS1", data: pemBytes("RSA PUBLIC KEY", []byte("junk")), wantErr: []string{"parsing RSA PUBLIC KEY block"}},
		{name: "garbage certificate", data: pemBytes("CERTIFICATE", []byte("junk")), wantErr: []string{"parsing CERTIFICATE block"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pub, err := ParsePublicKeyPEM(tt.data)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if !pub.Equal(&k2048.PublicKey) {
					t.Fatal("parsed key differs from the generated one")
				}
				return
			}
			wantError(t, err, tt.wantErr, tt.is)
		})
	}
}

func TestParsePrivateKeyPEM(t *testing.T) {
	k2048, k1024 := testKeys(t)
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	encrypted := pem.EncodeToMemory(&pem.Block{
		Type:    "RSA PRIVATE KEY",
		Headers: map[string]string{"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-128-CBC,00"},
		Bytes:   []byte("x"),
	})
	tests := []struct {
		name    string
		data    []byte
		wantErr []string
		is      error
	}{
		{name: "PKCS8", data: pemBytes("PRIVATE KEY", mustPKCS8(t, k2048))},
		{name: "PKCS1", data: pemBytes("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k2048))},
		{name: "empty", data: []byte("   "), wantErr: []string{"no PEM block"}, is: ErrNoPEM},
		{name: "public key", data: pemBytes("PUBLIC KEY", mustPKIX(t, &k2048.PublicKey)),
			wantErr: []string{"PEM block is PUBLIC KEY", "PRIVATE KEY (PKCS #8) or RSA PRIVATE KEY"}, is: ErrWrongBlock},
		{name: "PKCS8 encrypted", data: pemBytes("ENCRYPTED PRIVATE KEY", []byte("x")), wantErr: []string{"encrypted"}, is: ErrWrongBlock},
		{name: "legacy encrypted", data: encrypted, wantErr: []string{"encrypted"}, is: ErrWrongBlock},
		{name: "small", data: pemBytes("PRIVATE KEY", mustPKCS8(t, k1024)), wantErr: []string{"1024 bits"}, is: ErrKeyTooSmall},
		{name: "ECDSA PKCS8", data: pemBytes("PRIVATE KEY", mustPKCS8(t, ecKey)), wantErr: []string{"ECDSA"}, is: ErrNotRSA},
		{name: "EC PRIVATE KEY block", data: pemBytes("EC PRIVATE KEY", []byte("x")), wantErr: []string{"PEM block is EC PRIVATE KEY"}, is: ErrWrongBlock},
		{name: "garbage PKCS8", data: pemBytes("PRIVATE KEY", []byte("junk")), wantErr: []string{"parsing PRIVATE KEY block"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			priv, err := ParsePrivateKeyPEM(tt.data)
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if !priv.Equal(k2048) {
					t.Fatal("parsed key differs from the generated one")
				}
				return
			}
			wantError(t, err, tt.wantErr, tt.is)
		})
	}
}

func TestLoadFiles(t *testing.T) {
	k2048, k1024 := testKeys(t)
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pubPath := write("id_rsa.pub", pemBytes("PUBLIC KEY", mustPKIX(t, &k2048.PublicKey)))
	privPath := write("id_rsa", pemBytes("PRIVATE KEY", mustPKCS8(t, k2048)))
	smallPath := write("small.pub", pemBytes("PUBLIC KEY", mustPKIX(t, &k1024.PublicKey)))
	missing := filepath.Join(dir, "missing.pem")

	t.Run("public by path and by URI", func(t *testing.T) {
		for _, p := range []string{pubPath, "file://" + pubPath} {
			pub, err := LoadPublicKey(p)
			if err != nil {
				t.Fatalf("LoadPublicKey(%q): %v", p, err)
			}
			if !pub.Equal(&k2048.PublicKey) {
				t.Fatalf("LoadPublicKey(%q) returned another key", p)
			}
		}
	})
	t.Run("private by path and by URI", func(t *testing.T) {
		for _, p := range []string{privPath, "file://" + privPath} {
			priv, err := LoadPrivateKey(p)
			if err != nil {
				t.Fatalf("LoadPrivateKey(%q): %v", p, err)
			}
			if !priv.Equal(k2048) {
				t.Fatalf("LoadPrivateKey(%q) returned another key", p)
			}
		}
	})
	t.Run("public from either file", func(t *testing.T) {
		for _, p := range []string{pubPath, privPath} {
			pub, err := LoadPublicKeyFromAny(p)
			if err != nil {
				t.Fatalf("LoadPublicKeyFromAny(%q): %v", p, err)
			}
			if !pub.Equal(&k2048.PublicKey) {
				t.Fatalf("LoadPublicKeyFromAny(%q) returned another key", p)
			}
		}
	})

	errTests := []struct {
		name string
		load func(string) error
		path string
		want []string
		is   error
	}{
		{"public missing", loadPub, missing, []string{`reading public key "` + missing + `"`, "no such file"}, os.ErrNotExist},
		{"public s3", loadPub, "s3://bucket/k.pub", []string{`reading public key "s3://bucket/k.pub"`, "only local paths"}, ErrUnsupportedScheme},
		{"public given private", loadPub, privPath, []string{`reading public key "` + privPath + `"`, "PEM block is PRIVATE KEY"}, ErrWrongBlock},
		{"public small", loadPub, smallPath, []string{"1024 bits"}, ErrKeyTooSmall},
		{"private missing", loadPriv, missing, []string{`reading private key "` + missing + `"`}, os.ErrNotExist},
		{"private given public", loadPriv, pubPath, []string{`reading private key "` + pubPath + `"`, "PEM block is PUBLIC KEY"}, ErrWrongBlock},
		{"private gs", loadPriv, "gs://bucket/k", []string{"only local paths"}, ErrUnsupportedScheme},
		{"any small", loadAny, smallPath, []string{`reading key "` + smallPath + `"`, "1024 bits"}, ErrKeyTooSmall},
		{"any missing", loadAny, missing, []string{`reading key "` + missing + `"`}, os.ErrNotExist},
	}
	for _, tt := range errTests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.load(tt.path)
			if err == nil {
				t.Fatal("want an error")
			}
			for _, s := range tt.want {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			if !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
		})
	}
}

func loadPub(p string) error  { _, err := LoadPublicKey(p); return err }
func loadPriv(p string) error { _, err := LoadPrivateKey(p); return err }
func loadAny(p string) error  { _, err := LoadPublicKeyFromAny(p); return err }

// wantError checks that err holds every fragment of want and is target.
func wantError(t *testing.T, err error, want []string, target error) {
	t.Helper()
	if err == nil {
		t.Fatal("want an error")
	}
	for _, s := range want {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("error %q is not %v", err, target)
	}
}
