//go:build soak

package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptrace"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The soak's load driver is the bench's closed loop (one goroutine per
// keep-alive connection, each sending a GET and reading the whole answer
// before the next, through the bench target's transport), generalised to
// requests of several kinds: each kind has its own credentials and the one
// status it must get, and every answer is checked against it. RoundTrip is
// called directly, so a connection that the server closed under an
// idempotent GET is retried by net/http's Transport itself (its rule: a
// reused connection that failed before any answer byte); only what it
// could not retry surfaces, and counts as a transport error.

// callKind is one kind of request.
type callKind struct {
	name string
	tgt  *target
	want int // the status every answer must have
	// fill sets the request's headers (credentials, spoofed identity
	// headers, expectHeader); false means its supply of credentials ran
	// out.
	fill func(rng *rand.Rand, h http.Header) bool
}

// expecting is the same kind with another wanted status (a fault changes
// what some kinds must get).
func (k *callKind) expecting(status int) *callKind {
	c := *k
	c.want = status
	return &c
}

// weighted is a kind and its share of a crew's requests.
type weighted struct {
	kind   *callKind
	weight int
}

// crew is a group of workers drawing their requests from one mix. Kinds
// whose latency must not depend on each other go to separate crews: a
// worker stuck behind a slow dependency holds up only its own crew.
type crew struct {
	workers int
	mix     []weighted
}

func (c crew) pick(rng *rand.Rand) *callKind {
	if len(c.mix) == 1 {
		return c.mix[0].kind
	}
	total := 0
	for _, w := range c.mix {
		total += w.weight
	}
	n := rng.IntN(total)
	for _, w := range c.mix {
		if n < w.weight {
			return w.kind
		}
		n -= w.weight
	}
	return c.mix[len(c.mix)-1].kind
}

// solo is a crew of one kind.
func solo(workers int, k *callKind) crew { return crew{workers: workers, mix: []weighted{{k, 1}}} }

// driveOpts bound one run: by time, by a number of requests, or both.
type driveOpts struct {
	duration time.Duration   // 0: until budget
	budget   int64           // total requests; 0: until duration
	stop     <-chan struct{} // ends the run early when closed
	trace    bool            // count requests the Transport retried on another connection
	progress func(done int64)
}

// kindStats is what one kind of request got.
type kindStats struct {
	name       string
	want       int
	requests   int
	statuses   map[int]int
	unexpected int            // wrong status, or an answer without the headers its status requires
	spoofed    int            // answers the upstream flagged
	errs       int            // transport errors RoundTrip could not retry away
	retried    int            // requests that needed a second connection (with trace)
	users      map[string]int // users the upstream saw, over the 200 answers
	lats       []time.Duration
	problems   []string // the first few, for the log

	p50, p99, max time.Duration
}

func newKindStats(k *callKind) *kindStats {
	return &kindStats{name: k.name, want: k.want, statuses: map[int]int{}, users: map[string]int{}}
}

func (s *kindStats) problem(p string) {
	if len(s.problems) < 3 {
		s.problems = append(s.problems, p)
	}
}

func (s *kindStats) merge(o *kindStats) {
	s.requests += o.requests
	s.unexpected += o.unexpected
	s.spoofed += o.spoofed
	s.errs += o.errs
	s.retried += o.retried
	for k, v := range o.statuses {
		s.statuses[k] += v
	}
	for k, v := range o.users {
		s.users[k] += v
	}
	s.lats = append(s.lats, o.lats...)
	for _, p := range o.problems {
		s.problem(p)
	}
}

func (s *kindStats) finish() {
	if len(s.lats) == 0 {
		return
	}
	slices.Sort(s.lats)
	s.p50 = percentile(s.lats, 0.50)
	s.p99 = percentile(s.lats, 0.99)
	s.max = s.lats[len(s.lats)-1]
}

// failures is every answer that was not what the kind must get.
func (s *kindStats) failures() int { return s.unexpected + s.errs }

// statusText is "200×1234 503×5".
func (s *kindStats) statusText() string {
	codes := make([]int, 0, len(s.statuses))
	for c := range s.statuses {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", c, s.statuses[c]))
	}
	if s.errs > 0 {
		parts = append(parts, fmt.Sprintf("transport error×%d", s.errs))
	}
	if len(parts) == 0 {
		return "—"
	}
	return strings.Join(parts, " ")
}

// usersText is "alice-remote×10 alice×3".
func (s *kindStats) usersText() string {
	names := make([]string, 0, len(s.users))
	for u := range s.users {
		names = append(names, u)
	}
	sort.Slice(names, func(i, j int) bool { return s.users[names[i]] > s.users[names[j]] })
	var parts []string
	for _, u := range names {
		parts = append(parts, fmt.Sprintf("%s×%d", u, s.users[u]))
	}
	return strings.Join(parts, " ")
}

// driveResult is one run: per kind, in the order the crews name them.
type driveResult struct {
	order     []string
	kinds     map[string]*kindStats
	elapsed   time.Duration
	exhausted bool // a kind's credentials ran out
}

func (r *driveResult) get(name string) *kindStats {
	if s, ok := r.kinds[name]; ok {
		return s
	}
	return &kindStats{name: name, statuses: map[int]int{}, users: map[string]int{}}
}

// total sums every kind.
func (r *driveResult) total() *kindStats {
	t := &kindStats{name: "all", statuses: map[int]int{}, users: map[string]int{}}
	for _, name := range r.order {
		t.add(r.kinds[name])
	}
	return t
}

// add counts s's requests into k.
func (k *kindStats) add(s *kindStats) {
	k.requests += s.requests
	k.unexpected += s.unexpected
	k.spoofed += s.spoofed
	k.errs += s.errs
	k.retried += s.retried
	for code, n := range s.statuses {
		k.statuses[code] += n
	}
}

func (r *driveResult) rps() float64 {
	return float64(r.total().requests) / r.elapsed.Seconds()
}

// drive runs the crews until the duration is over or the budget is spent.
func drive(crews []crew, o driveOpts) *driveResult {
	type worker struct {
		stats     map[string]*kindStats
		exhausted bool
	}
	var workers []*worker
	var wg sync.WaitGroup
	var sent atomic.Int64
	start := time.Now()
	deadline := start.Add(o.duration)
	if o.duration == 0 {
		deadline = start.Add(24 * time.Hour)
	}
	done := make(chan struct{})
	if o.progress != nil {
		go func() {
			tick := time.NewTicker(10 * time.Second)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					o.progress(sent.Load())
				}
			}
		}()
	}
	res := &driveResult{kinds: map[string]*kindStats{}}
	for ci, c := range crews {
		for _, m := range c.mix {
			if !slices.Contains(res.order, m.kind.name) {
				res.order = append(res.order, m.kind.name)
			}
		}
		for wi := range c.workers {
			w := &worker{stats: map[string]*kindStats{}}
			workers = append(workers, w)
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(start.UnixNano()), uint64(ci<<16|wi)))
				for time.Now().Before(deadline) {
					select {
					case <-o.stop:
						return
					default:
					}
					if o.budget > 0 && sent.Add(1) > o.budget {
						return
					} else if o.budget == 0 {
						sent.Add(1)
					}
					k := c.pick(rng)
					st := w.stats[k.name]
					if st == nil {
						st = newKindStats(k)
						w.stats[k.name] = st
					}
					if !send(k, rng, st, o.trace) {
						w.exhausted = true
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	close(done)
	res.elapsed = time.Since(start)
	for _, w := range workers {
		res.exhausted = res.exhausted || w.exhausted
		for name, s := range w.stats {
			if res.kinds[name] == nil {
				res.kinds[name] = &kindStats{name: name, want: s.want, statuses: map[int]int{}, users: map[string]int{}}
			}
			res.kinds[name].merge(s)
		}
	}
	for _, name := range res.order {
		if res.kinds[name] == nil {
			res.kinds[name] = &kindStats{name: name, statuses: map[int]int{}, users: map[string]int{}}
		}
		res.kinds[name].finish()
	}
	return res
}

// send makes one request of kind k and records its answer; false means the
// kind's credentials ran out.
func send(k *callKind, rng *rand.Rand, st *kindStats, trace bool) bool {
	h := make(http.Header, 8)
	if !k.fill(rng, h) {
		return false
	}
	req, err := http.NewRequest(http.MethodGet, k.tgt.url, nil)
	if err != nil {
		panic(err) // the URL is ours
	}
	req.Header = h
	conns := 0
	if trace {
		req = req.WithContext(httptrace.WithClientTrace(context.Background(),
			&httptrace.ClientTrace{GetConn: func(string) { conns++ }}))
	}
	st.requests++
	t0 := time.Now()
	resp, err := k.tgt.transport.RoundTrip(req)
	if conns > 1 {
		st.retried++
	}
	if err != nil {
		st.errs++
		st.problem("transport error: " + err.Error())
		return true
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	st.lats = append(st.lats, time.Since(t0))
	code := resp.StatusCode
	st.statuses[code]++
	problem := ""
	_, fromUpstream := resp.Header[seenUserHeader]
	switch {
	case code != k.want:
		problem = fmt.Sprintf("got %d, want %d", code, k.want)
	case code == http.StatusOK && !fromUpstream:
		problem = "a 200 the upstream did not send"
	case code == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "":
		problem = "a 401 without WWW-Authenticate"
	case code == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "":
		problem = "a 503 without Retry-After"
	}
	if problem != "" {
		st.unexpected++
		st.problem(problem)
	}
	if v := resp.Header.Get(verdictHeader); v != "" {
		st.spoofed++
		st.problem(v)
	}
	if code == http.StatusOK && fromUpstream {
		st.users[resp.Header.Get(seenUserHeader)]++
	}
	return true
}

// rssSample is the gateway's resident memory at some point of a run.
type rssSample struct {
	at time.Duration
	kb int64
}

// sampleRSS reads the process's VmRSS every interval until stop is closed;
// the series comes out of the returned channel.
func sampleRSS(pid int, every time.Duration, stop <-chan struct{}) <-chan []rssSample {
	out := make(chan []rssSample, 1)
	go func() {
		start := time.Now()
		var s []rssSample
		read := func() {
			if kb, err := procStatusKB(pid, "VmRSS"); err == nil {
				s = append(s, rssSample{at: time.Since(start), kb: kb})
			}
		}
		read()
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				read()
				out <- s
				return
			case <-tick.C:
				read()
			}
		}
	}()
	return out
}
