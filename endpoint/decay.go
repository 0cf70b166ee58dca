package endpoint

import (
	"math"
	"sync/atomic"
	"time"
)

// FailurePenaltyDecay is the time constant of an endpoint's failure penalty
// ([Endpoint.Penalty]): each failure adds 1, and the sum fades by a factor
// e every FailurePenaltyDecay.
//
// It is short on purpose. The penalty's job is to send the requests that
// arrive right after a failure elsewhere (at 1000 requests per second,
// hundreds of them within the time constant) without starving the endpoint
// of the few requests that passive outlier detection needs as evidence: a
// gray endpoint that fails every request must still see its consecutive
// failures within a second, not after the 10s latency horizon ([Config.Decay]).
// With the ewma balancer's cost doubling per unit of penalty, a failing
// endpoint is tried again within about FailurePenaltyDecay·ln(failures)
// when it competes with endpoints that have a request in flight.
const FailurePenaltyDecay = 250 * time.Millisecond

// penaltyInvTau is 1 / FailurePenaltyDecay in milliseconds.
const penaltyInvTau = float64(time.Millisecond) / float64(FailurePenaltyDecay)

// noTime marks an unset clock reading.
const noTime = math.MinInt64

// clock is a store's time source, shared by its endpoints.
type clock struct {
	now    func() time.Time // nil: monotonic time since origin
	origin time.Time
	invTau float64 // 1 / Decay in milliseconds
}

// nanos returns the time since origin in nanoseconds.
func (c *clock) nanos() int64 {
	if c.now == nil {
		// time.Since on a monotonic origin reads only the monotonic clock,
		// about half the cost of time.Now.
		return int64(time.Since(c.origin))
	}
	return int64(c.now().Sub(c.origin))
}

func (c *clock) timeOf(ns int64) time.Time { return c.origin.Add(time.Duration(ns)) }

// stampOf is the millisecond time stamp of a clock reading, modulo 2³².
func stampOf(ns int64) uint32 { return uint32(ns / int64(time.Millisecond)) }

// maxValue caps decayed values (an hour of latency, in nanoseconds; a
// failure penalty of thousands of failures), so that no sum or sample can
// overflow the float32 they are stored in.
const maxValue = float64(time.Hour)

// decayed is a float32 value and the millisecond stamp of its last update
// in one word: value bits in the high half, stamp in the low half.
type decayed struct{ w atomic.Uint64 }

func unpack(w uint64) (float64, uint32) {
	return float64(math.Float32frombits(uint32(w >> 32))), uint32(w)
}

func pack(v float64, stamp uint32) uint64 {
	return uint64(math.Float32bits(float32(v)))<<32 | uint64(stamp)
}

// skewTolerance is how far (in ms) a stored stamp may be ahead of a
// writer's clock reading because a concurrent writer read the clock later.
// A stamp further ahead is a stamp from before a wrap of the 32-bit counter.
const skewTolerance = 60_000

// elapsed returns now−stamp in milliseconds and the stamp to store. A stamp
// slightly ahead (clock skew between concurrent writers) counts as no time
// and is kept; one far ahead is older than 2³¹ ms and counts as forever.
func elapsed(now, stamp uint32) (float64, uint32) {
	d := int32(now - stamp)
	switch {
	case d > 0:
		return float64(d), now
	case d >= -skewTolerance:
		return 0, stamp
	}
	return math.Inf(1), now
}

// at returns the value decayed to now.
func (d *decayed) at(now uint32, invTau float64) float64 {
	v, stamp := unpack(d.w.Load())
	if v == 0 {
		return 0 // also makes the stamp of the zero word irrelevant
	}
	dt, _ := elapsed(now, stamp)
	if dt == 0 {
		return v
	}
	return v * math.Exp(-dt*invTau)
}

// peak observes sample the peak-EWMA way: a sample above the current value
// replaces it, a lower one is averaged in with weight 1−e^(−Δt/τ).
//
// A failure never lowers the estimate. One slower than the estimate
// decayed to now is observed like any sample (a timeout is evidence of
// slowness); a faster one is no sample at all: a fast "connection refused"
// or 500 says nothing about how fast the endpoint serves and must not make
// it look attractive. What a failure costs an endpoint in the balancer is
// its failure penalty, a separate value with its own short time constant
// ([FailurePenaltyDecay]); the estimate carries no penalty, so a failure
// does not keep the endpoint away for the estimate's long horizon.
func (d *decayed) peak(now uint32, sample, invTau float64, failure bool) {
	for {
		old := d.w.Load()
		v, stamp := unpack(old)
		dt, stamp := elapsed(now, stamp)
		if v == 0 {
			stamp = now // no history: the stamp of the zero word means nothing
		}
		if failure && sample <= v*math.Exp(-dt*invTau) {
			return // not a sample
		}
		nv := sample
		if sample < v {
			w := math.Exp(-dt * invTau)
			nv = v*w + sample*(1-w)
		}
		if d.w.CompareAndSwap(old, pack(min(nv, maxValue), stamp)) {
			return
		}
	}
}

// add decays the value to now and adds x.
func (d *decayed) add(now uint32, x, invTau float64) {
	for {
		old := d.w.Load()
		v, stamp := unpack(old)
		dt, stamp := elapsed(now, stamp)
		if v == 0 {
			stamp = now
		}
		nv := v*math.Exp(-dt*invTau) + x
		if d.w.CompareAndSwap(old, pack(min(nv, maxValue), stamp)) {
			return
		}
	}
}
