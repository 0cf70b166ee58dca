package gateway

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-ha/rampart/endpoint"
)

// routeStats are the request metrics of one route and cluster pair,
// resolved when the table is built so that a request pays for no label
// lookup: the status code's counter is looked up once, then cached.
type routeStats struct {
	vec      *prometheus.CounterVec
	route    string
	cluster  string
	codes    [600]atomic.Pointer[prometheus.Counter]
	duration prometheus.Observer
}

func newRouteStats(m *metrics, route, cluster string) *routeStats {
	return &routeStats{
		vec: m.requests, route: route, cluster: cluster,
		duration: m.duration.WithLabelValues(route, cluster),
	}
}

func (s *routeStats) count(code int) {
	if code < 0 || code >= len(s.codes) {
		s.vec.WithLabelValues(s.route, s.cluster, statusLabel(code)).Inc()
		return
	}
	p := s.codes[code].Load()
	if p == nil {
		c := s.vec.WithLabelValues(s.route, s.cluster, statusLabels[code])
		p = &c
		s.codes[code].Store(p)
	}
	(*p).Inc()
}

// endpointStats are one endpoint's attempt counters within a cluster, by
// outcome.
type endpointStats [3]prometheus.Counter

func newEndpointStats(m *metrics, cluster string, ep *endpoint.Endpoint) *endpointStats {
	var s endpointStats
	for _, o := range []endpoint.Outcome{endpoint.Success, endpoint.Failure, endpoint.Ignored} {
		s[o] = m.attempts.WithLabelValues(cluster, ep.Address(), o.String())
	}
	return &s
}
