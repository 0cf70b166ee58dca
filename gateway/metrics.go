package gateway

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the gateway's Prometheus collectors that count events as
// they happen; state the library keeps (budgets, hedges, limits) is read at
// scrape time by tableCollector. They are registered on
// the Registerer given to New, never on the global one, and survive
// reloads: routes and clusters are labels, not collectors.
type metrics struct {
	requests        *prometheus.CounterVec   // route, cluster, code
	duration        *prometheus.HistogramVec // route, cluster
	inFlight        prometheus.Gauge
	attempts        *prometheus.CounterVec   // cluster, endpoint, outcome
	upstreamTime    *prometheus.HistogramVec // cluster
	retries         *prometheus.CounterVec   // route, reason
	rejections      *prometheus.CounterVec   // route, cluster, limit
	queueWait       *prometheus.HistogramVec // cluster
	reloads         *prometheus.CounterVec   // result
	lastReload      prometheus.Gauge
	ejections       *prometheus.CounterVec // cluster, detector
	breakerMoves    *prometheus.CounterVec // cluster, endpoint, to
	fallbacks       *prometheus.CounterVec // route, kind, reason
	staleServed     *prometheus.CounterVec // route
	modeSwitches    *prometheus.CounterVec // to
	discoveryErrors *prometheus.CounterVec // cluster
}

// latencyBuckets suit an HTTP gateway: from a fast cache hit to a slow
// upstream near a typical route timeout.
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rampart", Subsystem: "http", Name: "requests_total",
			Help: "Requests answered by the gateway, by route, cluster and status code.",
		}, []string{"route", "cluster", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "rampart", Subsystem: "http", Name: "request_duration_seconds",
			Help:    "Time from receiving a request to the end of its response, by route and cluster.",
			Buckets: latencyBuckets,
		}, []string{"route", "cluster"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "rampart", Subsystem: "http", Name: "requests_in_flight",
			Help: "Requests being served by the gateway.",
		}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rampart", Subsystem: "upstream", Name: "attempts_total",
			Help: "Attempts sent to upstream endpoints, by cluster, endpoint and outcome.",
		}, []string{"cluster", "endpoint", "outcome"}),
		upstreamTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "rampart", Subsystem: "upstream", Name: "attempt_duration_seconds",
			Help:    "Time from sending an attempt to its response headers, by cluster.",
			Buckets: latencyBuckets,
		}, []string{"cluster"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rampart", Subsystem: "upstream", Name: "retries_total",
			Help: "Retries sent, by route and the condition that caused them.",
		}, []string{"route", "reason"}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rampart", Subsystem: "http", Name: "rejections_total",
			Help: "Requests refused by a limit, by route, cluster and limit (rate_limit, bulkhead, adaptive).",
		}, []string{"route", "cluster", "limit"}),
		queueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "rampart", Subsystem: "cluster", Name: "queue_wait_seconds",
			Help:    "Time requests waited for a cluster's in-flight limit, by cluster.",
			Buckets: latencyBuckets,
		}, []string{"cluster"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rampart", Subsystem: "config", Name: "reloads_total",
			Help: "Configuration reloads, by result (success, failure).",
		}, []string{"result"}),
		lastReload: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "rampart", Subsystem: "config", Name: "last_reload_success_timestamp_seconds",
			Help: "Time of the last successful configuration load.",
		}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rampart", Subsystem: "cluster", Name: "ejections_total",
			Help: "Endpoints ejected by outlier detection, by cluster and detector.",
		}, []string{"cluster", "detector"}),
		breakerMoves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rampart", Subsystem: "upstream", Name: "breaker_transitions_total",
			Help: "State changes of the per-endpoint circuit breakers, by cluster, endpoint and new state.",
		}, []string{"cluster", "endpoint", "to"}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rampart", Subsystem: "route", Name: "fallbacks_total",
			Help: "Requests answered by a route's fallback, by route, kind (cluster, response) and reason.",
		}, []string{"route", "kind", "reason"}),
		staleServed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rampart", Subsystem: "route", Name: "stale_served_total",
			Help: "Stale responses served because the upstream failed (stale_if_error), by route.",
		}, []string{"route"}),
		modeSwitches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rampart", Subsystem: "gateway", Name: "degradation_switches_total",
			Help: "Switches of the gateway's degradation mode, by the mode switched to.",
		}, []string{"to"}),
		discoveryErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "rampart", Subsystem: "discovery", Name: "errors_total",
			Help: "Times a cluster's discovery source could not be reached, by cluster; the cluster keeps its last endpoints.",
		}, []string{"cluster"}),
	}
	for _, c := range []prometheus.Collector{
		m.requests, m.duration, m.inFlight, m.attempts, m.upstreamTime, m.retries,
		m.rejections, m.queueWait, m.reloads, m.lastReload, m.ejections,
		m.breakerMoves, m.fallbacks, m.staleServed, m.modeSwitches, m.discoveryErrors,
	} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
