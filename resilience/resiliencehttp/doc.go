// Package resiliencehttp applies resilience policies to outgoing HTTP
// requests through an [http.RoundTripper].
//
// A [Transport] runs every request through a [resilience.Chain] of policies
// over *http.Response: typically retry.Policy, breaker.Policy and
// bulkhead.Policy. It adds what HTTP needs on top of the generic policies:
//
//   - Replayable bodies: a request body is buffered up to MaxReplayBytes so
//     that a retry or a hedge can send it again; a larger body is streamed
//     once and the request is not attempted again.
//   - Idempotency: GET, HEAD, OPTIONS, TRACE, PUT and DELETE are retried;
//     POST and PATCH only when they carry an Idempotency-Key header. A
//     connection that could not be established, or an HTTP/2 stream the
//     server refused, is retried for every method, because the request was
//     never processed. Protocol upgrades (WebSocket) are never retried or
//     hedged, and a 101 response's body stays the writable tunnel.
//   - Status classification: 5xx and 429 responses are failures, so that a
//     breaker counts them and a retry retries them; a 429's or 503's
//     Retry-After header sets the least delay before the next attempt. When
//     retries are exhausted the last response itself is returned, not an
//     error, so the caller sees the upstream's status and body.
//   - Never retried: the caller's own cancellation, and anything once the
//     response is returned to the caller (RoundTrip returns once; a body
//     that fails mid-read is the caller's to handle).
//   - Responses that are not returned (a failed attempt before a retry, a
//     hedge that lost) are drained and closed, so connections are reused.
//
// A per-attempt timeout belongs in [Config].PerTryTimeout, not in
// retry.Config.PerAttemptTimeout or a timeout.Policy inside the chain: those
// cancel the attempt's context when the attempt returns, which would cut the
// response body the caller has yet to read. PerTryTimeout bounds an attempt
// until its response headers arrive and keeps the body readable after. For
// the same reason, hedging is configured with [Config].Hedge rather than
// hedge.Policy: the Transport hedges only idempotent requests, closes the
// losers and keeps the winning response's context alive until its body is
// closed.
//
// Example:
//
//	r, _ := retry.New(retry.Config{MaxAttempts: 3})
//	b, _ := breaker.New(breaker.Config{})
//	t, _ := resiliencehttp.New(resiliencehttp.Config{
//		Policies: []resilience.Policy[*http.Response]{
//			retry.Policy[*http.Response](r),
//			breaker.Policy[*http.Response](b),
//		},
//		PerTryTimeout: 500 * time.Millisecond,
//	})
//	client := &http.Client{Transport: t}
package resiliencehttp
