package gateway

import (
	"fmt"
	"net/http"

	"github.com/rampart-ha/rampart/endpoint"
	"github.com/rampart-ha/rampart/gateway/config"
	"github.com/rampart-ha/rampart/health"
)

// buildHealth returns the cluster's health monitor: the one the last table
// had when the configuration of its health checking did not change, so that
// ejections and check history survive a reload; otherwise a new one. A
// monitor gets its membership only once the table is in service (see
// Apply), so a reload that fails does not change what it watches.
func (g *Gateway) buildHealth(next map[string]carried, cc config.Cluster) (*health.Monitor, error) {
	hc, on := cc.MonitorConfig()
	if !on {
		return nil, nil
	}
	name := cc.Name
	return carryGet(g.carry, next, "health/"+name, fmt.Sprintf("%+v %+v", cc.HealthCheck, cc.OutlierDetection),
		func() (*health.Monitor, func(), error) {
			hc.OnChange = g.refresh
			hc.OnEject = func(_ *endpoint.Endpoint, detector string) {
				g.metrics.ejections.WithLabelValues(name, detector).Inc()
			}
			m, err := health.NewMonitor(hc)
			if err != nil {
				return nil, nil, err
			}
			return m, m.Close, nil
		})
}

// observe tells the cluster's health monitor what an attempt says about
// its endpoint; outcome is the one endpointTransport already classified.
// It returns the detector that ejected the endpoint because of this
// attempt, if one did.
func (cl *cluster) observe(ep *endpoint.Endpoint, outcome endpoint.Outcome, resp *http.Response, err error) string {
	if cl.health == nil {
		return ""
	}
	r := health.Success
	switch {
	case outcome == endpoint.Ignored:
		r = health.Ignored // the client left or a hedge lost
	case err != nil:
		r = health.LocalOriginFailure
	case resp.StatusCode == http.StatusBadGateway, resp.StatusCode == http.StatusServiceUnavailable,
		resp.StatusCode == http.StatusGatewayTimeout:
		r = health.GatewayFailure
	case resp.StatusCode >= 500:
		r = health.Failure5xx
	}
	return cl.health.Observe(ep, r)
}
