package caddymodule

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/okeragate/caddy-okera-auth/internal/safeurl"
	"github.com/okeragate/caddy-okera-auth/resolver"
	"github.com/okeragate/caddy-okera-auth/validator"
)

// defaultRemoteTimeout is Okera's OKERA_EXTERNAL_JWT_AUTH_SERVER_TIMEOUT_MS default.
const defaultRemoteTimeout = 5 * time.Second

// Provision turns the configuration into a validator chain and a resolver
// chain. It reads local files only; it never waits on the network.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	h.applyDefaults()
	// Caddy runs Validate only after Provision succeeded, so every rule is
	// checked here, before anything is built from the configuration: a
	// wrong configuration is an error naming its directive, never a panic.
	if err := h.checkConfig(); err != nil {
		return err
	}
	m, err := registerMetrics(ctx.GetMetricsRegistry())
	if err != nil {
		return fmt.Errorf("registering metrics: %w", err)
	}
	h.metrics = m

	h.ids = newIdentityNames(h.UserHeader, h.GroupsHeader)
	h.userKey = http.CanonicalHeaderKey(h.UserHeader)
	h.groupsKey = http.CanonicalHeaderKey(h.GroupsHeader)
	h.challenge = newChallenges(h.Realm)

	if h.SystemToken != "" {
		st, err := loadSystemToken(h.SystemToken, time.Now(), h.logger)
		if err != nil {
			return fmt.Errorf("system_token: %w", err)
		}
		h.system = st
		m.systemTokenExpires(st.expires())
	}
	if err := h.provisionOwnKeys(); err != nil {
		return err
	}

	chain, err := h.buildValidator()
	if err != nil {
		return err
	}
	h.validate = chain
	h.closers = append(h.closers, chain.Close)

	groups, err := h.buildResolvers(ctx)
	if err != nil {
		return err
	}
	h.groups = groups
	names := h.resolverNames()
	h.claimFirst = names[0] == resolver.SourceClaim
	h.claimOnly = h.claimFirst && len(names) == 1
	if h.claimFirst {
		h.claim = groups.Resolvers[0].(*resolver.ClaimResolver)
		after := *groups
		after.Resolvers = groups.Resolvers[1:]
		h.afterClaim = &after
	}

	h.admins = newAdminSet(h.Admins)
	h.required = strings.ToLower(strings.TrimSpace(h.RequiredGroup))

	if re := h.RemoteEndpoint; re != nil && re.Authoritative && (len(h.PublicKeys) > 0 || len(h.JWKS) > 0) {
		// An authoritative endpoint's rejection and unavailability are both
		// final, so no key is ever asked: say so, rather than let an
		// operator believe the keys are a fallback.
		h.logger.Warn("remote_endpoint is authoritative: public_key and jwks_url are never consulted (a rejection is 401, unavailability 503)")
	}
	h.logger.Info("okera_auth provisioned",
		zap.Strings("validators", h.validatorNames()),
		zap.Strings("group_resolvers", h.resolverNames()),
		zap.String("upstream_token", h.UpstreamToken))
	return nil
}

func (h *Handler) applyDefaults() {
	if h.MaxTokenSize == 0 {
		h.MaxTokenSize = DefaultMaxTokenSize
	}
	if h.VerifyCacheSize == 0 {
		h.VerifyCacheSize = DefaultCacheSize
	}
	if h.GroupsClaim == "" {
		h.GroupsClaim = DefaultGroupsClaim
	}
	if h.UserHeader == "" {
		h.UserHeader = DefaultUserHeader
	}
	if h.GroupsHeader == "" {
		h.GroupsHeader = DefaultGroupsHeader
	}
	if h.Realm == "" {
		h.Realm = DefaultRealm
	}
	if h.UpstreamToken == "" {
		h.UpstreamToken = UpstreamSystem
	}
	if h.OnResolverError == "" {
		h.OnResolverError = "deny"
	}
	if h.RemoteEndpoint != nil && h.RemoteEndpoint.Timeout == 0 {
		h.RemoteEndpoint.Timeout = caddy.Duration(defaultRemoteTimeout)
	}
	if h.MintedAudience == "" {
		h.MintedAudience = DefaultMintedAudience
	}
}

// buildValidator loads the public keys and assembles the validation chain:
// remote endpoint first, then the keys (Okera's order).
func (h *Handler) buildValidator() (*validator.Chain, error) {
	cfg := validator.ChainConfig{
		Claims: validator.ClaimPolicy{
			Leeway:     time.Duration(h.Leeway),
			RequireExp: h.RequireExp,
			Issuers:    h.Issuers,
			Audiences:  h.Audiences,
			// Whoever signed it, a token marked as minted for an upstream
			// is the gateway's own credential, never a caller's.
			RefusedAudiences: []string{h.MintedAudience},
		},
		CacheSize: h.VerifyCacheSize,
		Logger:    h.logger,
		Observer:  h.metrics,
		// The groups claim is all the handler reads of a validated token,
		// and derive reads it once when it comes first.
		KeepClaims: []string{h.GroupsClaim},
		Derive:     h.derive,
	}
	if re := h.RemoteEndpoint; re != nil {
		cfg.Remote = &validator.RemoteValidator{
			URL:              re.URL,
			Timeout:          time.Duration(re.Timeout),
			CacheTTL:         time.Duration(re.CacheTTL),
			Authoritative:    re.Authoritative,
			TrustTokenClaims: re.TrustTokenClaims,
			MaxInFlight:      re.MaxInFlight,
		}
	}
	keys, err := h.keyValidator()
	if err != nil {
		return nil, err
	}
	cfg.Keys = keys
	chain, err := validator.NewChain(cfg)
	if err != nil {
		return nil, fmt.Errorf("building the validation chain: %w", err)
	}
	return chain, nil
}

// buildResolvers assembles the group resolvers in group_resolvers order.
func (h *Handler) buildResolvers(_ caddy.Context) (*resolver.Chain, error) {
	chain := &resolver.Chain{
		ContinueOnError: h.OnResolverError == "continue",
		OnError: func(source string, err error) {
			h.logger.Warn("group resolver failed; trying the next one", zap.String("source", source), zap.Error(err))
		},
		Observe: h.metrics.groupResolution,
	}
	for _, name := range h.resolverNames() {
		switch name {
		case resolver.SourceClaim:
			chain.Resolvers = append(chain.Resolvers, &resolver.ClaimResolver{Claim: h.GroupsClaim})
		case resolver.SourceLDAP:
			r, err := h.newLDAPResolver()
			if err != nil {
				return nil, err
			}
			chain.Resolvers = append(chain.Resolvers, r)
		case resolver.SourceEndpoint:
			r, err := h.newEndpointResolver()
			if err != nil {
				return nil, err
			}
			chain.Resolvers = append(chain.Resolvers, r)
		default:
			return nil, fmt.Errorf("group_resolvers: unknown resolver %q (use claim, ldap, endpoint)", name)
		}
	}
	return chain, nil
}

// resolverNames is the effective group_resolvers order.
func (h *Handler) resolverNames() []string {
	if len(h.GroupResolvers) > 0 {
		return h.GroupResolvers
	}
	names := []string{resolver.SourceClaim}
	if h.LDAP != nil {
		names = append(names, resolver.SourceLDAP)
	}
	if h.GroupsEndpoint != nil {
		names = append(names, resolver.SourceEndpoint)
	}
	return names
}

func (h *Handler) validatorNames() []string {
	var names []string
	if h.RemoteEndpoint != nil {
		names = append(names, "remote "+safeurl.String(h.RemoteEndpoint.URL))
	}
	for _, pk := range h.PublicKeys {
		names = append(names, "public_key "+pk.Path)
	}
	names = append(names, h.ownValidatorNames()...)
	return names
}

// checkConfig holds every configuration rule of okera_auth, checked once at
// the top of Provision on the configuration with its defaults applied. It
// reads no file and touches no network.
func (h *Handler) checkConfig() error {
	if h.RemoteEndpoint == nil && len(h.PublicKeys) == 0 && len(h.JWKS) == 0 && h.SigningKey == nil {
		return fmt.Errorf("okera_auth needs a remote_endpoint or at least one public_key (or a jwks_url, or a signing_key) to validate tokens")
	}
	if err := h.validateOwnKeys(); err != nil {
		return err
	}
	if err := h.validateJWKS(); err != nil {
		return err
	}
	if re := h.RemoteEndpoint; re != nil {
		if err := checkHTTPURL(re.URL); err != nil {
			return fmt.Errorf("remote_endpoint: %w", err)
		}
		if re.MaxInFlight < 0 {
			return fmt.Errorf("remote_endpoint: max_in_flight %d must not be negative", re.MaxInFlight)
		}
	}
	switch h.UpstreamToken {
	case UpstreamSystem:
		if h.SystemToken == "" && h.SigningKey == nil {
			return fmt.Errorf("upstream_token system needs system_token <path>, or a signing_key to mint one with: the gateway calls the upstream with its own token (use upstream_token original or none otherwise)")
		}
	case UpstreamMinted, UpstreamOriginal, UpstreamNone:
	default:
		return fmt.Errorf("upstream_token %q: must be system, minted, original or none", h.UpstreamToken)
	}
	for _, name := range h.GroupResolvers {
		switch name {
		case resolver.SourceClaim:
		case resolver.SourceLDAP:
			if h.LDAP == nil {
				return fmt.Errorf("group_resolvers lists ldap, but there is no ldap block: add ldap { url …; bind_dn …; bind_password …; base_dn … } or remove ldap from group_resolvers")
			}
		case resolver.SourceEndpoint:
			if h.GroupsEndpoint == nil {
				return fmt.Errorf("group_resolvers lists endpoint, but there is no groups_endpoint: add groups_endpoint <url> or remove endpoint from group_resolvers")
			}
		default:
			return fmt.Errorf("group_resolvers: unknown resolver %q (use claim, ldap, endpoint)", name)
		}
	}
	switch h.OnResolverError {
	case "deny", "continue":
	default:
		return fmt.Errorf("on_resolver_error %q: must be deny or continue", h.OnResolverError)
	}
	if h.MaxTokenSize < 0 {
		return fmt.Errorf("max_token_size must be positive")
	}
	if slices.Contains(h.Audiences, h.MintedAudience) {
		return fmt.Errorf("audience lists %q, the minted_audience of the gateway's own upstream tokens, which are refused from callers: choose another minted_audience or remove it from audience", h.MintedAudience)
	}
	return checkHeaderNames(map[string]string{"user_header": h.UserHeader, "groups_header": h.GroupsHeader})
}

// checkHeaderNames refuses header names that are not HTTP tokens, that name
// Authorization, or that two directives share once folded the way CGI, PHP
// and WSGI back ends fold them (case, '_' and '.'): such a back end would
// read a client's X_Okera_User as the gateway's X-Okera-Groups.
func checkHeaderNames(byDirective map[string]string) error {
	directives := slices.Sorted(maps.Keys(byDirective))
	seen := map[string]string{}
	for _, directive := range directives {
		name := byDirective[directive]
		if name == "" {
			continue
		}
		if !isHeaderToken(name) {
			return fmt.Errorf("%s %q is not a valid header name", directive, name)
		}
		folded := foldHeaderName(name)
		if folded == "authorization" {
			return fmt.Errorf("%s %q cannot be an identity header: the gateway alone sets Authorization", directive, name)
		}
		if other, dup := seen[folded]; dup {
			return fmt.Errorf("%s %q and %s %q name the same header once case, '_' and '.' are folded (as CGI back ends do); choose distinct names", other, byDirective[other], directive, name)
		}
		seen[folded] = directive
	}
	return nil
}

// isHeaderToken reports whether name is an RFC 9110 token.
func isHeaderToken(name string) bool {
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return name != ""
}
