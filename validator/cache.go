package validator

import (
	"fmt"
	"time"

	"github.com/maypok86/otter/v2"
)

// DefaultCacheSize bounds each cache of a chain (README "Validation").
const DefaultCacheSize = 100_000

// Lifetimes of key-cache entries beyond the token's own exp. An entry only
// saves an RSA verification, so these bound memory, not security: exp and
// nbf are re-checked on every hit, and a removed key revokes its entries.
const (
	// noExpCacheTTL: a token without exp is re-verified this often.
	noExpCacheTTL = 10 * time.Minute
	// maxKeyCacheTTL: a token valid for years is re-verified daily.
	maxKeyCacheTTL = 24 * time.Hour
)

// cached is one cache entry: a validated identity with what a hit must
// re-check. Entries are never modified after insertion.
type cached struct {
	id    *Identity
	times timeClaims
	// until ends a remote answer's life: min(insertion + cache_ttl, exp).
	// Zero for key-cache entries.
	until time.Time
	// key and src record which key verified the token (key cache only), so
	// the entry dies with the key.
	key *Key
	src KeySource
	// ttl is the lifetime handed to otter, which evicts on its own clock;
	// the chain's clock decides validity.
	ttl time.Duration
}

func newCache(size int) (*otter.Cache[[32]byte, *cached], error) {
	c, err := otter.New(&otter.Options[[32]byte, *cached]{
		MaximumSize: size,
		ExpiryCalculator: otter.ExpiryCreatingFunc(func(e otter.Entry[[32]byte, *cached]) time.Duration {
			return e.Value.ttl
		}),
	})
	if err != nil {
		return nil, fmt.Errorf("creating token cache: %w", err)
	}
	return c, nil
}

// keyCacheTTL is how long otter keeps a key-verified token: until exp plus
// the leeway (a hit then still fails the exp check once past it), within
// the bounds above.
func keyCacheTTL(tc timeClaims, leeway time.Duration, now time.Time) time.Duration {
	if !tc.hasExp {
		return noExpCacheTTL
	}
	ttl := tc.exp.Add(leeway).Sub(now)
	return min(ttl, maxKeyCacheTTL)
}
