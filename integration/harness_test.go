package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
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

// startTimeout bounds how long a Caddy instance may take to answer.
const startTimeout = 15 * time.Second

// caddyBinary finds the Caddy under test: $CADDY_BIN, else ../caddy (what
// `make build` writes). Without one the suite is skipped, except under CI
// where a missing binary is a broken pipeline, not a reason to pass.
func caddyBinary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CADDY_BIN"); p != "" {
		// go test runs in the package directory; a relative CADDY_BIN is
		// more likely meant from the repository root.
		candidates := []string{p}
		if !filepath.IsAbs(p) {
			candidates = append(candidates, filepath.Join("..", p))
		}
		for _, c := range candidates {
			if _, err := os.Stat(c); err == nil {
				abs, err := filepath.Abs(c)
				if err != nil {
					t.Fatal(err)
				}
				return abs
			}
		}
		t.Fatalf("CADDY_BIN=%s: no such file", p)
	}
	p, err := filepath.Abs(filepath.Join("..", "caddy"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("no Caddy binary at %s and CADDY_BIN is unset: run `make build` first", p)
	}
	t.Skipf("no Caddy binary at %s and CADDY_BIN is unset: run `make build` (or ./xcaddy.sh) to run the integration suite", p)
	return ""
}

// ports hands out loopback ports that no other part of this test binary
// has been given, so two instances started side by side never collide on a
// port the kernel happens to hand out twice.
var ports = struct {
	sync.Mutex
	used map[int]bool
}{used: map[int]bool{}}

// freeAddr returns 127.0.0.1:<port> for a port that was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	for i := 0; i < 50; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ports.Lock()
		seen := ports.used[port]
		ports.used[port] = true
		ports.Unlock()
		if !seen {
			return fmt.Sprintf("127.0.0.1:%d", port)
		}
	}
	t.Fatal("no free loopback port found")
	return ""
}

// syncBuffer collects a process's output while tests read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// caddyEnv keeps Caddy's autosave and storage inside the test's directory.
func caddyEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "CADDY_ADMIN":
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"HOME="+dir,
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"),
	)
}

// withAdmin puts `admin <addr>` into the Caddyfile's global options,
// creating the block when there is none.
func withAdmin(caddyfile, addr string) string {
	trimmed := strings.TrimLeft(caddyfile, " \t\r\n")
	if strings.HasPrefix(trimmed, "{") {
		return "{\n\tadmin " + addr + "\n" + trimmed[1:]
	}
	return "{\n\tadmin " + addr + "\n}\n\n" + caddyfile
}

// numbered prefixes each line with its number, to read a failing Caddyfile.
func numbered(text string) string {
	var b strings.Builder
	for i, line := range strings.Split(text, "\n") {
		fmt.Fprintf(&b, "%3d  %s\n", i+1, line)
	}
	return b.String()
}

// caddyProc is one running Caddy.
type caddyProc struct {
	t      testing.TB
	cmd    *exec.Cmd
	out    *syncBuffer
	admin  string // host:port of the admin endpoint
	config string // the Caddyfile (or JSON) it runs
	exited chan struct{}
	err    error // the process's exit, once exited is closed
}

// Output is everything Caddy wrote to stdout and stderr so far.
func (p *caddyProc) Output() string { return p.out.String() }

// startCaddy runs `caddy run` with the Caddyfile (an `admin` line is added
// to its global options), waits until the admin endpoint and every HTTP
// listener answer, and stops Caddy when the test ends. Caddy's output is
// printed if the test failed.
func startCaddy(t testing.TB, caddyfile string) *caddyProc {
	t.Helper()
	admin := freeAddr(t)
	return startCaddyConfig(t, withAdmin(caddyfile, admin), "caddyfile", admin)
}

// startCaddyConfig runs `caddy run` with a config in any adapter's format;
// the config must already set its admin endpoint to admin.
func startCaddyConfig(t testing.TB, config, adapter, admin string) *caddyProc {
	t.Helper()
	p, err := tryStartCaddy(t, config, adapter, admin)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// errPortTaken means another process took one of the config's ports between
// freeAddr and Caddy's bind; the caller may retry with new ports.
var errPortTaken = errors.New("a port of the config was taken")

// tryStartCaddy is startCaddyConfig returning the start-up failure. env
// ("NAME=value") is added to Caddy's environment: tests running in parallel
// cannot t.Setenv, and os.Setenv would leak into every other test's Caddy.
func tryStartCaddy(t testing.TB, config, adapter, admin string, env ...string) (*caddyProc, error) {
	t.Helper()
	bin := caddyBinary(t)
	dir := t.TempDir()
	name := "Caddyfile"
	if adapter == "json" {
		name = "caddy.json"
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"run", "--config", path}
	if adapter != "json" {
		args = append(args, "--adapter", adapter)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = append(caddyEnv(dir), env...)
	out := new(syncBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	p := &caddyProc{t: t, cmd: cmd, out: out, admin: admin, config: config, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(); err != nil {
		p.kill()
		if strings.Contains(out.String(), "address already in use") {
			return nil, fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return nil, fmt.Errorf("caddy did not start: %v\nconfig:\n%s\noutput:\n%s", err, numbered(config), out)
	}
	t.Cleanup(p.stop)
	return p, nil
}

// kill ends a Caddy that failed to start.
func (p *caddyProc) kill() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// stop ends Caddy: SIGTERM for a graceful stop, then SIGKILL.
func (p *caddyProc) stop() {
	select {
	case <-p.exited:
	default:
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
	}
	if p.t.Failed() {
		p.t.Logf("Caddyfile:\n%s\nCaddy output:\n%s", numbered(p.config), p.Output())
	}
}

// waitReady polls the admin endpoint until the config is loaded, then dials
// every listener of the HTTP app: the admin endpoint comes up before the
// servers do.
func (p *caddyProc) waitReady() error {
	deadline := time.Now().Add(startTimeout)
	var listeners []string
	for {
		select {
		case <-p.exited:
			return fmt.Errorf("caddy exited: %v", p.err)
		default:
		}
		if time.Now().After(deadline) {
			return errors.New("timed out waiting for the admin endpoint")
		}
		addrs, err := p.httpListeners()
		if err == nil {
			listeners = addrs
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, addr := range listeners {
		for {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				conn.Close()
				break
			}
			select {
			case <-p.exited:
				return fmt.Errorf("caddy exited: %v", p.err)
			default:
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("timed out waiting for %s: %v", addr, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// httpListeners asks the admin endpoint for the HTTP servers' listen
// addresses, as dialable loopback host:port values.
func (p *caddyProc) httpListeners() ([]string, error) {
	resp, err := adminClient.Get("http://" + p.admin + "/config/apps/http/servers")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("admin answered %s", resp.Status)
	}
	var servers map[string]struct {
		Listen []string `json:"listen"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&servers); err != nil {
		return nil, err
	}
	var addrs []string
	for _, srv := range servers {
		for _, l := range srv.Listen {
			if i := strings.Index(l, "/"); i >= 0 {
				l = l[i+1:]
			}
			if strings.HasPrefix(l, ":") {
				l = "127.0.0.1" + l
			}
			addrs = append(addrs, l)
		}
	}
	return addrs, nil
}

// cmdResult is a finished caddy command.
type cmdResult struct {
	Stdout, Stderr string
	ExitCode       int
}

// Output is stdout and stderr together.
func (r cmdResult) Output() string { return r.Stdout + r.Stderr }

// runCaddy runs a short caddy command (adapt, validate, okera-keygen, ...)
// in dir and returns what it printed.
func runCaddy(t testing.TB, dir string, args ...string) cmdResult {
	t.Helper()
	return runCaddyStdin(t, dir, "", args...)
}

// runCaddyStdin is runCaddy with stdin.
func runCaddyStdin(t testing.TB, dir, stdin string, args ...string) cmdResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, caddyBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = caddyEnv(dir)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := cmdResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
	default:
		t.Fatalf("running caddy %s: %v", strings.Join(args, " "), err)
	}
	return res
}

// writeCaddyfile writes a Caddyfile (with an admin line) to a new directory
// and returns the text as written.
func writeCaddyfile(t testing.TB, caddyfile string) (dir, path, text string) {
	t.Helper()
	dir = t.TempDir()
	path = filepath.Join(dir, "Caddyfile")
	text = withAdmin(caddyfile, freeAddr(t))
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, path, text
}

// expectStartFailure runs `caddy validate` (which provisions every module,
// as `caddy run` does, without listening) and returns its output; the test
// fails if the config is accepted.
func expectStartFailure(t testing.TB, caddyfile string) string {
	t.Helper()
	out, _ := startFailure(t, caddyfile)
	return out
}

// startFailure is expectStartFailure that also returns the Caddyfile as
// written, to check the line numbers in error messages.
func startFailure(t testing.TB, caddyfile string) (output, written string) {
	t.Helper()
	dir, path, text := writeCaddyfile(t, caddyfile)
	res := runCaddy(t, dir, "validate", "--config", path, "--adapter", "caddyfile")
	if res.ExitCode == 0 {
		t.Fatalf("caddy validate accepted a config it must refuse:\n%s\noutput:\n%s", numbered(text), res.Output())
	}
	return res.Output(), text
}

// expectValid runs `caddy validate` and fails the test if the config is refused.
func expectValid(t testing.TB, caddyfile string) {
	t.Helper()
	dir, path, _ := writeCaddyfile(t, caddyfile)
	res := runCaddy(t, dir, "validate", "--config", path, "--adapter", "caddyfile")
	if res.ExitCode != 0 {
		t.Fatalf("caddy validate refused a valid config:\n%s\noutput:\n%s", numbered(caddyfile), res.Output())
	}
}

// adapt runs `caddy adapt` and returns the JSON config. The Caddyfile gets
// an admin line like startCaddy's.
func adapt(t testing.TB, caddyfile string) (string, error) {
	t.Helper()
	dir, path, _ := writeCaddyfile(t, caddyfile)
	res := runCaddy(t, dir, "adapt", "--config", path, "--adapter", "caddyfile")
	if res.ExitCode != 0 {
		return "", fmt.Errorf("caddy adapt exited %d: %s", res.ExitCode, res.Output())
	}
	return res.Stdout, nil
}

// adminClient talks to Caddy's admin endpoint.
var adminClient = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}

// client sends the tests' requests: no proxy, no redirects followed, enough
// idle connections for the concurrency tests.
var client = &http.Client{
	Timeout: 30 * time.Second,
	Transport: &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     10 * time.Second,
	},
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// response is what a test needs of an answer.
type response struct {
	Status int
	Header http.Header
	Body   string
}

// send makes a request with exactly the given header map (names are sent as
// spelled, so non-canonical and repeated headers reach the server).
func send(t testing.TB, method, url string, header http.Header, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vv := range header {
		req.Header[k] = append([]string(nil), vv...)
	}
	return do(t, req)
}

// do sends a prepared request.
func do(t testing.TB, req *http.Request) response {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the answer to %s %s: %v", req.Method, req.URL, err)
	}
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(b)}
}

// get sends a GET with the given headers.
func get(t testing.TB, url string, header http.Header) response {
	t.Helper()
	return send(t, http.MethodGet, url, header, nil)
}

// bearer is the header map of a request that presents tok.
func bearer(tok string) http.Header {
	return http.Header{"Authorization": {"Bearer " + tok}}
}
