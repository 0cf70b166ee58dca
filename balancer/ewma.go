package balancer

import (
	"math"

	"github.com/rampart-ha/rampart/endpoint"
)

// EWMAName is the peak-EWMA policy, the default.
const EWMAName = "ewma"

func init() { Register(builder{name: EWMAName, build: newEWMA}) }

// ewma is Finagle's and linkerd's peak-EWMA balancer: power of two choices
// over the cost latency × (in-flight+1) × 2^penalty / weight, where latency
// is the endpoint's peak-EWMA estimate and penalty its failure penalty (see
// package endpoint), both decayed to now.
//
// Failures: each recent failure doubles the cost, so a fast-failing
// endpoint cannot attract traffic by looking fast (whether its failures
// are as fast as the others' successes or a hundred times faster, it gets
// a few probes per second, in a simulation at 100 requests per second,
// instead of its third). The doubling fades with endpoint.FailurePenaltyDecay (250ms),
// not with the latency estimate's 10s: a failing endpoint is tried again
// within a fraction of a second whenever its rivals have requests in
// flight, so passive outlier detection sees the consecutive failures it
// ejects on. (Finagle and Envoy leave failures to failure accrual and
// outlier detection altogether; the penalty only keeps a black hole from
// forming where outlier detection is off, and must not starve it where it
// is on.)
//
// Cold start: an endpoint without a latency sample (new, or idle long
// enough for its estimate to decay below a nanosecond) costs 0 while it has
// nothing in flight, so it wins its comparisons and gets a first request
// at once (not starved); while that request is in flight it is penalized:
// it loses to every endpoint with a sample, and among penalized endpoints
// the lower in-flight/weight wins (not flooded). This is Finagle's rule. It
// sends new endpoints one probe at a time until their first response, then
// their measured latency decides; a cold cluster behaves as least_request.
type ewma struct {
	holder[p2cPicker]
	rand func() uint64
}

var _ Balancer = (*ewma)(nil)

func newEWMA(cfg Config) Balancer { return &ewma{rand: cfg.Rand} }

func (b *ewma) Update(set endpoint.Set) { b.update(set, newP2C) }

func (b *ewma) Pick(info PickInfo) (*endpoint.Endpoint, error) {
	p := b.p.Load()
	if p == nil {
		return nil, ErrNoEndpoint
	}
	i, j, ok := p.candidates(b.rand, info.Exclude)
	if !ok {
		return p.eps[i], nil
	}
	now := p.eps[i].Tick() // one clock read for both
	pi, ci := ewmaCost(p.eps[i], p.w[i], now)
	pj, cj := ewmaCost(p.eps[j], p.w[j], now)
	if pi != pj {
		if pi {
			return p.eps[j], nil
		}
		return p.eps[i], nil
	}
	if ci <= cj {
		return p.eps[i], nil
	}
	return p.eps[j], nil
}

// ewmaCost returns whether e is penalized (no latency sample, requests in
// flight) and its cost within its class.
func ewmaCost(e *endpoint.Endpoint, w float64, now endpoint.Tick) (penalized bool, cost float64) {
	lat, inflight := e.LatencyAt(now), e.InFlight()
	if lat == 0 {
		return inflight > 0, float64(inflight) / w
	}
	cost = float64(lat) * float64(inflight+1) / w
	if p := e.PenaltyAt(now); p > 0 {
		cost *= math.Exp2(p)
	}
	return false, cost
}
