package validator

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/okeragate/caddy-okera-auth/internal/strictjson"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// The two signature algorithms key validators use, by their JOSE names.
const (
	RS256 = "RS256"
	RS512 = "RS512"
)

// minKeyBits matches keyfile.MinRSABits; a JWKS key below it is skipped.
const minKeyBits = 2048

// Key is one public key the key validator trusts, bound to one algorithm.
type Key struct {
	// ID is the key's kid (JWKS) or the file it was read from (static keys).
	// Static keys are tried whatever the token's kid says.
	ID string
	// Algorithm is RS256 or RS512. A token whose header alg differs is never
	// tried with this key, so no token can choose how its key is used.
	Algorithm string
	// Public is the RSA public key, at least 2048 bits.
	Public *rsa.PublicKey
	// Source is ByPublicKey (static keys, the signing key's public half) or
	// ByJWKS; it becomes Identity.By. Empty means ByPublicKey.
	Source string
}

// Validate reports whether the key is usable. NewKeyValidator and SetKeys
// skip keys that fail it, so callers should check keys with it first and
// refuse the configuration loudly.
func (k Key) Validate() error {
	if k.Public == nil || k.Public.N == nil {
		return fmt.Errorf("key %q has no public key", k.ID)
	}
	if n := k.Public.N.BitLen(); n < minKeyBits {
		return fmt.Errorf("key %q is %d bits; at least %d are required", k.ID, n, minKeyBits)
	}
	if k.Algorithm != RS256 && k.Algorithm != RS512 {
		return fmt.Errorf("key %q has algorithm %q; want RS256 or RS512", k.ID, k.Algorithm)
	}
	switch k.Source {
	case "", ByPublicKey, ByJWKS:
	default:
		return fmt.Errorf("key %q has source %q; want %q or %q", k.ID, k.Source, ByPublicKey, ByJWKS)
	}
	return nil
}

// same reports whether two keys are interchangeable, so a reload that keeps a
// key keeps the cached verifications it made.
func (k *Key) same(o *Key) bool {
	return k.ID == o.ID && k.Algorithm == o.Algorithm && k.Source == o.Source && k.Public.Equal(o.Public)
}

// KeySource supplies verification keys. The static keys are one source; a
// JWKS-backed source (keys chosen by kid, refreshed in the background) is
// another, added with AddSource. Implementations must be safe for concurrent
// use.
type KeySource interface {
	// Candidates returns the keys to try, in order, for a token whose
	// protected header names alg (RS256 or RS512) and kid ("" when absent).
	// Keys whose Algorithm differs from alg are skipped by the caller anyway.
	// The caller neither modifies nor retains the slice beyond the call, but
	// may keep the *Key pointers: they identify the key in Current.
	Candidates(ctx context.Context, alg, kid string) []*Key
	// Current reports whether k, returned by an earlier Candidates call, is
	// still in force. Cached verifications are reused only while the key that
	// made them is current: removing a key revokes what it vouched for.
	Current(k *Key) bool
}

// AvailabilityReporter is implemented by key sources that can be unable to
// supply keys, such as a JWKS that could not be fetched yet. It is optional:
// a KeySource without it is always available. When no key verifies a token
// and a source reports itself unavailable, the key validator's answer is
// Unavailable (503), not a rejection: the key that would have verified the
// token may be the one the source could not fetch.
type AvailabilityReporter interface {
	// Unavailable returns nil while the source can supply keys, otherwise
	// why it cannot. It is called only after every key failed, and must be
	// cheap and safe for concurrent use.
	Unavailable() error
}

// verifiers are jwx's RSA PKCS #1 v1.5 verifiers, one per accepted
// algorithm; they hold no per-call state. One jwx cannot create is absent,
// and its tokens are refused.
var verifiers = func() map[jwa.SignatureAlgorithm]jws.Verifier {
	m := map[jwa.SignatureAlgorithm]jws.Verifier{}
	for _, alg := range []jwa.SignatureAlgorithm{jwa.RS256, jwa.RS512} {
		if v, err := jws.NewVerifier(alg); err == nil {
			m[alg] = v
		}
	}
	return m
}()

// KeyValidator verifies token signatures against a set of key sources. Its
// zero value is not usable; build it with NewKeyValidator.
type KeyValidator struct {
	static *staticKeys
	// extra holds the sources added with AddSource (JWKS), tried after the
	// static keys. Copy-on-write: AddSource is rare, Validate frequent.
	extra   atomic.Pointer[[]KeySource]
	extraMu sync.Mutex
}

// NewKeyValidator returns a validator trusting keys, tried in order. Keys
// that fail Key.Validate are skipped.
func NewKeyValidator(keys []Key) *KeyValidator {
	k := &KeyValidator{static: &staticKeys{}}
	k.static.set(keys)
	return k
}

// SetKeys atomically replaces the static keys (hot reload of key files). A
// Validate running concurrently sees either the old or the new set. Keys
// present in both sets (same ID, algorithm, source and public key) keep their
// cached verifications; cached verifications made by a removed key are not
// used again. Keys that fail Key.Validate are skipped.
func (k *KeyValidator) SetKeys(keys []Key) {
	k.static.set(keys)
}

// Keys returns a copy of the current static keys.
func (k *KeyValidator) Keys() []Key {
	ks := k.static.cur.Load()
	out := make([]Key, len(ks.all))
	for i, key := range ks.all {
		out[i] = *key
	}
	return out
}

// AddSource adds a key source (such as a JWKS) tried after the static keys.
// It is safe to call at any time.
func (k *KeyValidator) AddSource(src KeySource) {
	k.extraMu.Lock()
	defer k.extraMu.Unlock()
	var next []KeySource
	if cur := k.extra.Load(); cur != nil {
		next = append(next, *cur...)
	}
	next = append(next, src)
	k.extra.Store(&next)
}

// verify finds the key that verifies token. Every key is used with its own
// algorithm only, given to jwx explicitly; the token's header picks neither
// the key nor the algorithm (its jwk, jku, x5u and x5c are ignored).
func (k *KeyValidator) verify(ctx context.Context, token string, tok *Token) (*Key, KeySource, *Error) {
	var alg jwa.SignatureAlgorithm
	switch tok.Alg {
	case RS256:
		alg = jwa.RS256
	case RS512:
		alg = jwa.RS512
	default:
		// none, HS*, ES*, PS*...: no key here verifies with them, whatever
		// keys are configured. Refusing before any key is looked at is what
		// closes the classic "HMAC with the RSA public key as secret" hole.
		return nil, nil, reject(ReasonBadSignature, fmt.Errorf("algorithm %s is not accepted by key validation (RS256 and RS512 only)", strictjson.Excerpt(tok.Alg)))
	}
	// ParseCompact has already checked the three segments strictly; jwx's
	// verifier gets the exact signing input and signature, so nothing is
	// parsed twice and jwx's lenient parser never sees the token.
	dot := strings.LastIndexByte(token, '.')
	signingInput := []byte(token[:dot])
	signature, err := base64.RawURLEncoding.DecodeString(token[dot+1:])
	if err != nil {
		return nil, nil, malformed("signature is not base64url")
	}
	verifier, ok := verifiers[alg]
	if !ok {
		return nil, nil, reject(ReasonBadSignature, fmt.Errorf("no %s verifier available", alg))
	}
	tried := 0
	try := func(src KeySource) (*Key, bool) {
		for _, key := range src.Candidates(ctx, tok.Alg, tok.Kid) {
			if key == nil || key.Algorithm != tok.Alg || key.Public == nil {
				continue
			}
			tried++
			if verifier.Verify(signingInput, signature, key.Public) == nil {
				return key, true
			}
		}
		return nil, false
	}
	if key, ok := try(k.static); ok {
		return key, k.static, nil
	}
	if extra := k.extra.Load(); extra != nil {
		for _, src := range *extra {
			if key, ok := try(src); ok {
				return key, src, nil
			}
		}
	}
	if err := k.unavailable(); err != nil {
		return nil, nil, unavailable(err)
	}
	if tried == 0 {
		return nil, nil, reject(ReasonNoMatchingKey, fmt.Errorf("no %s key configured", tok.Alg))
	}
	return nil, nil, reject(ReasonBadSignature, fmt.Errorf("signature verified by none of %d %s key(s)", tried, tok.Alg))
}

// unavailable returns the first added source's reason for being unable to
// supply keys, or nil when every source is available.
func (k *KeyValidator) unavailable() error {
	extra := k.extra.Load()
	if extra == nil {
		return nil
	}
	for _, src := range *extra {
		if r, ok := src.(AvailabilityReporter); ok {
			if err := r.Unavailable(); err != nil {
				return err
			}
		}
	}
	return nil
}

// staticKeys is the KeySource of configured key files: every key of the
// token's algorithm is a candidate, in configuration order, whatever the kid.
type staticKeys struct {
	mu  sync.Mutex // serialises set
	cur atomic.Pointer[keySet]
}

type keySet struct {
	all     []*Key
	byAlg   map[string][]*Key
	members map[*Key]struct{}
}

func (s *staticKeys) set(keys []Key) {
	s.mu.Lock()
	defer s.mu.Unlock()
	prev := s.cur.Load()
	next := &keySet{byAlg: make(map[string][]*Key, 2), members: make(map[*Key]struct{}, len(keys))}
	for i := range keys {
		if keys[i].Validate() != nil {
			continue
		}
		key := &Key{}
		*key = keys[i]
		if key.Source == "" {
			key.Source = ByPublicKey
		}
		if slices.ContainsFunc(next.all, key.same) {
			continue // listed twice: trying it twice would only cost time
		}
		// Reuse the pointer of an identical key, so its cached
		// verifications stay current.
		if prev != nil {
			if i := slices.IndexFunc(prev.all, key.same); i >= 0 {
				key = prev.all[i]
			}
		}
		next.all = append(next.all, key)
		next.byAlg[key.Algorithm] = append(next.byAlg[key.Algorithm], key)
		next.members[key] = struct{}{}
	}
	s.cur.Store(next)
}

// Candidates implements KeySource.
func (s *staticKeys) Candidates(_ context.Context, alg, _ string) []*Key {
	return s.cur.Load().byAlg[alg]
}

// Current implements KeySource.
func (s *staticKeys) Current(k *Key) bool {
	_, ok := s.cur.Load().members[k]
	return ok
}

var _ KeySource = (*staticKeys)(nil)
