package adaptive

import "math"

// estimator is the gradient2-family limit arithmetic, kept apart from the
// admission and windowing code so that it can be fuzzed on its own. It is
// not safe for concurrent use; the Limiter guards it with its mutex.
type estimator struct {
	limit float64 // continuous limit; the admitted limit is its floor
	short float64 // mean RTT (ns) of the last window
	long  float64 // long-term RTT (ns)
	n     int     // windows seen, for the long-term warm-up

	alpha     float64 // EWMA weight of the long-term RTT
	smoothing float64
	tolerance float64
	min, max  float64
	queue     func(limit int) int
}

func newEstimator(c Config) estimator {
	return estimator{
		limit:     float64(c.InitialLimit),
		alpha:     2 / (float64(c.LongWindow) + 1),
		smoothing: c.Smoothing,
		tolerance: c.Tolerance,
		min:       float64(c.MinLimit),
		max:       float64(c.MaxLimit),
		queue:     c.QueueSize,
	}
}

func (e *estimator) intLimit() int { return int(e.limit) }

// update folds one window (mean RTT in ns, highest in-flight count seen at
// admission) into the long-term RTT and the limit.
func (e *estimator) update(short float64, inFlight int) {
	// A 1ns floor keeps the ratios finite for zero RTTs (a clock that did
	// not move) without changing any real measurement.
	short = max(short, 1)
	e.short = short
	e.n++
	if e.n <= longWarmup {
		e.long += (short - e.long) / float64(e.n)
	} else {
		// One window can raise the baseline by at most alpha·long: a GC
		// pause or a burst of timeouts far above the baseline is queueing,
		// not a new normal, and must not inflate the reference it is
		// judged against. A lasting shift still gets through, doubling
		// the baseline in about 0.7/alpha windows.
		e.long += e.alpha * (min(short, 2*e.long) - e.long)
	}
	// After a long overload the average has absorbed the queueing latency;
	// once the RTT is back far below it, decay it quickly instead of waiting
	// hundreds of windows for the EWMA, or the limit would grow unchecked
	// against a stale, inflated baseline.
	if e.long > 2*short {
		e.long *= 0.9
	}
	// App-limited: with less than half the limit in use the RTT says nothing
	// about what a full limit would do, so neither grow nor shrink.
	if float64(inFlight) < e.limit/2 {
		return
	}
	g := min(max(e.tolerance*e.long/short, 0.5), 1)
	target := e.limit * g
	if g == 1 {
		target += float64(max(e.queue(e.intLimit()), 0))
	}
	next := e.limit*(1-e.smoothing) + target*e.smoothing
	if math.IsNaN(next) {
		return
	}
	e.limit = min(max(next, e.min), e.max)
}
