package resolver

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
	"go.uber.org/zap"
)

// errLDAPClosed is what a closed LDAPResolver answers.
var errLDAPClosed = errors.New("ldap resolver is closed")

// ldapDialer opens connections bound as the service account.
type ldapDialer struct {
	addr         string
	ldaps        bool
	startTLS     bool
	tlsConfig    *tls.Config // nil for plain LDAP
	bindDN       string
	bindPassword string
	timeout      time.Duration
}

// ldapConn is a bound connection together with the socket under it. The
// socket is dialled here rather than by ldap.DialURL because go-ldap offers
// no deadline for a TLS handshake (StartTLS's in particular) and no way to
// interrupt a blocked operation; deadlines on the socket bound every step.
type ldapConn struct {
	conn    *ldap.Conn
	raw     net.Conn
	timeout time.Duration
	// broken marks a connection that failed below LDAP (network, timeout,
	// protocol); it is closed, never pooled again.
	broken bool
}

// dial connects, secures and binds, each step within the timeout. When TLS
// is configured and the handshake fails, the connection is closed: there is
// no fall-back to plain LDAP, which would hand the bind password to whoever
// broke the handshake.
func (d ldapDialer) dial(ctx context.Context) (*ldapConn, error) {
	nd := net.Dialer{Timeout: d.timeout}
	raw, err := nd.DialContext(ctx, "tcp", d.addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", d.addr, err)
	}
	c := &ldapConn{raw: raw, timeout: d.timeout}
	var nc net.Conn = raw
	if d.ldaps {
		tc := tls.Client(raw, d.tlsConfig)
		if err := c.step(ctx, func() error { return tc.HandshakeContext(ctx) }); err != nil {
			_ = raw.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", d.addr, err)
		}
		nc = tc
	}
	c.conn = ldap.NewConn(nc, d.ldaps)
	c.conn.Start()
	c.conn.SetTimeout(d.timeout)
	if d.startTLS {
		if err := c.step(ctx, func() error { return c.conn.StartTLS(d.tlsConfig) }); err != nil {
			c.close()
			return nil, fmt.Errorf("StartTLS with %s: %w", d.addr, err)
		}
	}
	if err := c.step(ctx, func() error { return c.conn.Bind(d.bindDN, d.bindPassword) }); err != nil {
		c.close()
		return nil, fmt.Errorf("binding as %q on %s: %w", d.bindDN, d.addr, err)
	}
	return c, nil
}

// aLongTimeAgo is a deadline that has passed: setting it makes a blocked
// read or write return at once.
var aLongTimeAgo = time.Unix(1, 0)

// step runs one operation with the socket's deadline at the timeout (or
// ctx's deadline if sooner), and interrupts it when ctx is cancelled. A
// failure the server did not answer with an LDAP result marks the
// connection broken.
func (c *ldapConn) step(ctx context.Context, op func() error) error {
	deadline := time.Now().Add(c.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = c.raw.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.raw.SetDeadline(aLongTimeAgo) })
	err := op()
	if !stop() && ctx.Err() != nil {
		// The interruption may land after op returned; the socket is spent.
		c.broken = true
	}
	if err == nil || answeredByServer(err) {
		if !c.broken {
			_ = c.raw.SetDeadline(time.Time{})
		}
		return err
	}
	c.broken = true
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	case !time.Now().Before(deadline):
		return fmt.Errorf("timed out after %s: %w", c.timeout, context.DeadlineExceeded)
	}
	return err
}

// answeredByServer tells an LDAP result from the server (the connection is
// fine) from a failure of the connection itself. go-ldap numbers its own
// failures from ErrorNetwork up; stopping to read at the size limit leaves
// the connection usable.
func answeredByServer(err error) bool {
	if errors.Is(err, ldap.ErrSizeLimitExceeded) {
		return true
	}
	var le *ldap.Error
	return errors.As(err, &le) && le.ResultCode < ldap.ErrorNetwork
}

func (c *ldapConn) search(ctx context.Context, req *ldap.SearchRequest) (*ldap.SearchResult, error) {
	var res *ldap.SearchResult
	err := c.step(ctx, func() error {
		var err error
		res, err = c.conn.Search(req)
		return err
	})
	return res, err
}

func (c *ldapConn) close() {
	// Closing a TLS connection writes an alert; a stalled peer must not hold it up.
	_ = c.raw.SetDeadline(time.Now().Add(min(c.timeout, time.Second)))
	_ = c.conn.Close()
}

// ldapPool hands out bound connections. slots caps how many are open at
// once (so a burst of distinct users cannot open hundreds of connections to
// the directory); idle keeps the ones not in use.
type ldapPool struct {
	dialer ldapDialer
	logger *zap.Logger
	slots  chan struct{}
	idle   chan *ldapConn

	mu     sync.Mutex
	closed bool
}

func newLDAPPool(d ldapDialer, size int, logger *zap.Logger) *ldapPool {
	return &ldapPool{
		dialer: d,
		logger: logger,
		slots:  make(chan struct{}, size),
		idle:   make(chan *ldapConn, size),
	}
}

func (p *ldapPool) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// acquire waits, up to the timeout, for the right to hold a connection.
func (p *ldapPool) acquire(ctx context.Context) error {
	select {
	case p.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(p.dialer.timeout)
	defer t.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("all %d connections to %s stayed busy for %s: %w", cap(p.slots), p.dialer.addr, p.dialer.timeout, context.DeadlineExceeded)
	}
}

// idleConn takes a pooled connection, skipping those already seen closed
// by the server.
func (p *ldapPool) idleConn() *ldapConn {
	for {
		select {
		case c := <-p.idle:
			if c.conn.IsClosing() {
				c.close()
				continue
			}
			return c
		default:
			return nil
		}
	}
}

// release gives back the slot, and c (if any) to the pool when it is fit
// for another use.
func (p *ldapPool) release(c *ldapConn) {
	defer func() { <-p.slots }()
	if c == nil {
		return
	}
	p.mu.Lock()
	keep := !p.closed && !c.broken && !c.conn.IsClosing()
	if keep {
		select {
		case p.idle <- c:
		default:
			keep = false
		}
	}
	p.mu.Unlock()
	if !keep {
		c.close()
	}
}

// do runs fn on a bound connection: a pooled one if there is one, else a
// new one.
func (p *ldapPool) do(ctx context.Context, fn func(*ldapConn) error) error {
	if p.isClosed() {
		return errLDAPClosed
	}
	if err := p.acquire(ctx); err != nil {
		return err
	}
	var c *ldapConn
	defer func() { p.release(c) }()

	c = p.idleConn()
	reused := c != nil
	if !reused {
		var err error
		if c, err = p.dialer.dial(ctx); err != nil {
			return err
		}
	}
	err := fn(c)
	if err == nil || !c.broken || !reused || ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	// A pooled connection that the server closed while it sat idle (a
	// restart, Active Directory's idle timeout, a firewall) fails on first
	// use. That says nothing about the server now, so try once more on a
	// fresh connection. A timeout is not retried: the caller has waited
	// long enough.
	if ce := p.logger.Check(zap.DebugLevel, "pooled LDAP connection failed; retrying on a new one"); ce != nil {
		ce.Write(zap.String("server", p.dialer.addr), zap.Error(err))
	}
	c.close()
	if c, err = p.dialer.dial(ctx); err != nil {
		return err
	}
	return fn(c)
}

// ping opens one connection and pools it.
func (p *ldapPool) ping(ctx context.Context) error {
	if p.isClosed() {
		return errLDAPClosed
	}
	if err := p.acquire(ctx); err != nil {
		return err
	}
	c, err := p.dialer.dial(ctx)
	p.release(c)
	return err
}

// close closes the idle connections; those in use are closed on release.
func (p *ldapPool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	for {
		select {
		case c := <-p.idle:
			c.close()
		default:
			return
		}
	}
}
