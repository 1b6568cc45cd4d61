package caddymodule

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/okeragate/caddy-okera-auth/keyfile"
	"github.com/okeragate/caddy-okera-auth/validator"
)

// systemOkeraUser is the subject Okera expects of its system token.
const systemOkeraUser = "okera"

// expiryWarning is how far ahead an expiring system token is warned about.
const expiryWarning = 24 * time.Hour

// systemToken is the gateway's own token for upstream calls (Okera's
// SYSTEM_TOKEN). The value sits behind an atomic pointer so it can be
// replaced while requests read it.
type systemToken struct {
	v atomic.Pointer[systemTokenValue]
	// previous is the value before the last replacement: upstreams may
	// still hold it, so it is refused from callers too until its own
	// expiry (README "Security notes").
	previous atomic.Pointer[systemTokenValue]
}

type systemTokenValue struct {
	token   string
	bearer  string // "Bearer <token>", built once
	sub     string
	expires time.Time // zero: no exp
}

func (s *systemToken) header() string     { return s.v.Load().bearer }
func (s *systemToken) subject() string    { return s.v.Load().sub }
func (s *systemToken) value() string      { return s.v.Load().token }
func (s *systemToken) expires() time.Time { return s.v.Load().expires }

// replace installs a new value and remembers the one it replaces.
func (s *systemToken) replace(val *systemTokenValue) {
	if old := s.v.Swap(val); old != nil && old.token != val.token {
		s.previous.Store(old)
	}
}

// is reports whether token is the system token in force or the one it
// replaced. The comparison is in constant time: a caller must not learn the
// system token a byte at a time from how fast it is refused.
func (s *systemToken) is(token string) bool {
	for _, v := range [2]*systemTokenValue{s.v.Load(), s.previous.Load()} {
		if v != nil && len(v.token) == len(token) && subtle.ConstantTimeCompare([]byte(v.token), []byte(token)) == 1 {
			return true
		}
	}
	return false
}

// loadSystemToken reads and checks the system token file: it must be a JWT
// with a subject that has not expired. The signature is not checked here;
// the upstream, not the gateway, is the token's audience.
func loadSystemToken(path string, now time.Time, logger *zap.Logger) (*systemToken, error) {
	val, err := readSystemToken(path, now)
	if err != nil {
		return nil, err
	}
	warnSystemToken(path, val, now, logger)
	st := new(systemToken)
	st.v.Store(val)
	return st, nil
}

// warnSystemToken logs what an operator should fix about a system token
// that is otherwise usable: at start-up, and when its file is reloaded.
func warnSystemToken(path string, val *systemTokenValue, now time.Time, logger *zap.Logger) {
	if val.sub != systemOkeraUser {
		logger.Warn("the system token's subject is not okera; Okera services expect the okera system user",
			zap.String("path", path), zap.String("sub", val.sub))
	}
	if !val.expires.IsZero() && val.expires.Sub(now) < expiryWarning {
		logger.Warn("the system token expires within 24 hours; generate a new one (caddy okera-keygen --force, or caddy okera-token)",
			zap.String("path", path), zap.Time("expires", val.expires))
	}
}

func readSystemToken(path string, now time.Time) (*systemTokenValue, error) {
	file, err := keyfile.ResolvePath(path)
	if err != nil {
		return nil, err
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading system token %q: %w", path, err)
	}
	return parseSystemToken(path, raw, now)
}

// parseSystemToken checks the content of a system token file (path is for
// messages).
func parseSystemToken(path string, raw []byte, now time.Time) (*systemTokenValue, error) {
	token := strings.TrimSpace(string(raw))
	if token == "" {
		return nil, fmt.Errorf("system token %q is empty; put the gateway's JWT in it (caddy okera-keygen writes one)", path)
	}
	tok, err := validator.ParseCompact(token)
	if err != nil {
		return nil, fmt.Errorf("system token %q is not a JWT: %w", path, err)
	}
	sub, err := validator.Subject(tok.Payload)
	if err != nil {
		return nil, fmt.Errorf("system token %q has no usable sub claim (%v); Okera's system token names the okera user", path, err)
	}
	// The same time rules as any caller's token (types, ranges, exp, nbf).
	var policy validator.ClaimPolicy
	if err := policy.Check(tok.Payload, now); err != nil {
		return nil, fmt.Errorf("system token %q: %w; generate a new one (caddy okera-keygen --force, or caddy okera-token --key <private key> --sub okera --groups root)", path, err)
	}
	val := &systemTokenValue{token: token, bearer: "Bearer " + token, sub: sub}
	if n, ok := tok.Payload["exp"].(json.Number); ok {
		if f, err := n.Float64(); err == nil {
			val.expires = time.Unix(int64(f), 0)
		}
	}
	return val, nil
}
