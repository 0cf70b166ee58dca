package registry

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Registry's Prometheus metrics; with a nil Registerer
// they are kept but never exported.
type metrics struct {
	instances   *prometheus.GaugeVec
	heartbeats  prometheus.Counter
	evictions   *prometheus.CounterVec
	protected   *prometheus.GaugeVec
	activations *prometheus.CounterVec
	watchers    *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		instances: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rampart_registry_instances",
			Help: "Registered instances by service and state (passing, critical).",
		}, []string{"service", "state"}),
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "rampart_registry_heartbeats_total",
			Help: "Heartbeats accepted.",
		}),
		evictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_registry_evictions_total",
			Help: "Instances removed because their lease and grace period ran out.",
		}, []string{"service"}),
		protected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rampart_registry_protected",
			Help: "1 while protection mode holds a service's evictions back, else 0.",
		}, []string{"service"}),
		activations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "rampart_registry_protection_activations_total",
			Help: "Times protection mode engaged for a service.",
		}, []string{"service"}),
		watchers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "rampart_registry_watchers",
			Help: "Blocking queries and event streams waiting on a service.",
		}, []string{"service"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.instances, m.heartbeats, m.evictions, m.protected, m.activations, m.watchers} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, errors.New("registry: metrics already registered on this Registerer (one Registry per Registerer)")
			}
			return nil, err
		}
	}
	return m, nil
}

// setCounts sets the instance gauges of svc; svc.mu must be held.
func (m *metrics) setCounts(svc *service) {
	passing, critical := 0, 0
	for _, e := range svc.entries {
		if e.inst.State == Passing {
			passing++
		} else {
			critical++
		}
	}
	m.instances.WithLabelValues(svc.name, string(Passing)).Set(float64(passing))
	m.instances.WithLabelValues(svc.name, string(Critical)).Set(float64(critical))
}

func (m *metrics) setProtected(service string, on bool) {
	v := 0.0
	if on {
		v = 1
	}
	m.protected.WithLabelValues(service).Set(v)
}

func (m *metrics) watch(svc *service, delta int64) {
	svc.watchers.Add(delta)
	m.watchers.WithLabelValues(svc.name).Add(float64(delta))
}
