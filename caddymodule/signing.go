package caddymodule

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/maypok86/otter/v2"
	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/okeragate/caddy-okera-auth/internal/safeurl"
	"github.com/okeragate/caddy-okera-auth/keyfile"
	"github.com/okeragate/caddy-okera-auth/mint"
	"github.com/okeragate/caddy-okera-auth/validator"
)

// Defaults of the gateway's own tokens.
const (
	// DefaultMintedTokenTTL is the life of a minted upstream token.
	DefaultMintedTokenTTL = 5 * time.Minute
	// DefaultSystemTokenTTL is the life of the system token the gateway
	// mints for itself when it has a signing_key and no system_token.
	DefaultSystemTokenTTL = time.Hour
	// minOwnTokenTTL is the shortest life accepted for either.
	minOwnTokenTTL = time.Second
	// mintCacheSize bounds the minted tokens kept for reuse (one per user
	// and group set).
	mintCacheSize = 10_000
)

// A token the gateway minted is reused, or renewed, at 80% of its life:
// late enough that steady traffic signs almost nothing, early enough that
// the upstream never sees a token about to expire.
const renewNumerator, renewDenominator = 4, 5

func renewAfter(life time.Duration) time.Duration {
	return life * renewNumerator / renewDenominator
}

// SigningKey is the gateway's own RSA key pair (Okera's JWT_PRIVATE_KEY).
// It signs minted upstream tokens and the self-minted system token, and its
// public half is trusted by the key validator, so those tokens validate at
// the gateway too.
type SigningKey struct {
	// Path is a file path or file:// URI of a PKCS#8 or PKCS#1 PEM private key.
	Path string `json:"path"`
	// Algorithm is RSA256 or RSA512 (also spelled RS256/RS512). Default RSA512.
	Algorithm string `json:"algorithm,omitempty"`
}

// signerRef holds the signer in force; a reloaded signing key swaps it.
type signerRef struct{ p atomic.Pointer[mint.Signer] }

func (r *signerRef) load() *mint.Signer   { return r.p.Load() }
func (r *signerRef) store(s *mint.Signer) { r.p.Store(s) }

// loadSigningKey reads the signing key, trusts its public half and keeps
// watching the file. Hooks added to onSigner run after a reload.
func (k *keyring) loadSigningKey(path, alg string) error {
	return k.watcher.watch(path, "signing key", func(data []byte) error {
		priv, err := keyfile.ParsePrivateKeyPEM(data)
		if err != nil {
			return err
		}
		signer, err := mint.NewSigner(priv, alg)
		if err != nil {
			return err
		}
		k.mu.Lock()
		reload := k.signer.load() != nil
		k.signer.store(signer)
		k.signing, k.signingCfg, k.signingAlg = &priv.PublicKey, path, alg
		k.installLocked()
		hooks := k.onSigner
		k.mu.Unlock()
		if reload {
			for _, hook := range hooks {
				hook()
			}
		}
		return nil
	})
}

// provisionOwnKeys sets up what rests on files the gateway re-reads: it
// watches the system token file, loads the signing key, and with it builds
// the minter (upstream_token minted) and, without a system_token, the
// self-renewing system token. Call it after the system token is loaded and
// before the validator and resolvers are built.
func (h *Handler) provisionOwnKeys() error {
	h.keyring = newKeyring(durationOrDefault(h.FileCheckInterval, DefaultFileCheckInterval), h.logger)
	h.closers = append(h.closers, h.keyring.close)
	expiryChanged := func(v *systemTokenValue) {
		if h.metrics != nil {
			h.metrics.systemTokenExpires(v.expires)
		}
	}
	if h.SystemToken != "" && h.system != nil {
		if err := h.keyring.watchSystemToken(h.SystemToken, h.system, expiryChanged); err != nil {
			return fmt.Errorf("system_token: %w", err)
		}
	}
	if h.SigningKey == nil {
		return nil
	}
	alg, err := keyfile.ParseAlgorithm(h.SigningKey.Algorithm)
	if err != nil {
		return fmt.Errorf("signing_key %s: %w", h.SigningKey.Path, err)
	}
	if err := h.keyring.loadSigningKey(h.SigningKey.Path, alg); err != nil {
		return fmt.Errorf("signing_key: reading private key %q: %w", h.SigningKey.Path, err)
	}
	if h.UpstreamToken == UpstreamMinted {
		m, err := newMinter(h.keyring.signer.load, durationOrDefault(h.MintedTokenTTL, DefaultMintedTokenTTL), h.MintedAudience, time.Now)
		if err != nil {
			return err
		}
		h.keyring.closers = append(h.keyring.closers, m.close)
		if h.metrics != nil {
			m.observe = h.metrics.cacheObserver("minted")
		}
		h.minter = m
	}
	if h.SystemToken == "" {
		s, err := startSelfSystemToken(h.keyring.signer.load, durationOrDefault(h.SystemTokenTTL, DefaultSystemTokenTTL), h.logger, expiryChanged)
		if err != nil {
			return fmt.Errorf("signing_key: minting the system token: %w", err)
		}
		h.keyring.closers = append(h.keyring.closers, s.close)
		h.keyring.mu.Lock()
		h.keyring.onSigner = append(h.keyring.onSigner, s.renewNow)
		h.keyring.mu.Unlock()
		h.system = s.st
	}
	return nil
}

// validateOwnKeys is the part of Validate about signing_key and its tokens.
func (h *Handler) validateOwnKeys() error {
	if h.SigningKey != nil {
		if h.SigningKey.Path == "" {
			return fmt.Errorf("signing_key needs a path")
		}
		if _, err := keyfile.ParseAlgorithm(h.SigningKey.Algorithm); err != nil {
			return fmt.Errorf("signing_key: %w", err)
		}
	}
	if h.UpstreamToken == UpstreamMinted && h.SigningKey == nil {
		return fmt.Errorf("upstream_token minted needs signing_key <private key>: the gateway signs the upstream tokens with it")
	}
	for name, d := range map[string]caddy.Duration{"minted_token_ttl": h.MintedTokenTTL, "system_token_ttl": h.SystemTokenTTL} {
		if d != 0 && time.Duration(d) < minOwnTokenTTL {
			return fmt.Errorf("%s %s is too short; use at least %s", name, time.Duration(d), minOwnTokenTTL)
		}
	}
	if h.FileCheckInterval < 0 {
		return fmt.Errorf("file_check_interval must not be negative")
	}
	return nil
}

func durationOrDefault(d caddy.Duration, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return time.Duration(d)
}

// minter signs the upstream tokens of upstream_token minted. A token is
// reused for the same user and group set until 80% of its life, so steady
// traffic signs nothing: the hit path hashes the user and groups on the
// stack and does one cache lookup. Concurrent first requests of one user
// and group set sign once (singleflight).
type minter struct {
	signer   func() *mint.Signer
	ttl      time.Duration
	audience string // aud of every minted token: refused from callers
	now      func() time.Time
	cache    *otter.Cache[[32]byte, *mintedToken]
	flight   singleflight.Group
	signs    atomic.Int64 // tokens signed, for tests and debugging

	// observe, when set, is told whether each request reused a token.
	observe func(hit bool)
}

type mintedToken struct {
	bearer  string       // "Bearer <token>"
	signer  *mint.Signer // a token of a replaced signing key is not reused
	renewAt time.Time
}

func newMinter(signer func() *mint.Signer, ttl time.Duration, audience string, now func() time.Time) (*minter, error) {
	m := &minter{signer: signer, ttl: ttl, audience: audience, now: now}
	cache, err := otter.New(&otter.Options[[32]byte, *mintedToken]{
		MaximumSize:      mintCacheSize,
		ExpiryCalculator: otter.ExpiryWriting[[32]byte, *mintedToken](renewAfter(ttl)),
	})
	if err != nil {
		return nil, fmt.Errorf("creating the minted token cache: %w", err)
	}
	m.cache = cache
	return m, nil
}

func (m *minter) close() { m.cache.StopAllGoroutines() }

// mintKey identifies a user and group set: SHA-256 over length-prefixed
// parts, so ("a,b") and ("a","b") differ and no name can forge another's
// key. The buffer lives on the stack for the usual sizes.
func mintKey(user string, groups []string) [32]byte {
	var stack [512]byte
	b := stack[:0]
	b = binary.AppendUvarint(b, uint64(len(user)))
	b = append(b, user...)
	b = binary.AppendUvarint(b, uint64(len(groups)))
	for _, g := range groups {
		b = binary.AppendUvarint(b, uint64(len(g)))
		b = append(b, g...)
	}
	return sha256.Sum256(b)
}

// bearer returns "Bearer <token>" for user and groups.
func (m *minter) bearer(user string, groups []string) (string, error) {
	key := mintKey(user, groups)
	signer := m.signer()
	t, ok := m.cache.GetIfPresent(key)
	hit := ok && t.signer == signer && m.now().Before(t.renewAt)
	if m.observe != nil {
		m.observe(hit)
	}
	if hit {
		return t.bearer, nil
	}
	v, err, _ := m.flight.Do(string(key[:]), func() (any, error) {
		now := m.now()
		if t, ok := m.cache.GetIfPresent(key); ok && t.signer == signer && now.Before(t.renewAt) {
			return t, nil // signed by the flight that just ended
		}
		if groups == nil {
			groups = []string{} // "groups": [] tells the upstream there are none
		}
		token, exp, err := signer.Sign(mint.Claims{Subject: user, Groups: groups, Audience: m.audience, TTL: m.ttl}, now)
		if err != nil {
			return nil, err
		}
		m.signs.Add(1)
		t := &mintedToken{bearer: "Bearer " + token, signer: signer, renewAt: now.Add(renewAfter(exp.Sub(now)))}
		m.cache.Set(key, t)
		return t, nil
	})
	if err != nil {
		return "", fmt.Errorf("minting the upstream token: %w", err)
	}
	return v.(*mintedToken).bearer, nil
}

// selfSystemToken is the system token the gateway mints for itself (sub
// okera, groups [root]) when it has a signing_key and no system_token. A
// goroutine renews it at 80% of its life, and at once when the signing key
// is replaced.
type selfSystemToken struct {
	st      *systemToken
	signer  func() *mint.Signer
	ttl     time.Duration
	logger  *zap.Logger
	changed func(*systemTokenValue)

	renewAt time.Time // of the token in force; the goroutine's own
	kick    chan struct{}
	cancel  context.CancelFunc
	done    chan struct{}
	once    sync.Once
}

func startSelfSystemToken(signer func() *mint.Signer, ttl time.Duration, logger *zap.Logger, changed func(*systemTokenValue)) (*selfSystemToken, error) {
	s := &selfSystemToken{st: new(systemToken), signer: signer, ttl: ttl, logger: logger, changed: changed,
		kick: make(chan struct{}, 1), done: make(chan struct{})}
	if err := s.renew(time.Now()); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.run(ctx)
	return s, nil
}

func (s *selfSystemToken) renew(now time.Time) error {
	token, exp, err := s.signer().Sign(mint.Claims{Subject: systemOkeraUser, Groups: []string{"root"}, TTL: s.ttl}, now)
	if err != nil {
		return err
	}
	s.st.replace(&systemTokenValue{token: token, bearer: "Bearer " + token, sub: systemOkeraUser, expires: exp})
	s.renewAt = now.Add(renewAfter(exp.Sub(now)))
	if s.changed != nil {
		s.changed(s.st.v.Load())
	}
	return nil
}

func (s *selfSystemToken) run(ctx context.Context) {
	defer close(s.done)
	for {
		timer := time.NewTimer(time.Until(s.renewAt))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-s.kick:
			timer.Stop()
		case <-timer.C:
		}
		if err := s.renew(time.Now()); err != nil {
			// Signing with a loaded key does not fail in practice; should
			// it, try again shortly while the current token still lives.
			s.logger.Error("renewing the self-minted system token failed", zap.Error(err))
			s.renewAt = time.Now().Add(min(10*time.Second, s.ttl/10))
			continue
		}
		if c := s.logger.Check(zap.DebugLevel, "renewed the self-minted system token"); c != nil {
			c.Write(zap.Time("expires", s.st.expires()))
		}
	}
}

// renewNow asks for a new token at once (the signing key changed).
func (s *selfSystemToken) renewNow() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

func (s *selfSystemToken) close() {
	s.once.Do(func() {
		s.cancel()
		<-s.done
	})
}

// parseSigningKey reads `signing_key <path|file://uri> [RSA256|RSA512]`.
func (h *Handler) parseSigningKey(d *caddyfile.Dispenser) error {
	if h.SigningKey != nil {
		return d.Err("signing_key given twice; the gateway has one key pair")
	}
	args := d.RemainingArgs()
	if len(args) < 1 || len(args) > 2 {
		return d.ArgErr()
	}
	sk := &SigningKey{Path: args[0]}
	if len(args) == 2 {
		if _, err := keyfile.ParseAlgorithm(args[1]); err != nil {
			return d.Errf("signing_key: %v", err)
		}
		sk.Algorithm = args[1]
	}
	h.SigningKey = sk
	return nil
}

// keyValidator loads the public keys (watched from now on) and builds the
// key validator over them, the signing key's public half and the JWKS
// sources; nil when none of these is configured.
func (h *Handler) keyValidator() (*validator.KeyValidator, error) {
	if err := h.keyring.loadPublicKeys(h.PublicKeys); err != nil {
		return nil, err
	}
	kv := h.keyring.keyValidator(len(h.JWKS) > 0)
	if kv == nil {
		return nil, nil
	}
	if err := h.addJWKSSources(kv); err != nil {
		return nil, err
	}
	return kv, nil
}

// ownValidatorNames lists the signing key and JWKS validators for the
// provisioning log line, with no URL's userinfo (README "Logs").
func (h *Handler) ownValidatorNames() []string {
	var names []string
	if h.SigningKey != nil {
		names = append(names, "signing_key "+h.SigningKey.Path)
	}
	for _, j := range h.JWKS {
		names = append(names, "jwks "+safeurl.String(j.URL))
	}
	return names
}
