package caddymodule

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("okera_auth", parseOkeraAuth)
	// After basic_auth, so no global order line is needed and the two
	// authenticators sit together in the directive order.
	httpcaddyfile.RegisterDirectiveOrder("okera_auth", httpcaddyfile.After, "basic_auth")
}

func parseOkeraAuth(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	if err := handler.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	return handler, nil
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens:
//
//	okera_auth [<matcher>] {
//		remote_endpoint <url> {
//			timeout   <duration>
//			cache_ttl <duration>
//			authoritative
//			trust_token_claims
//		}
//		public_key <path|file://uri> [RSA256|RSA512]
//		jwks_url <url> [<refresh duration>]
//		leeway <duration>
//		require_exp
//		issuer <iss...>
//		audience <aud...>
//		max_token_size <bytes>
//		group_resolvers <claim|ldap|endpoint...>
//		groups_claim <name>
//		ldap {
//			url <ldap://host[:389]|ldaps://host[:636]>
//			start_tls
//			ca_file <path>
//			bind_dn <dn>
//			bind_password <secret>
//			base_dn <dn>
//			user_filter <filter>
//			group_filter <filter>
//			member_attribute <attr>
//			group_name_attribute <attr>
//			user_attribute <attr>
//			user_match exact|ascii_case
//			timeout <duration>
//			cache_ttl <duration>
//		}
//		groups_endpoint <base url> {
//			timeout <duration>
//			cache_ttl <duration>
//		}
//		on_resolver_error deny|continue
//		required_group <group>
//		admins <user-or-group...>
//		system_token <path|file://uri>
//		signing_key <private key path|file://uri> [RSA256|RSA512]
//		upstream_token system|minted|original|none
//		minted_token_ttl <duration>
//		minted_audience <aud>
//		accept_system_token
//		user_header <name>
//		groups_header <name>
//		realm <name>
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		name := d.Val()
		var err error
		switch name {
		case "remote_endpoint":
			err = h.parseRemoteEndpoint(d)
		case "public_key":
			args := d.RemainingArgs()
			if len(args) < 1 || len(args) > 2 {
				return d.ArgErr()
			}
			pk := PublicKey{Path: args[0]}
			if len(args) == 2 {
				pk.Algorithm = args[1]
			}
			h.PublicKeys = append(h.PublicKeys, pk)
		case "leeway":
			err = parseDuration(d, &h.Leeway)
		case "require_exp":
			err = noArgs(d)
			h.RequireExp = true
		case "issuer":
			err = appendArgs(d, &h.Issuers)
		case "audience":
			err = appendArgs(d, &h.Audiences)
		case "max_token_size":
			err = parsePositiveInt(d, &h.MaxTokenSize)
		case "group_resolvers":
			err = appendArgs(d, &h.GroupResolvers)
			for _, r := range h.GroupResolvers {
				if r != "claim" && r != "ldap" && r != "endpoint" {
					return d.Errf("group_resolvers: unknown resolver '%s' (use claim, ldap, endpoint)", r)
				}
			}
		case "ldap":
			err = h.parseLDAP(d)
		case "groups_endpoint":
			err = h.parseGroupsEndpoint(d)
		case "groups_claim":
			err = oneArg(d, &h.GroupsClaim)
		case "on_resolver_error":
			err = oneArg(d, &h.OnResolverError)
			if err == nil && h.OnResolverError != "deny" && h.OnResolverError != "continue" {
				return d.Errf("on_resolver_error must be deny or continue, not '%s'", h.OnResolverError)
			}
		case "required_group":
			err = oneArg(d, &h.RequiredGroup)
		case "admins":
			err = appendArgs(d, &h.Admins)
		case "system_token":
			err = oneArg(d, &h.SystemToken)
		case "upstream_token":
			err = oneArg(d, &h.UpstreamToken)
			if err == nil {
				switch h.UpstreamToken {
				case UpstreamSystem, UpstreamMinted, UpstreamOriginal, UpstreamNone:
				default:
					return d.Errf("upstream_token must be system, minted, original or none, not '%s'", h.UpstreamToken)
				}
			}
		case "signing_key":
			err = h.parseSigningKey(d)
		case "minted_token_ttl":
			err = parseDuration(d, &h.MintedTokenTTL)
		case "minted_audience":
			err = oneArg(d, &h.MintedAudience)
		case "accept_system_token":
			err = noArgs(d)
			h.AcceptSystemToken = true
		case "jwks_url":
			err = h.parseJWKSURL(d)
		case "user_header":
			err = oneArg(d, &h.UserHeader)
		case "groups_header":
			err = oneArg(d, &h.GroupsHeader)
		case "realm":
			err = oneArg(d, &h.Realm)
		default:
			return d.Errf("unrecognized okera_auth subdirective '%s'", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseRemoteEndpoint reads `remote_endpoint <url> { ... }`.
func (h *Handler) parseRemoteEndpoint(d *caddyfile.Dispenser) error {
	if h.RemoteEndpoint != nil {
		return d.Err("remote_endpoint given twice; Okera asks one validation endpoint")
	}
	re := new(RemoteEndpoint)
	if !d.NextArg() {
		return d.ArgErr()
	}
	re.URL = d.Val()
	if err := checkHTTPURL(re.URL); err != nil {
		return d.Errf("remote_endpoint: %v", err)
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "timeout":
			err = parseDuration(d, &re.Timeout)
		case "cache_ttl":
			err = parseDuration(d, &re.CacheTTL)
		case "authoritative":
			err = noArgs(d)
			re.Authoritative = true
		case "trust_token_claims":
			err = noArgs(d)
			re.TrustTokenClaims = true
		default:
			return d.Errf("unrecognized remote_endpoint subdirective '%s'", d.Val())
		}
		if err != nil {
			return err
		}
	}
	h.RemoteEndpoint = re
	return nil
}

// checkHTTPURL accepts absolute http and https URLs with a host.
func checkHTTPURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %v", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("URL %q must be an absolute http:// or https:// URL", raw)
	}
	return nil
}

func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	*dst = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func noArgs(d *caddyfile.Dispenser) error {
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func appendArgs(d *caddyfile.Dispenser, dst *[]string) error {
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}
	*dst = append(*dst, args...)
	return nil
}

func parseDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	name := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil {
		return d.Errf("%s: invalid duration '%s': %v", name, s, err)
	}
	if v < 0 {
		return d.Errf("%s: duration must not be negative", name)
	}
	*dst = caddy.Duration(v)
	return nil
}

func parsePositiveInt(d *caddyfile.Dispenser, dst *int) error {
	name := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return err
	}
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil || v <= 0 {
		return d.Errf("%s: '%s' is not a positive whole number", name, s)
	}
	*dst = v
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
