package gateway

import (
	"errors"
	"fmt"

	"github.com/rampart-ha/rampart/endpoint"
	"github.com/rampart-ha/rampart/gateway/config"
	"github.com/rampart-ha/rampart/resilience/breaker"
)

// errEndpointFailed is what an endpoint's breaker is told of an attempt
// that failed: no response, or a 5xx.
var errEndpointFailed = errors.New("gateway: attempt failed")

// buildBreakers returns the circuit breakers of a cluster's endpoints, one
// per endpoint and in the same order, or nil without circuit_breaker. A
// breaker is keyed by the endpoint's address, so that it keeps its state
// across reloads that leave its configuration alone; an endpoint that two
// clusters share has one breaker. Breakers are hung on their endpoints
// only once the table is in service (see Apply).
func (g *Gateway) buildBreakers(next map[string]carried, cc config.Cluster, eps []*endpoint.Endpoint) ([]*breaker.Breaker, error) {
	if cc.CircuitBreaker == nil {
		return nil, nil
	}
	bc := cc.CircuitBreaker.BreakerConfig()
	fp := fmt.Sprintf("%+v", *cc.CircuitBreaker)
	out := make([]*breaker.Breaker, len(eps))
	for i, ep := range eps {
		addr := ep.Address()
		b, err := carryGet(g.carry, next, "breaker/"+addr, fp, func() (*breaker.Breaker, func(), error) {
			b, err := g.newEndpointBreaker(cc.Name, addr, bc)
			return b, nil, err
		})
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}

// newEndpointBreaker returns a breaker for the endpoint at addr whose
// changes are logged and counted.
func (g *Gateway) newEndpointBreaker(cluster, addr string, bc breaker.Config) (*breaker.Breaker, error) {
	bc.OnStateChange = func(from, to breaker.State) {
		g.metrics.breakerMoves.WithLabelValues(cluster, addr, to.String()).Inc()
		g.log.Warn("endpoint circuit breaker changed state", "cluster", cluster, "endpoint", addr,
			"from", from.String(), "to", to.String())
	}
	return breaker.New(bc)
}

// hangBreakers puts the table's breakers on their endpoints, and takes a
// breaker off an endpoint that no cluster of the table gives one.
func (t *table) hangBreakers() {
	want := make(map[*endpoint.Endpoint]*breaker.Breaker)
	for _, cl := range t.order {
		m := cl.members.Load()
		for i, ep := range m.eps {
			if m.breakers != nil {
				want[ep] = m.breakers[i]
			} else if _, ok := want[ep]; !ok {
				want[ep] = nil
			}
		}
	}
	for ep, b := range want {
		if ep.Breaker() != b {
			ep.SetBreaker(b)
		}
	}
}
