package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-ha/rampart/endpoint"
	"github.com/rampart-ha/rampart/resilience/breaker"
	"github.com/rampart-ha/rampart/resilience/fallback"
	"github.com/rampart-ha/rampart/resilience/hedge"
	"github.com/rampart-ha/rampart/resilience/retry"
)

// tableCollector reports the state the resilience library keeps (budgets,
// hedges, limits, endpoint estimates) from the table being served, read at
// scrape time: the library exposes snapshots, the gateway turns them into
// metrics.
type tableCollector struct{ g *Gateway }

var (
	descBudgetExhausted = prometheus.NewDesc("rampart_upstream_budget_exhausted_total",
		"Retries or hedges refused by their budget, by route and kind (retry, hedge).", []string{"route", "kind"}, nil)
	descHedges = prometheus.NewDesc("rampart_upstream_hedges_total",
		"Hedged attempts started, by route.", []string{"route"}, nil)
	descHedgesWon = prometheus.NewDesc("rampart_upstream_hedges_won_total",
		"Hedged attempts that answered first, by route.", []string{"route"}, nil)
	descEndpointInFlight = prometheus.NewDesc("rampart_upstream_endpoint_requests_in_flight",
		"Attempts in flight to an endpoint.", []string{"cluster", "endpoint"}, nil)
	descEndpointLatency = prometheus.NewDesc("rampart_upstream_endpoint_latency_ewma_seconds",
		"Peak-EWMA latency estimate of an endpoint, as the ewma balancer sees it.", []string{"cluster", "endpoint"}, nil)
	descQueued = prometheus.NewDesc("rampart_cluster_queued_requests",
		"Requests waiting for a cluster's in-flight limit.", []string{"cluster"}, nil)
	descClusterInFlight = prometheus.NewDesc("rampart_cluster_requests_in_flight",
		"Requests holding a slot of a cluster's in-flight limit.", []string{"cluster"}, nil)
	descAdaptiveLimit = prometheus.NewDesc("rampart_cluster_adaptive_limit",
		"Current adaptive concurrency limit of a cluster.", []string{"cluster"}, nil)
	descEndpoints = prometheus.NewDesc("rampart_cluster_endpoints",
		"Endpoints of a cluster by state: healthy (usable), unhealthy (failing active checks), ejected, draining. An endpoint with several flags counts under each.",
		[]string{"cluster", "state"}, nil)
	descBreakerState = prometheus.NewDesc("rampart_upstream_endpoint_breaker_state",
		"1 for the current state of an endpoint's circuit breaker (closed, open, half-open, forced-open, disabled), 0 for the others.",
		[]string{"cluster", "endpoint", "state"}, nil)
	descMode = prometheus.NewDesc("rampart_gateway_degradation_mode",
		"1 for the gateway's current degradation mode (normal, degraded, emergency), 0 for the others.", []string{"mode"}, nil)
	descDiscoveryUp = prometheus.NewDesc("rampart_discovery_up",
		"1 while a cluster's discovery source answers, 0 while the cluster serves from the last endpoints it reported.", []string{"cluster"}, nil)
	descPanic = prometheus.NewDesc("rampart_cluster_panic",
		"1 while some priority level of the cluster is in panic mode (routing to unhealthy endpoints too), else 0.", []string{"cluster"}, nil)
)

func (c tableCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descBudgetExhausted, descHedges, descHedgesWon, descEndpointInFlight,
		descEndpointLatency, descQueued, descClusterInFlight, descAdaptiveLimit, descEndpoints, descPanic, descBreakerState, descMode, descDiscoveryUp} {
		ch <- d
	}
}

func (c tableCollector) Collect(ch chan<- prometheus.Metric) {
	g := c.g
	g.applyMu.Lock()
	kept := g.carry.m
	g.applyMu.Unlock()
	t := g.table.Load()
	if t == nil {
		return
	}
	now := t.modes.Mode()
	for _, m := range []fallback.Mode{fallback.Normal, fallback.Degraded, fallback.Emergency} {
		v := 0.0
		if m == now {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(descMode, prometheus.GaugeValue, v, m.String())
	}
	for _, rt := range t.routes {
		if b := budgetOf(kept, "retry-budget/"+rt.name); b != nil {
			ch <- prometheus.MustNewConstMetric(descBudgetExhausted, prometheus.CounterValue, float64(b.Stats().Refusals), rt.name, "retry")
		}
		if h := hedgerOf(kept, "hedge/"+rt.name); h != nil {
			m := h.Metrics()
			ch <- prometheus.MustNewConstMetric(descHedges, prometheus.CounterValue, float64(m.Hedges), rt.name)
			ch <- prometheus.MustNewConstMetric(descHedgesWon, prometheus.CounterValue, float64(m.HedgesWon), rt.name)
			ch <- prometheus.MustNewConstMetric(descBudgetExhausted, prometheus.CounterValue, float64(m.BudgetRefusals), rt.name, "hedge")
		}
	}
	for _, cl := range t.order {
		var healthy, unhealthy, ejected, draining int
		m := cl.members.Load()
		for _, ep := range m.eps {
			f := ep.Flags()
			if f == 0 {
				healthy++
			}
			if f&endpoint.FailedHealthCheck != 0 {
				unhealthy++
			}
			if f&endpoint.Ejected != 0 {
				ejected++
			}
			if f&endpoint.Draining != 0 {
				draining++
			}
		}
		for state, n := range map[string]int{"healthy": healthy, "unhealthy": unhealthy, "ejected": ejected, "draining": draining} {
			ch <- prometheus.MustNewConstMetric(descEndpoints, prometheus.GaugeValue, float64(n), cl.name, state)
		}
		if cl.disc != nil {
			up := 0.0
			if cl.disc.state().Reachable {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(descDiscoveryUp, prometheus.GaugeValue, up, cl.name)
		}
		panicking := 0.0
		if cl.tiered.Panic() {
			panicking = 1
		}
		ch <- prometheus.MustNewConstMetric(descPanic, prometheus.GaugeValue, panicking, cl.name)
		for i, ep := range m.eps {
			ch <- prometheus.MustNewConstMetric(descEndpointInFlight, prometheus.GaugeValue, float64(ep.InFlight()), cl.name, ep.Address())
			ch <- prometheus.MustNewConstMetric(descEndpointLatency, prometheus.GaugeValue, ep.Latency().Seconds(), cl.name, ep.Address())
			if m.breakers != nil {
				now := m.breakers[i].State()
				for _, st := range breakerStates {
					v := 0.0
					if st == now {
						v = 1
					}
					ch <- prometheus.MustNewConstMetric(descBreakerState, prometheus.GaugeValue, v, cl.name, ep.Address(), st.String())
				}
			}
		}
		if cl.bulkhead != nil {
			m := cl.bulkhead.Metrics()
			ch <- prometheus.MustNewConstMetric(descQueued, prometheus.GaugeValue, float64(m.Queued), cl.name)
			ch <- prometheus.MustNewConstMetric(descClusterInFlight, prometheus.GaugeValue, float64(m.InFlight), cl.name)
		}
		if cl.adaptive != nil {
			ch <- prometheus.MustNewConstMetric(descAdaptiveLimit, prometheus.GaugeValue, float64(cl.adaptive.Limit()), cl.name)
		}
	}
}

var breakerStates = []breaker.State{breaker.StateClosed, breaker.StateOpen, breaker.StateHalfOpen, breaker.StateForcedOpen, breaker.StateDisabled}

func budgetOf(kept map[string]carried, key string) *retry.Budget {
	b, _ := kept[key].v.(*retry.Budget)
	return b
}

func hedgerOf(kept map[string]carried, key string) *hedge.Hedger {
	h, _ := kept[key].v.(*hedge.Hedger)
	return h
}
