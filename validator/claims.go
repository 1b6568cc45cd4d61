package validator

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/okeragate/caddy-okera-auth/internal/strictjson"
)

// ClaimPolicy holds the claim checks of README "Validation" that apply whoever
// validated the token. For a remotely validated token they run on the token's
// own payload, and can only refuse.
type ClaimPolicy struct {
	// Leeway is the clock skew allowed on exp and nbf.
	Leeway time.Duration
	// RequireExp refuses tokens without exp (reason missing_exp).
	RequireExp bool
	// Issuers, when non-empty, is the allow-list for iss (a string).
	Issuers []string
	// Audiences, when non-empty, is the allow-list for aud (a string or a
	// list of strings): one of the token's audiences must be in it.
	Audiences []string
	// RefusedAudiences are audiences no caller's token may carry: the
	// gateway's own minted upstream tokens (minted_audience). Any one of
	// them in aud refuses the token (reason gateway_token), so a data
	// service that received a minted token cannot present it back to the
	// gateway as its user (README "Security notes").
	RefusedAudiences []string
}

// NumericDate bounds: 1970-01-01T00:00:00Z to 9999-12-31T23:59:59Z. Anything
// outside is a rejection, so no time arithmetic can overflow later.
const (
	minNumericDate = 0
	maxNumericDate = 253402300799
)

// timeClaims are a token's exp and nbf after type and range checks; they are
// kept with cached identities so every cache hit re-checks them.
type timeClaims struct {
	exp, nbf       time.Time
	hasExp, hasNbf bool
}

// Check applies the policy to a claim set at now: the types and ranges of exp,
// nbf and iat, exp and nbf with leeway, require_exp, issuer and audience. It
// does not look at sub (see Subject). The error is an *Error.
func (p *ClaimPolicy) Check(claims map[string]any, now time.Time) error {
	if _, err := p.check(claims, now); err != nil {
		return err
	}
	return nil
}

func (p *ClaimPolicy) check(claims map[string]any, now time.Time) (timeClaims, *Error) {
	tc, err := readTimeClaims(claims)
	if err != nil {
		return tc, err
	}
	if err := p.checkTimes(tc, now); err != nil {
		return tc, err
	}
	if err := p.checkIssuer(claims); err != nil {
		return tc, err
	}
	if err := p.checkAudience(claims); err != nil {
		return tc, err
	}
	if err := p.checkRefusedAudience(claims); err != nil {
		return tc, err
	}
	return tc, nil
}

func readTimeClaims(claims map[string]any) (timeClaims, *Error) {
	var tc timeClaims
	var err *Error
	if tc.exp, tc.hasExp, err = numericDate(claims, "exp"); err != nil {
		return tc, err
	}
	if tc.nbf, tc.hasNbf, err = numericDate(claims, "nbf"); err != nil {
		return tc, err
	}
	if _, _, err = numericDate(claims, "iat"); err != nil {
		return tc, err
	}
	return tc, nil
}

// checkTimes follows RFC 7519: the token is valid while now < exp and from
// nbf on, each widened by the leeway. It allocates nothing on success: it
// runs on every cache hit.
func (p *ClaimPolicy) checkTimes(tc timeClaims, now time.Time) *Error {
	if tc.hasExp {
		if !now.Before(tc.exp.Add(p.Leeway)) {
			return reject(ReasonExpired, fmt.Errorf("expired at %s", tc.exp.UTC().Format(time.RFC3339)))
		}
	} else if p.RequireExp {
		return reject(ReasonMissingExp, errors.New("no exp claim, and exp is required"))
	}
	if tc.hasNbf && now.Before(tc.nbf.Add(-p.Leeway)) {
		return reject(ReasonNotYetValid, fmt.Errorf("not valid before %s", tc.nbf.UTC().Format(time.RFC3339)))
	}
	return nil
}

func (p *ClaimPolicy) checkIssuer(claims map[string]any) *Error {
	if len(p.Issuers) == 0 {
		return nil
	}
	v, present := claims["iss"]
	if !present {
		return reject(ReasonIssuer, errors.New("no iss claim"))
	}
	iss, ok := v.(string)
	if !ok {
		return reject(ReasonInvalidClaim, fmt.Errorf("iss is %s, want a string", strictjson.Kind(v)))
	}
	if !slices.Contains(p.Issuers, iss) {
		return reject(ReasonIssuer, fmt.Errorf("issuer %s is not allowed", strictjson.Excerpt(iss)))
	}
	return nil
}

func (p *ClaimPolicy) checkAudience(claims map[string]any) *Error {
	if len(p.Audiences) == 0 {
		return nil
	}
	v, present := claims["aud"]
	if !present {
		return reject(ReasonAudience, errors.New("no aud claim"))
	}
	switch aud := v.(type) {
	case string:
		if slices.Contains(p.Audiences, aud) {
			return nil
		}
	case []any:
		// Check every element's type first: a malformed list is refused even
		// when an allowed audience appears in it.
		for _, item := range aud {
			if _, ok := item.(string); !ok {
				return reject(ReasonInvalidClaim, fmt.Errorf("aud holds %s, want strings only", strictjson.Kind(item)))
			}
		}
		for _, item := range aud {
			if slices.Contains(p.Audiences, item.(string)) {
				return nil
			}
		}
	default:
		return reject(ReasonInvalidClaim, fmt.Errorf("aud is %s, want a string or a list of strings", strictjson.Kind(v)))
	}
	return reject(ReasonAudience, errors.New("no allowed audience in aud"))
}

func (p *ClaimPolicy) checkRefusedAudience(claims map[string]any) *Error {
	if len(p.RefusedAudiences) == 0 {
		return nil
	}
	refused := func(aud string) *Error {
		if slices.Contains(p.RefusedAudiences, aud) {
			return reject(ReasonGatewayToken, fmt.Errorf("aud %q marks a token the gateway minted for an upstream", aud))
		}
		return nil
	}
	switch aud := claims["aud"].(type) {
	case string:
		return refused(aud)
	case []any:
		for _, item := range aud {
			s, ok := item.(string)
			if !ok {
				return reject(ReasonInvalidClaim, fmt.Errorf("aud holds %s, want strings only", strictjson.Kind(item)))
			}
			if err := refused(s); err != nil {
				return err
			}
		}
	case nil:
	default:
		return reject(ReasonInvalidClaim, fmt.Errorf("aud is %s, want a string or a list of strings", strictjson.Kind(aud)))
	}
	return nil
}

// numericDate reads a NumericDate claim: a JSON number of seconds since the
// epoch, fractions allowed, within 1970..9999. A numeric string, a boolean,
// a negative or a huge value (1e400 included) is an invalid_claim, never an
// overflow.
func numericDate(claims map[string]any, name string) (time.Time, bool, *Error) {
	v, present := claims[name]
	if !present {
		return time.Time{}, false, nil
	}
	n, ok := v.(json.Number)
	if !ok {
		return time.Time{}, true, reject(ReasonInvalidClaim, fmt.Errorf("%s is %s, want a number", name, strictjson.Kind(v)))
	}
	s := string(n)
	if !strings.ContainsAny(s, ".eE") {
		sec, err := strconv.ParseInt(s, 10, 64)
		if err != nil || sec < minNumericDate || sec > maxNumericDate {
			return time.Time{}, true, dateOutOfRange(name)
		}
		return time.Unix(sec, 0), true, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || f < minNumericDate || f >= maxNumericDate+1 {
		return time.Time{}, true, dateOutOfRange(name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, nil
}

func dateOutOfRange(name string) *Error {
	return reject(ReasonInvalidClaim, fmt.Errorf("%s is out of range (want seconds from 1970 to 9999)", name))
}

// Subject returns the sub claim if it satisfies README "Validation": a non-empty,
// non-blank string of valid UTF-8 without control characters (the user
// becomes a header value and a log field, where a control character could
// forge either) and without leading or trailing whitespace (which the
// header would lose). Absent, null, empty or blank is missing_sub; another
// type, a control character or surrounding whitespace is invalid_claim. The
// error is an *Error.
func Subject(claims map[string]any) (string, error) {
	sub, err := subject(claims)
	if err != nil {
		return "", err
	}
	return sub, nil
}

func subject(claims map[string]any) (string, *Error) {
	v, present := claims["sub"]
	if !present || v == nil {
		return "", reject(ReasonMissingSub, errors.New("no sub claim"))
	}
	sub, ok := v.(string)
	if !ok {
		return "", reject(ReasonInvalidClaim, fmt.Errorf("sub is %s, want a string", strictjson.Kind(v)))
	}
	if strings.TrimFunc(sub, unicode.IsSpace) == "" {
		return "", reject(ReasonMissingSub, errors.New("sub is empty or blank"))
	}
	if !utf8.ValidString(sub) {
		return "", reject(ReasonInvalidClaim, errors.New("sub is not valid UTF-8"))
	}
	if strings.IndexFunc(sub, unicode.IsControl) >= 0 {
		return "", reject(ReasonInvalidClaim, errors.New("sub contains a control character"))
	}
	// A header value has no leading or trailing whitespace (RFC 9110 5.5):
	// net/http trims it on the way upstream, and LDAP's string preparation
	// ignores it, so " alice" would act as alice with alice's groups.
	if strings.TrimFunc(sub, unicode.IsSpace) != sub {
		return "", reject(ReasonInvalidClaim, errors.New("sub has leading or trailing whitespace"))
	}
	// An upstream that reads X-Okera-User as a list (RFC 9110 lets any
	// field be one) would see "alice,admin" as two users. Directory names
	// (uid, sAMAccountName, UPN) hold no comma, so it is refused.
	if strings.ContainsRune(sub, ',') {
		return "", reject(ReasonInvalidClaim, errors.New("sub contains a comma"))
	}
	return sub, nil
}
