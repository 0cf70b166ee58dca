// Package resilience composes in-process resilience policies around a call.
//
// A [Func] is one guarded call. A [Policy] decorates a Func with one
// behaviour: a circuit breaker, retries, a bulkhead, a rate limit, a
// timeout, hedging, an adaptive concurrency limit or a fallback. Each
// policy lives in its own subpackage and exposes a constructor that returns
// a Policy, for example breaker.Policy[T](b).
//
// # Composition order
//
// [Chain](a, b, c) returns the policy a(b(c(fn))): the first policy is the
// outermost and sees every call first; the last one sits next to fn and sees
// every attempt. The order that works for most services, outermost first, is
//
//	fallback → retry → breaker → bulkhead (or adaptive) → timeout → fn
//
// so that a fallback answers when retries are exhausted, every retry passes
// through the breaker (an open breaker stops retries at once), each attempt
// holds a concurrency slot only while it runs, and the timeout bounds one
// attempt rather than the whole retry loop. Put a second timeout outermost
// to bound the whole call including retries. Hedging replaces retry in this
// order for latency-sensitive idempotent reads.
//
// # Cost
//
// Wrap once and call many times: a Func returned by Chain(...)(fn) calls the
// policies directly, one after the other, and the composition itself
// allocates nothing per call. Only what the policies themselves need (a
// timer for a timeout, a goroutine for a hedge) costs anything.
package resilience
