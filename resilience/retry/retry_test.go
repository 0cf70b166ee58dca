package retry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/rampart-ha/rampart/resilience"
)

var errFlaky = errors.New("flaky")

// retryAfterError is a failure carrying a server's Retry-After.
type retryAfterError struct {
	d  time.Duration
	ok bool
}

func (e retryAfterError) Error() string                     { return fmt.Sprintf("throttled for %v", e.d) }
func (e retryAfterError) RetryAfter() (time.Duration, bool) { return e.d, e.ok }

var _ AfterHint = retryAfterError{}

// mustNew builds a Retry whose jitter always draws rnd, so that delays are
// exactly rnd·ceiling.
func mustNew(t testing.TB, cfg Config, rnd float64) *Retry {
	t.Helper()
	r, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v) = %v", cfg, err)
	}
	r.rand = func() float64 { return rnd }
	return r
}

// script returns a Func that fails with errs[i] on attempt i+1 and succeeds
// once errs runs out. Its value is the attempt number.
func script(calls *int, errs ...error) resilience.Func[int] {
	return func(context.Context) (int, error) {
		*calls++
		if *calls <= len(errs) {
			return *calls, errs[*calls-1]
		}
		return *calls, nil
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "zero config is valid", cfg: Config{}},
		{name: "one attempt", cfg: Config{MaxAttempts: 1}},
		{name: "constant backoff", cfg: Config{Backoff: Backoff{Base: time.Second, Max: time.Second, Multiplier: 1}}},
		{name: "negative attempts", cfg: Config{MaxAttempts: -1}, wantErr: "retry: MaxAttempts must be >= 0 (0 means 3), got -1"},
		{name: "negative max retry-after", cfg: Config{MaxRetryAfter: -time.Second}, wantErr: "retry: MaxRetryAfter must be >= 0, got -1s"},
		{name: "negative per-attempt timeout", cfg: Config{PerAttemptTimeout: -time.Second}, wantErr: "retry: PerAttemptTimeout must be >= 0, got -1s"},
		{name: "negative base", cfg: Config{Backoff: Backoff{Base: -1}}, wantErr: "retry: Backoff.Base must be >= 0, got -1ns"},
		{name: "negative max", cfg: Config{Backoff: Backoff{Max: -1}}, wantErr: "retry: Backoff.Max must be >= 0, got -1ns"},
		{name: "max below base", cfg: Config{Backoff: Backoff{Base: 2 * time.Second, Max: time.Second}}, wantErr: "retry: Backoff.Max must be >= Backoff.Base (2s), got 1s"},
		{name: "max below base", cfg: Config{Backoff: Backoff{Base: 2 * time.Second, Max: time.Second}}, wantErr: "retry: Backoff.Max must be >= Backoff.Base (2s), got 1s"},
		{name: "shrinking multiplier", cfg: Config{Backoff: Backoff{Multiplier: 0.5}}, wantErr: "retry: Backoff.Multiplier must be finite and >= 1, got 0.5"},
		{name: "NaN multiplier", cfg: Config{Backoff: Backoff{Multiplier: math.NaN()}}, wantErr: "retry: Backoff.Multiplier must be finite and >= 1, got NaN"},
		{name: "infinite multiplier", cfg: Config{Backoff: Backoff{Multiplier: math.Inf(1)}}, wantErr: "retry: Backoff.Multiplier must be finite and >= 1, got +Inf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil || r == nil {
					t.Fatalf("New() = %v, %v, want a Retry", r, err)
				}
				return
			}
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("New() error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	r, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if r.maxAttempts != DefaultMaxAttempts {
		t.Errorf("maxAttempts = %d, want %d", r.maxAttempts, DefaultMaxAttempts)
	}
	if diff := cmp.Diff(r.backoff, DefaultBackoff); diff != "" {
		t.Errorf("backoff (-got +want):\n%s", diff)
	}
}

func TestBackoffCeiling(t *testing.T) {
	huge := Backoff{Base: 1, Max: math.MaxInt64, Multiplier: 2}
	tests := []struct {
		name string
		b    Backoff
		n    int
		want time.Duration
	}{
		{name: "first retry is base", b: DefaultBackoff, n: 0, want: 25 * time.Millisecond},
		{name: "doubles", b: DefaultBackoff, n: 1, want: 50 * time.Millisecond},
		{name: "below cap", b: DefaultBackoff, n: 5, want: 800 * time.Millisecond},
		{name: "reaches cap", b: DefaultBackoff, n: 6, want: time.Second},
		{name: "stays at cap", b: DefaultBackoff, n: 100, want: time.Second},
		{name: "huge n", b: DefaultBackoff, n: math.MaxInt, want: time.Second},
		{name: "negative n counts as zero", b: DefaultBackoff, n: -5, want: 25 * time.Millisecond},
		{name: "zero value is default", b: Backoff{}, n: 2, want: 100 * time.Millisecond},
		{name: "multiplier one is constant", b: Backoff{Base: 10 * time.Millisecond, Multiplier: 1}, n: 50, want: 10 * time.Millisecond},
		{name: "fractional multiplier", b: Backoff{Base: 100 * time.Millisecond, Multiplier: 1.5}, n: 2, want: 225 * time.Millisecond},
		{name: "no overflow below 2^63", b: huge, n: 62, want: 1 << 62},
		{name: "no overflow at 2^63", b: huge, n: 63, want: math.MaxInt64},
		{name: "no overflow far beyond", b: huge, n: 5000, want: math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.b.Ceiling(tt.n); got != tt.want {
				t.Errorf("Ceiling(%d) = %v, want %v", tt.n, got, tt.want)
			}
		})
	}
}

func TestRetryBackoffJitter(t *testing.T) {
	tests := []struct {
		name string
		rnd  float64
		n    int
		want time.Duration
	}{
		{name: "zero draw waits nothing", rnd: 0, n: 2, want: 0},
		{name: "quarter", rnd: 0.25, n: 2, want: 25 * time.Millisecond},
		{name: "half of capped", rnd: 0.5, n: 20, want: 500 * time.Millisecond},
		{name: "draw of one is clamped to ceiling", rnd: 1, n: 0, want: 25 * time.Millisecond},
		{name: "draw above one is clamped", rnd: 7, n: 1, want: 50 * time.Millisecond},
		{name: "negative draw is clamped", rnd: -1, n: 1, want: 0},
		{name: "NaN draw is zero", rnd: math.NaN(), n: 1, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustNew(t, Config{}, tt.rnd)
			if got := r.Backoff(tt.n); got != tt.want {
				t.Errorf("Backoff(%d) = %v, want %v", tt.n, got, tt.want)
			}
		})
	}
}

// TestRetryBackoffFullJitter checks that delays cover [0, ceiling]
// uniformly, which is what full jitter means, and never leave it.
func TestRetryBackoffFullJitter(t *testing.T) {
	r := mustNew(t, Config{}, 0)
	r.rand = rand.New(rand.NewPCG(1, 2)).Float64
	const (
		n       = 2 // ceiling 100ms
		samples = 20000
		deciles = 10
	)
	ceiling := DefaultBackoff.Ceiling(n)
	var counts [deciles]int
	var total time.Duration
	for range samples {
		d := r.Backoff(n)
		if d < 0 || d > ceiling {
			t.Fatalf("Backoff(%d) = %v, want in [0, %v]", n, d, ceiling)
		}
		counts[min(int(d*deciles/ceiling), deciles-1)]++
		total += d
	}
	for i, c := range counts {
		if want := samples / deciles; c < want*9/10 || c > want*11/10 {
			t.Errorf("decile %d holds %d delays, want %d ± 10%%", i, c, want)
		}
	}
	if mean := total / samples; mean < 48*time.Millisecond || mean > 52*time.Millisecond {
		t.Errorf("mean delay = %v, want 50ms ± 2ms", mean)
	}

	// The real source too stays in bounds at every n, the cap included.
	r.rand = rand.Float64
	for n := range 64 {
		if d, c := r.Backoff(n), DefaultBackoff.Ceiling(n); d < 0 || d > c {
			t.Fatalf("Backoff(%d) = %v, want in [0, %v]", n, d, c)
		}
	}
}

func TestDo(t *testing.T) {
	rejectFlaky := func(err error) bool { return !errors.Is(err, errFlaky) }
	acceptAll := func(error) bool { return true }
	errOther := errors.New("other")
	permanent := Permanent(errFlaky)
	tests := []struct {
		name       string
		cfg        Config
		errs       []error
		wantCalls  int
		wantErr    error  // nil: success
		wantSame   bool   // the error must be exactly wantErr, not wrapped
		wantReason Reason // non-zero: an *ExhaustedError with this reason
	}{
		{name: "first attempt succeeds", wantCalls: 1},
		{name: "succeeds on last attempt", errs: []error{errFlaky, errFlaky}, wantCalls: 3},
		{name: "exhausts attempts", errs: []error{errFlaky, errFlaky, errOther, errFlaky}, wantCalls: 3, wantErr: errOther, wantReason: ReasonAttempts},
		{name: "more attempts", cfg: Config{MaxAttempts: 5}, errs: []error{errFlaky, errFlaky, errFlaky, errFlaky}, wantCalls: 5},
		{name: "one attempt never retries", cfg: Config{MaxAttempts: 1}, errs: []error{errFlaky}, wantCalls: 1, wantErr: errFlaky, wantReason: ReasonAttempts},
		{name: "non-retryable first error returned as is", cfg: Config{Retryable: rejectFlaky}, errs: []error{errFlaky}, wantCalls: 1, wantErr: errFlaky, wantSame: true},
		{name: "non-retryable later error returned as is", cfg: Config{Retryable: rejectFlaky}, errs: []error{errOther, errFlaky}, wantCalls: 2, wantErr: errFlaky, wantSame: true},
		{name: "classifier allows retry", cfg: Config{Retryable: rejectFlaky}, errs: []error{errOther, errOther}, wantCalls: 3},
		{name: "permanent returned as is", errs: []error{permanent}, wantCalls: 1, wantErr: permanent, wantSame: true},
		{name: "permanent beats classifier", cfg: Config{Retryable: acceptAll}, errs: []error{fmt.Errorf("call: %w", permanent)}, wantCalls: 1, wantErr: errFlaky},
		{name: "cancellation not from caller is retried", errs: []error{context.Canceled, context.DeadlineExceeded}, wantCalls: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := mustNew(t, tt.cfg, 0.5)
				var calls int
				v, err := Do(t.Context(), r, script(&calls, tt.errs...))
				if calls != tt.wantCalls || v != tt.wantCalls {
					t.Errorf("Do() made %d calls and returned value %d, want %d and %d", calls, v, tt.wantCalls, tt.wantCalls)
				}
				if tt.wantErr == nil {
					if err != nil {
						t.Fatalf("Do() error = %v, want nil", err)
					}
					return
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Do() error = %v, want one matching %v", err, tt.wantErr)
				}
				if tt.wantSame && err != tt.wantErr { //nolint:errorlint // returned as is, not wrapped
					t.Errorf("Do() error = %#v, want exactly %#v", err, tt.wantErr)
				}
				var ex *ExhaustedError
				if got := errors.As(err, &ex); got != (tt.wantReason != 0) {
					t.Fatalf("errors.As(%v, *ExhaustedError) = %v, want %v", err, got, tt.wantReason != 0)
				}
				if ex == nil {
					if errors.Is(err, ErrExhausted) {
						t.Errorf("errors.Is(%v, ErrExhausted) = true, want false", err)
					}
					return
				}
				// Last must be the attempt's error itself, not a wrapper of it.
				sameErr := cmp.Comparer(func(a, b error) bool { return a == b }) //nolint:errorlint // identity is the point
				if diff := cmp.Diff(*ex, ExhaustedError{Attempts: tt.wantCalls, Last: tt.errs[tt.wantCalls-1], Reason: tt.wantReason}, sameErr); diff != "" {
					t.Errorf("ExhaustedError (-got +want):\n%s", diff)
				}
				if !errors.Is(err, ErrExhausted) {
					t.Errorf("errors.Is(%v, ErrExhausted) = false, want true", err)
				}
			})
		})
	}
}

func TestExhaustedError(t *testing.T) {
	last := fmt.Errorf("upstream: %w", errFlaky)
	var err error = &ExhaustedError{Attempts: 3, Last: last, Reason: ReasonBudget}
	if got, want := err.Error(), "retry: gave up after 3 attempts (retry budget exhausted): upstream: flaky"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	for _, target := range []error{ErrExhausted, last, errFlaky} {
		if !errors.Is(err, target) {
			t.Errorf("errors.Is(err, %v) = false, want true", target)
		}
	}
	if errors.Is(err, context.Canceled) {
		t.Errorf("errors.Is(err, context.Canceled) = true, want false")
	}
	if got := errors.Unwrap(err); got != last { //nolint:errorlint // Unwrap must give the last error itself
		t.Errorf("Unwrap() = %v, want %v", got, last)
	}
	for _, tt := range []struct {
		r    Reason
		want string
	}{
		{ReasonAttempts, "max attempts reached"},
		{ReasonDeadline, "next attempt would miss the deadline"},
		{ReasonBudget, "retry budget exhausted"},
		{0, "Reason(0)"},
	} {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("Reason(%d).String() = %q, want %q", int(tt.r), got, tt.want)
		}
	}
}

func TestPermanent(t *testing.T) {
	if err := Permanent(nil); err != nil {
		t.Errorf("Permanent(nil) = %v, want nil", err)
	}
	err := Permanent(errFlaky)
	if err.Error() != errFlaky.Error() || !errors.Is(err, errFlaky) {
		t.Errorf("Permanent(%v) = %v, want the same message and errors.Is match", errFlaky, err)
	}
}

func TestDoRetryAfter(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		rnd       float64 // jitter draw; 1 gives a 25ms first backoff
		wantDelay time.Duration
	}{
		{name: "longer retry-after wins", err: retryAfterError{d: 3 * time.Second, ok: true}, rnd: 1, wantDelay: 3 * time.Second},
		{name: "wrapped retry-after is found", err: fmt.Errorf("GET /: %w", retryAfterError{d: 2 * time.Second, ok: true}), rnd: 1, wantDelay: 2 * time.Second},
		{name: "longer backoff wins", err: retryAfterError{d: time.Millisecond, ok: true}, rnd: 1, wantDelay: 25 * time.Millisecond},
		{name: "absent hint is ignored", err: retryAfterError{d: time.Hour, ok: false}, rnd: 1, wantDelay: 25 * time.Millisecond},
		{name: "negative hint is ignored", err: retryAfterError{d: -time.Hour, ok: true}, rnd: 0, wantDelay: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var hooked []time.Duration
				r := mustNew(t, Config{OnRetry: func(_ int, _ error, d time.Duration) { hooked = append(hooked, d) }}, tt.rnd)
				var calls int
				start := time.Now()
				var second time.Duration
				_, err := Do(t.Context(), r, func(ctx context.Context) (int, error) {
					calls++
					if calls == 1 {
						return 0, tt.err
					}
					second = time.Since(start)
					return 0, nil
				})
				if err != nil {
					t.Fatalf("Do() error = %v, want nil", err)
				}
				if second != tt.wantDelay {
					t.Errorf("second attempt started after %v, want %v", second, tt.wantDelay)
				}
				if diff := cmp.Diff(hooked, []time.Duration{tt.wantDelay}); diff != "" {
					t.Errorf("OnRetry delays (-got +want):\n%s", diff)
				}
			})
		})
	}
}

func TestDoRetryAfterBeyondDeadlineStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		budget, err := NewBudget(BudgetConfig{})
		if err != nil {
			t.Fatal(err)
		}
		r := mustNew(t, Config{Budget: budget, MaxAttempts: 10}, 0)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		throttled := retryAfterError{d: 5 * time.Second, ok: true}
		var calls int
		start := time.Now()
		_, err = Do(ctx, r, script(&calls, throttled, throttled))
		var ex *ExhaustedError
		if !errors.As(err, &ex) || ex.Reason != ReasonDeadline || ex.Attempts != 1 || ex.Last != throttled { //nolint:errorlint // Last is the attempt error itself
			t.Fatalf("Do() error = %v, want an ExhaustedError after 1 attempt for the deadline, last %v", err, throttled)
		}
		if elapsed := time.Since(start); elapsed != 0 {
			t.Errorf("Do() returned after %v, want at once", elapsed)
		}
		if got := budget.Stats().Withdrawals; got != 0 {
			t.Errorf("budget withdrawals = %d, want 0: a retry not made must not spend the budget", got)
		}
	})
}

func TestDoDeadlineAware(t *testing.T) {
	// With a jitter draw of 1 every delay is its ceiling: 25, 50, 100ms...
	tests := []struct {
		name       string
		deadline   time.Duration
		perAttempt time.Duration
		wantStarts []time.Duration
	}{
		// Third retry would start at 75+100ms, past the deadline.
		{name: "never sleeps past the deadline", deadline: 100 * time.Millisecond, wantStarts: []time.Duration{0, 25 * time.Millisecond, 75 * time.Millisecond}},
		{name: "an attempt may not start at the deadline", deadline: 75 * time.Millisecond, wantStarts: []time.Duration{0, 25 * time.Millisecond}},
		{name: "an attempt starting just before the deadline runs", deadline: 75*time.Millisecond + 1, wantStarts: []time.Duration{0, 25 * time.Millisecond, 75 * time.Millisecond}},
		// The second retry would start at 75ms with only 25ms of its 30ms.
		{name: "per-attempt timeout must fit", deadline: 100 * time.Millisecond, perAttempt: 30 * time.Millisecond, wantStarts: []time.Duration{0, 25 * time.Millisecond}},
		{name: "per-attempt timeout fits exactly", deadline: 105 * time.Millisecond, perAttempt: 30 * time.Millisecond, wantStarts: []time.Duration{0, 25 * time.Millisecond, 75 * time.Millisecond}},
		{name: "per-attempt timeout longer than deadline", deadline: time.Second, perAttempt: 2 * time.Second, wantStarts: []time.Duration{0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := mustNew(t, Config{MaxAttempts: 10, PerAttemptTimeout: tt.perAttempt}, 1)
				ctx, cancel := context.WithTimeout(t.Context(), tt.deadline)
				defer cancel()
				start := time.Now()
				var starts []time.Duration
				_, err := Do(ctx, r, func(context.Context) (int, error) {
					starts = append(starts, time.Since(start))
					return 0, errFlaky
				})
				var ex *ExhaustedError
				if !errors.As(err, &ex) || ex.Reason != ReasonDeadline || ex.Attempts != len(tt.wantStarts) {
					t.Fatalf("Do() error = %v, want an ExhaustedError for the deadline after %d attempts", err, len(tt.wantStarts))
				}
				if diff := cmp.Diff(starts, tt.wantStarts); diff != "" {
					t.Errorf("attempt start times (-got +want):\n%s", diff)
				}
				if ctx.Err() != nil {
					t.Errorf("Do() returned after the deadline; it must stop before sleeping past it")
				}
			})
		})
	}
}

func TestDoPerAttemptTimeout(t *testing.T) {
	// blocked waits for its context and reports the time it was given.
	blocked := func(budgets *[]time.Duration) resilience.Func[int] {
		return func(ctx context.Context) (int, error) {
			if dl, ok := ctx.Deadline(); ok {
				*budgets = append(*budgets, time.Until(dl))
			} else {
				*budgets = append(*budgets, -1)
			}
			<-ctx.Done()
			return 0, ctx.Err()
		}
	}
	tests := []struct {
		name        string
		callerLimit time.Duration // zero: no caller deadline
		perAttempt  time.Duration
		wantBudgets []time.Duration // each attempt's time to its own deadline
		wantReason  Reason          // zero: the caller's DeadlineExceeded as is
	}{
		{name: "attempt timeout is retried", perAttempt: 50 * time.Millisecond, wantBudgets: []time.Duration{50 * time.Millisecond, 50 * time.Millisecond, 50 * time.Millisecond}, wantReason: ReasonAttempts},
		{name: "caller deadline is not retried", callerLimit: 50 * time.Millisecond, wantBudgets: []time.Duration{50 * time.Millisecond}},
		{name: "caller deadline inside attempt timeout is not retried", callerLimit: 50 * time.Millisecond, perAttempt: 100 * time.Millisecond, wantBudgets: []time.Duration{50 * time.Millisecond}},
		{name: "attempt timeout retried until caller deadline", callerLimit: 100 * time.Millisecond, perAttempt: 40 * time.Millisecond, wantBudgets: []time.Duration{40 * time.Millisecond, 40 * time.Millisecond}, wantReason: ReasonDeadline},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := mustNew(t, Config{PerAttemptTimeout: tt.perAttempt}, 0)
				ctx := t.Context()
				if tt.callerLimit > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tt.callerLimit)
					defer cancel()
				}
				var budgets []time.Duration
				_, err := Do(ctx, r, blocked(&budgets))
				if diff := cmp.Diff(budgets, tt.wantBudgets); diff != "" {
					t.Errorf("attempt deadlines (-got +want):\n%s", diff)
				}
				var ex *ExhaustedError
				if tt.wantReason == 0 {
					if err != context.DeadlineExceeded { //nolint:errorlint // the caller deadline error itself
						t.Errorf("Do() error = %v, want context.DeadlineExceeded as is", err)
					}
					return
				}
				if !errors.As(err, &ex) || ex.Reason != tt.wantReason || !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Do() error = %v, want an ExhaustedError (%v) wrapping context.DeadlineExceeded", err, tt.wantReason)
				}
			})
		})
	}
}

func TestDoCallerCancellation(t *testing.T) {
	tests := []struct {
		name string
		// attempt runs as the first attempt with the caller's cancel func.
		attempt func(ctx context.Context, cancel context.CancelFunc) error
		wantErr error // returned as is
	}{
		{
			name: "cancelled during attempt",
			attempt: func(ctx context.Context, cancel context.CancelFunc) error {
				cancel()
				return ctx.Err()
			},
			wantErr: context.Canceled,
		},
		{
			name: "cancelled during attempt that returns another error",
			attempt: func(_ context.Context, cancel context.CancelFunc) error {
				cancel()
				return errFlaky
			},
			wantErr: errFlaky,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustNew(t, Config{Retryable: func(error) bool { return true }}, 0)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			var calls int
			_, err := Do(ctx, r, func(ctx context.Context) (int, error) {
				calls++
				return 0, tt.attempt(ctx, cancel)
			})
			if err != tt.wantErr || calls != 1 { //nolint:errorlint // returned as is, by contract
				t.Errorf("Do() = %v after %d calls, want %v as is after 1 call", err, calls, tt.wantErr)
			}
		})
	}

	t.Run("cancelled while waiting", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := mustNew(t, Config{}, 0)
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			go func() {
				time.Sleep(10 * time.Millisecond)
				cancel()
			}()
			var calls int
			start := time.Now()
			throttled := retryAfterError{d: time.Second, ok: true}
			_, err := Do(ctx, r, script(&calls, throttled, throttled, throttled))
			if !errors.Is(err, context.Canceled) || !errors.Is(err, throttled) {
				t.Errorf("Do() error = %v, want one matching context.Canceled and the last error", err)
			}
			if errors.Is(err, ErrExhausted) {
				t.Errorf("Do() error = %v, want no ExhaustedError for the caller's cancellation", err)
			}
			if elapsed := time.Since(start); calls != 1 || elapsed != 10*time.Millisecond {
				t.Errorf("Do() returned after %d calls and %v, want 1 call and 10ms", calls, elapsed)
			}
		})
	})
}

func TestDoBudget(t *testing.T) {
	t.Run("refusal stops retries", func(t *testing.T) {
		// A floor of exactly one retry per TTL and a negligible ratio.
		budget, err := NewBudget(BudgetConfig{Ratio: 1e-9, MinPerSecond: 0.1, TTL: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		r := mustNew(t, Config{MaxAttempts: 5, Budget: budget}, 0)
		var calls int
		_, err = Do(t.Context(), r, script(&calls, errFlaky, errFlaky, errFlaky, errFlaky, errFlaky))
		var ex *ExhaustedError
		if !errors.As(err, &ex) || ex.Reason != ReasonBudget || ex.Attempts != 2 || calls != 2 {
			t.Fatalf("Do() = %v after %d calls, want an ExhaustedError for the budget after 2 attempts", err, calls)
		}
		if diff := cmp.Diff(budget.Stats(), BudgetStats{Deposits: 1, Withdrawals: 1, Refusals: 1}); diff != "" {
			t.Errorf("Stats() (-got +want):\n%s", diff)
		}
	})
	t.Run("one deposit per call and one withdrawal per retry", func(t *testing.T) {
		budget, err := NewBudget(BudgetConfig{})
		if err != nil {
			t.Fatal(err)
		}
		r := mustNew(t, Config{Budget: budget}, 0)
		for range 4 {
			var calls int
			if _, err := Do(t.Context(), r, script(&calls, errFlaky, errFlaky)); err != nil {
				t.Fatal(err)
			}
		}
		if diff := cmp.Diff(budget.Stats(), BudgetStats{Deposits: 4, Withdrawals: 8, Available: 92}); diff != "" {
			t.Errorf("Stats() (-got +want):\n%s", diff)
		}
	})
}

// TestDoSharedBudgetConcurrent runs many callers through one Retry and one
// budget under -race and checks that the bookkeeping adds up.
func TestDoSharedBudgetConcurrent(t *testing.T) {
	budget, err := NewBudget(BudgetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var retries atomic.Int64
	r := mustNew(t, Config{MaxAttempts: 4, Budget: budget, OnRetry: func(int, error, time.Duration) { retries.Add(1) }}, 0)
	const callers, calls = 8, 200
	var wg sync.WaitGroup
	var budgetStops atomic.Int64
	for i := range callers {
		wg.Go(func() {
			for j := range calls {
				fail := (i+j)%2 == 0 // half the calls always fail
				_, err := Do(t.Context(), r, func(context.Context) (int, error) {
					if fail {
						return 0, errFlaky
					}
					return 0, nil
				})
				var ex *ExhaustedError
				if errors.As(err, &ex) && ex.Reason == ReasonBudget {
					budgetStops.Add(1)
				}
			}
		})
	}
	wg.Wait()
	s := budget.Stats()
	if s.Deposits != callers*calls {
		t.Errorf("Deposits = %d, want %d", s.Deposits, callers*calls)
	}
	if int64(s.Withdrawals) != retries.Load() || int64(s.Refusals) != budgetStops.Load() {
		t.Errorf("Withdrawals, Refusals = %d, %d, want %d retries and %d budget stops", s.Withdrawals, s.Refusals, retries.Load(), budgetStops.Load())
	}
	// 20% of 1600 plus the 100-retry floor, give or take one per racing caller.
	if limit := uint64(0.2*callers*calls + 100 + callers); s.Withdrawals > limit || s.Refusals == 0 {
		t.Errorf("Withdrawals = %d with %d refusals, want at most %d and some refusals", s.Withdrawals, s.Refusals, limit)
	}
}

func TestPolicy(t *testing.T) {
	r := mustNew(t, Config{}, 0)
	var calls int
	fn := resilience.Chain(Policy[int](r))(script(&calls, errFlaky))
	v, err := fn(t.Context())
	if v != 2 || err != nil || calls != 2 {
		t.Errorf("Chain(Policy(r))(fn)() = %d, %v after %d calls, want 2, nil after 2", v, err, calls)
	}
}

func succeed(context.Context) (int, error) { return 1, nil }

func TestDoSuccessDoesNotAllocate(t *testing.T) {
	budget, err := NewBudget(BudgetConfig{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
	}{
		{name: "no budget", cfg: Config{}},
		{name: "with budget", cfg: Config{Budget: budget}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := mustNew(t, tt.cfg, 0)
			ctx := t.Context()
			if got := testing.AllocsPerRun(100, func() { _, _ = Do(ctx, r, succeed) }); got != 0 {
				t.Errorf("Do() allocates %v times on success, want 0", got)
			}
		})
	}
}

func BenchmarkDoSuccess(b *testing.B) {
	r, err := New(Config{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = Do(ctx, r, succeed)
	}
}

func BenchmarkDoSuccessBudget(b *testing.B) {
	budget, err := NewBudget(BudgetConfig{})
	if err != nil {
		b.Fatal(err)
	}
	r, err := New(Config{Budget: budget})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = Do(ctx, r, succeed)
	}
}

func TestRejectionsNotRetriedByDefault(t *testing.T) {
	tests := []struct {
		name      string
		retryable func(error) bool
		want      int
	}{
		{name: "default classifier", retryable: nil, want: 1},
		{name: "custom classifier decides", retryable: func(error) bool { return true }, want: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(Config{MaxAttempts: 3, Backoff: Backoff{Base: time.Nanosecond, Max: time.Nanosecond}, Retryable: tt.retryable})
			if err != nil {
				t.Fatal(err)
			}
			calls := 0
			rejected := fmt.Errorf("pool: %w", resilience.NewRejection("full"))
			_, err = Do(context.Background(), r, func(context.Context) (int, error) {
				calls++
				return 0, rejected
			})
			if calls != tt.want {
				t.Errorf("calls = %d, want %d", calls, tt.want)
			}
			if !errors.Is(err, resilience.ErrRejected) {
				t.Errorf("Do() error = %v, want one matching resilience.ErrRejected", err)
			}
		})
	}
}

func TestBaseAboveDefaultMaxRaisesMax(t *testing.T) {
	b := Backoff{Base: 2 * time.Second}
	if got := b.Ceiling(5); got != 2*time.Second {
		t.Errorf("Backoff{Base: 2s}.Ceiling(5) = %v, want 2s (an unset Max follows Base)", got)
	}
	if _, err := New(Config{Backoff: b}); err != nil {
		t.Errorf("New(Backoff{Base: 2s}) error = %v, want nil", err)
	}
}

func TestRetryAfterAboveMaxStops(t *testing.T) {
	r, err := New(Config{MaxAttempts: 3, MaxRetryAfter: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	_, err = Do(context.Background(), r, func(context.Context) (int, error) {
		calls++
		return 0, retryAfterError{d: time.Hour, ok: true}
	})
	var ex *ExhaustedError
	if !errors.As(err, &ex) || ex.Reason != ReasonRetryAfter || calls != 1 {
		t.Errorf("Do() = %v after %d calls, want an ExhaustedError with ReasonRetryAfter after 1", err, calls)
	}
}
