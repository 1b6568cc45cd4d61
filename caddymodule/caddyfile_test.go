package caddymodule

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	input := `okera_auth {
		remote_endpoint http://127.0.0.1:9000/validate {
			timeout 2s
			cache_ttl 1m
			authoritative
			trust_token_claims
		}
		public_key /keys/a.pub
		public_key file:///keys/b.pub RS256
		leeway 30s
		require_exp
		issuer https://idp a
		audience data
		max_token_size 4096
		group_resolvers claim
		groups_claim roles
		on_resolver_error continue
		required_group analysts
		admins okera root
		system_token /keys/system.token
		upstream_token original
		user_header X-User
		groups_header X-Groups
		realm data
	}`
	var h Handler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
		t.Fatal(err)
	}
	want := Handler{
		RemoteEndpoint: &RemoteEndpoint{
			URL: "http://127.0.0.1:9000/validate", Timeout: caddy.Duration(2 * time.Second),
			CacheTTL: caddy.Duration(time.Minute), Authoritative: true, TrustTokenClaims: true,
		},
		PublicKeys:      []PublicKey{{Path: "/keys/a.pub"}, {Path: "file:///keys/b.pub", Algorithm: "RS256"}},
		Leeway:          caddy.Duration(30 * time.Second),
		RequireExp:      true,
		Issuers:         []string{"https://idp", "a"},
		Audiences:       []string{"data"},
		MaxTokenSize:    4096,
		GroupResolvers:  []string{"claim"},
		GroupsClaim:     "roles",
		OnResolverError: "continue",
		RequiredGroup:   "analysts",
		Admins:          []string{"okera", "root"},
		SystemToken:     "/keys/system.token",
		UpstreamToken:   "original",
		UserHeader:      "X-User",
		GroupsHeader:    "X-Groups",
		Realm:           "data",
	}
	if !reflect.DeepEqual(&h, &want) {
		t.Errorf("got  %+v\nwant %+v", &h, &want)
	}
}

// A wrong line names the subdirective, and Caddy's dispenser adds the file
// and line.
func TestUnmarshalCaddyfileErrors(t *testing.T) {
	tests := []struct {
		name, input, want string
	}{
		{"unknown subdirective", "okera_auth {\n\tpublic_keys /a\n}", "unrecognized okera_auth subdirective 'public_keys'"},
		{"argument on the directive", "okera_auth extra {\n}", "wrong argument count"},
		{"public_key without path", "okera_auth {\n\tpublic_key\n}", "wrong argument count"},
		{"public_key with three args", "okera_auth {\n\tpublic_key a RS256 b\n}", "wrong argument count"},
		{"bad duration", "okera_auth {\n\tleeway soon\n}", "leeway: invalid duration 'soon'"},
		{"negative size", "okera_auth {\n\tmax_token_size -1\n}", "max_token_size: '-1' is not a positive whole number"},
		{"bad upstream_token", "okera_auth {\n\tupstream_token caller\n}", "upstream_token must be system, minted, original or none"},
		{"bad resolver", "okera_auth {\n\tgroup_resolvers claim kerberos\n}", "unknown resolver 'kerberos'"},
		{"bad on_resolver_error", "okera_auth {\n\ton_resolver_error maybe\n}", "on_resolver_error must be deny or continue"},
		{"remote_endpoint twice", "okera_auth {\n\tremote_endpoint http://a/v\n\tremote_endpoint http://b/v\n}", "remote_endpoint given twice"},
		{"remote_endpoint not http", "okera_auth {\n\tremote_endpoint ftp://a/v\n}", "must be an absolute http:// or https:// URL"},
		{"remote_endpoint unknown sub", "okera_auth {\n\tremote_endpoint http://a/v {\n\t\tretries 3\n\t}\n}", "unrecognized remote_endpoint subdirective 'retries'"},
		{"require_exp with argument", "okera_auth {\n\trequire_exp yes\n}", "wrong argument count"},
		{"bad ldap user_match", "okera_auth {\n\tldap {\n\t\tuser_match unicode_case\n\t}\n}", "ldap user_match must be exact or ascii_case, not 'unicode_case'"},
		{"ldap user_attribute without value", "okera_auth {\n\tldap {\n\t\tuser_attribute\n\t}\n}", "wrong argument count"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(tt.input))
			if err == nil {
				t.Fatalf("no error, want %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error %q does not name the file and line", err)
			}
		})
	}
}
