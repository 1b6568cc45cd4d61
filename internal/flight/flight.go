// Package flight shares one call to a dependency (the remote validation
// endpoint, the LDAP server, the group endpoint) among every request that
// needs the same answer at the same time, and cancels that call as soon as
// no request is waiting for it any more.
//
// Two attacks shaped it (ARCHITECTURE.md "Departed callers"): a caller that
// goes away must never decide the outcome for anyone (its departure is not
// the dependency being unavailable), and callers that go away must not
// leave calls running, or a client that opens and abandons requests in a
// loop would exhaust the dependency and then every other caller's answer.
package flight

import (
	"context"
	"errors"
	"sync"
)

// ErrLimit is returned, at once, by Do when starting a call would exceed
// Group.MaxInFlight. The caller treats it as the dependency being
// unavailable: waiting for a slot would let a flood of distinct keys hold
// every request for the dependency's timeout.
var ErrLimit = errors.New("too many calls in flight")

// Group runs at most one call per key at a time. The zero value is ready
// to use and has no limit.
type Group[V any] struct {
	// MaxInFlight bounds the calls running at once (not the callers: any
	// number may wait on a running call); 0 means no bound.
	MaxInFlight int

	mu      sync.Mutex
	calls   map[string]*call[V]
	running int
}

type call[V any] struct {
	done    chan struct{}
	val     V
	err     error
	waiters int
	cancel  context.CancelFunc
}

// Do returns the result of fn for key, running fn only when no call for
// key is under way, otherwise waiting for the running one.
//
// fn runs in its own goroutine on a context that keeps ctx's values but
// not its cancellation (one impatient caller must not fail the others);
// that context is cancelled when the last waiting caller has gone, so fn
// must honour it and bound its own work (a timeout).
//
// When ctx ends before the answer, Do returns ctx.Err() at once. Callers
// must treat that as "the caller went away", never as fn's failure: check
// ctx.Err() before acting on any error from Do.
func (g *Group[V]) Do(ctx context.Context, key string, fn func(context.Context) (V, error)) (V, error) {
	var zero V
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	g.mu.Lock()
	c, ok := g.calls[key]
	if !ok {
		if g.MaxInFlight > 0 && g.running >= g.MaxInFlight {
			g.mu.Unlock()
			return zero, ErrLimit
		}
		callCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &call[V]{done: make(chan struct{}), cancel: cancel}
		if g.calls == nil {
			g.calls = map[string]*call[V]{}
		}
		g.calls[key] = c
		g.running++
		go g.run(callCtx, key, c, fn)
	}
	c.waiters++
	g.mu.Unlock()

	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		g.mu.Lock()
		c.waiters--
		if c.waiters == 0 {
			// Nobody wants this answer any more: stop the work, and let
			// the next caller start afresh rather than join a call that is
			// being torn down.
			c.cancel()
			if g.calls[key] == c {
				delete(g.calls, key)
			}
		}
		g.mu.Unlock()
		return zero, ctx.Err()
	}
}

func (g *Group[V]) run(ctx context.Context, key string, c *call[V], fn func(context.Context) (V, error)) {
	defer func() {
		c.cancel()
		g.mu.Lock()
		if g.calls[key] == c {
			delete(g.calls, key)
		}
		g.running--
		g.mu.Unlock()
		close(c.done)
	}()
	c.val, c.err = fn(ctx)
}

// Running reports how many calls are under way, for tests and metrics.
func (g *Group[V]) Running() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.running
}
