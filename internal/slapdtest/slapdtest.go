// Package slapdtest runs a real OpenLDAP slapd for tests: a throw-away
// directory on a free loopback port, loaded with a fixed fixture (see
// fixtureLDIF for the tree), optionally with TLS (ldaps:// and StartTLS) under
// a CA the harness generates. The server's "stats" log lets a test count the
// searches the server actually received.
//
// The fixture, under Suffix (users in ou=people, groups in ou=groups):
//
//	uid            DN (in ou=people)        groupOfNames cn
//	alice          uid=alice                Engineering, Analysts (and the groupOfUniqueNames Unique-Alice)
//	bob            uid=bob                  none
//	carol          uid=carol                Many-00 ... Many-29 (ManyGroups groups)
//	eve*)(uid=*    cn=Eve (meta*)           Meta
//	back\slash     uid=back\5Cslash         Backslash
//	dup            cn=Dup One, cn=Dup Two   Dup (two entries share the uid)
//
// slapd comes from the Debian packages slapd and ldap-utils. Without it a
// test is skipped, or fails when the environment variable CI is "true", so
// CI never passes by skipping.
package slapdtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Names of the fixture directory.
const (
	// Suffix is the naming context and the natural base DN.
	Suffix = "dc=example,dc=org"
	// RootDN is the service account tests bind as (slapd's rootdn).
	RootDN = "cn=admin," + Suffix
	// ManyGroups is how many groups carol is a member of.
	ManyGroups = 30
)

// Where Debian puts the binaries and schema files.
const (
	slapdPath  = "/usr/sbin/slapd"
	slapaddBin = "slapadd"
	schemaDir  = "/etc/ldap/schema"
	moduleDir  = "/usr/lib/ldap"
)

// startTimeout bounds how long a start may take before the test fails; a
// healthy start takes well under 100 ms.
const startTimeout = 10 * time.Second

// Options select what New starts.
type Options struct {
	// TLS also serves ldaps:// on a second port and offers StartTLS on the
	// plain port, with a server certificate for 127.0.0.1 and localhost
	// signed by a CA written to Server.CAFile.
	TLS bool
	// ExtraLDIF is appended to the fixture before it is loaded.
	ExtraLDIF string
}

// Server is one running (or stopped) slapd. Its fields are fixed for its
// whole life, restarts included.
type Server struct {
	// URL is the plain listener, ldap://127.0.0.1:PORT.
	URL string
	// LDAPSURL is the ldaps:// listener; empty without Options.TLS.
	LDAPSURL string
	// CAFile is the PEM file of the CA that signed the server's certificate;
	// empty without Options.TLS.
	CAFile string
	// BaseDN is the fixture's suffix.
	BaseDN string
	// BindDN and BindPassword are the service account (the rootdn).
	BindDN       string
	BindPassword string

	t       testing.TB
	dir     string
	conf    string
	logPath string
	slapd   string
	ports   []int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// New starts a slapd loaded with the fixture and stops it when the test
// ends. It skips the test (or fails it under CI=true) when slapd is not
// installed.
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	slapd, slapadd := findBinaries(t)

	dir := t.TempDir()
	s := &Server{
		BaseDN:       Suffix,
		BindDN:       RootDN,
		BindPassword: "slapdtest-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		t:            t,
		dir:          dir,
		conf:         filepath.Join(dir, "slapd.conf"),
		logPath:      filepath.Join(dir, "slapd.log"),
		slapd:        slapd,
	}
	var tlsFiles *tlsFiles
	if opts.TLS {
		files, err := writeTLSFiles(dir)
		if err != nil {
			t.Fatalf("slapdtest: %v", err)
		}
		tlsFiles = &files
		s.CAFile = files.caFile
	}
	if err := os.Mkdir(filepath.Join(dir, "db"), 0o700); err != nil {
		t.Fatalf("slapdtest: %v", err)
	}
	if err := os.WriteFile(s.conf, []byte(s.config(tlsFiles)), 0o600); err != nil {
		t.Fatalf("slapdtest: %v", err)
	}
	ldif := filepath.Join(dir, "fixture.ldif")
	if err := os.WriteFile(ldif, []byte(fixtureLDIF()+opts.ExtraLDIF), 0o600); err != nil {
		t.Fatalf("slapdtest: %v", err)
	}
	if out, err := exec.Command(slapadd, "-q", "-f", s.conf, "-l", ldif).CombinedOutput(); err != nil {
		t.Fatalf("slapdtest: slapadd: %v\n%s", err, out)
	}
	t.Cleanup(s.Stop)

	// A free port can be taken by someone else between our probe and
	// slapd's bind; try a few times before giving up.
	var lastErr error
	for range 3 {
		s.ports = nil
		for range 1 + boolInt(opts.TLS) {
			port, err := freePort()
			if err != nil {
				t.Fatalf("slapdtest: %v", err)
			}
			s.ports = append(s.ports, port)
		}
		s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", s.ports[0])
		if opts.TLS {
			s.LDAPSURL = fmt.Sprintf("ldaps://127.0.0.1:%d", s.ports[1])
		}
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("slapdtest: %v", lastErr)
	return nil
}

// findBinaries locates slapd and slapadd, or ends the test: a skip on a
// developer's machine, a failure under CI, where a skip would hide that the
// LDAP tests never ran.
func findBinaries(t testing.TB) (slapd, slapadd string) {
	t.Helper()
	slapd = slapdPath
	if _, err := os.Stat(slapd); err != nil {
		if p, lerr := exec.LookPath("slapd"); lerr == nil {
			slapd = p
		} else {
			missing(t, "slapd not found at "+slapdPath+" or in PATH")
		}
	}
	slapadd = filepath.Join(filepath.Dir(slapd), slapaddBin)
	if _, err := os.Stat(slapadd); err != nil {
		p, lerr := exec.LookPath(slapaddBin)
		if lerr != nil {
			missing(t, "slapadd not found next to "+slapd+" or in PATH")
		}
		slapadd = p
	}
	for _, schema := range []string{"core", "cosine", "inetorgperson", "nis"} {
		if _, err := os.Stat(filepath.Join(schemaDir, schema+".schema")); err != nil {
			missing(t, "OpenLDAP schema "+schema+".schema not found in "+schemaDir)
		}
	}
	return slapd, slapadd
}

func missing(t testing.TB, what string) {
	t.Helper()
	msg := "slapdtest: " + what + "; install the Debian packages slapd ldap-utils (apt-get install -y slapd ldap-utils)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

func (s *Server) config(tf *tlsFiles) string {
	var b strings.Builder
	for _, schema := range []string{"core", "cosine", "inetorgperson", "nis"} {
		fmt.Fprintf(&b, "include %s\n", filepath.Join(schemaDir, schema+".schema"))
	}
	fmt.Fprintf(&b, "modulepath %s\nmoduleload back_mdb\n", moduleDir)
	fmt.Fprintf(&b, "pidfile %s\nargsfile %s\n", filepath.Join(s.dir, "slapd.pid"), filepath.Join(s.dir, "slapd.args"))
	if tf != nil {
		fmt.Fprintf(&b, "TLSCACertificateFile %s\nTLSCertificateFile %s\nTLSCertificateKeyFile %s\n", tf.caFile, tf.certFile, tf.keyFile)
	}
	fmt.Fprintf(&b, "database mdb\nmaxsize 16777216\nsuffix %q\nrootdn %q\nrootpw %s\ndirectory %s\n",
		Suffix, RootDN, s.BindPassword, filepath.Join(s.dir, "db"))
	b.WriteString("index objectClass eq\nindex uid eq\nindex member eq\nindex uniqueMember eq\n")
	return b.String()
}

// start launches slapd in the foreground with the "stats" log level on
// stderr (appended to the log file, so counts survive restarts) and waits
// until every listener accepts connections.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("slapd is already running")
	}
	logFile, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logFile.Close() // the child holds its own descriptor

	urls := s.URL
	if s.LDAPSURL != "" {
		urls += " " + s.LDAPSURL
	}
	// -d 256 is loglevel "stats" (connections, operations, filters) and
	// keeps slapd in the foreground, so the harness owns the process.
	cmd := exec.Command(s.slapd, "-f", s.conf, "-h", urls, "-d", "256")
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting slapd: %w", err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done

	deadline := time.Now().Add(startTimeout)
	for _, port := range s.ports {
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		for {
			c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-done:
				s.cmd, s.done = nil, nil
				return fmt.Errorf("slapd exited during start-up: %s%s\n%s", cmd.ProcessState, s.hint(), s.tail(20))
			case <-time.After(5 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				s.killLocked()
				return fmt.Errorf("slapd did not listen on %s within %s\n%s", addr, startTimeout, s.tail(20))
			}
		}
	}
	return nil
}

// Start starts a stopped server again on the same ports and data.
func (s *Server) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("slapdtest: %v", err)
	}
}

// Stop stops the server (SIGTERM, SIGKILL after 5 s) and waits for it to
// exit; the kernel then closes every client connection. Stopping a stopped
// server does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	_ = s.cmd.Process.Signal(syscall.SIGCONT) // a paused slapd must run to act on SIGTERM
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	s.cmd, s.done = nil, nil
}

// Restart is Stop then Start, on the same ports.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.Start()
}

func (s *Server) killLocked() {
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// Pause freezes slapd (SIGSTOP) and returns once it is frozen: the kernel
// still accepts connections on its listeners, but nothing answers, as with
// a hung server. Resume undoes it.
func (s *Server) Pause() {
	s.t.Helper()
	s.signal(syscall.SIGSTOP)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := waitStopped(s.cmd.Process.Pid); err != nil {
		s.t.Fatalf("slapdtest: %v", err)
	}
}

// Resume lets a paused slapd run again (SIGCONT).
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.t.Fatalf("slapdtest: %v to a stopped slapd", sig)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.t.Fatalf("slapdtest: %v: %v", sig, err)
	}
}

// SearchCount is how many searches the server has received, over all its
// runs, whose logged filter contains filterSubstring. slapd logs a filter
// in its own normal form, with hex escapes in upper case (\2A, not \2a), so
// the match ignores case. A search is logged when it arrives, before its
// answer is sent, so a search the client has seen answered is counted.
func (s *Server) SearchCount(filterSubstring string) int {
	return s.CountLog(" SRCH base=", "filter=", filterSubstring)
}

// CountLog is how many lines of the server's log contain every one of the
// substrings, ignoring case.
func (s *Server) CountLog(substrings ...string) int {
	s.t.Helper()
	data, err := os.ReadFile(s.logPath)
	if err != nil {
		s.t.Fatalf("slapdtest: reading the slapd log: %v", err)
	}
	want := make([]string, len(substrings))
	for i, sub := range substrings {
		want[i] = strings.ToLower(sub)
	}
	n := 0
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
lines:
	for sc.Scan() {
		line := strings.ToLower(sc.Text())
		for _, sub := range want {
			if !strings.Contains(line, sub) {
				continue lines
			}
		}
		n++
	}
	return n
}

// Log is the server's whole log, for a failing test's message.
func (s *Server) Log() string {
	data, _ := os.ReadFile(s.logPath)
	return string(data)
}

func (s *Server) tail(n int) string {
	lines := strings.Split(strings.TrimRight(s.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// hint names the usual cause of a start-up failure that the log alone
// leaves obscure: an AppArmor profile (Ubuntu ships one for slapd) that
// keeps slapd out of the temporary directory.
func (s *Server) hint() string {
	if strings.Contains(s.Log(), "Permission denied") {
		if _, err := os.Stat("/etc/apparmor.d/usr.sbin.slapd"); err == nil {
			return " (AppArmor confines slapd here; aa-complain or aa-disable /usr/sbin/slapd)"
		}
	}
	return ""
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
