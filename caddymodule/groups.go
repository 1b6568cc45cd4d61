package caddymodule

import (
	"context"
	"fmt"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/okeragate/caddy-okera-auth/resolver"
)

// LDAP configures the AD/LDAP group resolver (Okera's
// OKERA_GROUP_RESOLVER_LDAP_* settings).
type LDAP struct {
	// URL is ldap://host[:389] or ldaps://host[:636].
	URL string `json:"url"`
	// StartTLS upgrades an ldap:// connection with StartTLS.
	StartTLS bool `json:"start_tls,omitempty"`
	// CAFile is a PEM bundle of the CAs that sign the server's certificate.
	CAFile string `json:"ca_file,omitempty"`
	// BindDN is the service account the gateway binds as. Required.
	BindDN string `json:"bind_dn"`
	// BindPassword is the service account's password. Required; {env.X}
	// and {file.path} placeholders are replaced at start-up.
	BindPassword string `json:"bind_password"`
	// BaseDN is where users and groups are searched. Required.
	BaseDN string `json:"base_dn"`
	// UserFilter finds the user; {0} is the RFC 4515-escaped user name.
	// Default (&(objectClass=person)(uid={0})).
	UserFilter string `json:"user_filter,omitempty"`
	// GroupFilter selects group entries. Default (objectClass=groupOfNames).
	GroupFilter string `json:"group_filter,omitempty"`
	// MemberAttribute is the group attribute holding the members' DNs.
	// Default member.
	MemberAttribute string `json:"member_attribute,omitempty"`
	// GroupNameAttribute is the group attribute holding its name. Default
	// cn. An entry with one value is named by it; with several, by the one
	// its RDN gives (cn=Chess Club names "Chess Club" whatever other cn
	// values its owner adds); otherwise it is skipped and logged.
	GroupNameAttribute string `json:"group_name_attribute,omitempty"`
	// UserAttribute is the user entry's attribute that must name the user,
	// because directories match filters loosely (case, full-width letters,
	// repeated spaces). Default uid; Active Directory: sAMAccountName. An
	// entry without a matching value is "no answer" (README "Group
	// resolution").
	UserAttribute string `json:"user_attribute,omitempty"`
	// UserMatch is how UserAttribute must equal the user: "exact" (byte for
	// byte, the default) or "ascii_case" (ignoring the case of A-Z only,
	// for directories whose names are case-insensitive).
	UserMatch string `json:"user_match,omitempty"`
	// Timeout bounds each operation (dial, bind, search). Default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// CacheTTL caches each user's answer (empty answers too, errors
	// never). Unset: 5m; 0 turns the cache off.
	CacheTTL *caddy.Duration `json:"cache_ttl,omitempty"`
}

// GroupsEndpoint configures the HTTP group resolver (Okera's
// OKERA_GROUP_RESOLVER_URL): GET <base url>/<user>.
type GroupsEndpoint struct {
	// URL is the base URL; the path-escaped user is appended.
	URL string `json:"url"`
	// Timeout of one call. Default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// CacheTTL caches each user's answer (empty answers too, errors
	// never). Unset: 5m; 0 turns the cache off.
	CacheTTL *caddy.Duration `json:"cache_ttl,omitempty"`
}

// setDuration overrides *dst with d when d is set.
func setDuration(dst *time.Duration, d caddy.Duration) {
	if d != 0 {
		*dst = time.Duration(d)
	}
}

// setTTL overrides *dst with d when d is given (0 included: cache off).
func setTTL(dst *time.Duration, d *caddy.Duration) {
	if d != nil {
		*dst = time.Duration(*d)
	}
}

// setString overrides *dst with v when v is set.
func setString(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// newLDAPResolver builds the LDAP resolver. It never dials; a background
// check reports an unreachable server or a refused bind once, at start-up,
// in words an operator can act on.
func (h *Handler) newLDAPResolver() (*resolver.LDAPResolver, error) {
	c := h.LDAP
	cfg := resolver.DefaultLDAPConfig()
	cfg.URL = c.URL
	cfg.StartTLS = c.StartTLS
	cfg.CAFile = c.CAFile
	cfg.BindDN = c.BindDN
	// {env.X} and {file.path} keep the secret out of the config itself.
	cfg.BindPassword = caddy.NewReplacer().ReplaceKnown(c.BindPassword, "")
	if cfg.BindPassword == c.BindPassword {
		h.logger.Warn("ldap bind_password is written in the config itself; Caddy logs and autosaves its config, so use {env.NAME} or {file.path} instead",
			zap.String("bind_dn", c.BindDN))
	}
	cfg.BaseDN = c.BaseDN
	setString(&cfg.UserFilter, c.UserFilter)
	setString(&cfg.GroupFilter, c.GroupFilter)
	setString(&cfg.MemberAttribute, c.MemberAttribute)
	setString(&cfg.GroupNameAttribute, c.GroupNameAttribute)
	setString(&cfg.UserAttribute, c.UserAttribute)
	setString(&cfg.UserMatch, c.UserMatch)
	setDuration(&cfg.Timeout, c.Timeout)
	setTTL(&cfg.CacheTTL, c.CacheTTL)
	cfg.CacheObserver = h.metrics.cacheObserver("ldap")
	r, err := resolver.NewLDAPResolver(cfg, h.logger.Named("ldap"))
	if err != nil {
		return nil, fmt.Errorf("ldap: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Ping(ctx); err != nil && ctx.Err() == nil {
			h.logger.Error("LDAP group resolver cannot reach or bind to its server; group lookups will fail until it can. Check url, bind_dn, bind_password and ca_file",
				zap.String("url", c.URL), zap.String("bind_dn", c.BindDN), zap.Error(err))
		}
	}()
	h.closers = append(h.closers, func() {
		cancel()
		<-done
		_ = r.Close()
	})
	return r, nil
}

// newEndpointResolver builds the HTTP group resolver. It authenticates
// with the system token, read per call so a renewed token is used at once.
func (h *Handler) newEndpointResolver() (*resolver.EndpointResolver, error) {
	c := h.GroupsEndpoint
	if err := checkHTTPURL(c.URL); err != nil {
		return nil, fmt.Errorf("groups_endpoint: %w", err)
	}
	if h.system == nil {
		return nil, fmt.Errorf("groups_endpoint: the group endpoint is called with the system token; set system_token, or signing_key for a self-minted one")
	}
	system := h.system
	cfg := resolver.DefaultEndpointConfig()
	cfg.BaseURL = c.URL
	cfg.Token = func() string { return system.value() }
	setDuration(&cfg.Timeout, c.Timeout)
	setTTL(&cfg.CacheTTL, c.CacheTTL)
	cfg.CacheObserver = h.metrics.cacheObserver("endpoint")
	r, err := resolver.NewEndpointResolver(cfg)
	if err != nil {
		return nil, fmt.Errorf("groups_endpoint: %w", err)
	}
	h.closers = append(h.closers, func() { _ = r.Close() })
	return r, nil
}

// parseLDAP reads the `ldap { ... }` block.
func (h *Handler) parseLDAP(d *caddyfile.Dispenser) error {
	if h.LDAP != nil {
		return d.Err("ldap given twice")
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	l := new(LDAP)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "url":
			err = oneArg(d, &l.URL)
		case "start_tls":
			err = noArgs(d)
			l.StartTLS = true
		case "ca_file":
			err = oneArg(d, &l.CAFile)
		case "bind_dn":
			err = oneArg(d, &l.BindDN)
		case "bind_password":
			err = oneArg(d, &l.BindPassword)
		case "base_dn":
			err = oneArg(d, &l.BaseDN)
		case "user_filter":
			err = oneArg(d, &l.UserFilter)
		case "group_filter":
			err = oneArg(d, &l.GroupFilter)
		case "member_attribute":
			err = oneArg(d, &l.MemberAttribute)
		case "group_name_attribute":
			err = oneArg(d, &l.GroupNameAttribute)
		case "user_attribute":
			err = oneArg(d, &l.UserAttribute)
		case "user_match":
			err = oneArg(d, &l.UserMatch)
			if err == nil && l.UserMatch != resolver.UserMatchExact && l.UserMatch != resolver.UserMatchASCIICase {
				return d.Errf("ldap user_match must be %s or %s, not '%s'", resolver.UserMatchExact, resolver.UserMatchASCIICase, l.UserMatch)
			}
		case "timeout":
			err = parseDuration(d, &l.Timeout)
		case "cache_ttl":
			l.CacheTTL = new(caddy.Duration)
			err = parseDuration(d, l.CacheTTL)
		default:
			return d.Errf("unrecognized ldap subdirective '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	for _, req := range []struct{ name, val string }{{"url", l.URL}, {"bind_dn", l.BindDN}, {"bind_password", l.BindPassword}, {"base_dn", l.BaseDN}} {
		if req.val == "" {
			return d.Errf("ldap: %s is required", req.name)
		}
	}
	h.LDAP = l
	return nil
}

// parseGroupsEndpoint reads `groups_endpoint <base url> { ... }`.
func (h *Handler) parseGroupsEndpoint(d *caddyfile.Dispenser) error {
	if h.GroupsEndpoint != nil {
		return d.Err("groups_endpoint given twice")
	}
	g := new(GroupsEndpoint)
	if err := oneArg(d, &g.URL); err != nil {
		return err
	}
	if err := checkHTTPURL(g.URL); err != nil {
		return d.Errf("groups_endpoint: %v", err)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "timeout":
			err = parseDuration(d, &g.Timeout)
		case "cache_ttl":
			g.CacheTTL = new(caddy.Duration)
			err = parseDuration(d, g.CacheTTL)
		default:
			return d.Errf("unrecognized groups_endpoint subdirective '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	h.GroupsEndpoint = g
	return nil
}
