//go:build soak

package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// A soak gateway is one Caddy process with one or more okera_auth sites in
// front of the soak upstream. Its Caddyfile is adapted to JSON, JSON-only
// fields are patched in (file_check_interval), and Caddy runs the JSON, so
// that a reload can post the same document with one field changed.

// site is one site of a soak gateway.
type site struct {
	name string
	addr string // host:port, filled in by startSoakGateway
	auth string // the lines of the okera_auth block; none without
}

// upstreamKeepAlive is how long Caddy keeps an idle connection to the
// upstream. Caddy's own default (2 min) outlives a reload: each old config's
// transport keeps its idle connections, and their goroutines, until then,
// which would hide (or fake) a leak of okera_auth's own. A short keep-alive
// keeps connection reuse under load and lets the counts settle in seconds.
const upstreamKeepAlive = 2 * time.Second

// allowListed are the `_` and `.` spellings of the identity headers that
// the soak gateways allow-list (Caddy 2.11 drops such names unless
// allow-listed): with them allowed, only okera_auth stands between a
// spoofed X_Okera_User and the upstream.
var allowListed = struct{ underscore, dot []string }{
	underscore: []string{"x_okera_user", "x_okera_groups"},
	dot:        []string{"x.okera.user", "x.okera.groups"},
}

func soakCaddyfile(admin, upstream string, sites []site, allowList bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n\tadmin %s\n\tpersist_config off\n", admin)
	if allowList {
		fmt.Fprintf(&b, "\tservers {\n\t\texpected_underscore_headers %s\n\t\texpected_dot_headers %s\n\t}\n",
			strings.Join(allowListed.underscore, " "), strings.Join(allowListed.dot, " "))
	}
	b.WriteString("}\n")
	for _, s := range sites {
		fmt.Fprintf(&b, "\n# %s\nhttp://%s {\n\tbind 127.0.0.1\n", s.name, s.addr)
		if s.auth != "" {
			b.WriteString("\tokera_auth {\n")
			for _, line := range strings.Split(strings.Trim(s.auth, "\n"), "\n") {
				b.WriteString("\t\t" + strings.TrimLeft(line, "\t") + "\n")
			}
			b.WriteString("\t}\n")
		}
		fmt.Fprintf(&b, "\treverse_proxy %s {\n\t\ttransport http {\n\t\t\tkeepalive %s\n\t\t}\n\t}\n}\n",
			upstream, upstreamKeepAlive)
	}
	return b.String()
}

// soakGateway is a running soak Caddy.
type soakGateway struct {
	*proc
	dir    string
	admin  string
	sites  map[string]*target
	config map[string]any // the JSON config it runs
}

// startSoakGateway writes, adapts and runs the config; okera_auth handlers
// get the JSON-only fields in patch. It returns once the admin endpoint has
// the config and every site accepts connections.
func startSoakGateway(bin, dir, name, upstream string, sites []site, allowList bool, concurrency int, patch map[string]any) (*soakGateway, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	admin := "127.0.0.1:" + strconv.Itoa(port)
	for i := range sites {
		if port, err = freePort(); err != nil {
			return nil, err
		}
		sites[i].addr = "127.0.0.1:" + strconv.Itoa(port)
	}
	caddyfile := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(caddyfile, []byte(soakCaddyfile(admin, upstream, sites, allowList)), 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "adapt", "--config", caddyfile, "--adapter", "caddyfile")
	cmd.Dir, cmd.Env = dir, caddyEnv(dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("caddy adapt: %v: %s", err, lastLine(stderr.String()))
	}
	var config map[string]any
	if err := json.Unmarshal(out, &config); err != nil {
		return nil, fmt.Errorf("caddy adapt printed no JSON: %v", err)
	}
	want := 0
	for _, s := range sites {
		if s.auth != "" {
			want++
		}
	}
	if n := patchHandlers(config, "okera_auth", patch); n != want {
		return nil, fmt.Errorf("found %d okera_auth handlers to patch, want %d", n, want)
	}
	jsonPath := filepath.Join(dir, "caddy.json")
	data, _ := json.MarshalIndent(config, "", "\t")
	if err := os.WriteFile(jsonPath, data, 0o600); err != nil {
		return nil, err
	}
	run := exec.Command(bin, "run", "--config", jsonPath)
	run.Dir, run.Env = dir, caddyEnv(dir)
	p, err := startProc(name, filepath.Join(dir, "caddy.log"), run)
	if err != nil {
		return nil, err
	}
	g := &soakGateway{proc: p, dir: dir, admin: admin, sites: map[string]*target{}, config: config}
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
			return nil, fmt.Errorf("caddy exited: %v\n%s", p.err, p.tail(10))
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("caddy's admin endpoint did not answer within 20s:\n%s", p.tail(20))
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, s := range sites {
		if err := waitDial(p, s.addr, 20*time.Second); err != nil {
			p.stop()
			return nil, err
		}
		g.sites[s.name] = newTarget(s.addr, concurrency, p.pid(), 0)
	}
	return g, nil
}

// patchHandlers sets fields on every handler of that name in a JSON config
// and returns how many it found.
func patchHandlers(v any, handler string, fields map[string]any) int {
	n := 0
	switch v := v.(type) {
	case map[string]any:
		if v["handler"] == handler {
			n++
			for k, f := range fields {
				v[k] = f
			}
		}
		for _, child := range v {
			n += patchHandlers(child, handler, fields)
		}
	case []any:
		for _, child := range v {
			n += patchHandlers(child, handler, fields)
		}
	}
	return n
}

// reload posts the config with the okera_auth handlers' verify cache size
// set to size: a changed but equivalent config (every token here fits
// either size), so Caddy really replaces the running config (Provision of
// new handlers, Cleanup of the old) rather than skipping an identical one.
func (g *soakGateway) reload(size int) (time.Duration, error) {
	patchHandlers(g.config, "okera_auth", map[string]any{"verify_cache_size": size})
	body, err := json.Marshal(g.config)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequest(http.MethodPost, "http://"+g.admin+"/load", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := adminClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("POST /load: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return time.Since(start), nil
}

// goroutines is the number of goroutines in the gateway, from the first
// line of its goroutine profile ("goroutine profile: total 42").
func (g *soakGateway) goroutines() (int, error) {
	b, err := getBody("http://" + g.admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	n, err := strconv.Atoi(strings.TrimSpace(line[strings.LastIndexByte(line, ' ')+1:]))
	if err != nil {
		return 0, fmt.Errorf("cannot read the goroutine count from %q", line)
	}
	return n, nil
}

// goroutineProfile is the whole profile, for a failure.
func (g *soakGateway) goroutineProfile() string {
	b, err := getBody("http://" + g.admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// openFDs counts the gateway's open file descriptors, sockets included.
func (g *soakGateway) openFDs() (int, error) {
	entries, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", g.pid()))
	return len(entries), err
}

// liveHeap forces a GC through the admin endpoint and reads the bytes
// still in use.
func (g *soakGateway) liveHeap() (float64, error) {
	if _, err := getBody("http://" + g.admin + "/debug/pprof/heap?gc=1"); err != nil {
		return 0, err
	}
	m, err := getBody("http://" + g.admin + "/metrics")
	if err != nil {
		return 0, err
	}
	v, ok := metricValue(string(m), "go_memstats_heap_alloc_bytes")
	if !ok {
		return 0, errors.New("no go_memstats_heap_alloc_bytes in the admin endpoint's /metrics")
	}
	return v, nil
}

// metric reads one sample of the admin endpoint's /metrics.
func (g *soakGateway) metric(name string, labels ...string) float64 {
	m, err := getBody("http://" + g.admin + "/metrics")
	if err != nil {
		return -1
	}
	v, _ := metricValue(string(m), name, labels...)
	return v
}

// logCount is how many lines of the gateway's output hold substr.
func (g *soakGateway) logCount(substr string) int {
	data, _ := os.ReadFile(g.log)
	return bytes.Count(data, []byte(substr))
}

// closeIdle drops the driver's idle keep-alive connections to every site
// (each holds a goroutine and a descriptor in the gateway) and the admin
// client's.
func (g *soakGateway) closeIdle() {
	for _, t := range g.sites {
		t.close()
	}
	adminClient.CloseIdleConnections()
}

// footprint is a gateway's goroutines and open descriptors.
type footprint struct{ goroutines, fds int }

func (f footprint) String() string { return fmt.Sprintf("%d goroutines, %d fds", f.goroutines, f.fds) }

func (g *soakGateway) footprint() (footprint, error) {
	n, err := g.goroutines()
	if err != nil {
		return footprint{}, err
	}
	fds, err := g.openFDs()
	return footprint{n, fds}, err
}

// Slack of the return-to-baseline checks: pooled connections to the
// dependencies (LDAP's pool holds up to 4, each transport keeps 2 idle
// per host; every connection is a descriptor and a goroutine or two) may
// legitimately differ from one moment to the next.
const (
	goroutineSlack = 10
	fdSlack        = 6
)

// settle closes the driver's idle connections and waits (up to wait) for
// the gateway to come back within the slack of base; it returns the last
// reading and whether it did.
func (g *soakGateway) settle(base footprint, wait time.Duration) (footprint, bool, error) {
	deadline := time.Now().Add(wait)
	// Idle upstream connections close after upstreamKeepAlive.
	time.Sleep(200 * time.Millisecond)
	for {
		g.closeIdle()
		time.Sleep(300 * time.Millisecond)
		f, err := g.footprint()
		if err != nil {
			return f, false, err
		}
		if f.goroutines <= base.goroutines+goroutineSlack && f.fds <= base.fds+fdSlack {
			return f, true, nil
		}
		if time.Now().After(deadline) {
			return f, false, nil
		}
		time.Sleep(700 * time.Millisecond)
	}
}

// baseline is a settled footprint: idle connections closed and the
// upstream keep-alive run out.
func (g *soakGateway) baseline() (footprint, error) {
	g.closeIdle()
	time.Sleep(upstreamKeepAlive + time.Second)
	g.closeIdle()
	time.Sleep(300 * time.Millisecond)
	return g.footprint()
}
