//go:build bench

package bench

import (
	"fmt"
	"time"
)

// memPoint is the gateway's memory after some number of distinct tokens.
type memPoint struct {
	tokens   int
	rssKB    int64   // VmRSS right after the batch
	liveHeap float64 // bytes in use after a forced GC (go_memstats_heap_alloc_bytes)
	misses   float64 // key cache misses so far (caddy_okera_auth_cache_requests_total)
	rps      float64 // of the batch
	bad      int     // non-200 answers and transport errors in the batch
}

type memResult struct {
	cacheSize int
	points    []memPoint
	hwmKB     int64
	err       error
}

// memoryRun sends distinct valid tokens to one fresh public-key gateway
// (default verify cache of 100 000) in batches and reads its memory after
// each: VmRSS from /proc as it is, and the live heap after a GC forced
// through the admin endpoint (/debug/pprof/heap?gc=1), which separates what
// the cache keeps from garbage the collector has not yet returned.
func memoryRun(m *mode, bearers []string, step, conc int, logf func(string, ...any)) memResult {
	res := memResult{cacheSize: 100_000}
	g := m.gw
	read := func(n int, st runStats) error {
		rss, err := procStatusKB(g.pid(), "VmRSS")
		if err != nil {
			return err
		}
		if _, err := getBody("http://" + g.admin + "/debug/pprof/heap?gc=1"); err != nil {
			return err
		}
		metrics, err := getBody("http://" + g.admin + "/metrics")
		if err != nil {
			return err
		}
		heap, ok := metricValue(string(metrics), "go_memstats_heap_alloc_bytes")
		if !ok {
			return fmt.Errorf("no go_memstats_heap_alloc_bytes in the admin endpoint's /metrics")
		}
		misses, _ := metricValue(string(metrics), "caddy_okera_auth_cache_requests_total", `cache="keys"`, `result="miss"`)
		p := memPoint{tokens: n, rssKB: rss, liveHeap: heap, misses: misses, rps: st.rps, bad: st.bad + st.errs}
		res.points = append(res.points, p)
		logf("memory: %6d tokens  VmRSS %7.1f MiB  live heap %7.1f MiB  key-cache misses %.0f  (%.0f req/s, %d failed)",
			n, float64(rss)/1024, heap/(1<<20), misses, st.rps, p.bad)
		return nil
	}
	// Baseline: connections open, the warm tokens cached, nothing else.
	st := m.tgt.run(time.Second, conc, m.warm)
	if res.err = read(0, runStats{rps: st.rps, bad: st.bad, errs: st.errs}); res.err != nil {
		return res
	}
	for done := 0; done < len(bearers); {
		n := min(step, len(bearers)-done)
		st := m.tgt.run(time.Hour, conc, newFreshTokens(bearers[done:done+n]))
		done += n
		if res.err = read(done, st); res.err != nil {
			return res
		}
	}
	res.hwmKB, _ = procStatusKB(g.pid(), "VmHWM")
	return res
}
