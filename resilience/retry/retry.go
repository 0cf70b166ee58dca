package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/rampart-ha/rampart/resilience"
)

// ErrExhausted matches every [*ExhaustedError] under errors.Is: retrying
// stopped while the last attempt's error was still retryable.
var ErrExhausted = errors.New("retry: exhausted")

// DefaultMaxAttempts is the number of attempts (the call plus two retries)
// used when Config.MaxAttempts is zero. Two retries recover from the
// isolated failures retries are for (a lost connection, one bad instance);
// a third rarely succeeds where two failed, and it multiplies load on an
// upstream that is failing broadly.
const DefaultMaxAttempts = 3

// DefaultMaxRetryAfter is the longest Retry-After a caller waits when
// Config.MaxRetryAfter is zero: long enough for a server shedding load to
// recover, short enough that no caller hangs on one misbehaving answer.
const DefaultMaxRetryAfter = 30 * time.Second

// DefaultBackoff is the backoff used for zero fields of Config.Backoff.
//
// The first retry waits a uniformly random 0-25ms (12.5ms on average), which
// barely dents a request with a latency objective in the hundreds of
// milliseconds yet spreads the retries of callers that failed together.
// Doubling reaches the 1s cap at the sixth retry (25, 50, 100, 200, 400,
// 800ms, then 1s); a request-path retry that would wait longer than a second
// is past most callers' deadlines and should be shed instead.
var DefaultBackoff = Backoff{
	Base:       25 * time.Millisecond,
	Max:        time.Second,
	Multiplier: 2,
}

// Backoff is capped exponential backoff: before retry n (n = 0 for the first
// retry) the delay is drawn uniformly from [0, min(Max, Base·Multiplier^n)]
// ("full jitter", which spreads synchronized callers best; see the AWS
// Architecture Blog post "Exponential Backoff And Jitter").
//
// The zero value is [DefaultBackoff]: each zero field takes the default's
// value. A Backoff is a plain value, safe to copy and to use concurrently.
type Backoff struct {
	// Base is the ceiling of the first retry's delay. Zero means
	// DefaultBackoff.Base; negative is invalid.
	Base time.Duration
	// Max caps every delay and must be >= Base. Zero means
	// max(DefaultBackoff.Max, Base); negative is invalid.
	Max time.Duration
	// Multiplier grows the ceiling per retry and must be >= 1 and finite;
	// 1 gives a constant ceiling of Base. Zero means DefaultBackoff.Multiplier.
	Multiplier float64
}

func (b Backoff) withDefaults() Backoff {
	if b.Base == 0 {
		b.Base = DefaultBackoff.Base
	}
	if b.Max == 0 {
		b.Max = max(DefaultBackoff.Max, b.Base)
	}
	if b.Multiplier == 0 {
		b.Multiplier = DefaultBackoff.Multiplier
	}
	return b
}

func (b Backoff) validate() error {
	switch {
	case b.Base < 0:
		return fmt.Errorf("retry: Backoff.Base must be >= 0, got %v", b.Base)
	case b.Max < 0:
		return fmt.Errorf("retry: Backoff.Max must be >= 0, got %v", b.Max)
	case b.Max < b.Base:
		return fmt.Errorf("retry: Backoff.Max must be >= Backoff.Base (%v), got %v", b.Base, b.Max)
	case !(b.Multiplier >= 1) || math.IsInf(b.Multiplier, 1):
		return fmt.Errorf("retry: Backoff.Multiplier must be finite and >= 1, got %v", b.Multiplier)
	}
	return nil
}

// Ceiling returns min(Max, Base·Multiplier^n), the upper bound of the delay
// before retry n (n = 0 for the first retry; a negative n counts as 0). It
// never overflows: any n at which the product would exceed Max returns Max.
// Zero fields take their [DefaultBackoff] values.
func (b Backoff) Ceiling(n int) time.Duration {
	b = b.withDefaults()
	if n < 0 {
		n = 0
	}
	// In float64 the product saturates at +Inf instead of wrapping; comparing
	// before converting back keeps the conversion in range.
	c := float64(b.Base) * math.Pow(b.Multiplier, float64(n))
	if !(c < float64(b.Max)) { // also catches NaN from an invalid Backoff
		return b.Max
	}
	// float64 rounds durations above 2^53ns, possibly below Base.
	return max(time.Duration(c), b.Base)
}

// jitter scales ceiling by r, a uniform draw from [0, 1), clamping both so
// that an odd random source or float rounding can never leave [0, ceiling].
func jitter(ceiling time.Duration, r float64) time.Duration {
	if !(r > 0) {
		return 0
	}
	if r >= 1 {
		return ceiling
	}
	d := time.Duration(float64(ceiling) * r)
	return min(max(d, 0), ceiling)
}

// Config configures a [Retry]. The zero value is valid: three attempts,
// [DefaultBackoff], every error retried except a [Permanent] one or a
// rejection by another policy, no per-attempt timeout, no budget. A Config
// is a plain value that New copies.
type Config struct {
	// MaxAttempts is the total number of attempts, the first included: 1
	// disables retries. Zero means DefaultMaxAttempts (3); negative is
	// invalid.
	MaxAttempts int

	// Backoff sets the delay between attempts. Zero fields take the values
	// of DefaultBackoff.
	Backoff Backoff

	// Retryable reports whether an attempt's error is worth another
	// attempt. Nil retries every error except a rejection by another policy
	// (errors.Is(err, resilience.ErrRejected): an open breaker, a full
	// bulkhead, a rate limit), which only adds load. Whatever it says, errors wrapped
	// with Permanent are never retried, and nothing is retried once the
	// context passed to Do is done (the caller cancelled or its deadline
	// passed), so Retryable need not check for those. It is called from
	// every goroutine that runs Do and must be safe for concurrent use.
	Retryable func(err error) bool

	// PerAttemptTimeout bounds each attempt with its own deadline
	// (context.WithTimeout under the caller's context). An attempt that hits
	// it fails with context.DeadlineExceeded, which the default Retryable
	// retries. When set, an attempt only starts if the caller's deadline
	// leaves it the whole PerAttemptTimeout. Zero means no per-attempt
	// timeout (and no allocation per attempt); negative is invalid.
	PerAttemptTimeout time.Duration

	// MaxRetryAfter is the longest server-requested Retry-After this
	// caller waits; a longer one ends retrying at once with
	// ReasonRetryAfter, so a misbehaving server cannot park callers that
	// have no deadline. Zero means DefaultMaxRetryAfter; negative is invalid.
	MaxRetryAfter time.Duration

	// Budget, shared among callers, bounds retries to a fraction of the
	// traffic: every Do deposits once and every retry withdraws once. Nil
	// means unlimited retries (only MaxAttempts applies).
	Budget *Budget

	// OnRetry, if set, is called before waiting for each retry with the
	// number of the attempt that failed (1 for the first), its error and the
	// delay about to be slept. Nil means no hook. It runs on the caller's
	// goroutine, concurrently for concurrent calls, and delays the retry by
	// its own duration; use it for metrics and logs.
	OnRetry func(attempt int, err error, delay time.Duration)
}

// Retry runs calls with retries as configured by a [Config]. Create it with
// [New]; the zero value is not usable. A Retry holds no per-call state and is
// safe for concurrent use by any number of goroutines.
type Retry struct {
	maxAttempts   int
	backoff       Backoff
	retryable     func(error) bool
	perAttempt    time.Duration
	maxRetryAfter time.Duration
	budget        *Budget
	onRetry       func(int, error, time.Duration)
	// rand returns a uniform draw from [0, 1) for jitter; tests replace it.
	rand func() float64
}

// New returns a Retry for cfg after filling zero fields with defaults. It
// returns an error naming the field if cfg is invalid.
func New(cfg Config) (*Retry, error) {
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MaxRetryAfter == 0 {
		cfg.MaxRetryAfter = DefaultMaxRetryAfter
	}
	cfg.Backoff = cfg.Backoff.withDefaults()
	switch {
	case cfg.MaxAttempts < 0:
		return nil, fmt.Errorf("retry: MaxAttempts must be >= 0 (0 means %d), got %d", DefaultMaxAttempts, cfg.MaxAttempts)
	case cfg.PerAttemptTimeout < 0:
		return nil, fmt.Errorf("retry: PerAttemptTimeout must be >= 0, got %v", cfg.PerAttemptTimeout)
	case cfg.MaxRetryAfter < 0:
		return nil, fmt.Errorf("retry: MaxRetryAfter must be >= 0, got %v", cfg.MaxRetryAfter)
	}
	if err := cfg.Backoff.validate(); err != nil {
		return nil, err
	}
	return &Retry{
		maxAttempts:   cfg.MaxAttempts,
		backoff:       cfg.Backoff,
		retryable:     cfg.Retryable,
		perAttempt:    cfg.PerAttemptTimeout,
		maxRetryAfter: cfg.MaxRetryAfter,
		budget:        cfg.Budget,
		onRetry:       cfg.OnRetry,
		rand:          rand.Float64,
	}, nil
}

// Backoff returns a jittered delay for retry n (n = 0 for the first retry),
// drawn uniformly from [0, Backoff.Ceiling(n)]. It is the delay Do uses when
// the failed attempt carries no longer Retry-After.
func (r *Retry) Backoff(n int) time.Duration {
	return jitter(r.backoff.Ceiling(n), r.rand())
}

// Permanent marks err as not worth retrying: Do returns it, still wrapped,
// at once whatever Config.Retryable says. errors.Is and errors.As see
// through the wrapper, and its message is err's. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// AfterHint is implemented by errors that carry a server's request to
// wait before retrying, such as an HTTP 429 or 503 with a Retry-After header
// (see [ParseRetryAfter]). Do finds it with errors.As anywhere in an
// attempt's error chain and waits max(backoff, RetryAfter()) before the next
// attempt; ok = false or a non-positive duration means no hint.
type AfterHint interface {
	RetryAfter() (d time.Duration, ok bool)
}

// Reason says why retrying stopped. The zero value is not a reason Do
// reports; it appears only in a zero [ExhaustedError].
type Reason int

const (
	// ReasonAttempts means the last of Config.MaxAttempts attempts failed.
	ReasonAttempts Reason = iota + 1
	// ReasonDeadline means the next attempt could not finish before the caller's
	// deadline after waiting its backoff or the server's Retry-After.
	ReasonDeadline
	// ReasonBudget means the retry budget refused the retry.
	ReasonBudget
	// ReasonRetryAfter means the server's Retry-After asked for a longer
	// wait than Config.MaxRetryAfter.
	ReasonRetryAfter
)

// String describes the reason in words, for error messages.
func (r Reason) String() string {
	switch r {
	case ReasonAttempts:
		return "max attempts reached"
	case ReasonDeadline:
		return "next attempt would miss the deadline"
	case ReasonBudget:
		return "retry budget exhausted"
	case ReasonRetryAfter:
		return "server's Retry-After too long"
	}
	return fmt.Sprintf("Reason(%d)", int(r))
}

// ExhaustedError is returned by Do when retrying stopped while the last
// attempt's error was still retryable. It unwraps to Last, so errors.Is and
// errors.As see the last attempt's error, and errors.Is(err, ErrExhausted)
// holds. The zero value is valid but says nothing. Do never modifies an
// ExhaustedError after returning it, so it may be shared between goroutines.
type ExhaustedError struct {
	Attempts int    // attempts made, the first included
	Last     error  // the last attempt's error
	Reason   Reason // why no further attempt was made
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("retry: gave up after %d attempts (%v): %v", e.Attempts, e.Reason, e.Last)
}

// Unwrap returns the last attempt's error.
func (e *ExhaustedError) Unwrap() error { return e.Last }

// Is reports whether target is ErrExhausted.
func (e *ExhaustedError) Is(target error) bool { return target == ErrExhausted }

// Do calls fn until it succeeds, for at most Config.MaxAttempts attempts, and
// returns the last attempt's value and error:
//
//   - on success, the value and nil;
//   - when an attempt fails with an error that is not retryable (see
//     Config.Retryable and Permanent), or fails after ctx is done, that error
//     exactly as fn returned it, not wrapped, whichever attempt it was:
//     wrapping means "retry gave up", and here retry never tried;
//   - when ctx is done while waiting between attempts, an error matching
//     both ctx.Err() and the last attempt's error under errors.Is;
//   - otherwise an *ExhaustedError saying why it stopped.
//
// Do deposits into Config.Budget once per call and withdraws once per retry.
// It never waits past ctx's deadline: a retry whose delay (plus the whole
// PerAttemptTimeout, if set) would not fit before the deadline is not made.
//
// With no PerAttemptTimeout, a call whose first attempt succeeds allocates
// nothing, with or without a budget.
func Do[T any](ctx context.Context, r *Retry, fn resilience.Func[T]) (T, error) {
	if r.budget != nil {
		r.budget.Deposit()
	}
	for attempt := 1; ; attempt++ {
		v, err := call(ctx, r.perAttempt, fn)
		if err == nil {
			return v, nil
		}
		if ctx.Err() != nil || !r.shouldRetry(err) {
			return v, err
		}
		if attempt >= r.maxAttempts {
			return v, &ExhaustedError{Attempts: attempt, Last: err, Reason: ReasonAttempts}
		}
		delay := r.Backoff(attempt - 1)
		var ra AfterHint
		if errors.As(err, &ra) {
			if d, ok := ra.RetryAfter(); ok && d > delay {
				if d > r.maxRetryAfter {
					// The server asked for longer than this caller waits.
					return v, &ExhaustedError{Attempts: attempt, Last: err, Reason: ReasonRetryAfter}
				}
				delay = d
			}
		}
		if !r.fits(ctx, delay) {
			return v, &ExhaustedError{Attempts: attempt, Last: err, Reason: ReasonDeadline}
		}
		// Withdraw only for a retry that will happen, so that a deadline
		// stop does not spend the budget other callers share.
		if r.budget != nil && !r.budget.Withdraw() {
			return v, &ExhaustedError{Attempts: attempt, Last: err, Reason: ReasonBudget}
		}
		if r.onRetry != nil {
			r.onRetry(attempt, err, delay)
		}
		if cerr := Sleep(ctx, delay); cerr != nil {
			return v, fmt.Errorf("retry: %w while waiting to retry after %d attempts: %w", cerr, attempt, err)
		}
	}
}

// Policy returns r as a resilience.Policy, for use with resilience.Chain.
func Policy[T any](r *Retry) resilience.Policy[T] {
	return func(next resilience.Func[T]) resilience.Func[T] {
		return func(ctx context.Context) (T, error) {
			return Do(ctx, r, next)
		}
	}
}

func call[T any](ctx context.Context, timeout time.Duration, fn resilience.Func[T]) (T, error) {
	if timeout <= 0 {
		return fn(ctx)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return fn(ctx)
}

func (r *Retry) shouldRetry(err error) bool {
	var p *permanentError
	if errors.As(err, &p) {
		return false
	}
	if r.retryable == nil {
		return !errors.Is(err, resilience.ErrRejected)
	}
	return r.retryable(err)
}

// fits reports whether an attempt started after delay can finish before
// ctx's deadline. Without a per-attempt timeout nothing is known about how
// long an attempt takes, so the attempt only has to start before the
// deadline. With one, the caller has said how long an attempt may need; an
// attempt squeezed into less would likely end as the caller's deadline error,
// hiding the real failure, while still loading a struggling upstream.
func (r *Retry) fits(ctx context.Context, delay time.Duration) bool {
	dl, ok := ctx.Deadline()
	if !ok {
		return true
	}
	left := time.Until(dl)
	if delay >= left {
		return false
	}
	// Subtracting rather than adding delay+perAttempt cannot overflow.
	return r.perAttempt <= 0 || left-delay >= r.perAttempt
}

// Sleep waits for d or until ctx is done, whichever is first, and returns
// ctx.Err() in the second case. Its timer is stopped either way, unlike
// time.After's, so a loop that backs off with it leaves nothing behind.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
