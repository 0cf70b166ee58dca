package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httputil"
	"slices"
	"strings"
	"time"

	"github.com/rampart-ha/rampart/balancer"
	"github.com/rampart-ha/rampart/endpoint"
	"github.com/rampart-ha/rampart/resilience/breaker"
	"github.com/rampart-ha/rampart/resilience/ratelimit"
	"github.com/rampart-ha/rampart/resilience/resiliencehttp"
	"github.com/rampart-ha/rampart/resilience/retry"
)

// recorder notes the status and size of a response for logs and metrics.
// Unwrap lets http.ResponseController reach the connection's Flush and
// Hijack, which streaming and upgrades need.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 || r.status < 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(p)
	r.bytes += int64(n)
	return n, err
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush keeps http.Flusher visible for handlers that assert it directly.
func (r *recorder) Flush() {
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// rewrite shapes the outbound request: forwarded headers, path rewrite,
// header edits and the request id. The ReverseProxy has already removed
// hop-by-hop headers and any X-Forwarded-* from the clone.
func (g *Gateway) rewrite(pr *httputil.ProxyRequest) {
	rq := requestFrom(pr.In.Context())
	setForwarded(pr, rq.peerTrusted)
	g.shapeOutbound(pr.Out, pr.In, rq)
}

// shapeOutbound points out at the cluster (the endpoint is picked per
// attempt), rewrites its path and applies the route's header edits and
// the request id.
func (g *Gateway) shapeOutbound(out, in *http.Request, rq *request) {
	rt, cl := rq.route, rq.cluster
	out.URL.Scheme = cl.scheme
	out.URL.Host = cl.name // replaced by the endpoint's address per attempt
	out.Host = in.Host     // the upstream sees the host the client asked for
	if rt.stripPrefix != "" && strings.HasPrefix(out.URL.Path, rt.stripPrefix) {
		p := rt.replacePrefix + out.URL.Path[len(rt.stripPrefix):]
		if p == "" {
			p = "/"
		} else if p[0] != '/' {
			p = "/" + p
		}
		out.URL.Path, out.URL.RawPath = p, ""
	}
	rt.requestHeaders.apply(out.Header)
	rq.hv[2] = rq.id
	out.Header[headerRequestID] = rq.hv[2:3:3]
}

// modifyResponse edits the response headers on the way back.
func (g *Gateway) modifyResponse(resp *http.Response) error {
	rq := requestFrom(resp.Request.Context())
	if rq == nil {
		return nil
	}
	rq.route.responseHeaders.apply(resp.Header)
	resp.Header[headerRequestID] = rq.hv[2:3:3] // set by shapeOutbound; read-only
	rq.switched = resp.StatusCode == http.StatusSwitchingProtocols
	rq.mu.Lock()
	ep := rq.setSticky
	rq.mu.Unlock()
	if ep != nil && rq.cluster.sticky != nil {
		resp.Header.Add("Set-Cookie", rq.cluster.sticky.Cookie(ep).String())
	}
	return nil
}

// routeTransport sends a request under its route's policies and enforces
// the route timeout until response headers arrive.
type routeTransport struct{ g *Gateway }

func (t routeTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	rq := requestFrom(req.Context())
	call := &rq.call
	if rq.fellBack {
		// The first call went to the route's cluster; a Call serves once.
		call = new(resiliencehttp.Call)
		// Response headers of the failed call did not arrive: the route
		// timeout still applies to the fallback.
		rq.headers.CompareAndSwap(1, 0)
	}
	resp, err := rq.route.transport.RoundTripCall(call, req)
	if rq.route.timeout > 0 && !rq.headers.CompareAndSwap(0, 1) {
		// The route timeout fired first; whatever came back is too late.
		if resp != nil {
			_ = resp.Body.Close()
		}
		return nil, ErrRouteTimeout
	}
	return resp, err
}

// endpointTransport sends one attempt to an endpoint the cluster's balancer
// picks, preferring endpoints this request has not tried, and accounts the
// outcome to the endpoint.
type endpointTransport struct{ g *Gateway }

func (t endpointTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	rq := requestFrom(ctx)
	cl := rq.cluster
	ep, permit, err := rq.pick(req)
	if err != nil {
		if req.Body != nil {
			_ = req.Body.Close()
		}
		return nil, retry.Permanent(err)
	}

	// req and its URL are this attempt's own copies (resiliencehttp makes
	// them per attempt), so the URL is pointed at the endpoint in place.
	req.URL.Host = ep.Address()
	call := ep.Begin()
	start := time.Now()
	resp, err := cl.transport.RoundTrip(req)
	took := time.Since(start)
	outcome, reason := endpoint.Success, ""
	switch {
	case err != nil && ctx.Err() != nil && !errors.Is(context.Cause(ctx), resiliencehttp.ErrPerTryTimeout):
		// The client left or a hedge lost: nothing to say about the endpoint.
		outcome, reason = endpoint.Ignored, "cancelled"
	case err != nil:
		outcome, reason = endpoint.Failure, upstreamReason(err)
		if errors.Is(context.Cause(ctx), resiliencehttp.ErrPerTryTimeout) {
			reason = condTimeout
		}
	case resp.StatusCode >= 500:
		outcome, reason = endpoint.Failure, "status_"+statusLabel(resp.StatusCode)
	}
	call.End(outcome)
	switch outcome {
	case endpoint.Success:
		permit.Done(nil)
	case endpoint.Failure:
		permit.Done(errEndpointFailed)
	default:
		permit.Done(context.Canceled) // ignored
	}
	if det := cl.observe(ep, outcome, resp, err); det != "" {
		reason += ", ejected by " + det
	}
	if s := cl.members.Load().stats[ep]; s != nil {
		s[outcome].Inc()
	} else {
		t.g.metrics.attempts.WithLabelValues(cl.name, ep.Address(), outcome.String()).Inc()
	}
	cl.upstreamTime.Observe(took.Seconds())
	rq.mu.Lock()
	rq.upstream += took
	if reason != "" {
		rq.failures = append(rq.failures, ep.Address()+": "+reason)
	}
	rq.mu.Unlock()
	return resp, err
}

// pick chooses the endpoint of an attempt: the cluster's balancer picks,
// preferring endpoints this request has not tried, and an endpoint whose
// circuit breaker refuses the attempt is passed over for another. It
// returns the breaker's permit (the zero Permit without a breaker), or
// ErrNoEndpoint, wrapping breaker.ErrOpen when open breakers left nothing.
func (rq *request) pick(req *http.Request) (*endpoint.Endpoint, breaker.Permit, error) {
	cl := rq.cluster
	rq.mu.Lock()
	exclude := rq.tried
	rq.mu.Unlock()
	info := balancer.PickInfo{Request: req, ClientIP: rq.clientIP, Exclude: exclude}
	var open []*endpoint.Endpoint // breakers that refused this attempt
	for {
		var ep *endpoint.Endpoint
		var err error
		setSticky := false
		if cl.sticky != nil {
			ep, setSticky, err = cl.sticky.PickSticky(info)
		} else {
			ep, err = cl.balancer.Pick(info)
		}
		if err != nil {
			return nil, breaker.Permit{}, ErrNoEndpoint
		}
		var permit breaker.Permit
		if b := ep.Breaker(); b != nil {
			if slices.Contains(open, ep) {
				// The balancer had nothing else to offer.
				return nil, breaker.Permit{}, errAllBreakersOpen
			}
			if permit, err = b.Allow(); err != nil {
				open = append(open, ep)
				rq.mu.Lock()
				rq.failures = append(rq.failures, ep.Address()+": breaker_open")
				rq.mu.Unlock()
				info.Exclude = append(slices.Clip(info.Exclude), ep)
				continue
			}
		}
		rq.mu.Lock()
		rq.tried = append(rq.tried, ep)
		rq.attempts++
		if setSticky {
			rq.setSticky = ep
		}
		rq.mu.Unlock()
		return ep, permit, nil
	}
}

// errAllBreakersOpen is the error of an attempt for which every endpoint
// the balancer offered had its circuit breaker open.
var errAllBreakersOpen = fmt.Errorf("%w: %w", ErrNoEndpoint, breaker.ErrOpen)

// errLimited is the error of a request the route's rate limit refused.
func errLimited(retryAfter time.Duration) error {
	return &ratelimit.LimitedError{Delay: retryAfter}
}
