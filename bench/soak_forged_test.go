//go:build soak

package bench

import (
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A million distinct forged tokens to one fresh gateway: the header and
// payload of a real token with random signature bytes, each token new. The
// gateway caches verified tokens only; were it to keep failures too, each
// forged token would cost it about 1.3 kB (the bench's measure of a cached
// token) up to the cache's 100 000 entries, some 120 MiB of live heap. The
// run checks that every answer is a 401, that no answer came from the
// cache (key-cache hits do not move, misses grow by one per token), and
// that the live heap and the resident memory stay where they were.

// Memory bounds of the forged run.
const (
	forgedHeapGrowth = 16 << 20  // live heap after a GC, bytes
	forgedRSSGrowth  = 128 << 10 // peak VmRSS over the baseline, kB
	forgedSampling   = 5 * time.Second
)

// forgedResult is the forged-token run.
type forgedResult struct {
	n                        int
	run                      *driveResult
	rssBefore, rssAfter, hwm int64 // kB
	rssPeak                  int64 // the highest sample during the run, kB
	heapBefore, heapAfter    float64
	samples                  []rssSample
	hits, misses, rejected   float64 // deltas of the gateway's metrics over the run
	before, after            footprint
	problems                 []string
}

func (r *forgedResult) failf(format string, args ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, args...))
}

func runForged(t *testing.T, s *soakSetup) *forgedResult {
	cfg := s.cfg
	auth := fmt.Sprintf("public_key %s RSA256\nsystem_token %s", filepath.Join(s.dir, "idp.pub"), filepath.Join(s.dir, "system.token"))
	gw, err := startSoakGateway(cfg.caddyBin, filepath.Join(s.dir, "forged"), "forged", s.up.addr,
		[]site{{name: "forged", auth: auth}}, false, cfg.concurrency, nil)
	if err != nil {
		t.Fatalf("forged-token gateway: %v", err)
	}
	defer gw.stop()
	tgt := gw.sites["forged"]
	var valid []cred
	for i := range 8 {
		c, err := s.issuer.valid(fmt.Sprintf("v%d", i), []string{"analysts"}, identity(fmt.Sprintf("v%d", i), "analysts"))
		if err != nil {
			t.Fatal(err)
		}
		valid = append(valid, c)
	}
	f := newForger(strings.TrimPrefix(valid[0].auth, "Bearer "))
	forged := &callKind{name: "forged token (random signature)", tgt: tgt, want: http.StatusUnauthorized, fill: f.forged(false)}
	r := &forgedResult{n: cfg.forged}

	// Prime: valid tokens (cached) and a few thousand forged ones.
	prime := drive([]crew{
		solo(4, &callKind{name: "valid token", tgt: tgt, want: http.StatusOK, fill: fromCreds(valid, false)}),
		solo(cfg.concurrency-4, forged),
	}, driveOpts{duration: 2 * time.Second})
	r.problems = append(r.problems, runProblems("priming", prime)...)
	if r.before, err = gw.baseline(); err != nil {
		t.Fatal(err)
	}
	if r.heapBefore, err = gw.liveHeap(); err != nil {
		t.Fatal(err)
	}
	r.rssBefore, _ = procStatusKB(gw.pid(), "VmRSS")
	keyCache := func(result string) float64 {
		return gw.metric("caddy_okera_auth_cache_requests_total", `cache="keys"`, `result="`+result+`"`)
	}
	rejected := func() float64 {
		return gw.metric("caddy_okera_auth_validations_total", `validator="keys"`, `result="rejected"`)
	}
	hits0, misses0, rej0 := keyCache("hit"), keyCache("miss"), rejected()
	s.logf("forged: gateway pid %d; %d distinct forged tokens with %d connections; before: VmRSS %.1f MiB, live heap %.1f MiB, %s",
		gw.pid(), r.n, cfg.concurrency, float64(r.rssBefore)/1024, r.heapBefore/(1<<20), r.before)

	stop := make(chan struct{})
	samples := sampleRSS(gw.pid(), forgedSampling, stop)
	r.run = drive([]crew{solo(cfg.concurrency, forged)}, driveOpts{budget: int64(r.n), progress: func(n int64) {
		kb, _ := procStatusKB(gw.pid(), "VmRSS")
		s.logf("  ... %d forged tokens sent, VmRSS %.1f MiB", n, float64(kb)/1024)
	}})
	close(stop)
	r.samples = <-samples
	for _, x := range r.samples {
		r.rssPeak = max(r.rssPeak, x.kb)
	}
	r.hits, r.misses, r.rejected = keyCache("hit")-hits0, keyCache("miss")-misses0, rejected()-rej0
	r.rssAfter, _ = procStatusKB(gw.pid(), "VmRSS")
	r.hwm, _ = procStatusKB(gw.pid(), "VmHWM")
	if r.heapAfter, err = gw.liveHeap(); err != nil {
		r.failf("reading the live heap: %v", err)
	}

	st := r.run.get(forged.name)
	if st.requests != r.n || st.statuses[http.StatusUnauthorized] != r.n {
		r.failf("%d forged tokens sent, %d answered 401 (%s; %v)", st.requests, st.statuses[http.StatusUnauthorized], st.statusText(), st.problems)
	}
	r.problems = append(r.problems, runProblems("forged", r.run)...)
	if r.hits != 0 {
		r.failf("the key cache answered %.0f forged tokens", r.hits)
	}
	if r.misses < float64(r.n) || r.rejected < float64(r.n) {
		r.failf("key cache misses grew by %.0f and key rejections by %.0f, want %d each (every forged token checked)", r.misses, r.rejected, r.n)
	}
	if growth := r.heapAfter - r.heapBefore; growth > forgedHeapGrowth {
		r.failf("live heap grew by %.1f MiB over %d forged tokens (bound %d MiB)", growth/(1<<20), r.n, forgedHeapGrowth>>20)
	}
	// VmHWM: no sampling can miss the peak (it also covers the short
	// priming run, which is the same kind of load).
	if r.hwm-r.rssBefore > forgedRSSGrowth {
		r.failf("VmRSS peaked (VmHWM) at %.1f MiB, %.1f MiB over the baseline (bound %d MiB)", float64(r.hwm)/1024,
			float64(r.hwm-r.rssBefore)/1024, forgedRSSGrowth>>10)
	}
	after, ok, err := gw.settle(r.before, 20*time.Second)
	r.after = after
	if err != nil || !ok {
		r.failf("gateway at %s after the run, baseline %s (%v)", after, r.before, err)
	}
	s.logf("forged: %d tokens in %s (%.0f req/s): %s; VmRSS %.1f → %.1f MiB (peak sampled %.1f, VmHWM %.1f); live heap %.1f → %.1f MiB; key cache hits +%.0f, misses +%.0f",
		st.requests, r.run.elapsed.Round(time.Second), r.run.rps(), st.statusText(), float64(r.rssBefore)/1024, float64(r.rssAfter)/1024,
		float64(r.rssPeak)/1024, float64(r.hwm)/1024, r.heapBefore/(1<<20), r.heapAfter/(1<<20), r.hits, r.misses)
	for _, p := range r.problems {
		t.Errorf("forged: %s", p)
	}
	return r
}
