package resolver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/okeragate/caddy-okera-auth/internal/safeurl"
	"github.com/okeragate/caddy-okera-auth/internal/strictjson"
)

// maxEndpointBody is the most of an answer the endpoint resolver reads: a
// group list is small, and a broken or hostile endpoint must not make the
// gateway buffer an unbounded body.
const maxEndpointBody = 1 << 20

// EndpointConfig configures an EndpointResolver. A zero Timeout or
// CacheSize takes the default; a zero CacheTTL means no caching (start from
// DefaultEndpointConfig for the README's 5 minutes).
type EndpointConfig struct {
	// BaseURL is the http(s) URL the escaped user is appended to as one
	// more path segment.
	BaseURL string
	// Timeout bounds each call, reading the answer included.
	Timeout time.Duration
	// CacheTTL is how long an answer for a user is kept; zero keeps none.
	CacheTTL time.Duration
	// Token returns the system token sent as the bearer credential. It is
	// called for every request, so a renewed token is used at once; nil, or
	// an empty token, sends no Authorization header.
	Token func() string
	// Client makes the calls; nil uses a client of the resolver's own. The
	// resolver works on a copy that never follows redirects.
	Client *http.Client
	// CacheSize is the most users whose answers are kept.
	CacheSize int
	// CacheObserver, when not nil, is told whether each lookup was answered
	// from the cache (for metrics). It must be cheap and concurrency-safe.
	CacheObserver func(hit bool)
}

// DefaultEndpointConfig is an EndpointConfig with the README's defaults,
// CacheTTL included; the caller adds BaseURL and Token.
func DefaultEndpointConfig() EndpointConfig {
	return EndpointConfig{Timeout: DefaultTimeout, CacheTTL: DefaultCacheTTL, CacheSize: DefaultCacheSize}
}

// EndpointResolver asks an HTTP service for a user's groups, as Okera's
// OKERA_GROUP_RESOLVER_URL does: GET <base>/<user> answering ["a","b"] or
// {"groups":["a","b"]}; 404 means the service does not know the user.
type EndpointResolver struct {
	base      string // BaseURL without trailing slashes
	timeout   time.Duration
	token     func() string
	client    *http.Client
	ownClient bool
	answers   *answerCache[[]string]
	closed    atomic.Bool
}

// errEndpointClosed is what a closed EndpointResolver answers.
var errEndpointClosed = errors.New("endpoint resolver is closed")

// NewEndpointResolver checks cfg and builds the resolver; it does not call
// the endpoint.
func NewEndpointResolver(cfg EndpointConfig) (*EndpointResolver, error) {
	// Errors name the URL without its userinfo, as every log line does
	// (README "Logs"): these are logged at start-up.
	safe := safeurl.String(cfg.BaseURL)
	u, err := url.Parse(cfg.BaseURL)
	if err != nil {
		// url.Error quotes the URL whole; keep only what is wrong with it.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return nil, fmt.Errorf("groups endpoint %q: %s", safe, safeurl.Error(err, cfg.BaseURL))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("groups endpoint %q: scheme must be http or https", safe)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("groups endpoint %q has no host", safe)
	}
	if u.User != nil {
		return nil, fmt.Errorf("groups endpoint %q: credentials in the URL are not supported; the system token is sent", safe)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return nil, fmt.Errorf("groups endpoint %q: the user is appended to the path, so the URL cannot have a query or fragment", safe)
	}
	switch {
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("groups endpoint: timeout %s is negative", cfg.Timeout)
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	}
	if cfg.CacheTTL < 0 {
		return nil, fmt.Errorf("groups endpoint: cache_ttl %s is negative", cfg.CacheTTL)
	}
	switch {
	case cfg.CacheSize < 0:
		return nil, fmt.Errorf("groups endpoint: cache size %d is negative", cfg.CacheSize)
	case cfg.CacheSize == 0:
		cfg.CacheSize = DefaultCacheSize
	}

	r := &EndpointResolver{
		base:    strings.TrimRight(u.String(), "/"),
		timeout: cfg.Timeout,
		token:   cfg.Token,
		answers: newAnswerCache[[]string](cfg.CacheTTL, cfg.CacheSize, cfg.CacheObserver),
	}
	if cfg.Client != nil {
		c := *cfg.Client
		r.client = &c
	} else {
		r.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		r.ownClient = true
	}
	// A redirect would carry the system token to wherever the endpoint
	// points; a 3xx is an error instead.
	r.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return r, nil
}

// Name implements Resolver.
func (r *EndpointResolver) Name() string { return SourceEndpoint }

// Resolve implements Resolver. 404 is no answer; any other non-2xx status,
// a redirect, a timeout, a body over 1 MiB or of another shape is an error.
// Answers are cached per user for CacheTTL; concurrent lookups of one user
// share one call.
func (r *EndpointResolver) Resolve(ctx context.Context, req Request) ([]string, error) {
	if r.closed.Load() {
		return nil, errEndpointClosed
	}
	if req.User == "" {
		return nil, nil
	}
	groups, err := r.answers.get(ctx, req.User, func(ctx context.Context) ([]string, error) {
		return r.fetch(ctx, req.User)
	})
	if err != nil {
		return nil, err
	}
	return slices.Clone(groups), nil
}

// userURL appends the user as one escaped path segment, so a user holding
// "/", "?" or "#" cannot reach another path of the endpoint.
func (r *EndpointResolver) userURL(user string) (string, error) {
	if user == "." || user == ".." {
		// Escaping leaves dots alone, and servers resolve dot segments:
		// ".." would ask for the groups of the endpoint's parent path.
		return "", fmt.Errorf("user %q cannot be a path segment", user)
	}
	return r.base + "/" + url.PathEscape(user), nil
}

func (r *EndpointResolver) fetch(ctx context.Context, user string) ([]string, error) {
	target, err := r.userURL(user)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return nil, fmt.Errorf("building the request for user %q: %w", user, err)
	}
	req.Header.Set("Accept", "application/json")
	if r.token != nil {
		if tok := r.token(); tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	resp, err := r.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("GET %s: timed out after %s: %w", target, r.timeout, context.DeadlineExceeded)
		}
		return nil, fmt.Errorf("GET %s: %w", target, err)
	}
	defer resp.Body.Close()

	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, nil
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return nil, fmt.Errorf("GET %s: answered %s (redirect to %q); redirects are not followed", target, resp.Status, resp.Header.Get("Location"))
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return nil, fmt.Errorf("GET %s: answered %s", target, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxEndpointBody+1))
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("GET %s: reading the answer timed out after %s: %w", target, r.timeout, context.DeadlineExceeded)
		}
		return nil, fmt.Errorf("GET %s: reading the answer: %w", target, err)
	}
	if len(body) > maxEndpointBody {
		return nil, fmt.Errorf("GET %s: answer is over %d bytes", target, maxEndpointBody)
	}
	groups, err := parseEndpointGroups(body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", target, err)
	}
	return groups, nil
}

// parseEndpointGroups accepts exactly the two shapes Okera's group
// endpoints use; anything else is an error rather than a guess, since a
// misread answer would grant or withhold access.
func parseEndpointGroups(body []byte) ([]string, error) {
	// Strict JSON, as for every answer the gateway acts on: two "groups"
	// members could otherwise be read differently by another reader.
	v, err := strictjson.Decode(body)
	if err != nil {
		return nil, fmt.Errorf("answer is not JSON (strictly read): %w", err)
	}
	list := v
	if obj, ok := v.(map[string]any); ok {
		g, present := obj["groups"]
		if !present {
			return nil, errors.New(`answer is an object without "groups"`)
		}
		list = g
	}
	items, ok := list.([]any)
	if !ok {
		return nil, fmt.Errorf(`answer is %s, not a list of groups or {"groups": [...]}`, strictjson.Kind(list))
	}
	groups := make([]string, 0, len(items))
	for i, item := range items {
		s, ok := item.(string)
		if !ok {
			return nil, fmt.Errorf("group %d is %s, not a string", i, strictjson.Kind(item))
		}
		groups = append(groups, s)
	}
	return groups, nil
}

// Close drops the cache and stops its goroutine, and closes the idle
// connections of the resolver's own HTTP client. Resolve fails after Close.
func (r *EndpointResolver) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	r.answers.close()
	if r.ownClient {
		r.client.CloseIdleConnections()
	}
	return nil
}

var _ Resolver = (*EndpointResolver)(nil)
