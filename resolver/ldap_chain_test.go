package resolver_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/okeragate/caddy-okera-auth/internal/slapdtest"
	"github.com/okeragate/caddy-okera-auth/resolver"
)

// TestChainClaimLDAPEndpoint runs the three real resolvers in a chain (README
// "Groups"): the first non-empty answer wins and later resolvers are not asked;
// answers are never merged; on an error, deny stops and continue moves on.
func TestChainClaimLDAPEndpoint(t *testing.T) {
	s := slapdtest.New(t, slapdtest.Options{})
	gs := newGroupsServer(t)
	claim := &resolver.ClaimResolver{Claim: "groups"}
	ldapR := newLDAP(t, ldapConfig(s))
	endpoint := newEndpoint(t, resolver.EndpointConfig{BaseURL: gs.URL + "/groups"})

	stopped := slapdtest.New(t, slapdtest.Options{})
	deadLDAP := newLDAP(t, ldapConfig(stopped))
	stopped.Stop()

	standard := []resolver.Resolver{claim, ldapR, endpoint}
	tests := []struct {
		name            string
		order           []resolver.Resolver
		onErrorContinue bool
		user            string
		claims          map[string]any
		want            []string // sorted
		source          string
		errSource       string   // the failing resolver when an error is expected
		stepped         []string // resolvers reported through OnError
		asked           []string // resolvers expected to query their back end
	}{
		{
			name: "claim wins", order: standard, user: "alice",
			claims: map[string]any{"groups": []any{" Admins ", "admins"}},
			want:   []string{"admins"}, source: resolver.SourceClaim,
		},
		{
			name: "no claim: ldap answers, normalised", order: standard, user: "alice",
			want: []string{"analysts", "engineering"}, source: resolver.SourceLDAP, asked: []string{"ldap"},
		},
		{
			name: "empty claim, ldap user in no group: endpoint answers", order: standard, user: "bob",
			claims: map[string]any{"groups": []any{}},
			want:   []string{"ops"}, source: resolver.SourceEndpoint, asked: []string{"ldap", "endpoint"},
		},
		{
			name: "nobody answers", order: standard, user: "unknown",
			want: []string{}, source: resolver.SourceNone, asked: []string{"ldap", "endpoint"},
		},
		{
			name: "order endpoint before ldap", order: []resolver.Resolver{claim, endpoint, ldapR}, user: "carol",
			want: []string{"from-endpoint"}, source: resolver.SourceEndpoint, asked: []string{"endpoint"},
		},
		{
			name: "order ldap before endpoint: answers are not merged", order: standard, user: "carol",
			want: lower(manyGroups()), source: resolver.SourceLDAP, asked: []string{"ldap"},
		},
		{
			name: "ldap error, deny", order: standard, user: "dup",
			errSource: resolver.SourceLDAP, asked: []string{"ldap"},
		},
		{
			name: "ldap error, continue", order: standard, onErrorContinue: true, user: "dup",
			want: []string{"dup-from-endpoint"}, source: resolver.SourceEndpoint,
			stepped: []string{"ldap"}, asked: []string{"ldap", "endpoint"},
		},
		{
			name: "ldap down, deny", order: []resolver.Resolver{claim, deadLDAP, endpoint}, user: "bob",
			errSource: resolver.SourceLDAP,
		},
		{
			name: "ldap down, continue", order: []resolver.Resolver{claim, deadLDAP, endpoint}, onErrorContinue: true, user: "bob",
			want: []string{"ops"}, source: resolver.SourceEndpoint, stepped: []string{"ldap"}, asked: []string{"endpoint"},
		},
		{
			name: "endpoint error after no ldap answer, deny", order: standard, user: "boom",
			errSource: resolver.SourceEndpoint, asked: []string{"ldap", "endpoint"},
		},
		{
			name: "endpoint error after no ldap answer, continue", order: standard, onErrorContinue: true, user: "boom",
			want: []string{}, source: resolver.SourceNone, stepped: []string{"endpoint"}, asked: []string{"ldap", "endpoint"},
		},
		{
			name: "malformed claim ends it even with continue", order: standard, onErrorContinue: true, user: "alice",
			claims:    map[string]any{"groups": "admins"},
			errSource: resolver.SourceClaim,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			searches := s.SearchCount("(uid=" + tt.user + ")")
			calls := gs.callCount(tt.user)
			var stepped []string
			chain := &resolver.Chain{
				Resolvers:       tt.order,
				ContinueOnError: tt.onErrorContinue,
				OnError:         func(source string, _ error) { stepped = append(stepped, source) },
			}
			got, err := chain.Resolve(context.Background(), resolver.Request{User: tt.user, Claims: tt.claims})
			if tt.errSource != "" {
				var re *resolver.ResolverError
				if !errors.As(err, &re) || re.Source != tt.errSource {
					t.Fatalf("Resolve = %+v, %v; want an error from %s", got, err, tt.errSource)
				}
			} else {
				if err != nil {
					t.Fatalf("Resolve: %v", err)
				}
				if got.Source != tt.source || !slices.Equal(sorted(got.Names), tt.want) {
					t.Fatalf("Resolve = %v from %s, want %v from %s", got.Names, got.Source, tt.want, tt.source)
				}
			}
			if !slices.Equal(stepped, tt.stepped) {
				t.Errorf("OnError saw %v, want %v", stepped, tt.stepped)
			}
			asked := []string{}
			if s.SearchCount("(uid="+tt.user+")") > searches {
				asked = append(asked, "ldap")
			}
			if gs.callCount(tt.user) > calls {
				asked = append(asked, "endpoint")
			}
			if tt.asked == nil {
				tt.asked = []string{}
			}
			if !slices.Equal(asked, tt.asked) {
				t.Errorf("back ends asked: %v, want %v", asked, tt.asked)
			}
		})
	}
}

func lower(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strings.ToLower(v)
	}
	return out
}
