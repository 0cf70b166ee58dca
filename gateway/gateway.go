package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/rampart-ha/rampart/endpoint"
	"github.com/rampart-ha/rampart/gateway/config"
	"github.com/rampart-ha/rampart/resilience/fallback"
	"github.com/rampart-ha/rampart/resilience/resiliencehttp"
)

// Options are the parts of a Gateway that do not come from its
// configuration. The zero value is usable.
type Options struct {
	// Registry receives the gateway's metrics and is served on /metrics.
	// Nil means a new registry with the Go and process collectors.
	Registry *prometheus.Registry
	// Logger receives operational logs (reloads, errors). Nil means
	// slog.Default().
	Logger *slog.Logger
	// AccessLog, when not nil, receives the access log instead of the
	// destination the configuration names (tests use it).
	AccessLog io.Writer
}

// Gateway is the reverse proxy. Create it with [New]; the zero value is not
// usable. It is an http.Handler, safe for concurrent use, and its
// configuration can be replaced while it serves with [Gateway.Apply].
type Gateway struct {
	log     *slog.Logger
	reg     *prometheus.Registry
	metrics *metrics
	store   *endpoint.Store
	proxy   *httputil.ReverseProxy
	ready   atomic.Bool

	table atomic.Pointer[table]

	applyMu sync.Mutex // serializes Apply
	// membersMu serializes changes of clusters' membership by discovery
	// (see applyDiscovered). Apply takes it after applyMu, never while a
	// discovery source may be waiting for it with applyMu held.
	membersMu sync.Mutex
	carry     *carry // state kept across reloads, guarded by applyMu
	accessOut io.Writer
}

// New builds a gateway serving cfg, which must come from config.Parse (or
// config.Default): New relies on its defaults and validation.
func New(cfg *config.Config, opts Options) (*Gateway, error) {
	reg := opts.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	lg := opts.Logger
	if lg == nil {
		lg = slog.Default()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("gateway: registering metrics: %w", err)
	}
	store, err := endpoint.NewStore(endpoint.Config{})
	if err != nil {
		return nil, err
	}
	g := &Gateway{
		log:       lg,
		reg:       reg,
		metrics:   m,
		store:     store,
		carry:     newCarry(),
		accessOut: opts.AccessLog,
	}
	g.proxy = &httputil.ReverseProxy{
		Rewrite:        g.rewrite,
		Transport:      routeTransport{g},
		ModifyResponse: g.modifyResponse,
		ErrorHandler:   g.proxyError,
		BufferPool:     bufferPool{},
		ErrorLog:       log.New(slogWriter{lg}, "", 0),
	}
	if err := reg.Register(tableCollector{g}); err != nil {
		return nil, fmt.Errorf("gateway: registering metrics: %w", err)
	}
	if err := g.Apply(cfg); err != nil {
		return nil, err
	}
	g.ready.Store(true)
	return g, nil
}

// Apply builds a routing table for cfg beside the current one and swaps it
// in atomically. Requests already running finish on the table they started
// with. Per-endpoint state (keyed by address), retry budgets, limiters and
// connection pools whose configuration did not change carry over. On error
// the current table keeps serving.
func (g *Gateway) Apply(cfg *config.Config) error {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	t, next, err := g.build(cfg)
	if err != nil {
		g.metrics.reloads.WithLabelValues("failure").Inc()
		return err
	}
	prev := g.table.Swap(t)
	// Closing dropped discovery sources waits for them; they may be
	// waiting for membersMu, which is free here.
	g.carry.swap(next)
	t.hangBreakers()
	for _, cl := range t.order {
		if cl.disc != nil {
			// Sets reported while the table was built reached the old one.
			g.applyDiscovered(cl.disc)
		}
	}
	for _, cl := range t.order {
		if prev != nil {
			if old := prev.clusters[cl.name]; old != nil && old.health != cl.health {
				// The flags the old monitor set are nobody's now; the new
				// monitor judges the endpoints afresh. (An endpoint that
				// two clusters share has one set of flags.)
				for _, ep := range cl.members.Load().eps {
					ep.Mark(endpoint.FailedHealthCheck|endpoint.Ejected, false)
				}
			}
		}
		if cl.health != nil {
			cl.health.Update(cl.members.Load().set)
		}

		// Usability may have changed while the table was built; refresh
		// only reaches the table in service.
		cl.balancer.Update(cl.members.Load().set)
	}
	g.metrics.reloads.WithLabelValues("success").Inc()
	g.metrics.lastReload.SetToCurrentTime()
	return nil
}

// refresh pushes the clusters holding ep to their balancers again, after
// ep's usability changed. It takes no lock (health monitors call it from
// Update, under Apply): a reload building a new table at the same time
// refreshes every balancer once the table is in service.
func (g *Gateway) refresh(ep *endpoint.Endpoint) {
	if ep.Usable() {
		// Back in rotation: let latency-aware balancers probe it now
		// rather than once the estimate it left with has decayed.
		ep.ResetLatency()
	}
	t := g.table.Load()
	if t == nil {
		return
	}
	for _, cl := range t.order {
		if m := cl.members.Load(); slices.Contains(m.eps, ep) {
			cl.balancer.Update(m.set)
		}
	}
}

// Config returns the configuration being served.
func (g *Gateway) Config() *config.Config { return g.table.Load().cfg }

// Registry returns the registry the gateway's metrics are on.
func (g *Gateway) Registry() *prometheus.Registry { return g.reg }

// SetReady sets what /readyz answers; shutdown clears it first so that load
// balancers in front stop sending before listeners close.
func (g *Gateway) SetReady(ready bool) { g.ready.Store(ready) }

type requestKey struct{}

// request is the state of one request as it passes through the gateway.
// Fields above mu are set before the proxy runs; those below it are
// written by attempts, which may run concurrently under hedging.
type request struct {
	t           *table
	route       *route
	cluster     *cluster
	clientIP    string
	peerTrusted bool
	id          string
	start       time.Time

	// headers is 0 until response headers arrive (1) or the route timeout
	// fires first (2): exactly one of them wins.
	headers atomic.Int32

	mu        sync.Mutex
	triedBuf  [4]*endpoint.Endpoint
	tried     []*endpoint.Endpoint
	attempts  int
	failures  []string // why attempts failed, in order
	upstream  time.Duration
	stats     *routeStats // where the request is counted; nil before a route matched
	hv        [3]string   // storage for forwarded header values, to spare allocations
	failure   string      // why the request failed, if it did
	switched  bool        // the upstream switched protocols (101); set by modifyResponse
	setSticky *endpoint.Endpoint

	// Fallback state: fellBack once the route's fallback took over;
	// fallback says what it did, for the log; with bufferErrors a failure
	// of the fallback cluster is kept in fallbackErr rather than answered,
	// so that the fallback response can answer instead.
	fellBack     bool
	fallback     string
	bufferErrors bool
	fallbackErr  error
	shedErr      error // the degradation mode or load shedding refused the request

	// Storage for what every request needs, kept here so that a request
	// costs one allocation instead of six (see BenchmarkServeHTTP).
	rec    recorder
	ctx    requestContext
	outURL url.URL
	call   resiliencehttp.Call
	idBuf  [32]byte
	cancel context.CancelCauseFunc // ends the request's context; set with a route timeout
}

// requestContext carries a request's state to the transports below the
// route, as context.WithValue would, from inside the request struct.
type requestContext struct {
	context.Context
	rq *request
}

func (c *requestContext) Value(key any) any {
	if key == (requestKey{}) {
		return c.rq
	}
	return c.Context.Value(key)
}

func requestFrom(ctx context.Context) *request {
	rq, _ := ctx.Value(requestKey{}).(*request)
	return rq
}

// routeTimeout ends the request with ErrRouteTimeout unless response
// headers arrived first.
func (rq *request) routeTimeout() {
	if rq.headers.CompareAndSwap(0, 2) {
		rq.cancel(ErrRouteTimeout)
	}
}

// routeTimer is a reusable route-timeout timer: a time.AfterFunc timer and
// its callback cost two allocations per request, a pooled one none.
type routeTimer struct {
	t    *time.Timer
	rq   atomic.Pointer[request]
	pool *routeTimerPool
}

// routeTimerPool lends routeTimers. The zero value is ready to use.
type routeTimerPool struct{ p sync.Pool }

var routeTimers routeTimerPool

// start arms a timer that ends rq's context after d.
func (p *routeTimerPool) start(rq *request, d time.Duration) *routeTimer {
	rt, _ := p.p.Get().(*routeTimer)
	if rt == nil {
		rt = &routeTimer{pool: p}
		rt.t = time.AfterFunc(time.Hour, rt.fire)
		rt.t.Stop()
	}
	rt.rq.Store(rq)
	rt.t.Reset(d)
	return rt
}

func (rt *routeTimer) fire() {
	if rq := rt.rq.Load(); rq != nil {
		rq.routeTimeout()
	}
}

// stop disarms rt. A timer that already fired is not pooled again: its
// callback may still be running with the old request.
func (rt *routeTimer) stop() {
	if rt.t.Stop() {
		rt.rq.Store(nil)
		rt.pool.p.Put(rt)
	}
}

// ServeHTTP serves one request.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := g.table.Load()
	g.metrics.inFlight.Inc()
	defer g.metrics.inFlight.Dec()
	rq := &request{t: t, start: time.Now()}
	rq.id = requestID(r.Header, &rq.idBuf)
	rq.tried = rq.triedBuf[:0]
	rq.clientIP, rq.peerTrusted = t.trusted.clientIP(r)
	rec := &rq.rec
	rec.ResponseWriter = w
	defer g.finish(rq, rec, r)

	if p, changed := normalizePath(r.URL.Path); changed {
		// Match and forward the same path: a route that guards /admin must
		// not be passed by /public/../admin, whatever the upstream does
		// with dot segments.
		r = r.WithContext(r.Context())
		u := *r.URL
		u.Path, u.RawPath = p, ""
		r.URL = &u
	}
	rt := t.match(r)
	if rt == nil {
		rec.Header().Set(headerRequestID, rq.id)
		msg := "rampart: no route matches this request\n"
		if len(t.routes) == 0 {
			msg = "rampart: no routes are configured yet; add routes and clusters to rampart.yaml (see docs/configuration.md)\n"
		}
		rq.failure = "no_route"
		http.Error(rec, strings.TrimSuffix(msg, "\n"), http.StatusNotFound)
		return
	}
	rq.route, rq.stats = rt, rt.bare
	if rt.limiter != nil {
		if ok, retryAfter := rt.limiter.Try(rt.limitKey(r, rq.clientIP)); !ok {
			g.metrics.rejections.WithLabelValues(rt.name, "", "rate_limit").Inc()
			g.fail(rec, rq, errLimited(retryAfter))
			return
		}
	}
	if rt.direct != nil {
		rt.direct.serve(rec, rq.id)
		return
	}
	cl, stats := rt.pickCluster()
	rq.cluster, rq.stats = cl, stats
	rq.ctx = requestContext{Context: r.Context(), rq: rq}
	ctx := context.Context(&rq.ctx)
	if rt.timeout > 0 {
		ctx, rq.cancel = context.WithCancelCause(ctx)
		timer := routeTimers.start(rq, rt.timeout)
		defer func() {
			timer.stop()
			rq.cancel(nil)
		}()
	}
	if mode := t.modes.Mode(); !rt.criticality.servesIn(mode) {
		err := errShedDegraded
		if mode == fallback.Emergency {
			err = errShedEmergency
		}
		g.metrics.rejections.WithLabelValues(rt.name, cl.name, shedReason(err)).Inc()
		if !g.fellBack(ctx, rec, r, rq, err) {
			g.fail(rec, rq, err)
		}
		return
	}
	if (cl.bulkhead != nil || cl.adaptive != nil) && cl.shed(rt.criticality) {
		g.metrics.rejections.WithLabelValues(rt.name, cl.name, "shed").Inc()
		if !g.fellBack(ctx, rec, r, rq, errShedLoad) {
			g.fail(rec, rq, errShedLoad)
		}
		return
	}
	if cl.bulkhead != nil {
		waitStart := time.Now()
		p, err := cl.bulkhead.Acquire(ctx)
		if wait := time.Since(waitStart); wait > time.Millisecond {
			cl.queueWait.Observe(wait.Seconds())
		}
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				g.metrics.rejections.WithLabelValues(rt.name, cl.name, "bulkhead").Inc()
			}
			if !g.fellBack(ctx, rec, r, rq, err) {
				g.fail(rec, rq, err)
			}
			return
		}
		defer p.Release()
	}
	if cl.adaptive != nil {
		p, err := cl.adaptive.Acquire()
		if err != nil {
			g.metrics.rejections.WithLabelValues(rt.name, cl.name, "adaptive").Inc()
			if !g.fellBack(ctx, rec, r, rq, err) {
				g.fail(rec, rq, err)
			}
			return
		}
		defer func() {
			// Timeouts are the overload signal the limit must see;
			// other failures say nothing about queueing.
			if rq.failure == "" || rq.failure == "timeout" {
				p.Record()
			} else {
				p.Drop()
			}
		}()
	}

	if isUpgrade(r.Header) {
		g.proxy.ServeHTTP(rec, r.WithContext(ctx))
		return
	}
	g.forward(ctx, rec, r, rq)
}

// fail answers a request that failed before or instead of reaching an
// upstream, and remembers why for the log.
func (g *Gateway) fail(w http.ResponseWriter, rq *request, err error) {
	f := classify(err, false)
	rq.failure = f.reason
	if f.status == StatusClientClosed {
		return
	}
	h := w.Header()
	h.Set(headerRequestID, rq.id)
	if f.retryAfter != "" {
		h.Set("Retry-After", f.retryAfter)
	}
	http.Error(w, http.StatusText(f.status), f.status)
}

// proxyError is the ReverseProxy's error handler: the upstream side failed
// before response headers were written to the client.
func (g *Gateway) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	rq := requestFrom(r.Context())
	if cause := context.Cause(r.Context()); errors.Is(cause, ErrRouteTimeout) {
		err = ErrRouteTimeout
	}
	f := classify(err, r.Context().Err() != nil && !errors.Is(context.Cause(r.Context()), ErrRouteTimeout))
	if rq != nil {
		rq.failure = f.reason
	}
	if f.status == StatusClientClosed {
		if rw, ok := w.(*recorder); ok {
			rw.status = StatusClientClosed
		}
		return
	}
	h := w.Header()
	if rq != nil {
		h.Set(headerRequestID, rq.id)
	}
	if f.retryAfter != "" {
		h.Set("Retry-After", f.retryAfter)
	}
	http.Error(w, http.StatusText(f.status), f.status)
}

// finish records metrics and the access log line for a served request.
func (g *Gateway) finish(rq *request, rec *recorder, r *http.Request) {
	status := rec.status
	if status == 0 {
		switch {
		case rq.failure == "client_closed":
			status = StatusClientClosed
		case rq.switched:
			// The ReverseProxy wrote the 101 on the hijacked connection,
			// past the recorder.
			status = http.StatusSwitchingProtocols
		default:
			status = http.StatusOK
		}
	}
	d := time.Since(rq.start)
	rq.count(status)
	if s := rq.stats; s != nil {
		s.count(status)
		s.duration.Observe(d.Seconds())
	} else {
		g.metrics.requests.WithLabelValues("", "", statusLabel(status)).Inc()
		g.metrics.duration.WithLabelValues("", "").Observe(d.Seconds())
	}
	if a := rq.t.access; a != nil {
		a.log(r, rq, status, rec.bytes, d)
	}
}

var statusLabels = func() (s [600]string) {
	for i := range s {
		s[i] = fmt.Sprint(i)
	}
	return s
}()

func statusLabel(code int) string {
	if code >= 0 && code < len(statusLabels) {
		return statusLabels[code]
	}
	return fmt.Sprint(code)
}

// pickSplit picks a branch of a weighted split.
func pickSplit(total int, cum []int) int {
	n := rand.IntN(total)
	for i, c := range cum {
		if n < c {
			return i
		}
	}
	return len(cum) - 1
}

// slogWriter adapts the ReverseProxy's log.Logger to slog.
type slogWriter struct{ l *slog.Logger }

func (w slogWriter) Write(p []byte) (int, error) {
	w.l.Warn(strings.TrimSpace(string(p)), "component", "proxy")
	return len(p), nil
}

// bufferPool lends the ReverseProxy its copy buffers.
type bufferPool struct{}

var buffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

func (bufferPool) Get() []byte  { return *(buffers.Get().(*[]byte)) }
func (bufferPool) Put(b []byte) { buffers.Put(&b) }

// Close releases the gateway's connection pools and access log file. It
// does not stop servers that use the gateway as their handler.
func (g *Gateway) Close() {
	g.applyMu.Lock()
	defer g.applyMu.Unlock()
	g.carry.swap(map[string]carried{})
}
