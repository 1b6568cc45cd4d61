// Package resolver works out a caller's groups the way Okera does: the token's
// groups claim first, then AD/LDAP, then an HTTP group endpoint, in the order the
// operator configures. The first resolver with a non-empty answer wins; answers
// are never merged. The package knows nothing of Caddy or HTTP handlers.
package resolver

import (
	"context"
	"errors"
	"fmt"
)

// Source names which resolver produced the groups; it becomes the
// {http.auth.okera.groups_source} placeholder.
const (
	SourceClaim    = "claim"
	SourceLDAP     = "ldap"
	SourceEndpoint = "endpoint"
	SourceNone     = "none"
)

// Request is what a resolver gets to work with: the validated user and the
// claims the group claim may be read from (already chosen by the validator:
// the verified payload, or the remote endpoint's answer).
type Request struct {
	User   string
	Claims map[string]any
}

// Resolver answers with the user's groups. An empty answer (nil or zero length)
// with a nil error means "no answer": the chain tries the next resolver.
type Resolver interface {
	// Name is the resolver's source name (claim, ldap, endpoint).
	Name() string
	Resolve(ctx context.Context, req Request) ([]string, error)
}

// ErrMalformedClaim marks a groups claim of the wrong type. It is the token's
// fault, not a resolver failure, so the handler answers 401 whatever
// on_resolver_error says.
var ErrMalformedClaim = errors.New("groups claim is malformed")

// Groups is the chain's answer.
type Groups struct {
	// Names are normalised: trimmed, lower-cased, de-duplicated in first-seen order.
	Names []string
	// Source is the resolver that answered, or SourceNone.
	Source string
	// Dropped holds names removed by normalisation (a comma or a control character),
	// so the caller can log them.
	Dropped []string
}

// ErrorFunc is told about a resolver error that the chain stepped over
// because the policy is to continue.
type ErrorFunc func(source string, err error)

// Chain runs resolvers in order.
type Chain struct {
	Resolvers []Resolver
	// ContinueOnError selects on_resolver_error continue: a failing resolver is
	// reported through OnError and the next one is tried. Otherwise (deny) the
	// first error before a non-empty answer ends the resolution with that error.
	ContinueOnError bool
	OnError         ErrorFunc
	// Observe, when not nil, is told each resolver's result: ResultGroups,
	// ResultEmpty or ResultError (for metrics).
	Observe func(source, result string)
}

// Results reported to Chain.Observe.
const (
	ResultGroups = "groups" // a non-empty answer
	ResultEmpty  = "empty"  // no answer; the next resolver is asked
	ResultError  = "error"
)

// ResolverError wraps a resolver failure with the resolver's name.
type ResolverError struct {
	Source string
	Err    error
}

func (e *ResolverError) Error() string { return fmt.Sprintf("%s group resolver: %v", e.Source, e.Err) }
func (e *ResolverError) Unwrap() error { return e.Err }

// ErrCallerGone is returned by Chain.Resolve when the request's context
// ended before the groups were known. It is no decision, never a resolver
// failure: with on_resolver_error continue, a client that half-closes its
// connection must not skip a directory that would have put it in analysts
// and land on its own token's groups claim (README "Security notes").
var ErrCallerGone = errors.New("the caller went away before its groups were resolved")

// Resolve asks each resolver in turn and returns the first non-empty answer
// after normalisation. A malformed groups claim always ends the resolution,
// and so does the caller's departure (ErrCallerGone).
func (c *Chain) Resolve(ctx context.Context, req Request) (Groups, error) {
	for _, r := range c.Resolvers {
		names, err := r.Resolve(ctx, req)
		if err != nil && ctx.Err() != nil {
			return Groups{Source: SourceNone}, fmt.Errorf("%w: %w", ErrCallerGone, ctx.Err())
		}
		if err != nil {
			c.observe(r.Name(), ResultError)
			if errors.Is(err, ErrMalformedClaim) || !c.ContinueOnError {
				return Groups{Source: SourceNone}, &ResolverError{Source: r.Name(), Err: err}
			}
			if c.OnError != nil {
				c.OnError(r.Name(), err)
			}
			continue
		}
		kept, dropped := Normalize(names)
		if len(kept) > 0 {
			c.observe(r.Name(), ResultGroups)
			return Groups{Names: kept, Source: r.Name(), Dropped: dropped}, nil
		}
		c.observe(r.Name(), ResultEmpty)
	}
	return Groups{Names: []string{}, Source: SourceNone}, nil
}

func (c *Chain) observe(source, result string) {
	if c.Observe != nil {
		c.Observe(source, result)
	}
}
