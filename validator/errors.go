package validator

// Reasons: the short words an *Error carries, for logs and the
// {http.auth.okera.error} placeholder. They are stable; dashboards may match
// on them.
const (
	// ReasonMalformed: the token is not a strict JWS compact serialization
	// (README "Validation"), or its header asks for something we refuse (crit,
	// b64, nested token, JWE).
	ReasonMalformed = "malformed"
	// ReasonExpired: now >= exp + leeway.
	ReasonExpired = "expired"
	// ReasonNotYetValid: now < nbf - leeway.
	ReasonNotYetValid = "not_yet_valid"
	// ReasonMissingExp: no exp while require_exp is set.
	ReasonMissingExp = "missing_exp"
	// ReasonBadSignature: keys for the token's algorithm were tried and none
	// verified it, or the header alg is one keys never use (none, HS*, ES*,
	// PS*, ...).
	ReasonBadSignature = "bad_signature"
	// ReasonNoMatchingKey: the header alg is RS256 or RS512 but no configured
	// key uses it (or, for JWKS, no key has the token's kid).
	ReasonNoMatchingKey = "no_matching_key"
	// ReasonInvalidClaim: a claim we act on has the wrong type or range
	// (exp/nbf/iat not a number within 1970..9999, sub not a string or
	// holding control characters, iss/aud of the wrong type when enforced).
	ReasonInvalidClaim = "invalid_claim"
	// ReasonMissingSub: sub absent, null, empty or blank.
	ReasonMissingSub = "missing_sub"
	// ReasonIssuer: iss absent or not in the issuer allow-list.
	ReasonIssuer = "issuer"
	// ReasonAudience: no aud value in the audience allow-list.
	ReasonAudience = "audience"
	// ReasonRemoteRejected: the remote endpoint rejected the token and is
	// authoritative, or it rejected it and no key validator is configured.
	ReasonRemoteRejected = "remote_rejected"
	// ReasonUnavailable: a validator could not answer (remote endpoint down,
	// timed out, answered 5xx/3xx/garbage) and no other one validated.
	ReasonUnavailable = "unavailable"
	// ReasonGatewayToken: a credential the gateway itself hands out (the
	// system token, or a token it minted for an upstream) was presented
	// by a caller. Upstreams hold these; accepting them back would make
	// one compromised data service an admin at every other.
	ReasonGatewayToken = "gateway_token"
	// ReasonCallerGone: the caller went away (closed or half-closed its
	// connection, reset its stream) before a validator answered. It is no
	// decision: neither the token's fault nor the infrastructure's, and it
	// never lets the chain fall through to another validator.
	ReasonCallerGone = "caller_gone"
)

// Error is every validation failure Chain.Validate returns. Reason is one of
// the Reason* constants. Unavailable is set (with Reason "unavailable") when
// the failure is the infrastructure's, not the token's: the handler answers
// 503 then, 401 otherwise. Err holds the detail for logs; neither it nor
// Error() ever contains the token.
type Error struct {
	Reason      string
	Unavailable bool
	// CallerGone is set (with Reason "caller_gone") when the request's
	// context ended before a decision: the handler forwards nothing and
	// counts it as neither a rejection nor an outage.
	CallerGone bool
	Err        error
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err == nil {
		return "token " + e.Reason
	}
	return "token " + e.Reason + ": " + e.Err.Error()
}

// Unwrap returns the underlying detail.
func (e *Error) Unwrap() error { return e.Err }

// reject builds a token rejection (401).
func reject(reason string, err error) *Error {
	return &Error{Reason: reason, Err: err}
}

// unavailable builds an infrastructure failure (503).
func unavailable(err error) *Error {
	return &Error{Reason: ReasonUnavailable, Unavailable: true, Err: err}
}

// callerGone builds the no-decision answer for a caller that went away.
func callerGone(err error) *Error {
	return &Error{Reason: ReasonCallerGone, CallerGone: true, Err: err}
}
