package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/rampart-ha/rampart/balancer"
	"github.com/rampart-ha/rampart/endpoint"
	"github.com/rampart-ha/rampart/gateway/config"
	h1 "github.com/rampart-ha/rampart/gateway/upstream"
	"github.com/rampart-ha/rampart/health"
	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/adaptive"
	"github.com/rampart-ha/rampart/resilience/breaker"
	"github.com/rampart-ha/rampart/resilience/bulkhead"
	"github.com/rampart-ha/rampart/resilience/fallback"
	"github.com/rampart-ha/rampart/resilience/hedge"
	"github.com/rampart-ha/rampart/resilience/ratelimit"
	"github.com/rampart-ha/rampart/resilience/resiliencehttp"
	"github.com/rampart-ha/rampart/resilience/retry"
)

// table is everything one configuration version needs to serve requests.
// It is immutable once built; a reload builds a new one beside it.
type table struct {
	cfg      *config.Config
	routes   []*route
	clusters map[string]*cluster
	order    []*cluster // clusters in configuration order
	trusted  trustedProxies
	access   *accessLog // nil when the access log is off

	modes       *fallback.Modes // the gateway's degradation mode
	countErrors bool            // clusters count requests and failures for automatic degradation
}

func (t *table) match(r *http.Request) *route {
	for _, rt := range t.routes {
		if rt.match.matches(r) {
			return rt
		}
	}
	return nil
}

// cluster is one compiled cluster.
type cluster struct {
	name       string
	scheme     string
	members    atomic.Pointer[members] // replaced whole when discovery changes them
	static     []config.Endpoint       // the configured endpoints
	disc       *discoverer             // nil without discovery
	breakerCfg *breaker.Config         // nil without circuit_breaker
	balancer   balancer.Balancer
	tiered     *balancer.Tiered  // the balancer under any sticky wrapper: levels, panic
	sticky     *balancer.Sticky  // nil without sticky sessions
	health     *health.Monitor   // nil without health checks and outlier detection
	transport  http.RoundTripper // upstream.Transport for plain HTTP/1.1, http.Transport otherwise
	bulkhead   *bulkhead.Bulkhead
	adaptive   *adaptive.Limiter

	// served and failed count requests while automatic degradation is on.
	served, failed atomic.Uint64

	upstreamTime prometheus.Observer
	queueWait    prometheus.Observer
}

// members is a cluster's endpoints, with what the gateway keeps per
// endpoint: immutable, replaced whole when discovery changes the
// membership.
type members struct {
	eps      []*endpoint.Endpoint
	set      endpoint.Set
	stats    map[*endpoint.Endpoint]*endpointStats
	breakers []*breaker.Breaker // as eps; nil without circuit_breaker
}

// build compiles cfg into a table. Objects whose configuration did not
// change since the last table are taken over (see carry) so that their
// state survives the reload.
func (g *Gateway) build(cfg *config.Config) (*table, map[string]carried, error) {
	next := make(map[string]carried)
	t := &table{cfg: cfg, clusters: make(map[string]*cluster, len(cfg.Clusters))}
	t.trusted.prefixes = cfg.TrustedProxies
	var errs []error

	var keepAddrs []string
	for i, cc := range cfg.Clusters {
		cl, err := g.buildCluster(next, cc, cfg.Zone)
		if err != nil {
			errs = append(errs, fmt.Errorf("clusters[%d] (%s): %w", i, cc.Name, err))
			continue
		}
		t.clusters[cc.Name] = cl
		t.order = append(t.order, cl)
		for _, ep := range cl.members.Load().eps {
			keepAddrs = append(keepAddrs, ep.Address())
		}
	}
	for i, rc := range cfg.Routes {
		rt, err := g.buildRoute(next, t, rc)
		if err != nil {
			errs = append(errs, fmt.Errorf("routes[%d] (%s): %w", i, rc.Name, err))
			continue
		}
		t.routes = append(t.routes, rt)
	}
	if cfg.AccessLog.Enabled {
		a, err := g.buildAccessLog(next, cfg.AccessLog)
		if err != nil {
			errs = append(errs, fmt.Errorf("access_log: %w", err))
		}
		t.access = a
	}
	m, err := g.buildModes(next, cfg.Degradation)
	if err != nil {
		errs = append(errs, fmt.Errorf("degradation: %w", err))
	}
	t.modes, t.countErrors = m, cfg.Degradation.Auto != nil
	if err := errors.Join(errs...); err != nil {
		g.carry.discard(next)
		return nil, nil, err
	}
	// Endpoints no cluster names any more lose their state; the others keep it.
	g.store.Retain(keepAddrs)
	return t, next, nil
}

func (g *Gateway) buildCluster(next map[string]carried, cc config.Cluster, zone string) (*cluster, error) {
	cl := &cluster{
		name: cc.Name, scheme: "http",
		upstreamTime: g.metrics.upstreamTime.WithLabelValues(cc.Name),
		queueWait:    g.metrics.queueWait.WithLabelValues(cc.Name),
	}
	if cc.TLS.Enabled {
		cl.scheme = "https"
	}
	cl.static = cc.Endpoints
	if cc.CircuitBreaker != nil {
		bc := cc.CircuitBreaker.BreakerConfig()
		cl.breakerCfg = &bc
	}
	var err error
	if cl.disc, err = g.buildDiscoverer(next, cc); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	m, err := g.membership(cl, nil)
	if err != nil {
		return nil, err
	}

	bcfg := balancer.Config{}
	if h := cc.LB.HashOn; h != nil {
		switch {
		case h.Header != "":
			bcfg.Hash = balancer.HashKey{Source: balancer.HashHeader, Name: h.Header}
		case h.Cookie != "":
			bcfg.Hash = balancer.HashKey{Source: balancer.HashCookie, Name: h.Cookie}
		}
	}
	if cc.LB.BoundedLoad == 0 {
		bcfg.DisableBoundedLoad = true
	} else {
		bcfg.LoadFactor = cc.LB.BoundedLoad
	}
	f := cc.Failover
	tcfg := balancer.TieredConfig{
		OverprovisioningFactor: f.OverprovisioningFactor,
		PanicThreshold:         f.PanicThreshold,
		DisablePanic:           f.OnPanic == config.PanicOff,
		FailFast:               f.OnPanic == config.PanicFailFast,
		LocalZone:              zone,
		ZoneSpillThreshold:     f.ZoneSpillThreshold,
	}
	if ss := cc.SlowStart; ss != nil {
		tcfg.SlowStartWindow = time.Duration(ss.Window)
		tcfg.SlowStartAggression = ss.Aggression
		tcfg.SlowStartMinWeight = ss.MinWeightPercent / 100
	}
	b, err := balancer.NewTiered(cc.LB.Policy, tcfg, bcfg)
	if err != nil {
		return nil, fmt.Errorf("lb: %w", err)
	}
	cl.balancer, cl.tiered = b, b
	if s := cc.LB.Sticky; s != nil {
		st, err := balancer.NewSticky(b, balancer.StickyConfig{Cookie: s.Cookie, TTL: time.Duration(s.TTL)})
		if err != nil {
			return nil, fmt.Errorf("lb.sticky: %w", err)
		}
		cl.sticky, cl.balancer = st, st
	}
	if cl.health, err = g.buildHealth(next, cc); err != nil {
		return nil, err
	}
	if m.breakers, err = g.buildBreakers(next, cc, m.eps); err != nil {
		return nil, fmt.Errorf("circuit_breaker: %w", err)
	}
	m.set = endpoint.NewSet(m.eps...)
	cl.members.Store(m)
	cl.balancer.Update(m.set)

	tr, err := carryGet(g.carry, next, "transport/"+cc.Name, fmt.Sprint(cc.Protocol, cc.TLS, cc.ConnectTimeout, cc.Pool),
		func() (http.RoundTripper, func(), error) {
			return newUpstreamTransport(cc)
		})
	if err != nil {
		return nil, err
	}
	cl.transport = tr

	if bc, ok := cc.Limits.BulkheadConfig(); ok {
		bh, err := carryGet(g.carry, next, "bulkhead/"+cc.Name, fmt.Sprint(bc), func() (*bulkhead.Bulkhead, func(), error) {
			b, err := bulkhead.New(bc)
			return b, nil, err
		})
		if err != nil {
			return nil, fmt.Errorf("limits: %w", err)
		}
		cl.bulkhead = bh
	}
	if ac, ok := cc.Limits.Adaptive.AdaptiveConfig(); ok {
		al, err := carryGet(g.carry, next, "adaptive/"+cc.Name, fmt.Sprint(ac), func() (*adaptive.Limiter, func(), error) {
			l, err := adaptive.New(ac)
			return l, nil, err
		})
		if err != nil {
			return nil, fmt.Errorf("limits.adaptive: %w", err)
		}
		cl.adaptive = al
	}
	return cl, nil
}

// newUpstreamTransport builds the connection pool to a cluster's endpoints
// and the function that closes its idle connections. Plain HTTP/1.1 goes
// through package upstream, which reads and writes on the request's own
// goroutine; TLS and HTTP/2 through net/http's Transport.
func newUpstreamTransport(cc config.Cluster) (http.RoundTripper, func(), error) {
	connect := time.Duration(cc.ConnectTimeout)
	if cc.Protocol == config.ProtocolHTTP1 && !cc.TLS.Enabled {
		tr, err := h1.New(h1.Config{
			DialTimeout:           connect,
			MaxIdlePerHost:        cc.Pool.MaxIdlePerEndpoint,
			MaxConnsPerHost:       cc.Pool.MaxConnsPerEndpoint,
			IdleTimeout:           time.Duration(cc.Pool.IdleTimeout),
			KeepAlive:             30 * time.Second,
			ExpectContinueTimeout: time.Second,
		})
		if err != nil {
			return nil, nil, err
		}
		return tr, tr.CloseIdleConnections, nil
	}
	d := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:           d.DialContext,
		MaxIdleConnsPerHost:   cc.Pool.MaxIdlePerEndpoint,
		MaxConnsPerHost:       cc.Pool.MaxConnsPerEndpoint,
		IdleConnTimeout:       time.Duration(cc.Pool.IdleTimeout),
		TLSHandshakeTimeout:   connect,
		ExpectContinueTimeout: time.Second,
		// A proxy passes bodies through as they are; it must not ask for
		// gzip and inflate behind the client's back.
		DisableCompression: true,
	}
	if cc.Pool.MaxIdlePerEndpoint == 0 {
		tr.DisableKeepAlives = true
	}
	if cc.TLS.Enabled {
		tc := &tls.Config{ServerName: cc.TLS.ServerName, InsecureSkipVerify: cc.TLS.InsecureSkipVerify} //nolint:gosec // an explicit, documented opt-in
		if cc.TLS.CAFile != "" {
			pem, err := os.ReadFile(cc.TLS.CAFile)
			if err != nil {
				return nil, nil, fmt.Errorf("tls.ca_file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, nil, fmt.Errorf("tls.ca_file: no PEM certificate in %s", cc.TLS.CAFile)
			}
			tc.RootCAs = pool
		}
		tr.TLSClientConfig = tc
	}
	var p http.Protocols
	switch cc.Protocol {
	case config.ProtocolH2:
		p.SetHTTP2(true)
	case config.ProtocolH2C:
		p.SetUnencryptedHTTP2(true)
	default:
		p.SetHTTP1(true)
	}
	tr.Protocols = &p
	return tr, tr.CloseIdleConnections, nil
}

func (g *Gateway) buildRoute(next map[string]carried, t *table, rc config.Route) (*route, error) {
	m, err := compileMatch(rc.Match)
	if err != nil {
		return nil, fmt.Errorf("match: %w", err)
	}
	rt := &route{
		name:            rc.Name,
		match:           m,
		stripPrefix:     rc.Rewrite.StripPrefix,
		replacePrefix:   rc.Rewrite.ReplacePrefix,
		requestHeaders:  compileHeaderOps(rc.RequestHeaders),
		responseHeaders: compileHeaderOps(rc.ResponseHeaders),
		timeout:         time.Duration(rc.Timeout),
		bare:            newRouteStats(g.metrics, rc.Name, ""),
		criticality:     criticalityOf(rc.Criticality),
	}
	if rt.fallback, err = compileFallback(t, rc.Fallback); err != nil {
		return nil, err
	}
	if sc := rc.StaleIfError; sc != nil {
		if rt.stale, err = carryGet(g.carry, next, "stale/"+rc.Name, fmt.Sprintf("%+v", *sc), func() (*staleStore, func(), error) {
			s, err := newStaleStore(sc)
			return s, nil, err
		}); err != nil {
			return nil, fmt.Errorf("stale_if_error: %w", err)
		}
	}
	if rl := rc.RateLimit; rl != nil {
		kc := rl.KeyedConfig()
		lim, err := carryGet(g.carry, next, "ratelimit/"+rc.Name, fmt.Sprint(kc), func() (*ratelimit.Keyed, func(), error) {
			k, err := ratelimit.NewKeyed(kc)
			return k, nil, err
		})
		if err != nil {
			return nil, fmt.Errorf("rate_limit: %w", err)
		}
		rt.limiter, rt.limitKind, rt.limitHdr = lim, rl.Key, rl.Header
	}

	if d := rc.DirectResponse; d != nil {
		rt.direct = &directResponse{status: d.Status, body: []byte(d.Body), contentType: d.ContentType, headers: rt.responseHeaders}
		return rt, nil
	}
	if rc.Cluster != "" {
		cl, ok := t.clusters[rc.Cluster]
		if !ok {
			return nil, fmt.Errorf("cluster %q is not defined", rc.Cluster)
		}
		rt.clusters = []*cluster{cl}
	}
	for _, w := range rc.Split {
		if w.Weight == 0 {
			continue
		}
		cl, ok := t.clusters[w.Cluster]
		if !ok {
			return nil, fmt.Errorf("split cluster %q is not defined", w.Cluster)
		}
		rt.total += w.Weight
		rt.clusters = append(rt.clusters, cl)
		rt.cum = append(rt.cum, rt.total)
	}
	if len(rt.clusters) == 0 {
		return nil, errors.New("no cluster to send to")
	}
	for _, cl := range rt.clusters {
		rt.stats = append(rt.stats, newRouteStats(g.metrics, rc.Name, cl.name))
	}

	on, err := parseRetryOn(rc.Retry.On, rc.Retry.StatusCodes, rc.Retry.NonIdempotent)
	if err != nil {
		return nil, fmt.Errorf("retry.on: %w", err)
	}
	var policies []resilience.Policy[*http.Response]
	if rc.Retry.Attempts > 1 {
		var budget *retry.Budget
		if bc, ok := rc.Retry.Budget.BudgetConfig(); ok {
			if budget, err = g.budget(next, "retry-budget/"+rc.Name, bc); err != nil {
				return nil, fmt.Errorf("retry.budget: %w", err)
			}
		}
		name := rc.Name
		r, err := retry.New(retry.Config{
			MaxAttempts: rc.Retry.Attempts,
			Backoff:     rc.Retry.Backoff.RetryBackoff(),
			Budget:      budget,
			Retryable:   on.retryable,
			OnRetry: func(_ int, err error, _ time.Duration) {
				g.metrics.retries.WithLabelValues(name, retryReason(err)).Inc()
			},
		})
		if err != nil {
			return nil, fmt.Errorf("retry: %w", err)
		}
		policies = append(policies, retry.Policy[*http.Response](r))
	}
	var h *hedge.Hedger
	if hc := rc.Hedge; hc != nil {
		cfg := hc.HedgeConfig()
		if bc, ok := hc.Budget.BudgetConfig(); ok {
			b, err := g.budget(next, "hedge-budget/"+rc.Name, bc)
			if err != nil {
				return nil, fmt.Errorf("hedge.budget: %w", err)
			}
			cfg.Budget = b
		}
		if h, err = carryGet(g.carry, next, "hedge/"+rc.Name, fmt.Sprint(cfg.Delay, cfg.Quantile, cfg.MaxHedges, hc.Budget), func() (*hedge.Hedger, func(), error) {
			h, err := hedge.New(cfg)
			return h, nil, err
		}); err != nil {
			return nil, fmt.Errorf("hedge: %w", err)
		}
	}
	maxReplay := int64(rc.MaxRequestBuffer)
	if maxReplay == 0 {
		maxReplay = -1 // no buffering
	}
	tcfg := resiliencehttp.Config{
		Base:           endpointTransport{g},
		Policies:       policies,
		MaxReplayBytes: maxReplay,
		PerTryTimeout:  time.Duration(rc.PerTryTimeout),
		IsFailure:      func(resp *http.Response) bool { return on.retriableStatus(resp.StatusCode) },
		Hedge:          h,
	}
	if rc.Retry.NonIdempotent {
		tcfg.Idempotent = func(r *http.Request) bool { return r.Header.Get("Upgrade") == "" }
	}
	if rt.transport, err = resiliencehttp.New(tcfg); err != nil {
		return nil, err
	}
	return rt, nil
}

// budget returns the retry budget kept under key, keeping its history
// across reloads that do not change it.
func (g *Gateway) budget(next map[string]carried, key string, bc retry.BudgetConfig) (*retry.Budget, error) {
	return carryGet(g.carry, next, key, fmt.Sprint(bc), func() (*retry.Budget, func(), error) {
		b, err := retry.NewBudget(bc)
		return b, nil, err
	})
}

func (g *Gateway) buildAccessLog(next map[string]carried, ac config.AccessLog) (*accessLog, error) {
	return carryGet(g.carry, next, "access-log", ac.Path, func() (*accessLog, func(), error) {
		if g.accessOut != nil {
			return newAccessLog(g.accessOut), nil, nil
		}
		var out io.Writer = os.Stdout
		closeOut := func() {}
		if ac.Path != "" {
			f, err := os.OpenFile(ac.Path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
			if err != nil {
				return nil, nil, err
			}
			out, closeOut = f, func() { _ = f.Close() }
		}
		bw := newBufferedWriter(out, accessLogFlush)
		return newAccessLog(bw), func() { bw.Close(); closeOut() }, nil
	})
}

// retryable is the route's retry classifier. Status failures reach it only
// when the route retries that status (see resiliencehttp.Config.IsFailure);
// errors are retried by condition. Idempotency was already applied by the
// transport, which marks what may not be resent as permanent.
func (on *retryOn) retryable(err error) bool {
	var se *resiliencehttp.StatusError
	switch {
	case errors.As(err, &se):
		return true
	case errors.Is(err, resiliencehttp.ErrPerTryTimeout):
		return on.timeout
	case isConnectFailure(err):
		return on.connectFailure
	case isRefusedStream(err):
		return on.refusedStream
	case isReset(err):
		return on.reset
	}
	return false
}

// retryReason names the condition that caused a retry, for metrics.
func retryReason(err error) string {
	var se *resiliencehttp.StatusError
	switch {
	case errors.As(err, &se):
		return "status_" + statusLabel(se.Response.StatusCode)
	case errors.Is(err, resiliencehttp.ErrPerTryTimeout):
		return condTimeout
	}
	return upstreamReason(err)
}

// carried is an object kept across reloads: it is reused while its
// fingerprint (the configuration it was built from) stays the same.
type carried struct {
	fp    string
	v     any
	close func() // nil if nothing to release
}

// carry holds the objects of the table being served. Guarded by the
// Gateway's applyMu.
type carry struct{ m map[string]carried }

func newCarry() *carry { return &carry{m: make(map[string]carried)} }

// carryGet returns the object kept under key when its fingerprint is fp,
// or builds one, and records it in next.
func carryGet[T any](c *carry, next map[string]carried, key, fp string, mk func() (T, func(), error)) (T, error) {
	if e, ok := next[key]; ok && e.fp == fp {
		return e.v.(T), nil
	}
	if e, ok := c.m[key]; ok && e.fp == fp {
		next[key] = e
		return e.v.(T), nil
	}
	v, closeFn, err := mk()
	if err != nil {
		var zero T
		return zero, err
	}
	next[key] = carried{fp: fp, v: v, close: closeFn}
	return v, nil
}

// discard releases what a failed build made: next's entries the kept set
// does not hold.
func (c *carry) discard(next map[string]carried) {
	for k, e := range next {
		if kept, ok := c.m[k]; ok && kept.v == e.v {
			continue
		}
		if e.close != nil {
			e.close()
		}
	}
}

// swap makes next the kept set and releases what it no longer holds. A
// dropped connection pool only closes its idle connections; requests of
// the old table still in flight finish on theirs.
func (c *carry) swap(next map[string]carried) {
	for k, e := range c.m {
		if n, ok := next[k]; ok && n.v == e.v {
			continue
		}
		if e.close != nil {
			e.close()
		}
	}
	c.m = next
}
