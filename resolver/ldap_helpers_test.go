package resolver_test

import (
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/okeragate/caddy-okera-auth/internal/slapdtest"
	"github.com/okeragate/caddy-okera-auth/resolver"
)

// ldapConfig is a configuration for s with the package defaults, no cache
// and a test-sized timeout.
func ldapConfig(s *slapdtest.Server) resolver.LDAPConfig {
	return resolver.LDAPConfig{
		URL:          s.URL,
		BindDN:       s.BindDN,
		BindPassword: s.BindPassword,
		BaseDN:       s.BaseDN,
		Timeout:      2 * time.Second,
	}
}

func newLDAP(t *testing.T, cfg resolver.LDAPConfig) *resolver.LDAPResolver {
	t.Helper()
	return newLDAPWithLogger(t, cfg, zaptest.NewLogger(t))
}

func newLDAPWithLogger(t *testing.T, cfg resolver.LDAPConfig, logger *zap.Logger) *resolver.LDAPResolver {
	t.Helper()
	r, err := resolver.NewLDAPResolver(cfg, logger)
	if err != nil {
		t.Fatalf("NewLDAPResolver: %v", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// sorted compares group lists whatever order the directory answers in.
func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// manyGroups is carol's groups in sorted order.
func manyGroups() []string {
	var g []string
	for i := range slapdtest.ManyGroups {
		g = append(g, fmt.Sprintf("Many-%02d", i))
	}
	return g
}

// waitGoroutines waits for the goroutine count to come back to at most
// want, as a reload must leave it (README "Lifecycle").
func waitGoroutines(t *testing.T, want int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= want {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines after Close, want at most %d\n%s", n, want, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// staleProxy forwards TCP to a server. After poison, every connection open
// at that moment is cut as soon as the client next sends something, as a
// connection that a server or firewall dropped while it sat idle in the
// pool looks to the client: alive until it is used.
type staleProxy struct {
	ln       net.Listener
	target   string
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []*proxiedConn
}

type proxiedConn struct {
	client, server net.Conn
	poisoned       atomic.Bool
}

func newStaleProxy(t *testing.T, target string) *staleProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &staleProxy{ln: ln, target: target}
	t.Cleanup(p.close)
	go p.serve()
	return p
}

func (p *staleProxy) addr() string { return p.ln.Addr().String() }

func (p *staleProxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.accepted.Add(1)
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		pc := &proxiedConn{client: client, server: server}
		p.mu.Lock()
		p.conns = append(p.conns, pc)
		p.mu.Unlock()
		go func() {
			_, _ = io.Copy(client, server)
			client.Close()
		}()
		go func() {
			defer server.Close()
			defer client.Close()
			buf := make([]byte, 32*1024)
			for {
				n, err := client.Read(buf)
				if n > 0 {
					if pc.poisoned.Load() {
						return
					}
					if _, werr := server.Write(buf[:n]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func (p *staleProxy) poison() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.poisoned.Store(true)
	}
}

func (p *staleProxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.client.Close()
		c.server.Close()
	}
}
