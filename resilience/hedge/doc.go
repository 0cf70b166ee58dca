// Package hedge sends hedged requests: when a call is slow, it starts extra
// attempts after a delay and keeps the first success ("The Tail at Scale",
// Dean and Barroso).
//
// A [Hedger] holds the configuration, the latency estimate and the
// counters; share one per downstream service. [Do] runs a call through it;
// [Policy] does the same inside a [resilience.Chain]:
//
//	h, err := hedge.New(hedge.Config{
//		Quantile:  0.95,                  // hedge after the p95 of recent latencies,
//		Delay:     20 * time.Millisecond, // or after 20ms until 100 samples are in
//		MinDelay:  2 * time.Millisecond,
//		MaxHedges: 1,
//		Budget:    budget, // shared with retries: hedges are extra load
//	})
//	...
//	user, err := hedge.Do(ctx, h, func(ctx context.Context) (User, error) {
//		return client.GetUser(ctx, id) // must honour ctx: losers are cancelled
//	})
//
// Hedge only idempotent calls: every attempt may reach the server. The
// first success wins and the other attempts' contexts are cancelled at
// once. A failure does not start a hedge early unless Config.HedgeOnError
// is set; when all attempts fail, Do returns the first error. Results that
// hold resources (an *http.Response) need [DoWith]: Results.Discard
// releases the losers' and Results.Retain keeps the winner's ctx alive
// while its body is read.
package hedge
