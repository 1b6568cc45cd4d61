//go:build bench

package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// profileResult is what a profile of one front end under load showed.
type profileResult struct {
	cpuFile, allocFile string
	load               runStats
	pluginCPU          string             // CPU under okera_auth's ServeHTTP, the proxy it calls excluded (cum)
	pluginShare        float64            // that, as a fraction of the process's CPU samples
	cpuTop             string             // flat CPU, whole process
	pluginAllocs       string             // objects allocated under okera_auth, the proxy excluded (flat)
	allocTop           string             // bytes allocated, whole process
	areas              map[string]float64 // CPU µs per request by area (see cpuAreas)
	err                error
}

// cpuAreas are the parts of a front end's CPU time compared per request
// between a mode and the bare proxy: the cum time of one function each
// (the handler's own work comes from the filtered view instead).
var cpuAreas = []struct{ label, fn string }{
	{"whole process", ""},
	{"okera_auth's own work", ""},
	{"reverse_proxy handler (everything under it)", "github.com/caddyserver/caddy/v2/modules/caddyhttp/reverseproxy.(*Handler).ServeHTTP"},
	{"reading and parsing requests", "net/http.(*conn).readRequest"},
	{"allocation (mallocgc, GC assists included)", "runtime.mallocgc"},
	{"background GC workers", "runtime.gcBgMarkWorker"},
	{"system calls", "internal/runtime/syscall/linux.Syscall6"},
}

// handlerFrame matches okera_auth's ServeHTTP in a profile; with
// -ignore=reverseproxy, what remains under it is the handler's own work, not
// the proxying it hands the request to.
const handlerFrame = `caddymodule\.\(\*Handler\)\.ServeHTTP`

// profileMode loads m's front end for secs (plus a little on each side) and
// meanwhile takes a CPU profile and a delta allocation profile from Caddy's
// admin endpoint (/debug/pprof), then summarises both with go tool pprof.
func profileMode(m *mode, conc, secs int, dir string) *profileResult {
	res := &profileResult{
		cpuFile:   filepath.Join(dir, m.key+".cpu.pprof"),
		allocFile: filepath.Join(dir, m.key+".allocs.pprof"),
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		res.load = m.tgt.run(time.Duration(secs)*time.Second+1500*time.Millisecond, conc, m.source())
	}()
	time.Sleep(500 * time.Millisecond)
	var perr [2]error
	var pwg sync.WaitGroup
	fetch := func(i int, url, file string) {
		defer pwg.Done()
		b, err := getBody(url)
		if err == nil {
			err = os.WriteFile(file, b, 0o644)
		}
		perr[i] = err
	}
	pwg.Add(2)
	go fetch(0, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", m.gw.admin, secs), res.cpuFile)
	go fetch(1, fmt.Sprintf("http://%s/debug/pprof/allocs?seconds=%d", m.gw.admin, secs), res.allocFile)
	pwg.Wait()
	wg.Wait()
	for _, err := range perr {
		if err != nil {
			res.err = err
			return res
		}
	}
	var err error
	if res.pluginCPU, err = pprofTop(res.cpuFile, "-cum", "-nodecount=25", "-show_from="+handlerFrame, "-ignore=reverseproxy"); err != nil {
		res.err = err
		return res
	}
	res.pluginShare = cumShare(res.pluginCPU, "caddymodule.(*Handler).ServeHTTP")
	if full, err := pprofTop(res.cpuFile, "-cum", "-nodecount=1000000"); err == nil {
		res.areas = areasPerRequest(full, res.pluginShare, res.load.rps*float64(secs))
	}
	res.cpuTop, _ = pprofTop(res.cpuFile, "-nodecount=15")
	res.pluginAllocs, _ = pprofTop(res.allocFile, "-sample_index=alloc_objects", "-nodecount=15", "-show_from="+handlerFrame, "-ignore=reverseproxy")
	res.allocTop, _ = pprofTop(res.allocFile, "-sample_index=alloc_space", "-nodecount=12")
	return res
}

// areasPerRequest turns a full `-top -cum` table into CPU µs per request
// for each of cpuAreas, given the requests served during the profile.
func areasPerRequest(table string, pluginShare, reqs float64) map[string]float64 {
	if reqs <= 0 {
		return nil
	}
	cum := map[string]time.Duration{}
	var total time.Duration
	for _, line := range strings.Split(table, "\n") {
		if i := strings.Index(line, "Total samples = "); i >= 0 {
			f := strings.Fields(line[i+len("Total samples = "):])
			if len(f) > 0 {
				total, _ = time.ParseDuration(f[0])
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) != 6 {
			continue
		}
		if d, err := time.ParseDuration(f[3]); err == nil {
			cum[f[5]] = d
		}
	}
	perReq := func(d time.Duration) float64 { return float64(d) / 1e3 / reqs }
	out := map[string]float64{}
	for _, a := range cpuAreas {
		switch {
		case a.label == "whole process":
			out[a.label] = perReq(total)
		case a.fn == "":
			out[a.label] = pluginShare * perReq(total)
		default:
			out[a.label] = perReq(cum[a.fn])
		}
	}
	return out
}

// cumShare reads the cum% of the row naming fn in a pprof -top table.
func cumShare(table, fn string) float64 {
	for _, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if len(f) == 6 && f[5] == "github.com/okeragate/caddy-okera-auth/"+fn {
			v, err := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64)
			if err == nil {
				return v / 100
			}
		}
	}
	return 0
}

// pprofTop runs `go tool pprof -top` and keeps the table (and the summary
// lines above it), without the tool's chatter.
func pprofTop(file string, args ...string) (string, error) {
	cmdArgs := append([]string{"tool", "pprof", "-top"}, args...)
	cmdArgs = append(cmdArgs, file)
	out, err := exec.Command("go", cmdArgs...).Output()
	if err != nil {
		return "", fmt.Errorf("go tool pprof %s: %w", strings.Join(args, " "), err)
	}
	var keep []string
	for _, line := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(line, "File:"), strings.HasPrefix(line, "Build ID:"),
			strings.HasPrefix(line, "Type:"), strings.HasPrefix(line, "Time:"):
			continue
		}
		keep = append(keep, strings.TrimRight(line, " "))
	}
	return strings.TrimSpace(strings.Join(keep, "\n")), nil
}
