package keyfile

import (
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// MinRSABits is the smallest RSA modulus accepted anywhere: smaller keys can
// be factored by a determined attacker.
const MinRSABits = 2048

// Sentinel errors, for callers that branch on the kind of failure; the
// messages of the wrapping errors say what was found and what to do.
var (
	// ErrNoPEM: the data holds no PEM block at all.
	ErrNoPEM = errors.New("no PEM block found")
	// ErrWrongBlock: the first PEM block is of a type the caller cannot use
	// (a private key where a public key is wanted, or the reverse).
	ErrWrongBlock = errors.New("wrong PEM block type")
	// ErrNotRSA: the key parses but is not an RSA key.
	ErrNotRSA = errors.New("not an RSA key")
	// ErrKeyTooSmall: the RSA modulus is under MinRSABits.
	ErrKeyTooSmall = errors.New("RSA key too small")
)

// PEM block types.
const (
	blockPublicKey     = "PUBLIC KEY"
	blockRSAPublicKey  = "RSA PUBLIC KEY"
	blockCertificate   = "CERTIFICATE"
	blockPrivateKey    = "PRIVATE KEY"
	blockRSAPrivateKey = "RSA PRIVATE KEY"
	blockEncrypted     = "ENCRYPTED PRIVATE KEY"
)

// LoadPublicKey reads an RSA public key from a PEM file named by a plain path
// or a file:// URI. See ParsePublicKeyPEM for the accepted forms.
func LoadPublicKey(path string) (*rsa.PublicKey, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading public key %q: %w", path, err)
	}
	pub, err := ParsePublicKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("reading public key %q: %w", path, err)
	}
	return pub, nil
}

// LoadPrivateKey reads an RSA private key from a PEM file named by a plain
// path or a file:// URI. See ParsePrivateKeyPEM for the accepted forms.
func LoadPrivateKey(path string) (*rsa.PrivateKey, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading private key %q: %w", path, err)
	}
	priv, err := ParsePrivateKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("reading private key %q: %w", path, err)
	}
	return priv, nil
}

// LoadPublicKeyFromAny reads a public key file, or the public half of a
// private key file. It serves places that publish or trust the gateway's own
// key pair (okera_jwks, the signing key's public key), where either file is a
// reasonable thing to point at.
func LoadPublicKeyFromAny(path string) (*rsa.PublicKey, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key %q: %w", path, err)
	}
	pub, err := ParsePublicKeyFromAnyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("reading key %q: %w", path, err)
	}
	return pub, nil
}

// ParsePublicKeyFromAnyPEM is LoadPublicKeyFromAny for data already read:
// the public key of a public key PEM, or the public half of a private key
// PEM.
func ParsePublicKeyFromAnyPEM(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block != nil && isPrivateBlock(block.Type) {
		priv, err := ParsePrivateKeyPEM(data)
		if err != nil {
			return nil, err
		}
		return &priv.PublicKey, nil
	}
	return ParsePublicKeyPEM(data)
}

// ParsePublicKeyPEM parses the first PEM block of data as an RSA public key:
// PUBLIC KEY (SubjectPublicKeyInfo), RSA PUBLIC KEY (PKCS #1) or CERTIFICATE
// (the certificate's key; its validity period and chain are not checked,
// as Okera does not check them). Text before the block is ignored. Keys
// under MinRSABits are refused.
func ParsePublicKeyPEM(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: a public key file starts with -----BEGIN PUBLIC KEY----- (PEM); convert a DER file with: openssl pkey -pubin -inform DER -in key.der -out key.pem", ErrNoPEM)
	}
	var key any
	switch block.Type {
	case blockPublicKey:
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing PUBLIC KEY block: %w", err)
		}
		key = k
	case blockRSAPublicKey:
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing RSA PUBLIC KEY block: %w", err)
		}
		key = k
	case blockCertificate:
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing CERTIFICATE block: %w", err)
		}
		key = cert.PublicKey
	default:
		hint := ""
		if isPrivateBlock(block.Type) {
			hint = "; never hand out the private key: extract the public one with: openssl pkey -in private.pem -pubout -out public.pem"
		}
		return nil, fmt.Errorf("%w: PEM block is %s; public_key needs a PUBLIC KEY, RSA PUBLIC KEY or CERTIFICATE%s", ErrWrongBlock, block.Type, hint)
	}
	pub, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: the %s block holds a %s key; only RSA keys (RS256/RS512) are supported", ErrNotRSA, block.Type, keyKind(key))
	}
	if err := checkSize(pub); err != nil {
		return nil, err
	}
	return pub, nil
}

// ParsePrivateKeyPEM parses the first PEM block of data as an RSA private
// key: PRIVATE KEY (PKCS #8) or RSA PRIVATE KEY (PKCS #1). Encrypted keys are
// refused with a hint on decrypting them; keys under MinRSABits are refused.
func ParsePrivateKeyPEM(data []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: a private key file starts with -----BEGIN PRIVATE KEY----- (PEM); generate one with caddy okera-keygen", ErrNoPEM)
	}
	if block.Type == blockEncrypted || block.Headers["Proc-Type"] != "" {
		return nil, fmt.Errorf("%w: the private key is encrypted; store it unencrypted with restrictive permissions (openssl pkey -in key.pem -out plain.pem)", ErrWrongBlock)
	}
	var key any
	switch block.Type {
	case blockPrivateKey:
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing PRIVATE KEY block: %w", err)
		}
		key = k
	case blockRSAPrivateKey:
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing RSA PRIVATE KEY block: %w", err)
		}
		key = k
	default:
		return nil, fmt.Errorf("%w: PEM block is %s; a private key needs a PRIVATE KEY (PKCS #8) or RSA PRIVATE KEY (PKCS #1) block", ErrWrongBlock, block.Type)
	}
	priv, ok := key.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: the %s block holds a %s key; only RSA keys (RS256/RS512) are supported", ErrNotRSA, block.Type, keyKind(key))
	}
	if err := checkSize(&priv.PublicKey); err != nil {
		return nil, err
	}
	return priv, nil
}

func readFile(path string) ([]byte, error) {
	resolved, err := ResolvePath(path)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(resolved)
}

func checkSize(pub *rsa.PublicKey) error {
	if n := pub.N.BitLen(); n < MinRSABits {
		return fmt.Errorf("%w: the RSA key is %d bits; at least %d are required (generate a new key pair with caddy okera-keygen)", ErrKeyTooSmall, n, MinRSABits)
	}
	return nil
}

func isPrivateBlock(t string) bool {
	switch t {
	case blockPrivateKey, blockRSAPrivateKey, blockEncrypted, "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "DSA PRIVATE KEY":
		return true
	}
	return false
}

// keyKind names a parsed key's type for messages.
func keyKind(key any) string {
	switch key.(type) {
	case *ecdsa.PublicKey, *ecdsa.PrivateKey:
		return "ECDSA"
	case ed25519.PublicKey, ed25519.PrivateKey:
		return "Ed25519"
	case *ecdh.PublicKey, *ecdh.PrivateKey:
		return "X25519 (ECDH)"
	}
	return fmt.Sprintf("%T", key)
}
