package validator

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/okeragate/caddy-okera-auth/internal/strictjson"
)

// FuzzClaimPolicy runs ClaimPolicy.Check and Subject (README "Validation") on
// arbitrary JSON payloads, decoded the way the chain decodes them: neither
// panics, every refusal is an *Error with a known reason, and whatever
// passes really satisfies the rules, judged with exact arithmetic: exp, nbf
// and iat are JSON numbers within 1970..9999, now is before exp + leeway
// and not before nbf - leeway, issuer and audience are allowed, and sub is
// a non-blank UTF-8 string without control characters or surrounding
// whitespace.
//
//	go test ./validator -run '^$' -fuzz '^FuzzClaimPolicy$' -fuzztime 60s
func FuzzClaimPolicy(f *testing.F) {
	for _, p := range []string{
		okPayload,
		`{"sub":"alice","exp":1900000000,"nbf":1800000000,"iat":1800000000,"iss":"https://idp","aud":["x","okera"]}`,
		`{"sub":"alice","exp":"1900000000"}`,
		`{"sub":"alice","exp":1e400}`,
		`{"sub":"alice","exp":-1}`,
		`{"sub":"alice","exp":-0.0}`,
		`{"sub":"alice","exp":253402300799.99999999}`,
		`{"sub":"alice","exp":253402300800}`,
		`{"sub":"alice","exp":9223372036854775808}`,
		`{"sub":"alice","exp":1.8e9,"nbf":1.7999999999e9}`,
		`{"sub":"alice","exp":null}`,
		`{"sub":"alice","exp":[1900000000]}`,
		`{"sub":"alice","nbf":{"n":1}}`,
		`{"sub":"alice","iat":true}`,
		`{"sub":" \t "}`,
		`{"sub":"\u0000"}`,
		`{"sub":"alice\r\nX-Okera-User: root"}`,
		`{"sub":"al\u0085ice"}`,
		`{"sub":"alice "}`,
		`{"sub":" alice"}`,
		`{"sub":"\u00a0alice"}`,
		`{"sub":"alice\u3000"}`,
		`{"sub":42}`,
		`{"sub":["alice"]}`,
		`{"sub":{"name":"alice"}}`,
		`{"sub":null}`,
		`{"sub":"alice","aud":[1,"okera"]}`,
		`{"sub":"alice","aud":{"okera":true}}`,
		`{"sub":"alice","iss":7}`,
		`{}`,
	} {
		f.Add([]byte(p), int64(1850000000), uint16(30), uint8(0))
		f.Add([]byte(p), int64(0), uint16(0), uint8(0xff))
	}
	f.Fuzz(func(t *testing.T, payload []byte, nowSec int64, leewaySec uint16, flags uint8) {
		claims, err := strictjson.DecodeObject(payload)
		if err != nil {
			// Shapes the strict decoder refuses never reach the policy; a
			// lenient decode still exercises the checks on odd values.
			dec := json.NewDecoder(bytes.NewReader(payload))
			dec.UseNumber()
			if dec.Decode(&claims) != nil || claims == nil {
				return
			}
		}
		nowSec = min(max(nowSec, -1), maxNumericDate+1)
		now := time.Unix(nowSec, int64(leewaySec)*997%1e9)
		p := ClaimPolicy{Leeway: time.Duration(leewaySec) * time.Second, RequireExp: flags&1 != 0}
		if flags&2 != 0 {
			p.Issuers = []string{"https://idp", "iss2"}
		}
		if flags&4 != 0 {
			p.Audiences = []string{"okera", "aud2"}
		}

		if err := p.Check(claims, now); err != nil {
			wantError(t, err, ReasonInvalidClaim, ReasonExpired, ReasonNotYetValid, ReasonMissingExp, ReasonIssuer, ReasonAudience)
		} else {
			checkPassed(t, p, claims, now)
		}

		sub, err := Subject(claims)
		if err != nil {
			wantError(t, err, ReasonMissingSub, ReasonInvalidClaim)
			return
		}
		if raw, ok := claims["sub"].(string); !ok || raw != sub {
			t.Fatalf("Subject = %q, claim is %#v", sub, claims["sub"])
		}
		if strings.TrimSpace(sub) == "" || !utf8.ValidString(sub) || strings.IndexFunc(sub, unicode.IsControl) >= 0 {
			t.Fatalf("Subject accepted %q", sub)
		}
		// Surrounding whitespace would be lost in the user header (RFC
		// 9110 §5.5) and ignored by LDAP: " alice" would act as alice.
		if strings.TrimFunc(sub, unicode.IsSpace) != sub {
			t.Fatalf("Subject accepted %q, which has surrounding whitespace", sub)
		}
		// The C0 and C1 ranges and DEL, spelled out rather than taken from
		// the unicode package the product uses.
		for _, r := range sub {
			if r < 0x20 || (0x7f <= r && r < 0xa0) {
				t.Fatalf("Subject accepted the control character %U", r)
			}
		}
	})
}

func wantError(t *testing.T, err error, reasons ...string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Unavailable || !slices.Contains(reasons, e.Reason) {
		t.Fatalf("error %#v, want an *Error with one of %v", err, reasons)
	}
}

// Exact bounds of a NumericDate, as big floats.
var (
	bigMinDate = new(big.Float).SetInt64(minNumericDate)
	bigEndDate = new(big.Float).SetInt64(maxNumericDate + 1) // exclusive
)

// checkPassed verifies, with exact arithmetic, that a claim set Check let
// through meets every rule.
func checkPassed(t *testing.T, p ClaimPolicy, claims map[string]any, now time.Time) {
	t.Helper()
	dates := map[string]*big.Float{}
	for _, name := range []string{"exp", "nbf", "iat"} {
		v, present := claims[name]
		if !present {
			continue
		}
		n, ok := v.(json.Number)
		if !ok {
			t.Fatalf("accepted %s of type %T", name, v)
		}
		x, _, err := big.ParseFloat(string(n), 10, 200, big.ToNearestEven)
		if err != nil {
			t.Fatalf("accepted %s = %s, which is not a number: %v", name, n, err)
		}
		if x.Cmp(bigMinDate) < 0 || x.Cmp(bigEndDate) >= 0 {
			t.Fatalf("accepted %s = %s, outside 1970..9999", name, n)
		}
		dates[name] = x
	}
	// now, exactly, in seconds; the product reads dates through float64,
	// which may move a fraction by well under a microsecond.
	nowF := new(big.Float).SetPrec(200).SetInt64(now.Unix())
	nowF.Add(nowF, new(big.Float).SetPrec(200).Quo(big.NewFloat(float64(now.Nanosecond())), big.NewFloat(1e9)))
	leeway := new(big.Float).SetPrec(200).SetFloat64(p.Leeway.Seconds())
	tolerance := big.NewFloat(1e-6)
	if exp, ok := dates["exp"]; ok {
		limit := new(big.Float).SetPrec(200).Add(exp, leeway)
		limit.Add(limit, tolerance)
		if nowF.Cmp(limit) >= 0 {
			t.Fatalf("accepted exp %s at now %s with leeway %s", claims["exp"], nowF.Text('f', 9), p.Leeway)
		}
	} else if p.RequireExp {
		t.Fatal("accepted a token without exp under require_exp")
	}
	if nbf, ok := dates["nbf"]; ok {
		limit := new(big.Float).SetPrec(200).Sub(nbf, leeway)
		limit.Sub(limit, tolerance)
		if nowF.Cmp(limit) < 0 {
			t.Fatalf("accepted nbf %s at now %s with leeway %s", claims["nbf"], nowF.Text('f', 9), p.Leeway)
		}
	}
	if len(p.Issuers) > 0 {
		iss, ok := claims["iss"].(string)
		if !ok || !slices.Contains(p.Issuers, iss) {
			t.Fatalf("accepted iss %#v", claims["iss"])
		}
	}
	if len(p.Audiences) > 0 {
		found := false
		switch aud := claims["aud"].(type) {
		case string:
			found = slices.Contains(p.Audiences, aud)
		case []any:
			for _, a := range aud {
				s, ok := a.(string)
				if !ok {
					t.Fatalf("accepted an aud list holding %#v", a)
				}
				found = found || slices.Contains(p.Audiences, s)
			}
		}
		if !found {
			t.Fatalf("accepted aud %#v", claims["aud"])
		}
	}
}
