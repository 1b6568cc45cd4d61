// Package validator decides whether a bearer token is valid, the way Okera
// does: a remote validation endpoint first, then the configured public keys,
// with strict token syntax before either and the same claim checks after.
// It knows nothing of Caddy or HTTP handlers; caddymodule and the command
// line build a Chain and call Validate.
package validator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"
	"unsafe"

	"github.com/maypok86/otter/v2"
	"go.uber.org/zap"
)

// Which validator accepted a token: Identity.By, and the
// {http.auth.okera.validator} placeholder.
const (
	ByRemote    = "remote"
	ByPublicKey = "public_key"
	ByJWKS      = "jwks"
)

// Identity is a validated caller. Identities may be shared between requests
// through the caches: treat an Identity, and its Claims, as immutable.
type Identity struct {
	// User is the verified sub; for a remotely validated token, the sub of
	// the endpoint's answer (which may differ from the token's).
	User string
	// Claims is what the groups resolver reads. After key validation: the
	// verified payload. After remote validation: the endpoint's JSON answer,
	// laid over the token's unverified payload only with
	// RemoteValidator.TrustTokenClaims (the endpoint's members win).
	// Numbers are json.Number.
	Claims map[string]any
	// By is ByRemote, ByPublicKey or ByJWKS.
	By string
	// Expiry is the token's exp; zero when it has none.
	Expiry time.Time
	// TokenID is Fingerprint(token), for logs.
	TokenID string

	// Derived is what ChainConfig.Derive made of this identity when it was
	// created, before anyone else saw it; nil without Derive. A cached
	// Identity is handed to every request presenting the same token, so the
	// caller keeps here what it computes from the identity alone.
	Derived any
}

// Fingerprint identifies a token in logs without revealing it: the first 12
// hex digits of its SHA-256.
func Fingerprint(token string) string {
	return fingerprint(sha256.Sum256([]byte(token)))
}

// tokenBytes views a token's bytes without copying them, so hashing the
// token on the cache path (up to max_token_size on every request) allocates
// nothing. The slice is only ever read.
func tokenBytes(token string) []byte {
	return unsafe.Slice(unsafe.StringData(token), len(token))
}

func fingerprint(sum [32]byte) string {
	return hex.EncodeToString(sum[:6])
}

// Labels for Observer.
const (
	// ValidatorRemote and ValidatorKeys name the validators (and caches)
	// in Observer calls.
	ValidatorRemote = "remote"
	ValidatorKeys   = "keys"

	ResultValid       = "valid"
	ResultRejected    = "rejected"
	ResultUnavailable = "unavailable"
)

// Observer is told what the chain does, for metrics. Its methods run
// synchronously on the request path from many goroutines: keep them cheap
// and safe for concurrent use.
type Observer interface {
	// ObserveValidation reports one validator's answer to a token that no
	// cache answered: validator is ValidatorRemote or ValidatorKeys, result
	// ResultValid, ResultRejected or ResultUnavailable.
	ObserveValidation(validator, result string, elapsed time.Duration)
	// ObserveCache reports a cache lookup; cache is ValidatorRemote or
	// ValidatorKeys.
	ObserveCache(cache string, hit bool)
}

// ChainConfig configures NewChain.
type ChainConfig struct {
	// Remote is the remote validation endpoint; nil for none.
	Remote *RemoteValidator
	// Keys is the key validator; nil for none. It may be shared and its
	// keys swapped (SetKeys) while the chain runs.
	Keys *KeyValidator
	// Claims holds the checks every validated token must pass.
	Claims ClaimPolicy
	// CacheSize bounds the key cache and the remote answer cache; 0 means
	// DefaultCacheSize, a negative value disables the key cache (for
	// one-shot use such as the command line).
	CacheSize int
	// Now is the clock for claim checks and cache lifetimes; nil means
	// time.Now.
	Now func() time.Time
	// Logger receives debug detail; nil means none.
	Logger *zap.Logger
	// Observer receives events for metrics; nil means none.
	Observer Observer
	// KeepClaims names the claims an Identity keeps (the groups claim, for
	// the gateway); nil keeps them all. A cached Identity lives as long as
	// its token, so a gateway holding 100 000 of them keeps only what it
	// reads.
	KeepClaims []string
	// Derive, when set, runs once for every new Identity before it is cached
	// or returned. Its first result becomes Identity.Derived; its second
	// says whether Claims are still needed (false drops them, so a cached
	// identity holds only what the caller derived).
	Derive func(id *Identity) (derived any, keepClaims bool)
}

// Chain validates tokens (README "Validation"). It is safe for concurrent use.
type Chain struct {
	remote   *remote
	keys     *KeyValidator
	policy   ClaimPolicy
	keyCache *otter.Cache[[32]byte, *cached] // nil when disabled
	now      func() time.Time
	log      *zap.Logger
	observer Observer
	keep     []string // nil: all claims
	derive   func(*Identity) (any, bool)
}

// NewChain checks cfg and builds a chain. It makes no network call.
func NewChain(cfg ChainConfig) (*Chain, error) {
	if cfg.Remote == nil && cfg.Keys == nil {
		return nil, errors.New("no validator configured: need a remote endpoint or public keys")
	}
	if cfg.Claims.Leeway < 0 {
		return nil, fmt.Errorf("leeway %s is negative", cfg.Claims.Leeway)
	}
	if slices.Contains(cfg.Claims.Issuers, "") {
		return nil, errors.New("empty issuer in the allow-list")
	}
	if slices.Contains(cfg.Claims.Audiences, "") {
		return nil, errors.New("empty audience in the allow-list")
	}
	c := &Chain{
		keys: cfg.Keys,
		policy: ClaimPolicy{
			Leeway:     cfg.Claims.Leeway,
			RequireExp: cfg.Claims.RequireExp,
			Issuers:    slices.Clone(cfg.Claims.Issuers),
			Audiences:  slices.Clone(cfg.Claims.Audiences),

			RefusedAudiences: slices.Clone(cfg.Claims.RefusedAudiences),
		},
		now:      cfg.Now,
		log:      cfg.Logger,
		observer: cfg.Observer,
		keep:     slices.Clone(cfg.KeepClaims),
		derive:   cfg.Derive,
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	size := cfg.CacheSize
	if size == 0 {
		size = DefaultCacheSize
	}
	if cfg.Keys != nil && size > 0 {
		var err error
		if c.keyCache, err = newCache(size); err != nil {
			return nil, err
		}
	}
	if cfg.Remote != nil {
		var err error
		if c.remote, err = newRemote(*cfg.Remote, max(size, DefaultCacheSize)); err != nil {
			c.Close()
			return nil, err
		}
		c.remote.finish = c.finish
	}
	return c, nil
}

// Close stops the caches' maintenance goroutines and closes the idle
// connections of the remote endpoint's own client. Validate keeps working
// afterwards, without background cache clean-up.
func (c *Chain) Close() {
	if c.keyCache != nil {
		c.keyCache.StopAllGoroutines()
	}
	if c.remote != nil {
		c.remote.close()
	}
}

// Validate decides whether token (the bearer credential, without "Bearer ")
// is valid. The error is always an *Error.
//
// Order, per README "Validation": the caches; strict syntax (ParseCompact); the
// claim policy's time, issuer and audience checks on the payload; the remote
// endpoint; the keys; then sub. The time, issuer and audience checks come
// before any validator because they apply to every validator's answer: a token
// failing them can never be accepted, so it costs no remote round trip or RSA
// operation, and an expired token is a 401 even while the endpoint is down. Its
// reason is then that check's (say "expired"), even if the signature would not
// have verified either.
//
// The outcome: an Identity when a validator accepts the token and the claims
// pass. Otherwise a claim failure of a verified token is final; a rejection
// by an authoritative endpoint is final (remote_rejected); an unavailable
// endpoint with no key verifying the token gives Unavailable; else the keys'
// reason (no_matching_key or bad_signature), or remote_rejected when there
// are no keys. With an authoritative endpoint, its rejection and its
// unavailability are both final. A caller whose ctx ends before the
// decision gets caller_gone, never another validator's answer.
func (c *Chain) Validate(ctx context.Context, token string) (*Identity, error) {
	id, err := c.validate(ctx, token)
	if err != nil {
		if !err.CallerGone && ctx.Err() != nil {
			// Whatever failed while the caller was leaving (a JWKS refetch
			// it started, say) failed because it left.
			err = callerGone(ctx.Err())
		}
		return nil, err
	}
	return id, nil
}

func (c *Chain) validate(ctx context.Context, token string) (*Identity, *Error) {
	sum := sha256.Sum256(tokenBytes(token))
	now := c.now()

	// The remote endpoint comes first (Okera's order): with one configured,
	// a key-cache hit must not stand in for its answer, which may name
	// another user or, when authoritative, revoke the token.
	if c.remote == nil {
		if id, err, hit := c.lookupKeyCache(sum, now); hit {
			return id, err
		}
	} else if c.remote.cache != nil {
		id, err, hit := c.remote.lookup(sum, now, &c.policy)
		c.observeCache(ValidatorRemote, hit)
		if hit {
			return id, err
		}
	}

	ptok, perr := ParseCompact(token)
	if perr != nil {
		return nil, perr.(*Error)
	}
	tc, err := c.policy.check(ptok.Payload, now)
	if err != nil {
		return nil, err
	}

	var down, rejected *Error
	if c.remote != nil {
		start := time.Now()
		id, err := c.remote.validate(ctx, sum, token, ptok, tc, now)
		if err != nil && err.CallerGone {
			// No decision: falling through to the keys here is exactly
			// what a half-closing client wants (README "Security notes").
			return nil, err
		}
		c.observeValidation(ValidatorRemote, err, time.Since(start))
		if err == nil {
			return id, nil
		}
		c.debug("remote endpoint did not validate the token", sum, err)
		switch {
		case c.remote.cfg.Authoritative:
			// The endpoint revokes tokens the keys would accept: when it
			// cannot answer, nobody else may (503).
			return nil, err
		case err.Unavailable:
			down = err
		case c.keys == nil:
			return nil, err
		default:
			rejected = err
		}
		if id, err, hit := c.lookupKeyCache(sum, now); hit {
			return id, err
		}
	}
	if c.keys != nil {
		id, err, final := c.validateKeys(ctx, sum, token, ptok, tc, now)
		if err == nil || final {
			return id, err
		}
		c.debug("no key validated the token", sum, err)
		rejected = err
	}
	if down != nil {
		return nil, down
	}
	return nil, rejected
}

// lookupKeyCache answers from the key cache. A hit whose key has been
// removed since is dropped; exp and nbf are checked again.
func (c *Chain) lookupKeyCache(sum [32]byte, now time.Time) (*Identity, *Error, bool) {
	if c.keyCache == nil {
		return nil, nil, false
	}
	e, ok := c.keyCache.GetIfPresent(sum)
	if ok && !e.src.Current(e.key) {
		c.keyCache.Invalidate(sum)
		ok = false
	}
	c.observeCache(ValidatorKeys, ok)
	if !ok {
		return nil, nil, false
	}
	if err := c.policy.checkTimes(e.times, now); err != nil {
		if err.Reason == ReasonExpired {
			c.keyCache.Invalidate(sum)
		}
		return nil, err, true
	}
	return e.id, nil, true
}

// validateKeys verifies the signature and then sub. final reports that the
// token was verified, so its error is the answer whatever the remote said.
func (c *Chain) validateKeys(ctx context.Context, sum [32]byte, token string, tok *Token, tc timeClaims, now time.Time) (*Identity, *Error, bool) {
	start := time.Now()
	key, src, err := c.keys.verify(ctx, token, tok)
	c.observeValidation(ValidatorKeys, err, time.Since(start))
	if err != nil {
		return nil, err, false
	}
	sub, err := subject(tok.Payload)
	if err != nil {
		return nil, err, true
	}
	by := key.Source
	if by == "" {
		by = ByPublicKey
	}
	id := &Identity{User: sub, Claims: tok.Payload, By: by, TokenID: fingerprint(sum)}
	if tc.hasExp {
		id.Expiry = tc.exp
	}
	c.finish(id)
	if c.keyCache != nil {
		if ttl := keyCacheTTL(tc, c.policy.Leeway, now); ttl > 0 {
			c.keyCache.Set(sum, &cached{id: id, times: tc, key: key, src: src, ttl: ttl})
		}
	}
	return id, nil, true
}

func (c *Chain) observeValidation(validator string, err *Error, elapsed time.Duration) {
	if c.observer == nil {
		return
	}
	result := ResultValid
	if err != nil {
		result = ResultRejected
		if err.Unavailable {
			result = ResultUnavailable
		}
	}
	c.observer.ObserveValidation(validator, result, elapsed)
}

func (c *Chain) observeCache(cache string, hit bool) {
	if c.observer != nil {
		c.observer.ObserveCache(cache, hit)
	}
}

func (c *Chain) debug(msg string, sum [32]byte, err *Error) {
	if ce := c.log.Check(zap.DebugLevel, msg); ce != nil {
		ce.Write(zap.String("token_id", fingerprint(sum)), zap.String("reason", err.Reason), zap.Error(err.Err))
	}
}

// finish applies KeepClaims and Derive to a new identity, before it is
// shared.
func (c *Chain) finish(id *Identity) {
	id.Claims = keepClaims(id.Claims, c.keep)
	if c.derive != nil {
		var keep bool
		id.Derived, keep = c.derive(id)
		if !keep {
			id.Claims = nil
		}
	}
}

// keepClaims returns the claims named in keep (all of them when keep is
// nil), sharing the values.
func keepClaims(claims map[string]any, keep []string) map[string]any {
	if keep == nil {
		return claims
	}
	out := make(map[string]any, len(keep))
	for _, name := range keep {
		if v, ok := claims[name]; ok {
			out[name] = v
		}
	}
	return out
}
