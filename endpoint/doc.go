// Package endpoint holds the live state of upstream instances, shared by the
// balancers, the proxy core, health checking and outlier detection.
//
// A [Store] creates one [Endpoint] per address ("host:port") and keeps it
// across configuration reloads: [Store.Ensure] creates an endpoint or updates
// its attributes (weight, zone, failover priority, metadata) while keeping
// its counters, and [Store.Retain] drops the endpoints a new configuration no
// longer names. Balancers never see the store; they receive an immutable
// [Set] of endpoints and rebuild their picker from it.
//
// The proxy brackets every attempt with [Endpoint.Begin] and [Call.End]:
//
//	ep, err := bal.Pick(info)
//	...
//	call := ep.Begin()
//	resp, err := transport.RoundTrip(req)
//	call.End(outcomeOf(resp, err)) // endpoint.Success, Failure or Ignored
//
// Begin counts the request and raises the in-flight count; End lowers it,
// feeds the peak-EWMA latency estimate and, for failures, the recent-error
// count. An Ignored outcome (the client went away, a hedge lost) only lowers
// the in-flight count: it says nothing about the endpoint.
//
// # Peak EWMA
//
// The latency estimate is Finagle's and linkerd's peak EWMA: a sample above
// the current estimate replaces it at once, a lower sample pulls it down with
// weight 1−e^(−Δt/τ), where Δt is the time since the last update and τ is
// [Config.Decay] (10s by default). Reads decay the estimate to the present
// the same way (as if a zero sample had been observed), so an endpoint that
// stops receiving traffic because it was slow looks cheaper as time passes and
// is probed again. A failure never lowers the estimate: one slower than the
// estimate is a sample (a timeout is evidence of slowness), a faster one is
// none (a fast "connection refused" or 500 must not make a broken endpoint
// look attractive). Zero means no sample yet (see the ewma balancer for how
// new endpoints are treated).
//
// # Failure penalty
//
// What a failure costs an endpoint in a balancer is its failure penalty
// ([Endpoint.Penalty]), kept apart from the latency estimate: each failure
// adds 1, and the sum fades with its own short time constant,
// [FailurePenaltyDecay] (250ms). The ewma balancer doubles an endpoint's cost
// per unit of penalty, so a failing endpoint gets a few probes per second
// instead of its share of traffic, and no more than that: the penalty must
// not starve it of the requests that passive outlier detection needs to see
// its consecutive failures.
//
// The estimate and the recent-error count each live in one 64-bit word (a
// float32 value and a millisecond time stamp) updated by compare-and-swap, so
// readers and writers never lock and always see a consistent pair. Stamps
// are 32 bits: a value idle for longer than 2³¹ ms (24.8 days) counts as
// fully decayed, except within a minute of a multiple of 2³² ms (49.7 days),
// where it decays as if little time had passed.
//
// # Usability
//
// An endpoint is usable, and balancers may pick it, while none of its
// [Flags] is set: [FailedHealthCheck] (active health checks), [Ejected]
// (passive outlier detection) and [Draining] (an operator or a removal) are
// independent, so one owner clearing its flag never overrides another's.
// Balancers filter usable endpoints when they rebuild their picker; whoever
// changes a flag must push the cluster's Set to its balancer again
// ([Endpoint.Mark] reports whether usability changed).
//
// Whoever owns the per-endpoint circuit breaker (the gateway) hangs it on the
// endpoint with [Endpoint.SetBreaker] and reads it back with
// [Endpoint.Breaker]; the endpoint only stores it.
//
// # Sharing
//
// Endpoints are keyed by address within one Store. Two clusters that list
// the same address share its live state if they share a Store; a gateway that
// wants per-cluster weights or counters keeps one Store per cluster.
package endpoint
