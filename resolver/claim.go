package resolver

import (
	"context"
	"fmt"
)

// ClaimResolver reads groups from a claim of the validated token (or of the
// remote endpoint's answer).
type ClaimResolver struct {
	// Claim is the claim's name; Okera's default is "groups".
	Claim string
}

// Name implements Resolver.
func (r *ClaimResolver) Name() string { return SourceClaim }

// Resolve implements Resolver. Absent, null or an empty list is no answer; a
// list of strings is the answer; anything else is ErrMalformedClaim.
func (r *ClaimResolver) Resolve(_ context.Context, req Request) ([]string, error) {
	v, ok := req.Claims[r.Claim]
	if !ok || v == nil {
		return nil, nil
	}
	switch list := v.(type) {
	case []string:
		return list, nil
	case []any:
		out := make([]string, 0, len(list))
		for i, item := range list {
			s, ok := item.(string)
			if !ok {
				return nil, fmt.Errorf("%w: claim %q item %d is %T, not a string", ErrMalformedClaim, r.Claim, i, item)
			}
			out = append(out, s)
		}
		return out, nil
	default:
		return nil, fmt.Errorf("%w: claim %q is %T, not a list of strings", ErrMalformedClaim, r.Claim, v)
	}
}

var _ Resolver = (*ClaimResolver)(nil)
