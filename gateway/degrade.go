package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/gateway/config"
	"github.com/rampart-ha/rampart/resilience/fallback"
)

// criticality ranks a route for load shedding and degradation modes.
type criticality uint8

const (
	sheddable criticality = iota
	normal
	critical
)

func criticalityOf(s string) criticality {
	switch s {
	case config.CriticalityCritical:
		return critical
	case config.CriticalitySheddable:
		return sheddable
	}
	return normal
}

// servesIn reports whether a route of criticality c is proxied in mode m:
// all of them in normal mode, all but sheddable ones when degraded, only
// critical ones in an emergency.
func (c criticality) servesIn(m fallback.Mode) bool {
	switch m {
	case fallback.Normal:
		return true
	case fallback.Degraded:
		return c > sheddable
	}
	return c == critical
}

// ErrShed is the error of a request refused to keep capacity for more
// critical routes, or turned away by the gateway's degradation mode.
var ErrShed = errors.New("gateway: shed")

var (
	errShedDegraded  = fmt.Errorf("%w: the gateway is degraded and the route is sheddable", ErrShed)
	errShedEmergency = fmt.Errorf("%w: the gateway is in emergency mode and the route is not critical", ErrShed)
	errShedLoad      = fmt.Errorf("%w: the cluster is nearly full and the route has a lower criticality", ErrShed)
)

// shedHeadroom is the share of a cluster's concurrency limit that sheddable
// routes leave free for the others.
const shedHeadroom = 0.2

// shed reports whether a request of a route of criticality c should be
// refused before it asks for a slot of cl's limits: sheddable requests
// when the limits are 80% used or requests queue, normal ones when the
// queue is half full. Critical requests use the limits in full.
func (cl *cluster) shed(c criticality) bool {
	if c == critical {
		return false
	}
	if b := cl.bulkhead; b != nil {
		limit, queue := b.Limits()
		switch c {
		case sheddable:
			if b.Waiting() > 0 || float64(b.InFlight()) >= (1-shedHeadroom)*float64(limit) {
				return true
			}
		case normal:
			if queue > 0 && b.Waiting() >= (queue+1)/2 {
				return true
			}
		}
	}
	if a := cl.adaptive; a != nil && c == sheddable {
		if float64(a.InFlight()) >= (1-shedHeadroom)*float64(a.Limit()) {
			return true
		}
	}
	return false
}

// routeFallback is a compiled config.Fallback.
type routeFallback struct {
	cluster *cluster        // nil: none
	resp    *directResponse // nil: none
}

// fallbackHeader carries the reason a fallback answered.
const fallbackHeader = "X-Rampart-Fallback"

// fellBack answers a request whose cluster could not serve it (cause says
// why) with the route's fallback: the fallback cluster if the request can
// go there, else the fallback response. It returns false, having written
// nothing, when there is nothing to fall back on and the caller must
// answer with the error.
func (g *Gateway) fellBack(ctx context.Context, w *recorder, in *http.Request, rq *request, cause error) bool {
	fb := rq.route.fallback
	if fb == nil || rq.fellBack || !fallbackable(ctx, cause) {
		return false
	}
	rq.fellBack = true
	if errors.Is(cause, ErrShed) {
		rq.shedErr = cause
	} else if rq.t.countErrors && rq.cluster != nil {
		// The cluster failed, whatever the fallback answers.
		rq.cluster.served.Add(1)
		rq.cluster.failed.Add(1)
	}
	reason := classify(cause, false).reason
	if errors.Is(cause, ErrShed) {
		reason = shedReason(cause)
	}
	if fb.cluster != nil && in.ContentLength == 0 && ctx.Err() == nil && !isUpgrade(in.Header) {
		g.metrics.fallbacks.WithLabelValues(rq.route.name, "cluster", reason).Inc()
		rq.fallback = "cluster " + fb.cluster.name + " after " + reason
		rq.cluster = fb.cluster
		rq.mu.Lock()
		rq.tried = rq.tried[len(rq.tried):] // the other cluster's endpoints mean nothing here
		rq.mu.Unlock()
		if fb.resp == nil {
			g.forward(ctx, w, in, rq)
			return true
		}
		rq.bufferErrors = true
		g.forward(ctx, w, in, rq)
		if rq.fallbackErr == nil {
			return true
		}
		reason = classify(rq.fallbackErr, false).reason
	}
	if fb.resp == nil {
		return false
	}
	g.metrics.fallbacks.WithLabelValues(rq.route.name, "response", reason).Inc()
	if rq.fallback == "" {
		rq.fallback = "response after " + reason
	} else {
		rq.fallback += ", then response after " + reason
	}
	rq.failure = ""
	h := w.Header()
	h.Set(fallbackHeader, reason)
	fb.resp.serve(w, rq.id)
	return true
}

// fallbackable reports whether a failure is one a fallback answers: the
// cluster could not serve, rather than the client going away or being
// limited.
func fallbackable(ctx context.Context, err error) bool {
	if errors.Is(err, ErrShed) {
		return true
	}
	f := classify(err, ctx.Err() != nil && !errors.Is(context.Cause(ctx), ErrRouteTimeout))
	switch f.status {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

func shedReason(err error) string {
	switch {
	case errors.Is(err, errShedDegraded):
		return "degraded"
	case errors.Is(err, errShedEmergency):
		return "emergency"
	}
	return "shed"
}

// compileFallback builds a route's fallback; the cluster must be in t.
func compileFallback(t *table, f *config.Fallback) (*routeFallback, error) {
	if f == nil {
		return nil, nil
	}
	fb := &routeFallback{}
	if f.Cluster != "" {
		cl, ok := t.clusters[f.Cluster]
		if !ok {
			return nil, fmt.Errorf("fallback cluster %q is not defined", f.Cluster)
		}
		fb.cluster = cl
	}
	if r := f.Response; r != nil {
		ct := r.ContentType
		if ct == "" && r.Body != "" && !hasHeader(r.Headers, "Content-Type") {
			ct = config.DefaultBodyContentType
		}
		fb.resp = &directResponse{status: r.Status, body: []byte(r.Body), contentType: ct,
			headers: compileHeaderOps(config.HeaderOps{Set: r.Headers})}
	}
	return fb, nil
}

func hasHeader(h map[string]string, name string) bool {
	for k := range h {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// buildModes returns the gateway's degradation modes: the ones the last
// table had when the degradation configuration did not change, so that a
// mode set through the admin API survives reloads. A new Modes keeps a
// pinned mode of the old one. With automatic switching a goroutine,
// stopped when the Modes is dropped, measures the pressure every interval.
func (g *Gateway) buildModes(next map[string]carried, d config.Degradation) (*fallback.Modes, error) {
	fp := "manual"
	if d.Auto != nil {
		fp = fmt.Sprintf("%+v", *d.Auto)
	}
	return carryGet(g.carry, next, "modes", fp, func() (*fallback.Modes, func(), error) {
		mc := fallback.ModesConfig{
			OnChange: func(from, to fallback.Mode, reason string) {
				g.metrics.modeSwitches.WithLabelValues(to.String()).Inc()
				g.log.Warn("degradation mode changed", "from", from.String(), "to", to.String(), "reason", reason)
			},
		}
		a := d.Auto
		if a != nil {
			mc.DegradedAt, mc.EmergencyAt, mc.Hysteresis = a.DegradedAt, a.EmergencyAt, a.Hysteresis
			mc.EnterAfter, mc.RecoverAfter = time.Duration(a.EnterAfter), time.Duration(a.RecoverAfter)
		}
		m, err := fallback.NewModes(mc)
		if err != nil {
			return nil, nil, err
		}
		if old := g.table.Load(); old != nil && old.modes != nil && old.modes.Pinned() {
			_ = m.Set(old.modes.Mode(), "kept across a configuration reload")
		}
		if a == nil {
			return m, nil, nil
		}
		stop, done := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(done)
			meter := pressureMeter{minRequests: uint64(a.MinRequests)}
			tick := time.NewTicker(time.Duration(a.Interval))
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if t := g.table.Load(); t != nil {
						m.Observe(meter.measure(t))
					}
				}
			}
		}()
		return m, func() { close(stop); <-done }, nil
	})
}

// pressureMeter turns cluster state into the pressure that drives the
// degradation modes: the largest, over the clusters, of the share of
// endpoints that are not usable and of the share of requests that failed
// since the last measure.
type pressureMeter struct {
	minRequests uint64
	last        map[*cluster][2]uint64 // served and failed at the last measure
}

func (pm *pressureMeter) measure(t *table) float64 {
	p := 0.0
	seen := make(map[*cluster][2]uint64, len(t.order))
	for _, cl := range t.order {
		if eps := cl.members.Load().eps; len(eps) > 0 {
			usable := 0
			for _, ep := range eps {
				if ep.Usable() {
					usable++
				}
			}
			p = max(p, 1-float64(usable)/float64(len(eps)))
		}
		now := [2]uint64{cl.served.Load(), cl.failed.Load()}
		if prev, ok := pm.last[cl]; ok {
			if served := now[0] - prev[0]; served >= pm.minRequests {
				p = max(p, float64(now[1]-prev[1])/float64(served))
			}
		}
		seen[cl] = now
	}
	pm.last = seen
	return p
}

// count accounts a finished request to its cluster for the pressure, when
// automatic degradation is on. Requests turned away by the mode itself do
// not count: they would keep the gateway degraded.
func (rq *request) count(status int) {
	cl := rq.cluster
	if cl == nil || !rq.t.countErrors {
		return
	}
	cl.served.Add(1)
	if status >= 500 && !rq.fellBack && !errors.Is(rq.shedErr, ErrShed) {
		cl.failed.Add(1)
	}
}
