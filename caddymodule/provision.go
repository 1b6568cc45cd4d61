package caddymodule

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

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

	admins := h.Admins
	if len(admins) == 0 && h.system != nil {
		admins = []string{h.system.subject()}
	}
	h.admins = newAdminSet(admins)
	h.required = strings.ToLower(strings.TrimSpace(h.RequiredGroup))

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
		names = append(names, "remote "+h.RemoteEndpoint.URL)
	}
	for _, pk := range h.PublicKeys {
		names = append(names, "public_key "+pk.Path)
	}
	names = append(names, h.ownValidatorNames()...)
	return names
}

// Validate checks the configuration; it is fast and touches nothing.
func (h *Handler) Validate() error {
	if h.RemoteEndpoint == nil && len(h.PublicKeys) == 0 && len(h.JWKS) == 0 && h.SigningKey == nil {
		return fmt.Errorf("okera_auth needs a remote_endpoint or at least one public_key (or a jwks_url, or a signing_key) to validate tokens")
	}
	if err := h.validateOwnKeys(); err != nil {
		return err
	}
	if err := h.validateJWKS(); err != nil {
		return err
	}
	if h.RemoteEndpoint != nil {
		if err := checkHTTPURL(h.RemoteEndpoint.URL); err != nil {
			return fmt.Errorf("remote_endpoint: %w", err)
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
		switch {
		case name == resolver.SourceLDAP && h.LDAP == nil:
			return fmt.Errorf("group_resolvers lists ldap, but there is no ldap block")
		case name == resolver.SourceEndpoint && h.GroupsEndpoint == nil:
			return fmt.Errorf("group_resolvers lists endpoint, but there is no groups_endpoint")
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
	if strings.EqualFold(h.UserHeader, h.GroupsHeader) {
		return fmt.Errorf("user_header and groups_header must differ")
	}
	for _, name := range []string{h.UserHeader, h.GroupsHeader} {
		if strings.EqualFold(name, "Authorization") || strings.ContainsAny(name, " :\t\r\n") {
			return fmt.Errorf("%q cannot be an identity header", name)
		}
	}
	return nil
}
