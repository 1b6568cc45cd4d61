package validator

import (
	"bytes"
	"context"
	"crypto/rsa"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/okeragate/caddy-okera-auth/internal/safeurl"
	"github.com/okeragate/caddy-okera-auth/internal/strictjson"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"go.uber.org/zap"
)

// JWKS defaults and bounds.
const (
	// DefaultJWKSRefresh is how often a JWK Set is fetched again.
	DefaultJWKSRefresh = 15 * time.Minute
	// MinJWKSRefresh is the shortest refresh interval accepted: an identity
	// provider should not be polled more often than this.
	MinJWKSRefresh = time.Minute
	// JWKSKidCooldown is the least time between two fetches caused by tokens
	// whose kid is not in the set, so that no caller, by sending made-up
	// kids, can make the gateway hammer the identity provider.
	JWKSKidCooldown = time.Minute
	// maxJWKSBytes bounds a JWK Set document.
	maxJWKSBytes = 1 << 20
	// jwksRetryMin and jwksRetryMax bound the back-off between start-up
	// attempts while the set has never been fetched.
	jwksRetryMin = time.Second
	jwksRetryMax = 30 * time.Second
	// defaultJWKSTimeout bounds one fetch when no client is given.
	defaultJWKSTimeout = 10 * time.Second
)

// JWKSConfig configures NewJWKSSource.
type JWKSConfig struct {
	// URL is the identity provider's JWK Set (http or https). Userinfo in
	// it (https://user:pass@idp/...) is sent as Basic credentials and never
	// logged.
	URL string
	// Refresh is how often the set is fetched again; 0 means
	// DefaultJWKSRefresh. Values under MinJWKSRefresh are refused.
	Refresh time.Duration
	// Client makes the requests; nil means a client with a 10 s timeout
	// and no keep-alive. Its Timeout should be set: a fetch that never ends
	// holds a worker. Close closes its idle connections; a transport
	// without keep-alive has none that could outlive the source. The
	// source works on a copy that never follows redirects, whatever the
	// client's own CheckRedirect says.
	Client *http.Client
	// Logger receives fetch failures and key-set changes; nil means none.
	Logger *zap.Logger

	// Test hooks: the clock of the unknown-kid cool-down, the least retry
	// delay at start-up, and permission for a Refresh under the minimum.
	now          func() time.Time
	retryMin     time.Duration
	shortRefresh bool
}

// JWKSSource is a KeySource backed by an identity provider's JWK Set. Keys
// are chosen by the token's kid; a token without kid gets no JWKS key (jwx's
// own rule for key sets). From the set it keeps the RSA keys that are at
// least 2048 bits, not marked "use": "enc" (nor restricted by key_ops to
// operations other than verify), and whose alg is RS256 or RS512; a key
// without alg is used with the token's alg when that is RS256 or RS512.
// Every other key is skipped, never fatal.
//
// The set is fetched in the background: NewJWKSSource never waits on the
// network. Until the first fetch succeeds the source is unavailable
// (AvailabilityReporter) and start-up fetches are retried with back-off;
// afterwards a failed refresh keeps the last good set. Periodic refreshes go
// through jwx's jwk.Cache. A token whose kid is unknown causes one immediate
// fetch, at most once per JWKSKidCooldown (counted from any fetch).
//
// No fetch follows a redirect: a 3xx is a failed fetch, so neither an open
// redirect at the identity provider nor a plain-http hop answering with one
// can bring in a key. The URL's userinfo is kept apart from the URL that
// jwk.Cache, net/http and the logs see, so no error message can quote it.
type JWKSSource struct {
	url      string // the configured URL without its userinfo
	refresh  time.Duration
	client   *http.Client
	fetcher  *jwksFetcher
	log      *zap.Logger
	now      func() time.Time
	retryMin time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	cache  *jwk.Cache
	wg     sync.WaitGroup

	state      atomic.Pointer[jwksState] // nil until the first fetch succeeds
	installMu  sync.Mutex                // serialises install
	startupErr atomic.Pointer[error]     // the last start-up failure

	kidMu       sync.Mutex
	kidInflight chan struct{} // closed when the running unknown-kid fetch ends
}

// jwksState is one installed key set. Never modified after install.
type jwksState struct {
	byKid   map[string][]*Key
	members map[*Key]struct{}
	all     []*Key
}

// NewJWKSSource checks cfg and starts fetching the set in the background.
// Close stops it.
func NewJWKSSource(cfg JWKSConfig) (*JWKSSource, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("JWKS URL %q must be an absolute http:// or https:// URL", safeurl.String(cfg.URL))
	}
	creds := u.User
	u.User = nil
	refresh := cfg.Refresh
	if refresh == 0 {
		refresh = DefaultJWKSRefresh
	}
	if refresh < MinJWKSRefresh && !(cfg.shortRefresh && refresh > 0) {
		return nil, fmt.Errorf("JWKS refresh interval %s is under the minimum of %s", refresh, MinJWKSRefresh)
	}
	s := &JWKSSource{
		url:      u.String(),
		refresh:  refresh,
		log:      cfg.Logger,
		now:      cfg.now,
		retryMin: cfg.retryMin,
	}
	if cfg.Client != nil {
		c := *cfg.Client
		s.client = &c
	} else {
		// Without keep-alive no connection outlives Close.
		s.client = &http.Client{
			Timeout:   defaultJWKSTimeout,
			Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true},
		}
	}
	// A redirect is answered as it is, and the fetcher refuses it: the
	// keys come from the URL the operator configured, or not at all.
	s.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		s.log.Warn("jwks_url is plain http:// to a host that is not loopback: any hop on the way can substitute its own keys, and so forge a token for any user; use https://",
			zap.String("url", s.url))
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.retryMin <= 0 {
		s.retryMin = jwksRetryMin
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.fetcher = &jwksFetcher{ctx: s.ctx, client: s.client, now: s.now, creds: creds}

	// jwk.Cache schedules the periodic refreshes. Its refresh window is the
	// tick at which due refreshes start, so it bounds how late one can be.
	window := min(max(refresh/4, time.Second), time.Minute)
	s.cache = jwk.NewCache(s.ctx,
		jwk.WithRefreshWindow(window),
		jwk.WithErrSink(httprcErrSink(func(err error) {
			if s.ctx.Err() == nil {
				s.log.Warn("JWKS refresh failed; the previous keys stay in force", zap.String("url", s.url), zap.Error(err))
			}
		})))
	err = s.cache.Register(s.url,
		jwk.WithHTTPClient(s.fetcher),
		jwk.WithRefreshInterval(refresh),
		jwk.WithIgnoreParseError(true),
		jwk.WithPostFetcher(jwk.PostFetchFunc(func(_ string, set jwk.Set) (jwk.Set, error) {
			s.install(set)
			return set, nil
		})))
	if err != nil {
		s.cancel()
		return nil, fmt.Errorf("JWKS %s: %w", s.url, err)
	}
	s.wg.Add(1)
	go s.start()
	return s, nil
}

// start makes the first fetch, which also starts jwk.Cache's periodic
// refreshes, then retries with back-off until a fetch succeeds. Retries use
// a direct fetch: every jwk.Cache.Refresh call schedules a further periodic
// refresh of its own (httprc v1), so calling it repeatedly would multiply
// the load on the identity provider.
func (s *JWKSSource) start() {
	defer s.wg.Done()
	_, err := s.cache.Refresh(s.ctx, s.url)
	delay := s.retryMin
	for err != nil && s.state.Load() == nil {
		if s.ctx.Err() != nil {
			return
		}
		last := err
		s.startupErr.Store(&last)
		s.log.Warn("cannot fetch the JWKS; tokens that only its keys could verify get 503 until it can be fetched. Retrying",
			zap.String("url", s.url), zap.Duration("retry_in", delay), zap.Error(err))
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = min(delay*2, jwksRetryMax)
		err = s.fetchNow()
	}
}

// fetchNow fetches and installs the set outside jwk.Cache's schedule.
func (s *JWKSSource) fetchNow() error {
	res, err := s.fetcher.Get(s.url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	set, err := jwk.Parse(data, jwk.WithIgnoreParseError(true))
	if err != nil {
		return fmt.Errorf("parsing the JWK Set at %s: %w", s.url, err)
	}
	s.install(set)
	return nil
}

// install converts a fetched set into verification keys and makes it
// current. A key kept from the previous set keeps its pointer, so the
// verifications it made stay cached; a removed key revokes them (Current).
func (s *JWKSSource) install(set jwk.Set) {
	s.installMu.Lock()
	defer s.installMu.Unlock()
	prev := s.state.Load()
	next := &jwksState{byKid: map[string][]*Key{}, members: map[*Key]struct{}{}}
	var skipped []string
	for i := 0; i < set.Len(); i++ {
		jk, _ := set.Key(i)
		keys, why := keysFromJWK(jk)
		if why != "" {
			skipped = append(skipped, fmt.Sprintf("%s (%s)", strictjson.Excerpt(jk.KeyID()), why))
			continue
		}
		for _, key := range keys {
			if prev != nil {
				if j := slices.IndexFunc(prev.all, key.same); j >= 0 {
					key = prev.all[j]
				}
			}
			if slices.ContainsFunc(next.all, key.same) {
				continue
			}
			next.all = append(next.all, key)
			next.byKid[key.ID] = append(next.byKid[key.ID], key)
			next.members[key] = struct{}{}
		}
	}
	s.state.Store(next)
	if prev == nil || !sameKeys(prev.all, next.all) {
		kids := make([]string, 0, len(next.byKid))
		for kid := range next.byKid {
			kids = append(kids, kid)
		}
		slices.Sort(kids)
		if len(kids) == 0 {
			s.log.Warn("the JWKS holds no usable key (RSA, at least 2048 bits, use sig, alg RS256 or RS512)",
				zap.String("url", s.url), zap.Strings("skipped", skipped))
		} else {
			s.log.Info("JWKS keys loaded", zap.String("url", s.url), zap.Strings("kids", kids), zap.Strings("skipped", skipped))
		}
	}
}

func sameKeys(a, b []*Key) bool {
	return slices.EqualFunc(a, b, func(x, y *Key) bool { return x == y })
}

// keysFromJWK returns the verification keys a JWK yields (two for a key
// without alg: one per accepted algorithm), or why it is skipped.
func keysFromJWK(jk jwk.Key) ([]*Key, string) {
	kid := jk.KeyID()
	switch {
	case kid == "":
		return nil, "no kid: keys are chosen by kid"
	case jk.KeyType() != jwa.RSA:
		return nil, "not an RSA key"
	case jk.KeyUsage() != "" && jk.KeyUsage() != string(jwk.ForSignature):
		return nil, "use is " + strictjson.Excerpt(jk.KeyUsage())
	}
	if ops := jk.KeyOps(); len(ops) > 0 && !slices.Contains(ops, jwk.KeyOpVerify) {
		return nil, "key_ops without verify"
	}
	raw, err := jwk.PublicRawKeyOf(jk)
	if err != nil {
		return nil, "unreadable RSA key"
	}
	pub, ok := raw.(*rsa.PublicKey)
	if !ok || pub.N == nil {
		return nil, "unreadable RSA key"
	}
	if n := pub.N.BitLen(); n < minKeyBits {
		return nil, fmt.Sprintf("%d bits, under %d", n, minKeyBits)
	}
	var algs []string
	switch alg := jk.Algorithm().String(); alg {
	case "":
		algs = []string{RS256, RS512}
	case RS256, RS512:
		algs = []string{alg}
	default:
		return nil, "alg " + strictjson.Excerpt(alg) + " (RS256 and RS512 only)"
	}
	keys := make([]*Key, len(algs))
	for i, alg := range algs {
		keys[i] = &Key{ID: kid, Algorithm: alg, Public: pub, Source: ByJWKS}
	}
	return keys, ""
}

// Candidates implements KeySource: the keys with the token's kid. An unknown
// kid causes one fetch when the cool-down allows it (the identity provider
// may have rotated its keys), shared by the callers that arrive meanwhile.
func (s *JWKSSource) Candidates(ctx context.Context, _, kid string) []*Key {
	if kid == "" {
		return nil
	}
	st := s.state.Load()
	if st == nil {
		return nil // never fetched: the start-up loop is retrying
	}
	if keys, ok := st.byKid[kid]; ok {
		return keys
	}
	if !s.refreshForKid(ctx) {
		return nil
	}
	return s.state.Load().byKid[kid]
}

// refreshForKid fetches the set now unless the cool-down forbids it, or
// waits for the fetch already running. It reports whether a fetch ended.
func (s *JWKSSource) refreshForKid(ctx context.Context) bool {
	s.kidMu.Lock()
	done := s.kidInflight
	if done == nil {
		last := s.fetcher.last.Load()
		if last != 0 && s.now().Sub(time.Unix(0, last)) < JWKSKidCooldown {
			s.kidMu.Unlock()
			return false
		}
		if s.ctx.Err() != nil {
			s.kidMu.Unlock()
			return false
		}
		// Stamp now, so the cool-down holds even if the fetch cannot
		// start (the fetcher stamps its own attempt too).
		s.fetcher.last.Store(s.now().UnixNano())
		done = make(chan struct{})
		s.kidInflight = done
		s.wg.Add(1)
		// The fetch belongs to the source, not to the request: a caller
		// giving up does not cancel it for the others.
		go func() {
			defer s.wg.Done()
			if err := s.fetchNow(); err != nil && s.ctx.Err() == nil {
				s.log.Warn("JWKS fetch for an unknown kid failed; the previous keys stay in force", zap.String("url", s.url), zap.Error(err))
			}
			s.kidMu.Lock()
			s.kidInflight = nil
			close(done)
			s.kidMu.Unlock()
		}()
	}
	s.kidMu.Unlock()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	}
}

// Current implements KeySource.
func (s *JWKSSource) Current(k *Key) bool {
	st := s.state.Load()
	if st == nil {
		return false
	}
	_, ok := st.members[k]
	return ok
}

// Unavailable implements AvailabilityReporter: the source is unavailable
// until its set has been fetched once.
func (s *JWKSSource) Unavailable() error {
	if s.state.Load() != nil {
		return nil
	}
	if errp := s.startupErr.Load(); errp != nil {
		return fmt.Errorf("JWKS %s not fetched yet: %w", s.url, *errp)
	}
	return fmt.Errorf("JWKS %s not fetched yet", s.url)
}

// Keys returns the keys of the current set (nil before the first fetch).
func (s *JWKSSource) Keys() []Key {
	st := s.state.Load()
	if st == nil {
		return nil
	}
	out := make([]Key, len(st.all))
	for i, k := range st.all {
		out[i] = *k
	}
	return out
}

// Close stops the background fetches, waits for the source's own
// goroutines, and closes the client's idle connections. jwk.Cache's workers
// stop on their own once their context is cancelled.
func (s *JWKSSource) Close() {
	s.cancel()
	s.wg.Wait()
	s.client.CloseIdleConnections()
}

// jwksFetcher is the HTTP client jwk.Cache uses (it knows only Get), and
// the one every other fetch of the source goes through, so that no fetch
// can take another path: without it httprc would use http.DefaultClient,
// which follows redirects. It ties every request to the source's life, so
// Close interrupts a fetch; refuses every answer but 200, a redirect
// included; reads the body whole, bounded, and closes it (jwk.Cache would
// leave the body of a non-200 answer open); adds the URL's credentials,
// which nothing else holds; and stamps each attempt for the cool-down.
type jwksFetcher struct {
	ctx    context.Context
	client *http.Client // never follows a redirect
	now    func() time.Time
	creds  *url.Userinfo // from the configured URL; nil when it had none
	last   atomic.Int64  // UnixNano of the latest attempt
}

func (f *jwksFetcher) Get(u string) (*http.Response, error) {
	f.last.Store(f.now().UnixNano())
	req, err := http.NewRequestWithContext(f.ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	if f.creds != nil {
		pw, _ := f.creds.Password()
		req.SetBasicAuth(f.creds.Username(), pw)
	}
	res, err := f.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 && res.StatusCode < 400 {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
		return nil, fmt.Errorf("GET %s answered %s (redirect to %q); redirects are not followed", u, res.Status, safeurl.String(res.Header.Get("Location")))
	}
	if res.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
		return nil, fmt.Errorf("GET %s answered %s", u, res.Status)
	}
	data, err := io.ReadAll(io.LimitReader(res.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", u, err)
	}
	if len(data) > maxJWKSBytes {
		return nil, fmt.Errorf("the JWK Set at %s is larger than %d bytes", u, maxJWKSBytes)
	}
	out := *res
	out.Body = io.NopCloser(bytes.NewReader(data))
	out.ContentLength = int64(len(data))
	return &out, nil
}

// isLoopbackHost reports whether host (without port or brackets) names
// this machine: localhost, 127.0.0.0/8 or ::1. A plain-http fetch from such
// a host crosses no network an attacker could sit on.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// httprcErrSink adapts a function to jwk.ErrSink.
type httprcErrSink func(error)

func (f httprcErrSink) Error(err error) { f(err) }

var (
	_ KeySource            = (*JWKSSource)(nil)
	_ AvailabilityReporter = (*JWKSSource)(nil)
	_ jwk.HTTPClient       = (*jwksFetcher)(nil)
)
