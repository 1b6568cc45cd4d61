//go:build bench || soak

package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestMain lets this test binary double as the upstream: the bench
// re-executes itself with BENCH_ROLE=upstream, so the upstream is its own
// process (no shared scheduler or GC with the load generator) and needs no
// separate build.
func TestMain(m *testing.M) {
	if os.Getenv("BENCH_ROLE") == "upstream" {
		os.Exit(serveUpstream(os.Getenv("BENCH_UPSTREAM_ADDR")))
	}
	os.Exit(m.Run())
}

// Remote validation endpoint's answer: another user name than the tokens'
// own sub, so the sanity check proves the remote path served the request.
const (
	remoteUser   = "alice-remote"
	remoteGroups = "analysts,remote"
)

// serveUpstream is the upstream every front end proxies to: a small fixed
// answer, as cheap as net/http gets. It also serves the remote validation
// endpoint (POST /validate) and counts its calls (GET /__stats), and echoes
// the identity it received when the request asks for it (X-Bench-Echo), for
// the sanity checks that run before any measurement.
func serveUpstream(addr string) int {
	body := []byte("ok\n")
	var validations atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if r.Header.Get("X-Bench-Echo") != "" {
			h.Set("X-Seen-User", r.Header.Get("X-Okera-User"))
			h.Set("X-Seen-Groups", r.Header.Get("X-Okera-Groups"))
			h.Set("X-Seen-Authorization", r.Header.Get("Authorization"))
		}
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		_, _ = w.Write(body)
	})
	mux.HandleFunc("POST /validate", func(w http.ResponseWriter, r *http.Request) {
		validations.Add(1)
		if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
			http.Error(w, `{"error":"no token"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"sub":%q,"groups":["analysts","remote"]}`, remoteUser)
	})
	mux.HandleFunc("GET /__stats", func(w http.ResponseWriter, r *http.Request) {
		_, _ = fmt.Fprintf(w, `{"validations":%d}`, validations.Load())
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		return 1
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 10 * time.Minute}
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "upstream:", err)
		return 1
	}
	return 0
}

// ports hands out loopback ports no other part of this run was given.
var ports = struct {
	sync.Mutex
	used map[int]bool
}{used: map[int]bool{}}

func freePort() (int, error) {
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		ports.Lock()
		seen := ports.used[port]
		ports.used[port] = true
		ports.Unlock()
		if !seen {
			return port, nil
		}
	}
	return 0, errors.New("no free loopback port")
}

// proc is a child process the bench started and stops.
type proc struct {
	name   string
	cmd    *exec.Cmd
	log    string // file with its stdout and stderr
	exited chan struct{}
	err    error
}

func startProc(name, logPath string, cmd *exec.Cmd) (*proc, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = f, f
	// The kernel kills the child if the bench dies, so an interrupted run
	// leaves no process behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, exited: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// stop ends the process: SIGTERM, then SIGKILL after 10 s.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// tail is the end of the process's output, for error messages.
func (p *proc) tail(n int) string {
	data, _ := os.ReadFile(p.log)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitDial waits until addr accepts connections or the process exits.
func waitDial(p *proc, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if !p.running() {
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.tail(20))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not listen on %s after %s", p.name, addr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// startUpstream re-executes this test binary as the upstream.
func startUpstream(dir string) (*proc, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "BENCH_ROLE=upstream", "BENCH_UPSTREAM_ADDR="+addr)
	p, err := startProc("upstream", filepath.Join(dir, "upstream.log"), cmd)
	if err != nil {
		return nil, "", err
	}
	if err := waitDial(p, addr, 10*time.Second); err != nil {
		p.stop()
		return nil, "", err
	}
	return p, addr, nil
}

// caddyEnv keeps Caddy's autosave and storage inside dir.
func caddyEnv(dir string) []string {
	var env []string
	for _, kv := range os.Environ() {
		switch strings.SplitN(kv, "=", 2)[0] {
		case "HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "CADDY_ADMIN", "BENCH_ROLE":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "HOME="+dir,
		"XDG_CONFIG_HOME="+filepath.Join(dir, "config"),
		"XDG_DATA_HOME="+filepath.Join(dir, "data"))
}

// gateway is one running Caddy front end.
type gateway struct {
	*proc
	addr  string // the site, host:port
	admin string // the admin endpoint, host:port
}

// caddyfileFor is a whole Caddyfile: admin endpoint, one plain-HTTP site on
// the loopback with the given handler lines, then the reverse proxy.
func caddyfileFor(admin, site, upstream, handler string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin %s\n\tpersist_config off\n}\n\n", admin)
	fmt.Fprintf(&b, "http://%s {\n", site)
	if handler != "" {
		b.WriteString(handler)
	}
	fmt.Fprintf(&b, "\treverse_proxy %s\n}\n", upstream)
	return b.String()
}

// adaptCheck runs `caddy adapt` on a Caddyfile: the cheap probe of whether
// this build knows every directive the mode uses.
func adaptCheck(bin, dir, path string) error {
	cmd := exec.Command(bin, "adapt", "--config", path, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = caddyEnv(dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("caddy adapt: %v: %s", err, lastLine(string(out)))
	}
	return nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

// startGateway writes the Caddyfile into dir, probes it with caddy adapt and
// runs it, returning once the admin endpoint has the config and the site
// accepts connections.
func startGateway(bin, dir, name, upstream, handler string) (*gateway, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	sitePort, err := freePort()
	if err != nil {
		return nil, err
	}
	adminPort, err := freePort()
	if err != nil {
		return nil, err
	}
	site := "127.0.0.1:" + strconv.Itoa(sitePort)
	admin := "127.0.0.1:" + strconv.Itoa(adminPort)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfileFor(admin, site, upstream, handler)), 0o600); err != nil {
		return nil, err
	}
	if err := adaptCheck(bin, dir, path); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = caddyEnv(dir)
	p, err := startProc(name, filepath.Join(dir, "caddy.log"), cmd)
	if err != nil {
		return nil, err
	}
	g := &gateway{proc: p, addr: site, admin: admin}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := adminClient.Get("http://" + admin + "/config/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if !p.running() {
			return nil, fmt.Errorf("caddy exited: %v: %s", p.err, lastLine(p.tail(5)))
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("caddy's admin endpoint did not answer within 20s:\n%s", p.tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := waitDial(p, site, 20*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return g, nil
}

// adminClient talks to admin endpoints and the upstream's stats; CPU
// profiles keep a request open for their whole length.
var adminClient = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{Proxy: nil}}

func getBody(url string) ([]byte, error) {
	resp, err := adminClient.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", url, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// upstreamValidations is how many calls the remote validation endpoint got.
func upstreamValidations(upstream string) (int64, error) {
	b, err := getBody("http://" + upstream + "/__stats")
	if err != nil {
		return 0, err
	}
	var v struct {
		Validations int64 `json:"validations"`
	}
	err = json.Unmarshal(b, &v)
	return v.Validations, err
}

// procCPU is the CPU time (user + system, all threads) the process has used,
// from /proc/<pid>/stat, in clock ticks of 10 ms (USER_HZ is 100 on Linux).
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields follow the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("unexpected /proc stat format")
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// procStatusKB reads a "kB" line of /proc/<pid>/status, such as VmRSS.
func procStatusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			v := strings.Fields(rest)
			if len(v) == 0 {
				break
			}
			return strconv.ParseInt(v[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// metricValue finds one sample in Prometheus text output: the line that
// starts with name and contains every label given as `k="v"`.
func metricValue(text, name string, labels ...string) (float64, bool) {
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		f := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err == nil {
			return v, true
		}
	}
	return 0, false
}

// quoteCaddy quotes a Caddyfile argument that may hold spaces.
func quoteCaddy(s string) string {
	if strings.ContainsAny(s, " \t\"{}") {
		return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
	}
	return s
}

// slapdMissing says why slapd cannot run here, or "" when it can. It looks
// where slapdtest looks, so slapdtest's own skip (which would end the whole
// bench) never fires.
func slapdMissing() string {
	slapd := "/usr/sbin/slapd"
	if _, err := os.Stat(slapd); err != nil {
		p, err := exec.LookPath("slapd")
		if err != nil {
			return "slapd is not installed (apt-get install -y slapd ldap-utils)"
		}
		slapd = p
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(slapd), "slapadd")); err != nil {
		if _, err := exec.LookPath("slapadd"); err != nil {
			return "slapadd is not installed (apt-get install -y slapd ldap-utils)"
		}
	}
	for _, s := range []string{"core", "cosine", "inetorgperson", "nis"} {
		if _, err := os.Stat("/etc/ldap/schema/" + s + ".schema"); err != nil {
			return "OpenLDAP schema " + s + ".schema is missing (apt-get install -y slapd)"
		}
	}
	return ""
}

// machine describes where the bench ran.
type machine struct {
	cores        int
	cpuModel     string
	memGiB       float64
	kernel       string
	goVersion    string
	caddyVersion string
	loadStart    string
	loadEnd      string
}

func describeMachine(caddyBin string) machine {
	m := machine{cores: runtime.NumCPU(), goVersion: runtime.Version(), loadStart: loadAvg()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpuModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if kb, err := procStatusKBFile("/proc/meminfo", "MemTotal"); err == nil {
		m.memGiB = float64(kb) / (1 << 20)
	}
	if data, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = "Linux " + strings.TrimSpace(string(data))
	}
	if out, err := exec.Command("go", "version").Output(); err == nil {
		m.goVersion = strings.TrimSpace(strings.TrimPrefix(string(out), "go version "))
	}
	if out, err := exec.Command(caddyBin, "version").Output(); err == nil {
		m.caddyVersion = strings.Fields(string(out) + " ?")[0]
	}
	return m
}

func (m machine) summary() string {
	return fmt.Sprintf("%d cores (%s), Go %s, Caddy %s, load average %s", m.cores, m.cpuModel, m.goVersion, m.caddyVersion, m.loadStart)
}

func loadAvg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " / ")
}

func procStatusKBFile(path, field string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, field+":"); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return 0, fmt.Errorf("no %s in %s", field, path)
}
