package validator

import (
	"crypto"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

func TestClaims(t *testing.T) {
	a, _, _ := testKeys(t)
	now := testNowUnix
	iss := ClaimPolicy{Issuers: []string{"https://idp.example", "okera"}}
	aud := ClaimPolicy{Audiences: []string{"okera", "gateway"}}
	minted := ClaimPolicy{RefusedAudiences: []string{"okera-upstream"}}
	mintedAllowed := ClaimPolicy{Audiences: []string{"okera-upstream"}, RefusedAudiences: []string{"okera-upstream"}}

	tests := []struct {
		name   string
		policy ClaimPolicy
		over   map[string]any // payload overrides; nil value deletes
		raw    string         // raw payload JSON, instead of over
		reason string         // "" = valid
		user   string
	}{
		{name: "valid", reason: "", user: "alice"},
		{name: "unicode sub", over: map[string]any{"sub": "zoë@example.com"}, user: "zoë@example.com"},
		{name: "sub with inner space", over: map[string]any{"sub": "Jane Doe"}, user: "Jane Doe"},
		// sub.
		{name: "sub missing", over: map[string]any{"sub": nil}, reason: ReasonMissingSub},
		{name: "sub null", raw: fmt.Sprintf(`{"sub":null,"exp":%d}`, testExpUnix), reason: ReasonMissingSub},
		{name: "sub empty", over: map[string]any{"sub": ""}, reason: ReasonMissingSub},
		{name: "sub blank", over: map[string]any{"sub": " \t "}, reason: ReasonMissingSub},
		{name: "sub unicode blank", over: map[string]any{"sub": "\u00a0\u2003"}, reason: ReasonMissingSub},
		{name: "sub BEL", over: map[string]any{"sub": "ali\x07ce"}, reason: ReasonInvalidClaim},
		{name: "sub newline", over: map[string]any{"sub": "alice\nX-Okera-User: admin"}, reason: ReasonInvalidClaim},
		{name: "sub CR", over: map[string]any{"sub": "alice\r"}, reason: ReasonInvalidClaim},
		{name: "sub NUL", over: map[string]any{"sub": "alice\x00"}, reason: ReasonInvalidClaim},
		{name: "sub DEL", over: map[string]any{"sub": "alice\x7f"}, reason: ReasonInvalidClaim},
		{name: "sub C1 control", over: map[string]any{"sub": "alice\u0085"}, reason: ReasonInvalidClaim},
		{name: "sub with a comma", over: map[string]any{"sub": "alice,admin"}, reason: ReasonInvalidClaim},
		{name: "sub number", over: map[string]any{"sub": 42}, reason: ReasonInvalidClaim},
		{name: "sub bool", over: map[string]any{"sub": true}, reason: ReasonInvalidClaim},
		{name: "sub list", over: map[string]any{"sub": []any{"alice"}}, reason: ReasonInvalidClaim},
		{name: "sub object", over: map[string]any{"sub": map[string]any{"name": "alice"}}, reason: ReasonInvalidClaim},
		// exp.
		{name: "expired", over: map[string]any{"exp": now - 1}, reason: ReasonExpired},
		{name: "expires now", over: map[string]any{"exp": now}, reason: ReasonExpired},
		{name: "expires in a second", over: map[string]any{"exp": now + 1}, user: "alice"},
		{name: "expired within leeway", policy: ClaimPolicy{Leeway: 30 * time.Second}, over: map[string]any{"exp": now - 29}, user: "alice"},
		{name: "expired past leeway", policy: ClaimPolicy{Leeway: 30 * time.Second}, over: map[string]any{"exp": now - 30}, reason: ReasonExpired},
		{name: "fractional exp, future", raw: fmt.Sprintf(`{"sub":"alice","exp":%d.5}`, now), user: "alice"},
		{name: "fractional exp, past", raw: fmt.Sprintf(`{"sub":"alice","exp":%d.5}`, now-1), reason: ReasonExpired},
		{name: "exp in exponent form", raw: `{"sub":"alice","exp":2.5e9}`, user: "alice"},
		{name: "no exp allowed", over: map[string]any{"exp": nil}, user: "alice"},
		{name: "no exp, require_exp", policy: ClaimPolicy{RequireExp: true}, over: map[string]any{"exp": nil}, reason: ReasonMissingExp},
		{name: "exp, require_exp", policy: ClaimPolicy{RequireExp: true}, user: "alice"},
		{name: "exp numeric string", over: map[string]any{"exp": fmt.Sprint(testExpUnix)}, reason: ReasonInvalidClaim},
		{name: "exp bool", over: map[string]any{"exp": true}, reason: ReasonInvalidClaim},
		{name: "exp null", raw: `{"sub":"alice","exp":null}`, reason: ReasonInvalidClaim},
		{name: "exp list", over: map[string]any{"exp": []any{testExpUnix}}, reason: ReasonInvalidClaim},
		{name: "exp negative", over: map[string]any{"exp": -1}, reason: ReasonInvalidClaim},
		{name: "exp negative fraction", raw: `{"sub":"alice","exp":-0.5}`, reason: ReasonInvalidClaim},
		{name: "exp 1e400", raw: `{"sub":"alice","exp":1e400}`, reason: ReasonInvalidClaim},
		{name: "exp -1e400", raw: `{"sub":"alice","exp":-1e400}`, reason: ReasonInvalidClaim},
		{name: "exp beyond int64", raw: `{"sub":"alice","exp":99999999999999999999999}`, reason: ReasonInvalidClaim},
		{name: "exp max int64", raw: `{"sub":"alice","exp":9223372036854775807}`, reason: ReasonInvalidClaim},
		{name: "exp year 10000", raw: `{"sub":"alice","exp":253402300800}`, reason: ReasonInvalidClaim},
		{name: "exp last second of 9999", raw: `{"sub":"alice","exp":253402300799}`, user: "alice"},
		{name: "exp fraction into 10000", raw: `{"sub":"alice","exp":253402300799.9999999}`, reason: ReasonInvalidClaim},
		{name: "exp 1e20 float", raw: `{"sub":"alice","exp":1e20}`, reason: ReasonInvalidClaim},
		// nbf.
		{name: "nbf past", over: map[string]any{"nbf": now - 10}, user: "alice"},
		{name: "nbf now", over: map[string]any{"nbf": now}, user: "alice"},
		{name: "nbf future", over: map[string]any{"nbf": now + 1}, reason: ReasonNotYetValid},
		{name: "nbf future within leeway", policy: ClaimPolicy{Leeway: time.Minute}, over: map[string]any{"nbf": now + 60}, user: "alice"},
		{name: "nbf future past leeway", policy: ClaimPolicy{Leeway: time.Minute}, over: map[string]any{"nbf": now + 61}, reason: ReasonNotYetValid},
		{name: "nbf string", over: map[string]any{"nbf": "0"}, reason: ReasonInvalidClaim},
		{name: "nbf huge", raw: `{"sub":"alice","nbf":1e300}`, reason: ReasonInvalidClaim},
		// iat: type and range only.
		{name: "iat future is fine", over: map[string]any{"iat": now + 3600}, user: "alice"},
		{name: "iat string", over: map[string]any{"iat": "yesterday"}, reason: ReasonInvalidClaim},
		{name: "iat negative", over: map[string]any{"iat": -5}, reason: ReasonInvalidClaim},
		{name: "iat bool", over: map[string]any{"iat": false}, reason: ReasonInvalidClaim},
		// iss.
		{name: "iss not enforced", over: map[string]any{"iss": 5}, user: "alice"},
		{name: "iss allowed", policy: iss, over: map[string]any{"iss": "okera"}, user: "alice"},
		{name: "iss other allowed", policy: iss, over: map[string]any{"iss": "https://idp.example"}, user: "alice"},
		{name: "iss not allowed", policy: iss, over: map[string]any{"iss": "https://evil.example"}, reason: ReasonIssuer},
		{name: "iss case differs", policy: iss, over: map[string]any{"iss": "OKERA"}, reason: ReasonIssuer},
		{name: "iss missing", policy: iss, reason: ReasonIssuer},
		{name: "iss list", policy: iss, over: map[string]any{"iss": []any{"okera"}}, reason: ReasonInvalidClaim},
		{name: "iss number", policy: iss, over: map[string]any{"iss": 1}, reason: ReasonInvalidClaim},
		// aud.
		{name: "aud not enforced", over: map[string]any{"aud": 5}, user: "alice"},
		{name: "aud string allowed", policy: aud, over: map[string]any{"aud": "okera"}, user: "alice"},
		{name: "aud string not allowed", policy: aud, over: map[string]any{"aud": "other"}, reason: ReasonAudience},
		{name: "aud list with allowed", policy: aud, over: map[string]any{"aud": []any{"other", "gateway"}}, user: "alice"},
		{name: "aud list without allowed", policy: aud, over: map[string]any{"aud": []any{"x", "y"}}, reason: ReasonAudience},
		{name: "aud empty list", policy: aud, over: map[string]any{"aud": []any{}}, reason: ReasonAudience},
		{name: "aud missing", policy: aud, reason: ReasonAudience},
		// The gateway's own minted tokens are refused whoever signed them,
		// even when an operator also allow-lists their audience.
		{name: "minted aud string", policy: minted, over: map[string]any{"aud": "okera-upstream"}, reason: ReasonGatewayToken},
		{name: "minted aud in a list", policy: minted, over: map[string]any{"aud": []any{"okera", "okera-upstream"}}, reason: ReasonGatewayToken},
		{name: "minted aud also allow-listed", policy: mintedAllowed, over: map[string]any{"aud": "okera-upstream"}, reason: ReasonGatewayToken},
		{name: "minted aud differs in case", policy: minted, over: map[string]any{"aud": "Okera-Upstream"}, user: "alice"},
		{name: "no aud, refused list set", policy: minted, user: "alice"},
		{name: "aud number, refused list set", policy: minted, over: map[string]any{"aud": 5}, reason: ReasonInvalidClaim},
		{name: "aud list with a number", policy: aud, over: map[string]any{"aud": []any{"okera", 1}}, reason: ReasonInvalidClaim},
		{name: "aud number", policy: aud, over: map[string]any{"aud": 1}, reason: ReasonInvalidClaim},
		{name: "aud object", policy: aud, over: map[string]any{"aud": map[string]any{"okera": true}}, reason: ReasonInvalidClaim},
		{name: "aud null", policy: aud, raw: fmt.Sprintf(`{"sub":"alice","aud":null,"exp":%d}`, testExpUnix), reason: ReasonInvalidClaim},
		{name: "iss and aud", policy: ClaimPolicy{Issuers: iss.Issuers, Audiences: aud.Audiences}, over: map[string]any{"iss": "okera", "aud": "okera"}, user: "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			payload := tt.raw
			if payload == "" {
				payload = mustJSON(t, claims(tt.over))
			}
			token := signRaw(t, a, crypto.SHA256, `{"alg":"RS256"}`, payload)
			c := newChain(t, ChainConfig{Keys: NewKeyValidator([]Key{staticKey(a, RS256, "a")}), Claims: tt.policy})
			if tt.reason != "" {
				wantReject(t, c, token, tt.reason)
				return
			}
			id := wantValid(t, c, token)
			if id.User != tt.user {
				t.Fatalf("user %q, want %q", id.User, tt.user)
			}
		})
	}
}

func TestNumericDate(t *testing.T) {
	tests := []struct {
		in   any
		want time.Time
		ok   bool
	}{
		{json.Number("0"), time.Unix(0, 0), true},
		{json.Number("-0"), time.Unix(0, 0), true},
		{json.Number("1700000000"), time.Unix(1700000000, 0), true},
		{json.Number("1700000000.25"), time.Unix(1700000000, 250000000), true},
		{json.Number("17e8"), time.Unix(1700000000, 0), true},
		{json.Number("253402300799"), time.Unix(253402300799, 0), true},
		{json.Number("253402300800"), time.Time{}, false},
		{json.Number("-1"), time.Time{}, false},
		{json.Number("1e400"), time.Time{}, false},
		{json.Number("18446744073709551616"), time.Time{}, false},
		{"1700000000", time.Time{}, false},
		{float64(1700000000), time.Time{}, false}, // only json.Number is ever decoded
		{nil, time.Time{}, false},
	}
	for _, tt := range tests {
		got, present, err := numericDate(map[string]any{"exp": tt.in}, "exp")
		if !present {
			t.Fatalf("%v: not present", tt.in)
		}
		if tt.ok != (err == nil) {
			t.Fatalf("%v: err %v, want ok=%v", tt.in, err, tt.ok)
		}
		if tt.ok && !got.Equal(tt.want) {
			t.Fatalf("%v: %v, want %v", tt.in, got, tt.want)
		}
		if !tt.ok && err.Reason != ReasonInvalidClaim {
			t.Fatalf("%v: reason %q", tt.in, err.Reason)
		}
	}
}

func TestPolicyCheckExported(t *testing.T) {
	p := ClaimPolicy{RequireExp: true}
	if err := p.Check(map[string]any{"exp": json.Number(fmt.Sprint(testExpUnix))}, testNow); err != nil {
		t.Fatal(err)
	}
	err := p.Check(map[string]any{}, testNow)
	if e, ok := err.(*Error); !ok || e.Reason != ReasonMissingExp {
		t.Fatalf("Check = %v, want missing_exp", err)
	}
	if sub, err := Subject(map[string]any{"sub": "okera"}); err != nil || sub != "okera" {
		t.Fatalf("Subject = %q, %v", sub, err)
	}
	if _, err := Subject(map[string]any{}); err == nil || err.(*Error).Reason != ReasonMissingSub {
		t.Fatalf("Subject of nothing = %v", err)
	}
}
