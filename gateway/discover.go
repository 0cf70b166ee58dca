package gateway

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rampart-ha/rampart/discovery"
	"github.com/rampart-ha/rampart/endpoint"
	"github.com/rampart-ha/rampart/gateway/config"
	"github.com/rampart-ha/rampart/registry/client"
	"github.com/rampart-ha/rampart/resilience/breaker"
)

// discoverer runs one cluster's discovery source and keeps what it last
// reported, so that the cluster keeps its endpoints when the source cannot
// be reached, and a reload that leaves the source alone starts from them.
// It is carried across reloads by the fingerprint of its configuration.
type discoverer struct {
	g      *Gateway
	name   string // the cluster's
	source string // what it watches, in words

	mu      sync.Mutex
	eps     []discovery.Endpoint // the last set reported
	have    bool                 // a set was reported
	err     error                // why the source is unreachable; nil after a set
	setAt   time.Time            // when the last set came
	errAt   time.Time
	updates uint64

	cancel context.CancelFunc
	done   chan struct{}
}

// DiscoveryState is a cluster's discovery as GET /clusters shows it.
type DiscoveryState struct {
	Source    string     `json:"source"`
	Reachable bool       `json:"reachable"`
	Error     string     `json:"error,omitempty"` // why it is not; the cluster keeps its last endpoints
	ErrorAt   *time.Time `json:"error_at,omitempty"`
	UpdatedAt *time.Time `json:"updated_at,omitempty"` // the last set of endpoints
	Endpoints int        `json:"endpoints"`            // in the last set
	Updates   uint64     `json:"updates"`
}

func (d *discoverer) state() DiscoveryState {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := DiscoveryState{Source: d.source, Reachable: d.err == nil && d.have, Endpoints: len(d.eps), Updates: d.updates}
	if d.err != nil {
		s.Error = d.err.Error()
		at := d.errAt
		s.ErrorAt = &at
	}
	if d.have {
		at := d.setAt
		s.UpdatedAt = &at
	}
	return s
}

// current returns the last set reported.
func (d *discoverer) current() []discovery.Endpoint {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.eps
}

// emit is the source's callback.
func (d *discoverer) emit(u discovery.Update) {
	d.mu.Lock()
	d.updates++
	if u.Err != nil {
		d.err, d.errAt = u.Err, time.Now()
		d.mu.Unlock()
		d.g.log.Warn("discovery source unreachable; keeping the last endpoints", "cluster", d.name, "source", d.source, "error", u.Err)
		d.g.metrics.discoveryErrors.WithLabelValues(d.name).Inc()
		return
	}
	d.eps, d.have, d.err, d.setAt = u.Endpoints, true, nil, time.Now()
	d.mu.Unlock()
	d.g.applyDiscovered(d)
}

// buildDiscoverer returns the cluster's discoverer, nil without discovery:
// the one the last table had when the discovery configuration did not
// change, else a new one, whose source starts at once. Its updates reach
// the table in service (see applyDiscovered).
func (g *Gateway) buildDiscoverer(next map[string]carried, cc config.Cluster) (*discoverer, error) {
	dc := cc.Discovery
	if dc == nil {
		return nil, nil
	}
	fp := fmt.Sprintf("%+v %+v %+v", ptrValue(dc.Registry), ptrValue(dc.DNS), ptrValue(dc.Etcd))
	return carryGet(g.carry, next, "discovery/"+cc.Name, fp, func() (*discoverer, func(), error) {
		src, desc, err := newSource(dc)
		if err != nil {
			return nil, nil, err
		}
		ctx, cancel := context.WithCancel(context.Background())
		d := &discoverer{g: g, name: cc.Name, source: desc, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(d.done)
			src.Run(ctx, d.emit)
		}()
		return d, func() { cancel(); <-d.done }, nil
	})
}

func ptrValue[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// newSource builds the discovery source a configuration names and says
// what it watches.
func newSource(dc *config.Discovery) (discovery.Source, string, error) {
	switch {
	case dc.Registry != nil:
		r := dc.Registry
		c, err := client.New(client.Config{Addresses: r.Addresses})
		if err != nil {
			return nil, "", err
		}
		return discovery.Registry(c, r.Service), "registry service " + r.Service + " at " + strings.Join(r.Addresses, ", "), nil
	case dc.DNS != nil:
		n := dc.DNS
		src, err := discovery.DNS(discovery.DNSConfig{Name: n.Name, Port: n.Port, SRV: n.SRV, Interval: time.Duration(n.Interval)})
		desc := fmt.Sprintf("dns %s:%d", n.Name, n.Port)
		if n.SRV {
			desc = "dns srv " + n.Name
		}
		return src, desc, err
	case dc.Etcd != nil:
		e := dc.Etcd
		src, err := discovery.Etcd(discovery.EtcdConfig{Endpoints: e.Endpoints, Prefix: e.Prefix})
		return src, "etcd prefix " + e.Prefix + " at " + strings.Join(e.Endpoints, ", "), err
	}
	return nil, "", fmt.Errorf("discovery: no source configured")
}

// membership builds a cluster's members from its static endpoints and its
// discoverer's last set: endpoints are keyed by address in the gateway's
// store, so one that stays keeps its health, latency and breaker. Static
// endpoints win over discovered ones with the same address. prev, when
// not nil, lends its per-endpoint metrics and breakers.
func (g *Gateway) membership(cl *cluster, prev *members) (*members, error) {
	m := &members{stats: make(map[*endpoint.Endpoint]*endpointStats)}
	seen := make(map[string]bool)
	add := func(addr string, a endpoint.Attrs) error {
		if seen[addr] {
			return nil
		}
		seen[addr] = true
		ep, err := g.store.Ensure(addr, a)
		if err != nil {
			return err
		}
		m.eps = append(m.eps, ep)
		if prev != nil && prev.stats[ep] != nil {
			m.stats[ep] = prev.stats[ep]
		} else {
			m.stats[ep] = newEndpointStats(g.metrics, cl.name, ep)
		}
		return nil
	}
	for i, ec := range cl.static {
		if err := add(ec.Address, endpoint.Attrs{Weight: ec.Weight, Zone: ec.Zone, Priority: ec.Priority, Metadata: ec.Metadata}); err != nil {
			return nil, fmt.Errorf("endpoints[%d]: %w", i, err)
		}
	}
	if cl.disc != nil {
		for _, de := range cl.disc.current() {
			a := endpoint.Attrs{Weight: de.Weight, Zone: de.Zone, Priority: de.Priority, Metadata: de.Metadata}
			if err := add(de.Address, a); err != nil {
				// One bad entry must not take the others away.
				g.log.Warn("discovery reported an unusable endpoint", "cluster", cl.name, "endpoint", de.Address, "error", err)
			}
		}
	}
	if cl.breakerCfg != nil {
		m.breakers = make([]*breaker.Breaker, len(m.eps))
		for i, ep := range m.eps {
			var b *breaker.Breaker
			if prev != nil && prev.breakers != nil {
				if j := slices.Index(prev.eps, ep); j >= 0 {
					b = prev.breakers[j]
				}
			}
			if b == nil {
				var err error
				if b, err = g.newEndpointBreaker(cl.name, ep.Address(), *cl.breakerCfg); err != nil {
					return nil, err
				}
			}
			m.breakers[i] = b
		}
	}
	m.set = endpoint.NewSet(m.eps...)
	return m, nil
}

// applyDiscovered gives the cluster of d in the table in service its new
// membership: the balancer, the health monitor and the breakers follow.
// Apply calls it for every discoverer once a new table is in service.
func (g *Gateway) applyDiscovered(d *discoverer) {
	g.membersMu.Lock()
	defer g.membersMu.Unlock()
	t := g.table.Load()
	if t == nil {
		return
	}
	cl := t.clusters[d.name]
	if cl == nil || cl.disc != d {
		return // a table being built, or one without this source
	}
	m, err := g.membership(cl, cl.members.Load())
	if err != nil {
		g.log.Warn("applying discovered endpoints", "cluster", cl.name, "error", err)
		return
	}
	cl.members.Store(m)
	if cl.health != nil {
		cl.health.Update(m.set)
	}
	cl.balancer.Update(m.set)
	t.hangBreakers()
	var keep []string
	for _, c := range t.order {
		for _, ep := range c.members.Load().eps {
			keep = append(keep, ep.Address())
		}
	}
	g.store.Retain(keep)
}
