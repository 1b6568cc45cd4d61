package resolver

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// fixed answers with the same groups every time.
type fixed struct {
	name   string
	groups []string
	err    error
	calls  int
}

func (f *fixed) Name() string { return f.name }
func (f *fixed) Resolve(context.Context, Request) ([]string, error) {
	f.calls++
	return f.groups, f.err
}

func TestChainOrderAndPolicy(t *testing.T) {
	errDown := errors.New("down")
	tests := []struct {
		name       string
		resolvers  []*fixed
		continueOn bool
		callerGone bool // the request's context has ended
		want       Groups
		wantErr    bool
		wantCalls  []int
		wantEvents []string
	}{
		{
			name:       "first non-empty wins, never merged",
			resolvers:  []*fixed{{name: "claim", groups: []string{"A", " b "}}, {name: "ldap", groups: []string{"c"}}},
			want:       Groups{Names: []string{"a", "b"}, Source: "claim"},
			wantCalls:  []int{1, 0},
			wantEvents: []string{"claim:groups"},
		},
		{
			name:       "empty answers fall through",
			resolvers:  []*fixed{{name: "claim"}, {name: "ldap", groups: []string{" ", ""}}, {name: "endpoint", groups: []string{"E"}}},
			want:       Groups{Names: []string{"e"}, Source: "endpoint"},
			wantCalls:  []int{1, 1, 1},
			wantEvents: []string{"claim:empty", "ldap:empty", "endpoint:groups"},
		},
		{
			name:       "nobody answers",
			resolvers:  []*fixed{{name: "claim"}},
			want:       Groups{Names: []string{}, Source: "none"},
			wantCalls:  []int{1},
			wantEvents: []string{"claim:empty"},
		},
		{
			name:       "deny stops at the first error",
			resolvers:  []*fixed{{name: "ldap", err: errDown}, {name: "endpoint", groups: []string{"e"}}},
			wantErr:    true,
			wantCalls:  []int{1, 0},
			wantEvents: []string{"ldap:error"},
		},
		{
			name:       "continue skips the failing resolver",
			resolvers:  []*fixed{{name: "ldap", err: errDown}, {name: "endpoint", groups: []string{"e"}}},
			continueOn: true,
			want:       Groups{Names: []string{"e"}, Source: "endpoint"},
			wantCalls:  []int{1, 1},
			wantEvents: []string{"ldap:error", "endpoint:groups"},
		},
		{
			name:       "a malformed claim ends resolution even with continue",
			resolvers:  []*fixed{{name: "claim", err: ErrMalformedClaim}, {name: "endpoint", groups: []string{"e"}}},
			continueOn: true,
			wantErr:    true,
			wantCalls:  []int{1, 0},
			wantEvents: []string{"claim:error"},
		},
		{
			// A departed caller is never a resolver failure: with
			// continue it must not skip to the token's own groups claim.
			name:       "a departed caller ends resolution even with continue",
			resolvers:  []*fixed{{name: "endpoint", err: context.Canceled}, {name: "claim", groups: []string{"admins"}}},
			continueOn: true,
			callerGone: true,
			wantErr:    true,
			wantCalls:  []int{1, 0},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var events []string
			var skipped []string
			c := &Chain{
				ContinueOnError: tt.continueOn,
				OnError:         func(source string, _ error) { skipped = append(skipped, source) },
				Observe:         func(source, result string) { events = append(events, source+":"+result) },
			}
			for _, r := range tt.resolvers {
				c.Resolvers = append(c.Resolvers, r)
			}
			ctx, cancel := context.WithCancel(context.Background())
			if tt.callerGone {
				cancel()
			}
			defer cancel()
			got, err := c.Resolve(ctx, Request{User: "alice"})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if tt.callerGone != errors.Is(err, ErrCallerGone) {
				t.Fatalf("err = %v: departed caller %v, but ErrCallerGone %v", err, tt.callerGone, errors.Is(err, ErrCallerGone))
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("groups = %+v, want %+v", got, tt.want)
			}
			for i, r := range tt.resolvers {
				if r.calls != tt.wantCalls[i] {
					t.Errorf("%s called %d times, want %d", r.name, r.calls, tt.wantCalls[i])
				}
			}
			if !reflect.DeepEqual(events, tt.wantEvents) {
				t.Errorf("events = %v, want %v", events, tt.wantEvents)
			}
			if tt.continueOn && !tt.wantErr && len(skipped) != 1 {
				t.Errorf("OnError called for %v, want one resolver", skipped)
			}
		})
	}
}

// Lower-casing never turns a non-ASCII name into an ASCII one, so no
// look-alike can become a configured group such as admins.
func TestNormalizeDropsNamesThatLowerIntoASCII(t *testing.T) {
	tests := []struct {
		in      string
		dropped bool
	}{
		{"ADMİNS", true},         // U+0130 lower-cases to plain i
		{"\u212Aafka", true},     // Kelvin sign lower-cases to plain k
		{"ADMINS", false},        // plain ASCII folds as always
		{"Ärzte", false},         // non-ASCII that stays non-ASCII
		{"ａｄｍｉｎｓ", false},        // fullwidth stays fullwidth: never equals admins
		{"ÅNGSTRÖM", false},      // Å lower-cases to å, still non-ASCII
		{"\u212Bngstrom", false}, // the Angstrom sign lowers to å
	}
	for _, tt := range tests {
		kept, dropped := Normalize([]string{tt.in})
		if got := len(dropped) == 1; got != tt.dropped {
			t.Errorf("Normalize(%q): kept %q, dropped %q; want dropped=%v", tt.in, kept, dropped, tt.dropped)
		}
		for _, k := range kept {
			if tt.in != strings.ToUpper(k) && (k == "admins" || k == "kafka") {
				t.Errorf("Normalize(%q) minted the ASCII group %q", tt.in, k)
			}
		}
	}
}

func TestNormalize(t *testing.T) {
	kept, dropped := Normalize([]string{" Analysts", "analysts", "DATA", "a,b", "ev\nil", "", "data"})
	if want := []string{"analysts", "data"}; !reflect.DeepEqual(kept, want) {
		t.Errorf("kept = %v, want %v", kept, want)
	}
	if want := []string{"a,b", "ev\nil"}; !reflect.DeepEqual(dropped, want) {
		t.Errorf("dropped = %v, want %v", dropped, want)
	}
}

func TestClaimResolver(t *testing.T) {
	r := &ClaimResolver{Claim: "groups"}
	tests := []struct {
		name    string
		claims  map[string]any
		want    []string
		wantErr bool
	}{
		{"list", map[string]any{"groups": []any{"a", "b"}}, []string{"a", "b"}, false},
		{"absent", map[string]any{}, nil, false},
		{"null", map[string]any{"groups": nil}, nil, false},
		{"empty", map[string]any{"groups": []any{}}, []string{}, false},
		{"string", map[string]any{"groups": "admin"}, nil, true},
		{"number in list", map[string]any{"groups": []any{"a", 1.0}}, nil, true},
		{"object", map[string]any{"groups": map[string]any{"a": true}}, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.Resolve(context.Background(), Request{Claims: tt.claims})
			if tt.wantErr {
				if !errors.Is(err, ErrMalformedClaim) {
					t.Fatalf("err = %v, want ErrMalformedClaim", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// Long lists take the set path; the result is the same first-seen order.
func TestNormalizeLongList(t *testing.T) {
	var in, want []string
	for i := range 100 {
		g := fmt.Sprintf("G%d", i%40)
		in = append(in, g)
		if i < 40 {
			want = append(want, strings.ToLower(g))
		}
	}
	kept, _ := Normalize(in)
	if !reflect.DeepEqual(kept, want) {
		t.Errorf("kept = %v, want %v", kept, want)
	}
}

// Two "groups" members could be read differently by two parsers; the
// answer is refused rather than one of them picked.
func TestParseEndpointGroupsStrict(t *testing.T) {
	for _, body := range []string{
		`{"groups":["a"],"groups":["admin"]}`,
		"[\"a\xff\"]",
	} {
		if g, err := parseEndpointGroups([]byte(body)); err == nil {
			t.Errorf("parseEndpointGroups(%q) = %v, want an error", body, g)
		}
	}
}

// An empty user is never searched for: with a prefix template such as
// (uid={0}*) it would become a presence filter matching everyone. The
// server here does not exist, so a search would be an error.
func TestLDAPEmptyUser(t *testing.T) {
	cfg := DefaultLDAPConfig()
	cfg.URL, cfg.BindDN, cfg.BindPassword, cfg.BaseDN = "ldap://127.0.0.1:1", "cn=admin,dc=example,dc=org", "secret", "dc=example,dc=org"
	cfg.UserFilter = "(uid={0}*)"
	r, err := NewLDAPResolver(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := r.Resolve(context.Background(), Request{User: ""}); err != nil || len(got) != 0 {
		t.Fatalf("Resolve(\"\") = %v, %v; want no answer and no search", got, err)
	}
}
