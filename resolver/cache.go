package resolver

import (
	"context"
	"time"

	"github.com/maypok86/otter/v2"

	"github.com/okeragate/caddy-okera-auth/internal/flight"
)

// answerCache keeps a resolver's answers per user for a fixed time and makes
// concurrent lookups of one user share a single query: a burst of requests
// from one user (a dashboard opening fifty connections) costs the directory
// one search, not fifty. Answers are cached whatever they are, "no answer"
// included; errors never are, so a directory that recovers is used at once.
type answerCache[V any] struct {
	entries *otter.Cache[string, V] // nil when caching is off
	flights flight.Group[V]
	observe func(hit bool) // nil: nobody is counting
}

// newAnswerCache holds up to size answers for ttl each; a ttl of zero turns
// caching off but keeps the sharing of concurrent lookups.
// observe, when not nil, is told of every lookup while caching is on.
func newAnswerCache[V any](ttl time.Duration, size int, observe func(hit bool)) *answerCache[V] {
	c := &answerCache[V]{}
	if ttl > 0 {
		c.observe = observe
	}
	if ttl > 0 {
		c.entries = otter.Must(&otter.Options[string, V]{
			MaximumSize:      size,
			ExpiryCalculator: otter.ExpiryWriting[string, V](ttl),
		})
	}
	return c
}

// get answers from the cache or, on a miss, from load, which runs once for
// all the callers waiting on the same key (internal/flight). load gets a
// context that keeps ctx's values but not one caller's cancellation, and is
// cancelled when no caller waits any more; it must bound its own work (the
// resolvers' timeouts do). A caller whose own ctx ends gets ctx.Err() at
// once: Chain.Resolve reads that as the caller's departure, never as the
// resolver failing.
func (c *answerCache[V]) get(ctx context.Context, key string, load func(context.Context) (V, error)) (V, error) {
	if c.entries != nil {
		v, ok := c.entries.GetIfPresent(key)
		if c.observe != nil {
			c.observe(ok)
		}
		if ok {
			return v, nil
		}
	}
	return c.flights.Do(ctx, key, func(ctx context.Context) (V, error) {
		// A flight that ended between our miss and this one has stored its answer.
		if c.entries != nil {
			if v, ok := c.entries.GetIfPresent(key); ok {
				return v, nil
			}
		}
		v, err := load(ctx)
		if err == nil && c.entries != nil {
			c.entries.Set(key, v)
		}
		return v, err
	})
}

// close drops every answer and stops the cache's clean-up goroutine, so a
// config reload leaves no goroutine behind.
func (c *answerCache[V]) close() {
	if c.entries != nil {
		c.entries.InvalidateAll()
		c.entries.StopAllGoroutines()
	}
}
