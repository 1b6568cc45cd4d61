package validator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"time"

	"github.com/okeragate/caddy-okera-auth/internal/flight"
	"github.com/okeragate/caddy-okera-auth/internal/safeurl"
	"github.com/okeragate/caddy-okera-auth/internal/strictjson"

	"github.com/maypok86/otter/v2"
)

// DefaultRemoteTimeout is Okera's OKERA_EXTERNAL_JWT_AUTH_SERVER_TIMEOUT_MS
// default.
const DefaultRemoteTimeout = 5 * time.Second

// DefaultMaxInFlight bounds the remote calls under way at once.
const DefaultMaxInFlight = 64

// maxRemoteAnswer bounds the endpoint's answer, so a broken or hostile
// endpoint cannot make the gateway buffer without limit.
const maxRemoteAnswer = 1 << 20

// RemoteValidator configures Okera's external JWT authentication server
// (JWT_AUTHENTICATION_SERVER_URL). The chain asks it first:
//
//	POST <URL>, no body, Accept: application/json, Authorization: Bearer <token>
//
// The token is validated only by a 2xx answer whose JSON object has a
// usable sub (the Subject rules); that sub is the user. A 4xx, or a 2xx JSON
// value without a usable sub, is a rejection. A transport error, a timeout,
// a 3xx (redirects are not followed), a 5xx or any other status, an answer
// over 1 MiB, or a 2xx body that is not JSON at all (an HTML error page from
// a proxy, say) is "unavailable"; an empty 2xx body is a rejection. Both
// rejection and unavailability fall through to the key validator (Okera's
// rule), unless Authoritative makes a rejection final.
type RemoteValidator struct {
	// URL is the endpoint, http or https.
	URL string
	// Timeout bounds each call; 0 means DefaultRemoteTimeout.
	Timeout time.Duration
	// CacheTTL caches validated answers (never rejections or failures) for
	// this long, and never past the token's exp; 0 disables the cache.
	CacheTTL time.Duration
	// Authoritative makes the endpoint's word final, for endpoints that
	// revoke tokens the keys would still accept: a rejection is final and
	// unavailability is a 503; the keys never stand in for it.
	Authoritative bool
	// TrustTokenClaims lays the endpoint's answer over the token's
	// unverified payload in Identity.Claims (endpoint members win), so groups
	// can be read from the token. Off, Identity.Claims is the answer alone.
	TrustTokenClaims bool
	// Client makes the calls. Nil means a client with its own transport,
	// Timeout, and redirects not followed; Chain.Close closes its idle
	// connections. A caller-supplied client should not follow redirects
	// either.
	Client *http.Client
	// MaxInFlight bounds the calls under way at once; past it a request
	// counts as unavailable at once. 0 means DefaultMaxInFlight. A call
	// that no request waits for any more is cancelled, so abandoned
	// requests cannot pile up at the endpoint.
	MaxInFlight int
}

// remote is a RemoteValidator at work inside one chain.
type remote struct {
	cfg       RemoteValidator
	client    *http.Client
	transport *http.Transport // ours to close; nil with a caller's client
	flights   flight.Group[remoteResult]
	cache     *otter.Cache[[32]byte, *cached] // nil when CacheTTL is 0
	finish    func(*Identity)                 // the chain's KeepClaims and Derive
}

func newRemote(cfg RemoteValidator, cacheSize int) (*remote, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("remote endpoint URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("remote endpoint URL %q: want an absolute http:// or https:// URL", u.Redacted())
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("remote endpoint timeout %s is negative", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultRemoteTimeout
	}
	if cfg.CacheTTL < 0 {
		return nil, fmt.Errorf("remote endpoint cache_ttl %s is negative", cfg.CacheTTL)
	}
	if cfg.MaxInFlight < 0 {
		return nil, fmt.Errorf("remote endpoint max_in_flight %d is negative", cfg.MaxInFlight)
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	r := &remote{cfg: cfg, client: cfg.Client}
	r.flights.MaxInFlight = cfg.MaxInFlight
	if r.client == nil {
		r.transport = http.DefaultTransport.(*http.Transport).Clone()
		r.client = &http.Client{
			Transport: r.transport,
			Timeout:   cfg.Timeout,
			// A redirect is an answer we do not understand: following it
			// would send the token to another URL.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if cfg.CacheTTL > 0 {
		if r.cache, err = newCache(cacheSize); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *remote) close() {
	if r.cache != nil {
		r.cache.StopAllGoroutines()
	}
	if r.transport != nil {
		r.transport.CloseIdleConnections()
	}
}

// lookup returns a cached validated answer that is still alive at now.
func (r *remote) lookup(sum [32]byte, now time.Time, policy *ClaimPolicy) (*Identity, *Error, bool) {
	if r.cache == nil {
		return nil, nil, false
	}
	e, ok := r.cache.GetIfPresent(sum)
	if !ok {
		return nil, nil, false
	}
	if !now.Before(e.until) {
		r.cache.Invalidate(sum)
		return nil, nil, false
	}
	if err := policy.checkTimes(e.times, now); err != nil {
		return nil, err, true
	}
	return e.id, nil, true
}

type remoteResult struct {
	id  *Identity
	err *Error
}

// validate asks the endpoint, once for all concurrent callers with the same
// token (internal/flight): the call outlives any one impatient caller, is
// cancelled when none is left, and is bounded by Timeout. A caller whose
// own context ends gets ReasonCallerGone, whatever the call would have said.
func (r *remote) validate(ctx context.Context, sum [32]byte, token string, tok *Token, tc timeClaims, now time.Time) (*Identity, *Error) {
	rr, err := r.flights.Do(ctx, string(sum[:]), func(callCtx context.Context) (remoteResult, error) {
		callCtx, cancel := context.WithTimeout(callCtx, r.cfg.Timeout)
		defer cancel()
		return r.resolve(callCtx, sum, token, tok, tc, now), nil
	})
	switch {
	case ctx.Err() != nil:
		return nil, callerGone(ctx.Err())
	case errors.Is(err, flight.ErrLimit):
		return nil, unavailable(fmt.Errorf("remote endpoint: %d calls already in flight", r.cfg.MaxInFlight))
	case err != nil:
		return nil, unavailable(fmt.Errorf("remote endpoint: %w", err))
	}
	return rr.id, rr.err
}

func (r *remote) resolve(ctx context.Context, sum [32]byte, token string, tok *Token, tc timeClaims, now time.Time) remoteResult {
	answer, err := r.call(ctx, token)
	if err != nil {
		return remoteResult{err: err}
	}
	sub, serr := subject(answer)
	if serr != nil {
		return remoteResult{err: reject(ReasonRemoteRejected, fmt.Errorf("remote endpoint answered 2xx without a usable sub: %w", serr.Err))}
	}
	claims := answer
	if r.cfg.TrustTokenClaims {
		claims = make(map[string]any, len(tok.Payload)+len(answer))
		maps.Copy(claims, tok.Payload)
		maps.Copy(claims, answer)
	}
	id := &Identity{User: sub, Claims: claims, By: ByRemote, TokenID: fingerprint(sum)}
	if tc.hasExp {
		id.Expiry = tc.exp
	}
	if r.finish != nil {
		r.finish(id)
	}
	if r.cache != nil {
		until := now.Add(r.cfg.CacheTTL)
		if tc.hasExp && tc.exp.Before(until) {
			until = tc.exp
		}
		if ttl := until.Sub(now); ttl > 0 {
			r.cache.Set(sum, &cached{id: id, times: tc, until: until, ttl: ttl})
		}
	}
	return remoteResult{id: id}
}

// call makes the request and classifies the answer: a JSON object for a
// 2xx, otherwise a rejection or an unavailability.
func (r *remote) call(ctx context.Context, token string) (map[string]any, *Error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.URL, nil)
	if err != nil {
		return nil, unavailable(fmt.Errorf("remote endpoint: %w", err))
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := r.client.Do(req)
	if err != nil {
		// net/http quotes the URL in its errors; the operator's userinfo
		// must not reach the logs (README "Logs").
		return nil, unavailable(fmt.Errorf("remote endpoint: %s", safeurl.Error(err, r.cfg.URL)))
	}
	defer resp.Body.Close()
	switch code := resp.StatusCode; {
	case code >= 200 && code < 300:
	case code >= 400 && code < 500:
		// Drain a little so the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, reject(ReasonRemoteRejected, fmt.Errorf("remote endpoint answered %d", code))
	default:
		return nil, unavailable(fmt.Errorf("remote endpoint answered %d", code))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRemoteAnswer+1))
	if err != nil {
		return nil, unavailable(fmt.Errorf("remote endpoint: reading the answer: %w", err))
	}
	if len(body) > maxRemoteAnswer {
		return nil, unavailable(errors.New("remote endpoint: answer larger than 1 MiB"))
	}
	if len(bytes.TrimSpace(body)) == 0 {
		// A working endpoint that says yes without naming the user (a 204,
		// say): a 2xx without a usable sub.
		return nil, reject(ReasonRemoteRejected, fmt.Errorf("remote endpoint answered %d with an empty body", resp.StatusCode))
	}
	if !json.Valid(body) {
		return nil, unavailable(fmt.Errorf("remote endpoint answered %d with a body that is not JSON", resp.StatusCode))
	}
	answer, err := strictjson.DecodeObject(body)
	if err != nil {
		return nil, reject(ReasonRemoteRejected, fmt.Errorf("remote endpoint answered %d without a usable JSON object: %w", resp.StatusCode, err))
	}
	return answer, nil
}
