// Package adaptive limits concurrency to a limit it discovers from latency.
//
// A [Limiter] admits a call while fewer than [Limiter.Limit] calls are in
// flight and fails fast with [ErrLimited] otherwise. Each completed call
// reports its round-trip time; the limit rises while latency stays flat and
// falls when latency grows, so it settles near the concurrency the upstream
// serves without queueing. The gateway keeps one Limiter per cluster; a
// service can keep one per dependency.
//
//	l, err := adaptive.New(adaptive.Config{MaxLimit: 500})
//	...
//	p, err := l.Acquire()
//	if errors.Is(err, adaptive.ErrLimited) {
//		return errOverloaded // 429/503: shed, don't queue
//	}
//	resp, err := call(ctx)
//	if err == nil || errors.Is(err, context.DeadlineExceeded) {
//		p.Record() // latency sample: feeds the algorithm
//	} else {
//		p.Drop() // fast failure: frees the slot, no sample
//	}
//
// or, composed with other policies, adaptive.Policy[T](l), which does the
// same (see [Policy] for which outcomes it records).
//
// # Algorithm
//
// The limit follows Netflix's gradient2. Samples are grouped into windows of
// about one round trip (at least Config.WindowSamples samples, one of them
// admitted after the previous update) and the limit is updated once per
// window, as TCP updates its window once per round trip: updating on every
// sample would let the hundreds of samples of one slow round trip each cut
// the limit again for the same congestion. For each window:
//
//	short    = mean RTT of the window
//	long     = EWMA of short over Config.LongWindow windows
//	gradient = clamp(Tolerance·long/short, 0.5, 1)
//	target   = limit·gradient, plus QueueSize(limit) if gradient == 1
//	limit    = clamp(limit·(1−Smoothing) + target·Smoothing, MinLimit, MaxLimit)
//
// The update is skipped when fewer than half the limit were in flight:
// an app-limited caller's latency says nothing about a full limit.
//
// Three departures from gradient2, each found in simulation (see
// TestQueueingServerConverges):
//
//   - The queue headroom is added only when no queueing is seen
//     (gradient == 1). gradient2 adds it always, so a mild steady overload
//     (gradient ≈ 0.8) still grows the limit forever (Netflix
//     concurrency-limits PR #134).
//   - The default Tolerance is 1. Above 1 the limit settles where the short
//     RTT is Tolerance times the long one; the long average then absorbs
//     that queueing and the limit creeps upward without bound under
//     sustained saturation. Averaging a whole window already smooths the
//     per-sample noise that tolerance was meant to absorb.
//   - Drift protection both ways. Upward: one window raises the long RTT by
//     at most a factor 1+alpha, so a GC pause or a burst of timeouts far
//     above the baseline cannot inflate the reference it is judged against.
//     Downward (as gradient2): when the short RTT falls below half the long
//     one, as after a long overload, the long RTT decays by 10% per window
//     instead of waiting hundreds of windows for the EWMA.
//
// Why gradient2 and not Vegas: Vegas compares against the minimum RTT ever
// seen, which ages badly. A baseline that drifts up (a slower deploy, a
// longer network path, a bigger payload mix) leaves Vegas judging every
// sample against a stale minimum and shedding load for good, unless it
// periodically probes by cutting concurrency to re-measure (Envoy's
// minRTT recalculation), which costs throughput on every probe. gradient2's
// long-term average adapts to such shifts on its own. Its known weakness is
// the converse: it needs the first windows to see an unqueued upstream, so
// keep InitialLimit below the upstream's capacity, or the baseline starts
// inflated and the limit settles correspondingly high. And because the
// baseline follows what it measures, noisy latency under sustained
// saturation lets the limit creep upward slowly: the limit hovers where
// windows above the baseline (which shrink it) balance the queue headroom
// (which grows it), that is slightly above the baseline, and the baseline
// follows. In simulation with ±30% jitter the limit rises by a few percent
// of the capacity per ten thousand samples; any drop in load resets it.
//
// # Timeouts and failures
//
// [Permit.Drop] releases the slot without a sample and without lowering the
// limit: use it for outcomes whose latency says nothing about the
// upstream's queue (a refused connection, a caller that gave up, a request
// rejected by another policy). Netflix's limiters instead feed drops as
// samples or halve the limit; a fast failure fed as a sample would lower
// the short RTT and raise the limit exactly when the upstream is broken,
// and the circuit breaker, not the concurrency limit, is the policy for
// failing upstreams. Timeouts are different: they are the clearest sign of
// overload, so record them with [Permit.Record]. Their RTT is a lower bound
// of the true latency, which errs toward shrinking the limit.
package adaptive
