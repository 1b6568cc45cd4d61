package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/okeragate/caddy-okera-auth/resolver"
	"github.com/okeragate/caddy-okera-auth/validator"
)

// Placeholder names the handler sets.
const (
	phUser         = "http.auth.user.id"
	phGroups       = "http.auth.user.groups"
	phValidator    = "http.auth.okera.validator"
	phGroupsSource = "http.auth.okera.groups_source"
	phTokenID      = "http.auth.okera.token_id"
	phError        = "http.auth.okera.error"
)

// retryAfterSeconds is sent with every 503: the dependency that failed is
// asked again on the next request, so a short pause is all a client needs.
const retryAfterSeconds = "5"

// ServeHTTP runs the request's path through the gateway: strip, extract,
// validate, resolve, authorize, forward.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	// Before anything else, so no later step or error path can see a
	// client-chosen identity.
	h.ids.stripIdentity(r)
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)

	token, reason := h.extractToken(r)
	if reason != "" {
		return h.unauthorized(w, r, repl, reason, "", reason != reasonMissing)
	}
	if h.isSystemToken(token) {
		// Every upstream and the group endpoint hold the system token;
		// accepted back, one compromised data service would be root at
		// every other (README "Security notes").
		return h.unauthorized(w, r, repl, validator.ReasonGatewayToken, validator.Fingerprint(token), true)
	}

	id, err := h.validate.Validate(r.Context(), token)
	if err != nil {
		var verr *validator.Error
		if !errors.As(err, &verr) {
			verr = &validator.Error{Reason: "internal", Unavailable: true, Err: err}
		}
		switch {
		case verr.CallerGone:
			return h.callerGone(r, repl, validator.Fingerprint(token))
		case verr.Unavailable:
			return h.unavailable(w, r, repl, verr.Reason, validator.Fingerprint(token), verr)
		}
		return h.unauthorized(w, r, repl, verr.Reason, validator.Fingerprint(token), true)
	}

	c, err := h.callerOf(r.Context(), id)
	if err != nil {
		switch {
		case errors.Is(err, resolver.ErrCallerGone):
			return h.callerGone(r, repl, id.TokenID)
		case errors.Is(err, resolver.ErrMalformedClaim):
			return h.unauthorized(w, r, repl, "malformed_groups", id.TokenID, true)
		}
		return h.unavailable(w, r, repl, "group_resolution", id.TokenID, err)
	}
	if !c.allowed {
		return h.forbidden(w, r, repl, id.User, id.TokenID)
	}
	if r.Context().Err() != nil {
		// The caller left while its groups came from a cache: still no
		// decision, so a departed request is never forwarded.
		return h.callerGone(r, repl, id.TokenID)
	}

	// One allocation for the three header values; each slice is capped so
	// an append by a later handler cannot write into its neighbour.
	vals := make([]string, 3)
	vals[0], vals[1] = c.user, c.joined
	r.Header[h.userKey] = vals[0:1:1]
	r.Header[h.groupsKey] = vals[1:2:2]
	switch h.UpstreamToken {
	case UpstreamSystem:
		vals[2] = h.system.header()
		r.Header["Authorization"] = vals[2:3:3]
	case UpstreamMinted:
		bearer, err := h.minter.bearer(c.user, c.names)
		if err != nil {
			return h.unavailable(w, r, repl, "minting", id.TokenID, err)
		}
		vals[2] = bearer
		r.Header["Authorization"] = vals[2:3:3]
	case UpstreamNone:
		delete(r.Header, "Authorization")
	}

	repl.Set(phUser, c.userV)
	repl.Set(phGroups, c.groupsV)
	repl.Set(phValidator, c.validatorV)
	repl.Set(phGroupsSource, c.sourceV)
	repl.Set(phTokenID, c.tokenIDV)
	h.metrics.outcome(outcomeAuthenticated)
	return next.ServeHTTP(w, r)
}

// caller is what the handler works out from a validated identity: the
// user, the groups and the required_group verdict, with the placeholder
// values boxed once so that setting them allocates nothing.
type caller struct {
	user    string
	names   []string
	joined  string
	allowed bool

	userV, groupsV, tokenIDV, validatorV, sourceV any
}

// newCaller applies required_group to an identity and its groups.
func (h *Handler) newCaller(id *validator.Identity, groups resolver.Groups) *caller {
	joined := strings.Join(groups.Names, ",")
	return &caller{
		user:    id.User,
		names:   groups.Names,
		joined:  joined,
		allowed: h.required == "" || slices.Contains(groups.Names, h.required) || h.isAdmin(id.User, groups.Names),
		userV:   id.User, groupsV: joined, tokenIDV: id.TokenID,
		validatorV: boxed(id.By), sourceV: boxed(groups.Source),
	}
}

// isAdmin applies admins. Without an admins list nobody is exempt, except
// that with accept_system_token the system token's subject is (Okera's
// OKERA_CATALOG_ADMINS default), read from the token in force so that it
// follows a replaced token file.
func (h *Handler) isAdmin(user string, groups []string) bool {
	if len(h.Admins) == 0 {
		return h.AcceptSystemToken && h.system != nil && user == h.system.subject()
	}
	return h.admins.has(user, groups)
}

// claimRead marks an identity whose groups claim was read, and empty, when
// it was created: only the resolvers after the claim remain to be asked.
type claimRead struct{}

// derive is the validator chain's Derive hook. When the groups claim is the
// first resolver, its answer depends on the token alone: it is read once,
// when the identity is created, and kept with the cached identity in place
// of the claims, so a token seen before costs no group resolution and its
// cache entry holds no claims.
func (h *Handler) derive(id *validator.Identity) (any, bool) {
	if !h.claimFirst {
		return nil, true
	}
	names, err := h.claim.Resolve(context.Background(), resolver.Request{User: id.User, Claims: id.Claims})
	if err != nil {
		// A malformed claim: the request path resolves again and answers 401.
		return nil, true
	}
	kept, dropped := resolver.Normalize(names)
	if len(dropped) > 0 {
		h.logger.Warn("dropped group names holding a comma or a control character",
			zap.String("user", id.User), zap.Strings("groups", dropped), zap.String("token_id", id.TokenID))
	}
	switch {
	case len(kept) > 0:
		h.metrics.groupResolution(resolver.SourceClaim, resolver.ResultGroups)
		return h.newCaller(id, resolver.Groups{Names: kept, Source: resolver.SourceClaim}), false
	case h.claimOnly:
		h.metrics.groupResolution(resolver.SourceClaim, resolver.ResultEmpty)
		return h.newCaller(id, resolver.Groups{Names: []string{}, Source: resolver.SourceNone}), false
	}
	h.metrics.groupResolution(resolver.SourceClaim, resolver.ResultEmpty)
	return claimRead{}, false
}

// callerOf returns the caller derived with the identity, or resolves its
// groups (LDAP and the group endpoint have caches of their own).
func (h *Handler) callerOf(ctx context.Context, id *validator.Identity) (*caller, error) {
	chain := h.groups
	switch d := id.Derived.(type) {
	case *caller:
		return d, nil
	case claimRead:
		chain = h.afterClaim
	}
	groups, err := chain.Resolve(ctx, resolver.Request{User: id.User, Claims: id.Claims})
	if err != nil {
		return nil, err
	}
	if len(groups.Dropped) > 0 {
		h.logger.Warn("dropped group names holding a comma or a control character",
			zap.String("user", id.User), zap.Strings("groups", groups.Dropped), zap.String("token_id", id.TokenID))
	}
	return h.newCaller(id, groups), nil
}

// boxes hold the placeholder values that are the same for many requests,
// converted to interfaces once.
var boxes = func() map[string]any {
	m := map[string]any{}
	for _, s := range []string{validator.ByRemote, validator.ByPublicKey, validator.ByJWKS,
		resolver.SourceClaim, resolver.SourceLDAP, resolver.SourceEndpoint, resolver.SourceNone} {
		m[s] = s
	}
	return m
}()

func boxed(s string) any {
	if v, ok := boxes[s]; ok {
		return v
	}
	return s
}

// reasonMissing is the failure reason when no bearer token was presented.
const reasonMissing = "missing_token"

// extractToken returns the bearer token, or a failure reason: exactly one
// Authorization header of the form "Bearer <token>" (scheme in any case),
// with a token no larger than MaxTokenSize.
func (h *Handler) extractToken(r *http.Request) (string, string) {
	values := r.Header["Authorization"]
	switch {
	case len(values) == 0:
		return "", reasonMissing
	case len(values) > 1:
		// Two headers could be read differently by the gateway and the
		// upstream; refuse rather than pick one.
		return "", "duplicate_authorization"
	}
	scheme, token, found := strings.Cut(values[0], " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", reasonMissing
	}
	token = strings.TrimLeft(token, " ")
	switch {
	case token == "":
		return "", "empty_token"
	case len(token) > h.MaxTokenSize:
		return "", "token_too_large"
	}
	return token, ""
}

// unauthorized answers 401 with the Bearer challenge. invalid tells whether
// a token was presented (RFC 6750 then asks for error="invalid_token").
func (h *Handler) unauthorized(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, reason, tokenID string, invalid bool) error {
	dropCredential(r)
	hdr := w.Header()
	if invalid {
		hdr.Set("WWW-Authenticate", h.challenge.invalid)
	} else {
		hdr.Set("WWW-Authenticate", h.challenge.missing)
	}
	hdr.Set("Cache-Control", "no-store")
	repl.Set(phError, reason)
	if invalid {
		h.metrics.outcome(outcomeInvalidToken)
	} else {
		h.metrics.outcome(outcomeMissingToken)
	}
	if c := h.logger.Check(zapcore.DebugLevel, "request not authenticated"); c != nil {
		c.Write(zap.String("reason", reason), zap.String("token_id", tokenID), zap.String("remote_addr", r.RemoteAddr))
	}
	return caddyhttp.Error(http.StatusUnauthorized, fmt.Errorf("not authenticated: %s", reason))
}

// unavailable answers 503: a validator or group resolver the decision
// depends on could not answer, so the gateway fails closed.
func (h *Handler) unavailable(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, reason, tokenID string, cause error) error {
	dropCredential(r)
	hdr := w.Header()
	hdr.Set("Retry-After", retryAfterSeconds)
	hdr.Set("Cache-Control", "no-store")
	repl.Set(phError, reason)
	h.metrics.outcome(outcomeUnavailable)
	h.logger.Warn("authentication dependency unavailable",
		zap.String("reason", reason), zap.String("token_id", tokenID),
		zap.String("remote_addr", r.RemoteAddr), zap.Error(cause))
	return caddyhttp.Error(http.StatusServiceUnavailable, fmt.Errorf("authentication unavailable: %s", reason))
}

// forbidden answers 403 to an authenticated user outside required_group.
func (h *Handler) forbidden(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, user, tokenID string) error {
	dropCredential(r)
	w.Header().Set("Cache-Control", "no-store")
	repl.Set(phError, "not_in_required_group")
	h.metrics.outcome(outcomeForbidden)
	if c := h.logger.Check(zapcore.DebugLevel, "user not in the required group"); c != nil {
		c.Write(zap.String("user", user), zap.String("token_id", tokenID), zap.String("remote_addr", r.RemoteAddr))
	}
	return caddyhttp.Error(http.StatusForbidden, errors.New("not in the required group"))
}

// statusClientClosedRequest is the status Caddy's own reverse_proxy reports
// when the client went away (nginx's 499); no client ever reads it.
const statusClientClosedRequest = 499

// callerGone ends a request whose caller went away before a decision: no
// verdict, nothing forwarded, and nothing counted as an outage or a
// rejection (README "Security notes").
func (h *Handler) callerGone(r *http.Request, repl *caddy.Replacer, tokenID string) error {
	dropCredential(r)
	repl.Set(phError, validator.ReasonCallerGone)
	if c := h.logger.Check(zapcore.DebugLevel, "caller went away before a decision"); c != nil {
		c.Write(zap.String("token_id", tokenID), zap.String("remote_addr", r.RemoteAddr))
	}
	return caddyhttp.Error(statusClientClosedRequest, errors.New("the caller went away before a decision"))
}

// dropCredential removes the caller's Authorization once the request is
// refused, before Caddy's error handling runs: a handle_errors route that
// proxies somewhere must never forward the caller's own token.
func dropCredential(r *http.Request) {
	delete(r.Header, "Authorization")
}

// isSystemToken reports whether a presented token is one of the system
// tokens the gateway hands to upstreams, unless accept_system_token allows
// them back.
func (h *Handler) isSystemToken(token string) bool {
	return !h.AcceptSystemToken && h.system != nil && h.system.is(token)
}

// challenges are the two WWW-Authenticate values, built once at provision.
type challenges struct {
	missing string // no token presented
	invalid string // a token was presented and refused
}

func newChallenges(realm string) challenges {
	base := fmt.Sprintf("Bearer realm=%q", realm)
	return challenges{missing: base, invalid: base + `, error="invalid_token"`}
}

// adminSet holds the admins: users compared exactly, groups compared
// lower-cased (groups are normalised to lower case).
type adminSet struct {
	users  map[string]struct{}
	groups map[string]struct{}
}

func newAdminSet(admins []string) adminSet {
	s := adminSet{users: map[string]struct{}{}, groups: map[string]struct{}{}}
	for _, a := range admins {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		s.users[a] = struct{}{}
		s.groups[strings.ToLower(a)] = struct{}{}
	}
	return s
}

func (s adminSet) has(user string, groups []string) bool {
	if _, ok := s.users[user]; ok {
		return true
	}
	for _, g := range groups {
		if _, ok := s.groups[g]; ok {
			return true
		}
	}
	return false
}
