//go:build bench || soak

package bench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// The load generator: one goroutine per keep-alive connection, each sending
// a GET, reading the whole answer and sending the next (a closed loop, like
// wrk). Every latency is kept and sorted per run; that is exact, and cheap
// at these request counts.
//
// It is built on net/http rather than wrk so that `make bench` needs nothing
// but Go, can hand each request a token of its own (the cold modes), and
// checks every status code: a front end answering 401 or 502 fast must not
// pass for a fast gateway.

// tokenSource hands a worker the Authorization value of its next request;
// false means the supply is exhausted and the worker stops.
type tokenSource interface {
	next(worker int) (string, bool)
}

// fixedTokens gives worker w the token w mod len: a warm cache.
type fixedTokens []string

func (f fixedTokens) next(w int) (string, bool) { return f[w%len(f)], true }

// freshTokens gives every request a token no request had before.
type freshTokens struct {
	vals []string
	i    atomic.Int64
}

func newFreshTokens(vals []string) *freshTokens { return &freshTokens{vals: vals} }

func (f *freshTokens) next(int) (string, bool) {
	i := f.i.Add(1) - 1
	if i >= int64(len(f.vals)) {
		return "", false
	}
	return f.vals[i], true
}

// poolCursor gives every request the next token of a pool, across all the
// runs of one front end: rounds that go faster than expected take more, and
// only the pool's end stops them.
type poolCursor struct {
	p *tokenPool
	i atomic.Int64
}

func (c *poolCursor) next(int) (string, bool) {
	i := c.i.Add(1) - 1
	if i >= int64(len(c.p.tokens)) {
		return "", false
	}
	return "Bearer " + c.p.tokens[i], true
}

// target is a front end under load, with its own connection pool so its
// keep-alive connections survive from one round to the next.
type target struct {
	url       string
	transport *http.Transport
	// Processes whose CPU time each run records: the front end and the
	// upstream (0: not recorded); the load generator is this process.
	gwPid, upPid int
}

func newTarget(addr string, concurrency, gwPid, upPid int) *target {
	return &target{
		url:   "http://" + addr + "/",
		gwPid: gwPid,
		upPid: upPid,
		transport: &http.Transport{
			Proxy:                 nil,
			MaxIdleConns:          concurrency,
			MaxIdleConnsPerHost:   concurrency,
			MaxConnsPerHost:       concurrency,
			IdleConnTimeout:       0, // keep them between rounds
			DisableCompression:    true,
			ResponseHeaderTimeout: 30 * time.Second,
		},
	}
}

func (t *target) close() { t.transport.CloseIdleConnections() }

// runStats is one run's outcome.
type runStats struct {
	ok        int           // 200 answers
	bad       int           // other statuses
	errs      int           // transport errors
	elapsed   time.Duration // until the last worker finished
	rps       float64       // ok / elapsed
	p50, p99  time.Duration // over the 200 answers
	max       time.Duration
	cpu       time.Duration // the front end's CPU time over the run
	loadCPU   time.Duration // the load generator's (this process's)
	upCPU     time.Duration // the upstream's
	exhausted bool          // the token supply ran out before the deadline
	firstBad  int           // the first non-200 status seen
}

// cpuPerReq is the front end's CPU time per answered request.
func (s runStats) cpuPerReq() time.Duration { return perReq(s.cpu, s.ok) }

func perReq(d time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return d / time.Duration(n)
}

// cpuTimes reads the CPU time of the front end, this process and the
// upstream.
func (t *target) cpuTimes() (gw, load, up time.Duration) {
	if t.gwPid != 0 {
		gw, _ = procCPU(t.gwPid)
	}
	load, _ = procCPU(os.Getpid())
	if t.upPid != 0 {
		up, _ = procCPU(t.upPid)
	}
	return gw, load, up
}

// run drives t for d with n workers.
func (t *target) run(d time.Duration, n int, src tokenSource) runStats {
	type workerOut struct {
		lats      []time.Duration
		bad, errs int
		firstBad  int
		exhausted bool
	}
	outs := make([]workerOut, n)
	var wg sync.WaitGroup
	gw0, load0, up0 := t.cpuTimes()
	start := time.Now()
	deadline := start.Add(d)
	for w := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := &outs[w]
			o.lats = make([]time.Duration, 0, 8192)
			base, _ := http.NewRequest(http.MethodGet, t.url, nil)
			accept := []string{"*/*"}
			for time.Now().Before(deadline) {
				auth, ok := src.next(w)
				if !ok {
					o.exhausted = true
					return
				}
				// A request of its own each time: the transport may still
				// be reading the previous one's headers when its answer
				// is in.
				req := *base
				req.Header = http.Header{"Accept": accept, "Authorization": {auth}}
				t0 := time.Now()
				resp, err := t.transport.RoundTrip(&req)
				if err != nil {
					o.errs++
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				lat := time.Since(t0)
				if resp.StatusCode != http.StatusOK {
					if o.bad == 0 {
						o.firstBad = resp.StatusCode
					}
					o.bad++
					continue
				}
				o.lats = append(o.lats, lat)
			}
		}()
	}
	wg.Wait()
	st := runStats{elapsed: time.Since(start)}
	gw1, load1, up1 := t.cpuTimes()
	st.cpu, st.loadCPU, st.upCPU = gw1-gw0, load1-load0, up1-up0
	var all []time.Duration
	for _, o := range outs {
		all = append(all, o.lats...)
		st.bad += o.bad
		st.errs += o.errs
		st.exhausted = st.exhausted || o.exhausted
		if st.firstBad == 0 {
			st.firstBad = o.firstBad
		}
	}
	st.ok = len(all)
	st.rps = float64(st.ok) / st.elapsed.Seconds()
	if len(all) > 0 {
		slices.Sort(all)
		st.p50 = percentile(all, 0.50)
		st.p99 = percentile(all, 0.99)
		st.max = all[len(all)-1]
	}
	return st
}

// percentile of sorted samples, nearest rank.
func percentile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2fs", d.Seconds())
	case d >= 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
}

func us(d time.Duration) float64 { return float64(d) / 1e3 }
