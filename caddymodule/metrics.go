package caddymodule

import (
	"errors"
	"sync"
	"time"

	"github.com/okeragate/caddy-okera-auth/resolver"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/okeragate/caddy-okera-auth/validator"
)

// Request outcomes, the label of caddy_okera_auth_requests_total.
const (
	outcomeAuthenticated = "authenticated"
	outcomeMissingToken  = "missing_token"
	outcomeInvalidToken  = "invalid_token"
	outcomeUnavailable   = "unavailable"
	outcomeForbidden     = "forbidden"
)

// metrics are the gateway's Prometheus collectors. Like Caddy's own HTTP
// metrics they are created once per process and registered into each
// config's registry, so counters keep counting across config reloads and two
// okera_auth handlers in one config share them.
type metrics struct {
	requests           *prometheus.CounterVec
	validations        *prometheus.CounterVec
	validationDuration *prometheus.HistogramVec
	cacheRequests      *prometheus.CounterVec
	groupResolutions   *prometheus.CounterVec
	systemTokenExpiry  prometheus.Gauge

	// The children of the labelled collectors, made once: looking one up
	// in a map allocates nothing, WithLabelValues does. Written only in
	// newMetrics, so concurrent reads need no lock.
	byOutcome    map[string]prometheus.Counter
	byCache      map[[2]string]prometheus.Counter // cache, result
	byResolution map[[2]string]prometheus.Counter // source, result
	byValidation map[[2]string]prometheus.Counter // validator, result
	byDuration   map[string]prometheus.Observer
}

var (
	metricsOnce sync.Once
	theMetrics  *metrics
)

func newMetrics() *metrics {
	const ns, sub = "caddy", "okera_auth"
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "Requests seen by okera_auth, by outcome (authenticated, missing_token, invalid_token, unavailable, forbidden).",
		}, []string{"outcome"}),
		validations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "validations_total",
			Help: "Token validations not answered by a cache, by validator (remote, keys) and result (valid, rejected, unavailable).",
		}, []string{"validator", "result"}),
		validationDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "validation_duration_seconds",
			Help:    "Time spent by a validator on a token no cache answered.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"validator"}),
		cacheRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "cache_requests_total",
			Help: "Cache lookups by cache (keys, remote, ldap, endpoint, minted) and result (hit, miss).",
		}, []string{"cache", "result"}),
		groupResolutions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "group_resolutions_total",
			Help: "Answers of group resolvers by source (claim, ldap, endpoint) and result (groups, empty, error).",
		}, []string{"source", "result"}),
		systemTokenExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "system_token_expiry_timestamp_seconds",
			Help: "Unix time at which the system token in force expires (0: no exp).",
		}),
		byOutcome:    map[string]prometheus.Counter{},
		byCache:      map[[2]string]prometheus.Counter{},
		byResolution: map[[2]string]prometheus.Counter{},
		byValidation: map[[2]string]prometheus.Counter{},
		byDuration:   map[string]prometheus.Observer{},
	}
	for _, o := range []string{outcomeAuthenticated, outcomeMissingToken, outcomeInvalidToken, outcomeUnavailable, outcomeForbidden} {
		m.byOutcome[o] = m.requests.WithLabelValues(o)
	}
	for _, c := range []string{validator.ValidatorKeys, validator.ValidatorRemote, "ldap", "endpoint", "minted"} {
		for _, r := range []string{"hit", "miss"} {
			m.byCache[[2]string{c, r}] = m.cacheRequests.WithLabelValues(c, r)
		}
	}
	for _, src := range []string{resolver.SourceClaim, resolver.SourceLDAP, resolver.SourceEndpoint} {
		for _, r := range []string{resolver.ResultGroups, resolver.ResultEmpty, resolver.ResultError} {
			m.byResolution[[2]string{src, r}] = m.groupResolutions.WithLabelValues(src, r)
		}
	}
	for _, v := range []string{validator.ValidatorKeys, validator.ValidatorRemote} {
		for _, r := range []string{validator.ResultValid, validator.ResultRejected, validator.ResultUnavailable} {
			m.byValidation[[2]string{v, r}] = m.validations.WithLabelValues(v, r)
		}
		m.byDuration[v] = m.validationDuration.WithLabelValues(v)
	}
	return m
}

// child returns the precomputed child for labels, or makes one (for a
// label value added to the code without being added above).
func child(pre map[[2]string]prometheus.Counter, vec *prometheus.CounterVec, a, b string) prometheus.Counter {
	if c, ok := pre[[2]string{a, b}]; ok {
		return c
	}
	return vec.WithLabelValues(a, b)
}

// registerMetrics returns the process's collectors, registered into reg.
func registerMetrics(reg *prometheus.Registry) (*metrics, error) {
	metricsOnce.Do(func() { theMetrics = newMetrics() })
	if reg == nil {
		return theMetrics, nil
	}
	m := theMetrics
	for _, c := range []prometheus.Collector{m.requests, m.validations, m.validationDuration, m.cacheRequests, m.groupResolutions, m.systemTokenExpiry} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
		}
	}
	return m, nil
}

// outcome counts one request's outcome.
func (m *metrics) outcome(o string) { m.byOutcome[o].Inc() }

// ObserveValidation implements validator.Observer.
func (m *metrics) ObserveValidation(v, result string, elapsed time.Duration) {
	child(m.byValidation, m.validations, v, result).Inc()
	d, ok := m.byDuration[v]
	if !ok {
		d = m.validationDuration.WithLabelValues(v)
	}
	d.Observe(elapsed.Seconds())
}

// ObserveCache implements validator.Observer.
func (m *metrics) ObserveCache(cache string, hit bool) { m.cache(cache, hit) }

func (m *metrics) cache(cache string, hit bool) {
	result := "miss"
	if hit {
		result = "hit"
	}
	child(m.byCache, m.cacheRequests, cache, result).Inc()
}

// cacheObserver returns a hook that counts lookups of one cache.
func (m *metrics) cacheObserver(cache string) func(bool) {
	hit := child(m.byCache, m.cacheRequests, cache, "hit")
	miss := child(m.byCache, m.cacheRequests, cache, "miss")
	return func(h bool) {
		if h {
			hit.Inc()
		} else {
			miss.Inc()
		}
	}
}

// groupResolution counts one resolver answer.
func (m *metrics) groupResolution(source, result string) {
	child(m.byResolution, m.groupResolutions, source, result).Inc()
}

// systemTokenExpires records the expiry of the system token in force.
func (m *metrics) systemTokenExpires(t time.Time) {
	if t.IsZero() {
		m.systemTokenExpiry.Set(0)
		return
	}
	m.systemTokenExpiry.Set(float64(t.Unix()))
}

var _ validator.Observer = (*metrics)(nil)
