package ratelimit

import (
	"context"
	"fmt"
	"math"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/resilience"
)

// ErrLimited is the condition behind every rejection: [Limiter.Wait] when
// the token would come after the context's deadline, and [Policy] when the
// bucket is empty. Test for it with errors.Is; use errors.As with
// [*LimitedError] to learn when to retry.
var ErrLimited = resilience.NewRejection("ratelimit: rate limit exceeded")

// InfDuration is the delay reported for a request that can never succeed
// because it asks for more tokens than Burst.
const InfDuration = time.Duration(math.MaxInt64)

// MaxRate is the largest Rate accepted: one token per nanosecond, the
// resolution of the clock.
const MaxRate = 1e9

// maxTau bounds Burst/Rate (the time a bucket takes to refill from empty)
// so that the nanosecond arithmetic cannot overflow: 2^62 ns is 146 years.
const maxTau = 1 << 62

// LimitedError is a rejection that knows when the request could succeed.
// It unwraps to [ErrLimited]. A retry policy can honour it through
// RetryAfter without importing this package. The zero value means "retry
// at once"; a LimitedError is never modified after it is returned, so it
// may be shared between goroutines.
type LimitedError struct {
	// Delay is how long, from the moment of rejection, until the request
	// could have succeeded had nothing else taken tokens in between.
	// InfDuration means never: the request is larger than Burst.
	Delay time.Duration
}

func (e *LimitedError) Error() string {
	if e.Delay == InfDuration {
		return "ratelimit: rate limit exceeded: request larger than burst"
	}
	return "ratelimit: rate limit exceeded, retry after " + e.Delay.String()
}

// Unwrap returns [ErrLimited].
func (e *LimitedError) Unwrap() error { return ErrLimited }

// RetryAfter reports how long to wait before retrying; ok is false when a
// retry can never succeed (the request is larger than Burst).
func (e *LimitedError) RetryAfter() (d time.Duration, ok bool) {
	if e.Delay == InfDuration || e.Delay < 0 {
		return 0, false
	}
	return e.Delay, true
}

// Config describes a token bucket. It is a plain value; its zero value is
// invalid because Rate has no sensible default.
type Config struct {
	// Rate is how many tokens are added per second; it must be in
	// (0, MaxRate]. Zero is an error. Fractional rates are fine: 0.5 is one
	// token every two seconds.
	//
	// Costs are kept in whole nanoseconds, rounded up, so the limiter never
	// admits more than Rate allows; for one-token requests the admitted
	// rate may fall short of Rate by at most Rate/1e9 relative (0.1% at a
	// million per second), and reported delays are exact to within 1ns of
	// the ideal bucket.
	Rate float64
	// Burst is the bucket's capacity: the most tokens that can be taken at
	// once after a quiet period. Zero means one second's worth,
	// max(1, ceil(Rate)). Negative is an error, and so is a Burst whose
	// refill time Burst/Rate exceeds about 146 years.
	Burst int
}

// withDefaults returns cfg with zero fields replaced by their defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Burst == 0 && cfg.Rate > 0 && cfg.Rate <= MaxRate {
		cfg.Burst = max(1, int(math.Ceil(cfg.Rate)))
	}
	return cfg
}

// validate checks cfg after defaults and returns the bucket arithmetic.
func (cfg Config) validate() (bucket, error) {
	if !(cfg.Rate > 0) || cfg.Rate > MaxRate { // !(>) also rejects NaN
		return bucket{}, fmt.Errorf("ratelimit: Rate must be in (0, %g], got %g", float64(MaxRate), cfg.Rate)
	}
	if cfg.Burst < 0 {
		return bucket{}, fmt.Errorf("ratelimit: Burst must be >= 0, got %d", cfg.Burst)
	}
	x := 1e9 / cfg.Rate
	tau := math.Ceil(float64(cfg.Burst) * x)
	if !(tau <= maxTau) {
		return bucket{}, fmt.Errorf("ratelimit: Burst/Rate must be at most %v, got %d/%g", time.Duration(maxTau), cfg.Burst, cfg.Rate)
	}
	return bucket{
		rate:  cfg.Rate,
		burst: cfg.Burst,
		x:     x,
		inc1:  int64(math.Ceil(x)),
		tau:   int64(tau),
	}, nil
}

// bucket is the arithmetic of the generic cell rate algorithm (GCRA, the
// "virtual scheduling" form of a token bucket). Instead of a token count
// and a refill time, the whole state is one number, tat: the time at which
// the bucket will be full again. At time now the bucket holds debt =
// max(tat-now, 0) nanoseconds' worth of missing tokens; a request for n
// tokens costs cost(n) nanoseconds and fits if debt+cost(n) <= tau, the
// bucket's capacity in nanoseconds. One number means one atomic word and a
// single compare-and-swap per request.
type bucket struct {
	rate  float64
	burst int
	x     float64 // exact nanoseconds per token, 1e9/rate
	inc1  int64   // cost(1)
	tau   int64   // capacity in nanoseconds, ceil(burst*x)
}

// cost returns the nanoseconds n tokens cost, for 1 <= n <= burst. Rounding
// up keeps the admitted rate at or below Rate, and since x >= 1, burst+1
// single-token costs always exceed tau, so rounding never adds a token to a
// burst.
func (b *bucket) cost(n int) int64 {
	if n == 1 {
		return b.inc1
	}
	return int64(math.Ceil(float64(n) * b.x))
}

// take computes the state after taking inc nanoseconds' worth of tokens at
// now from state tat. The request fits if wait <= 0; otherwise wait is how
// long until it would.
func (b *bucket) take(tat, now, inc int64) (newTat, wait int64) {
	if tat < now { // a bucket full before now is simply full now
		tat = now
	}
	newTat = tat + inc
	return newTat, newTat - b.tau - now
}

// tokens reports how many tokens state tat holds at now, in [0, burst].
// Only tests and diagnostics use it; the hot path works in nanoseconds.
func (b *bucket) tokens(tat, now int64) float64 {
	debt := max(tat-now, 0)
	// burst·(tau−debt)/tau can round one ULP above burst; subtracting the
	// debt's share is exact at zero debt, and the clamp covers the rest.
	t := float64(b.burst) - float64(b.burst)*float64(debt)/float64(b.tau)
	return min(max(t, 0), float64(b.burst))
}

// clock measures nanoseconds since origin. With now nil it reads only the
// monotonic clock (time.Since on a time with a monotonic reading skips the
// wall clock), which is half the cost of time.Now; tests inject now.
type clock struct {
	origin time.Time
	now    func() time.Time
}

func newClock(now func() time.Time) clock {
	if now == nil {
		return clock{origin: time.Now()}
	}
	return clock{origin: now(), now: now}
}

func (c *clock) nanos() int64 {
	if c.now != nil {
		return int64(c.now().Sub(c.origin))
	}
	return int64(time.Since(c.origin))
}

// Limiter is a lock-free token bucket. Create it with [New]; the zero value
// is not usable. It is safe for concurrent use; a request costs one
// monotonic clock read and one compare-and-swap, and rejections write
// nothing, so a hammered limiter stays cheap.
type Limiter struct {
	tat atomic.Int64 // see bucket
	b   bucket
	clk clock
}

// New returns a Limiter whose bucket starts full.
func New(cfg Config) (*Limiter, error) {
	return newLimiter(cfg, nil)
}

func newLimiter(cfg Config, now func() time.Time) (*Limiter, error) {
	b, err := cfg.withDefaults().validate()
	if err != nil {
		return nil, err
	}
	l := &Limiter{b: b, clk: newClock(now)}
	// Far in the past, so the bucket is full whatever the clock reads.
	l.tat.Store(math.MinInt64 / 2)
	return l, nil
}

// Rate returns the configured rate in tokens per second.
func (l *Limiter) Rate() float64 { return l.b.rate }

// Burst returns the bucket's capacity after defaults.
func (l *Limiter) Burst() int { return l.b.burst }

// Allow takes one token if one is available and reports whether it did.
func (l *Limiter) Allow() bool {
	ok, _ := l.try(l.b.inc1)
	return ok
}

// AllowN takes n tokens if n are available and reports whether it did; it
// takes none otherwise. n > Burst never succeeds; n <= 0 always does and
// takes nothing.
func (l *Limiter) AllowN(n int) bool {
	ok, _ := l.TryN(n)
	return ok
}

// Try takes one token if one is available. If not, it reports how long
// until one will be, which is what an HTTP 429's Retry-After wants; both
// answers come from the same clock reading.
func (l *Limiter) Try() (ok bool, retryAfter time.Duration) {
	return l.try(l.b.inc1)
}

// TryN is [Limiter.Try] for n tokens. For n > Burst it returns false and
// InfDuration; n <= 0 always succeeds and takes nothing.
func (l *Limiter) TryN(n int) (ok bool, retryAfter time.Duration) {
	if n <= 0 {
		return true, 0
	}
	if n > l.b.burst {
		return false, InfDuration
	}
	return l.try(l.b.cost(n))
}

func (l *Limiter) try(inc int64) (bool, time.Duration) {
	now := l.clk.nanos()
	for {
		old := l.tat.Load()
		newTat, wait := l.b.take(old, now, inc)
		if wait > 0 {
			return false, time.Duration(wait)
		}
		if l.tat.CompareAndSwap(old, newTat) {
			return true, 0
		}
	}
}

// Wait blocks until a token is available and takes it, or until ctx is
// done. See [Limiter.WaitN].
func (l *Limiter) Wait(ctx context.Context) error {
	return l.WaitN(ctx, 1)
}

// WaitN blocks until n tokens are available and takes them. It returns
// ctx.Err() if ctx is already done or ends while waiting, in which case the
// tokens are given back. It fails at once, with an error wrapping a
// [*LimitedError] (and so [ErrLimited]), if n > Burst or if ctx's deadline
// comes before the tokens would. Waiters are served in the order they
// call, each one's tokens set aside when it starts waiting.
func (l *Limiter) WaitN(ctx context.Context, n int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if n <= 0 {
		return nil
	}
	if n > l.b.burst {
		return fmt.Errorf("ratelimit: WaitN(%d) exceeds Burst %d: %w", n, l.b.burst, &LimitedError{Delay: InfDuration})
	}
	inc := l.b.cost(n)
	now := l.clk.nanos()
	deadline, hasDeadline := ctx.Deadline()
	var wait int64
	for {
		old := l.tat.Load()
		var newTat int64
		newTat, wait = l.b.take(old, now, inc)
		if wait > 0 && hasDeadline {
			// Measured against the same reading as now, without another
			// clock read: both times carry monotonic readings.
			if remaining := deadline.Sub(l.clk.origin) - time.Duration(now); time.Duration(wait) > remaining {
				return fmt.Errorf("ratelimit: token in %v, after the context deadline in %v: %w",
					time.Duration(wait), remaining, &LimitedError{Delay: time.Duration(wait)})
			}
		}
		if l.tat.CompareAndSwap(old, newTat) {
			break
		}
	}
	if wait <= 0 {
		return nil
	}
	t := time.NewTimer(time.Duration(wait))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		// Give the reservation back. Later waiters were scheduled behind
		// it; moving tat back lets the next caller have the slot instead.
		l.tat.Add(-inc)
		return ctx.Err()
	}
}

// Policy returns a policy that calls next only if l has a token and
// otherwise fails at once with a [*LimitedError] (errors.Is ErrLimited)
// that carries the delay until the next token. It never waits: put a retry
// policy outside it to wait and try again.
func Policy[T any](l *Limiter) resilience.Policy[T] {
	return func(next resilience.Func[T]) resilience.Func[T] {
		return func(ctx context.Context) (T, error) {
			if ok, d := l.Try(); !ok {
				var zero T
				return zero, &LimitedError{Delay: d}
			}
			return next(ctx)
		}
	}
}
