package caddymodule

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/okeragate/caddy-okera-auth/internal/safeurl"
	"github.com/okeragate/caddy-okera-auth/validator"
)

// jwksFetchTimeout bounds one fetch of a JWK Set.
const jwksFetchTimeout = 10 * time.Second

// JWKSURL is an identity provider's JWK Set. Its keys validate tokens,
// chosen by the token's kid: RSA keys of at least 2048 bits with alg RS256
// or RS512 (a key without alg is used with the token's alg when that is
// RS256 or RS512); keys with use "enc" and non-RSA keys are skipped. The set
// is fetched in the background and never delays start-up: until the first
// fetch succeeds (retried with back-off), tokens that no other validator
// accepts get 503. A token with an unknown kid refetches the set at most
// once a minute. No fetch follows a redirect (a 3xx is a failed fetch), and
// a plain http:// URL to a host that is not loopback is warned about at
// start-up: either would let someone between the gateway and the identity
// provider put in their own key (README "Validation").
type JWKSURL struct {
	// URL of the JWK Set (http or https). Credentials in it
	// (https://user:pass@idp/...) are sent as HTTP Basic authentication
	// and logged as https://idp/... .
	URL string `json:"url"`
	// Refresh is how often the set is fetched again. Default 15m, at least 1m.
	Refresh caddy.Duration `json:"refresh,omitempty"`
}

// addJWKSSources adds one key source per jwks_url to kv. The sources share
// one HTTP client whose idle connections Cleanup closes.
func (h *Handler) addJWKSSources(kv *validator.KeyValidator) error {
	if len(h.JWKS) == 0 {
		return nil
	}
	// No keep-alive: fetches are minutes apart, and a connection whose
	// dial completes after Cleanup cancelled its request would otherwise
	// sit in the idle pool, outliving the config.
	// No redirects either, like the remote and group endpoints' clients: a
	// redirect would fetch keys from wherever it points. (The JWKS source
	// enforces this on its own copy as well.)
	client := &http.Client{
		Timeout:       jwksFetchTimeout,
		Transport:     &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, j := range h.JWKS {
		src, err := validator.NewJWKSSource(validator.JWKSConfig{
			URL:     j.URL,
			Refresh: time.Duration(j.Refresh),
			Client:  client,
			Logger:  h.logger.Named("jwks"),
		})
		if err != nil {
			return errors.New("jwks_url: " + safeurl.Error(err, j.URL))
		}
		h.keyring.closers = append(h.keyring.closers, src.Close)
		kv.AddSource(src)
	}
	return nil
}

// validateJWKS is the part of Validate about jwks_url.
func (h *Handler) validateJWKS() error {
	for _, j := range h.JWKS {
		// Start-up errors are logged: the URL in them is redacted
		// (README "Logs").
		if err := checkHTTPURL(j.URL); err != nil {
			return jwksURLError(j.URL, err)
		}
		if j.Refresh != 0 && time.Duration(j.Refresh) < validator.MinJWKSRefresh {
			return fmt.Errorf("jwks_url %s: refresh %s is under the minimum of %s", safeurl.String(j.URL), time.Duration(j.Refresh), validator.MinJWKSRefresh)
		}
	}
	return nil
}

// parseJWKSURL reads `jwks_url <url> [<refresh duration>]`.
func (h *Handler) parseJWKSURL(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) < 1 || len(args) > 2 {
		return d.ArgErr()
	}
	j := JWKSURL{URL: args[0]}
	if err := checkHTTPURL(j.URL); err != nil {
		return d.Err(jwksURLError(j.URL, err).Error())
	}
	if len(args) == 2 {
		v, err := caddy.ParseDuration(args[1])
		if err != nil {
			return d.Errf("jwks_url: invalid refresh duration '%s': %v", args[1], err)
		}
		if v < validator.MinJWKSRefresh {
			return d.Errf("jwks_url: refresh %s is under the minimum of %s; an identity provider should not be polled more often", v, validator.MinJWKSRefresh)
		}
		j.Refresh = caddy.Duration(v)
	}
	h.JWKS = append(h.JWKS, j)
	return nil
}

// jwksURLError is checkHTTPURL's complaint about a jwks_url with the URL
// rid of its userinfo: configuration errors are logged (README "Logs").
// A URL that does not parse is named by safeurl's cut, with the parser's
// reason alone, since url.Error quotes (and escapes) the whole URL.
func jwksURLError(raw string, err error) error {
	if _, perr := url.Parse(raw); perr != nil {
		var uerr *url.Error
		if errors.As(perr, &uerr) {
			perr = uerr.Err
		}
		return fmt.Errorf("jwks_url: invalid URL %q: %s", safeurl.String(raw), safeurl.Error(perr, raw))
	}
	return errors.New("jwks_url: " + safeurl.Error(err, raw))
}
