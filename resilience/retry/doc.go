// Package retry re-runs a failed call with capped, fully jittered exponential backoff, bounded by a shared retry budget and by the caller's deadline.
//
// Build a [Retry] once with [New] and share it; run calls through [Do] or
// compose it with [Policy]:
//
//	budget, _ := retry.NewBudget(retry.BudgetConfig{}) // 20% of requests + 10/s
//	r, err := retry.New(retry.Config{
//		MaxAttempts:       3,                    // one call and two retries
//		PerAttemptTimeout: 300 * time.Millisecond,
//		Budget:            budget,
//	})
//	if err != nil {
//		return err
//	}
//	v, err := retry.Do(ctx, r, fetch)
//	var ex *retry.ExhaustedError
//	if errors.As(err, &ex) && ex.Reason == retry.ReasonBudget {
//		// the upstream is failing broadly; retries were shed
//	}
//
// What is retried: by default every error except one wrapped with
// [Permanent] and a rejection by another policy (an error matching
// resilience.ErrRejected: an open breaker, a full bulkhead, a rate limit,
// where a retry only adds load), and never once the caller's own context is
// done. An attempt
// that ends because its PerAttemptTimeout expired is retried; the caller's
// deadline expiring is not. A failed attempt whose error carries a server's
// Retry-After (see [AfterHint] and [ParseRetryAfter]) waits at least that
// long before the next attempt.
//
// What is returned: the first success; a non-retryable error exactly as fn
// returned it; or an [*ExhaustedError] (errors.Is(err, [ErrExhausted])) that
// says why retrying stopped (attempts, deadline or budget) and unwraps to the
// last attempt's error.
package retry
