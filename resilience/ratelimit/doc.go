// Package ratelimit limits the rate of calls with token buckets: a
// lock-free [Limiter] for one stream of calls and a [Keyed] limiter with a
// bucket per client in bounded memory.
//
// A bucket holds up to Burst tokens and gains Rate tokens per second; each
// call takes one. A gateway answering 429 asks once and gets both the
// decision and the Retry-After:
//
//	lim, err := ratelimit.NewKeyed(ratelimit.KeyedConfig{
//		Config: ratelimit.Config{Rate: 10, Burst: 20}, // per client
//	})
//	...
//	if ok, retryAfter := lim.Try(clientIP); !ok {
//		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
//		w.WriteHeader(http.StatusTooManyRequests)
//		return
//	}
//
// Inside a [resilience.Chain], [Policy] rejects calls with a
// [*LimitedError], which is [ErrLimited] to errors.Is and tells a retry
// policy when to come back through its RetryAfter method. [Limiter.Wait]
// waits for a token instead of rejecting.
package ratelimit
