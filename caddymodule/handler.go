// Package caddymodule is the Caddy glue of caddy-okera-auth: the okera_auth
// HTTP handler, its Caddyfile directive, and the caddy okera-* commands. The
// decisions themselves live in the Caddy-free validator and resolver packages.
package caddymodule

import (
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"

	"github.com/okeragate/caddy-okera-auth/resolver"
	"github.com/okeragate/caddy-okera-auth/validator"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Upstream token modes: what the Authorization header of the request sent
// upstream carries.
const (
	UpstreamSystem   = "system"   // Bearer <system token>
	UpstreamMinted   = "minted"   // Bearer <token signed by signing_key for the user>
	UpstreamOriginal = "original" // the caller's header, unchanged
	UpstreamNone     = "none"     // no Authorization header
)

// Defaults of the okera_auth directive.
const (
	DefaultMaxTokenSize = 16384
	DefaultGroupsClaim  = "groups"
	DefaultUserHeader   = "X-Okera-User"
	DefaultGroupsHeader = "X-Okera-Groups"
	DefaultRealm        = "okera"
	DefaultCacheSize    = 100000
	// DefaultMintedAudience is the aud of minted upstream tokens.
	DefaultMintedAudience = "okera-upstream"
)

// Handler authenticates a request the way Okera does: it validates the
// caller's bearer JWT (remote validation endpoint first, then public keys),
// resolves the caller's groups, and forwards the request with the identity
// headers set and the caller's Authorization replaced by the gateway's own.
//
// Placeholders set on success: {http.auth.user.id}, {http.auth.user.groups},
// {http.auth.okera.validator}, {http.auth.okera.groups_source} and
// {http.auth.okera.token_id}; after a failure only {http.auth.okera.error}.
type Handler struct {
	// RemoteEndpoint is the remote validation endpoint, asked before the
	// public keys (Okera's JWT_AUTHENTICATION_SERVER_URL).
	RemoteEndpoint *RemoteEndpoint `json:"remote_endpoint,omitempty"`

	// PublicKeys verify tokens locally (Okera's JWT_PUBLIC_KEY and
	// JWT_ALGORITHM). Each key verifies only with its own algorithm.
	PublicKeys []PublicKey `json:"public_keys,omitempty"`

	// JWKS are identity providers' JWK Sets whose keys validate tokens,
	// chosen by the token's kid and refreshed in the background.
	JWKS []JWKSURL `json:"jwks,omitempty"`

	// Leeway is the clock skew allowed when checking exp and nbf. Default 0.
	Leeway caddy.Duration `json:"leeway,omitempty"`

	// RequireExp rejects tokens without an exp claim.
	RequireExp bool `json:"require_exp,omitempty"`

	// Issuers, when set, is the allow-list of the iss claim.
	Issuers []string `json:"issuers,omitempty"`

	// Audiences, when set, is the allow-list of the aud claim (one match is
	// enough; aud may be a string or a list).
	Audiences []string `json:"audiences,omitempty"`

	// MaxTokenSize is the largest token, in bytes, the gateway will parse.
	// Larger tokens get a 401 unparsed. Default 16384.
	MaxTokenSize int `json:"max_token_size,omitempty"`

	// VerifyCacheSize bounds the cache of verified tokens. Default 100000.
	VerifyCacheSize int `json:"verify_cache_size,omitempty"`

	// GroupResolvers is the order in which group sources are asked; the first
	// non-empty answer wins. Values: claim, ldap, endpoint. Default: claim,
	// then ldap and endpoint when they are configured.
	GroupResolvers []string `json:"group_resolvers,omitempty"`

	// GroupsClaim is the claim that holds the groups. Default "groups".
	GroupsClaim string `json:"groups_claim,omitempty"`

	// LDAP resolves groups from AD/LDAP with the token's sub as the user.
	LDAP *LDAP `json:"ldap,omitempty"`

	// GroupsEndpoint resolves groups from an HTTP endpoint.
	GroupsEndpoint *GroupsEndpoint `json:"groups_endpoint,omitempty"`

	// OnResolverError is what a group resolver's failure does: "deny" (503,
	// the default) or "continue" (log it and ask the next resolver).
	OnResolverError string `json:"on_resolver_error,omitempty"`

	// RequiredGroup answers 403 to users outside this group (Okera's
	// OKERA_REQUIRED_GROUP_MEMBERSHIP), unless they are admins.
	RequiredGroup string `json:"required_group,omitempty"`

	// Admins are users or groups exempt from RequiredGroup (Okera's
	// OKERA_CATALOG_ADMINS). Default: none; with AcceptSystemToken, the
	// system token's subject (Okera's default), following the token file.
	Admins []string `json:"admins,omitempty"`

	// AcceptSystemToken lets callers authenticate with the system token.
	// Off by default: every upstream and the group endpoint receive the
	// system token, so accepting it back would make one compromised data
	// service root at every other.
	AcceptSystemToken bool `json:"accept_system_token,omitempty"`

	// SystemToken is the path (or file:// URI) of the token the gateway sends
	// upstream (Okera's SYSTEM_TOKEN). Required when UpstreamToken is system,
	// unless SigningKey is set: the gateway then mints its own.
	SystemToken string `json:"system_token,omitempty"`

	// UpstreamToken selects the upstream Authorization header: system
	// (default), minted, original or none.
	UpstreamToken string `json:"upstream_token,omitempty"`

	// SigningKey is the gateway's own key pair (Okera's JWT_PRIVATE_KEY).
	// It signs minted upstream tokens and, without SystemToken, the
	// gateway's own system token; its public key validates tokens too.
	SigningKey *SigningKey `json:"signing_key,omitempty"`

	// MintedTokenTTL is the life of a minted upstream token. Default 5m.
	MintedTokenTTL caddy.Duration `json:"minted_token_ttl,omitempty"`

	// MintedAudience is the aud claim of minted upstream tokens. A token
	// carrying it is always refused from callers, whoever signed it, so an
	// upstream cannot replay what the gateway gave it. Default
	// okera-upstream.
	MintedAudience string `json:"minted_audience,omitempty"`

	// SystemTokenTTL is the life of the system token the gateway mints
	// with SigningKey when there is no SystemToken. Default 1h. JSON only.
	SystemTokenTTL caddy.Duration `json:"system_token_ttl,omitempty"`

	// FileCheckInterval is how often the public key, signing key and system
	// token files are checked for changes. Default 5s. JSON only.
	FileCheckInterval caddy.Duration `json:"file_check_interval,omitempty"`

	// UserHeader carries the user upstream. Default X-Okera-User.
	UserHeader string `json:"user_header,omitempty"`

	// GroupsHeader carries the comma-joined groups upstream. Default
	// X-Okera-Groups.
	GroupsHeader string `json:"groups_header,omitempty"`

	// Realm is the realm of the WWW-Authenticate challenge. Default okera.
	Realm string `json:"realm,omitempty"`

	logger    *zap.Logger
	metrics   *metrics
	validate  *validator.Chain
	groups    *resolver.Chain
	ids       identityNames
	userKey   string // canonical header names
	groupsKey string
	system    *systemToken
	admins    adminSet
	required  string
	challenge challenges
	keyring   *keyring
	minter    *minter  // upstream_token minted
	closers   []func() // run in reverse by Cleanup

	// claimFirst: the groups claim is the first resolver; claimOnly: the
	// only one. Either way its answer depends on the token alone.
	claimFirst, claimOnly bool
	claim                 *resolver.ClaimResolver
	afterClaim            *resolver.Chain // the resolvers after a leading claim
}

// RemoteEndpoint configures the remote validation endpoint.
type RemoteEndpoint struct {
	// URL receives POST requests with the token as bearer.
	URL string `json:"url"`
	// Timeout of one call. Default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// CacheTTL caches validated answers; 0 (the default) turns caching off.
	// A cached answer never outlives the token's exp.
	CacheTTL caddy.Duration `json:"cache_ttl,omitempty"`
	// Authoritative makes a rejection by the endpoint final. Okera falls
	// through to the public keys, so it is off by default.
	Authoritative bool `json:"authoritative,omitempty"`
	// TrustTokenClaims reads groups from the unverified payload of a token
	// the endpoint validated.
	TrustTokenClaims bool `json:"trust_token_claims,omitempty"`
	// MaxInFlight bounds the calls to the endpoint under way at once;
	// past it a request counts as unavailable at once. Default 64. A call
	// that no request waits for any more is cancelled. JSON only.
	MaxInFlight int `json:"max_in_flight,omitempty"`
}

// PublicKey is one public key file and the one algorithm it verifies.
type PublicKey struct {
	// Path is a file path or file:// URI of a PEM public key or certificate.
	Path string `json:"path"`
	// Algorithm is RSA256 or RSA512 (also spelled RS256/RS512). Default RSA512.
	Algorithm string `json:"algorithm,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.okera_auth",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Cleanup stops what Provision started. It copes with a partial Provision.
func (h *Handler) Cleanup() error {
	for i := len(h.closers) - 1; i >= 0; i-- {
		h.closers[i]()
	}
	h.closers = nil
	return nil
}

// Interface guards
var (
	_ caddy.Module                = (*Handler)(nil)
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
