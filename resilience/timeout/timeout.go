package timeout

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-ha/rampart/resilience"
)

// ErrTimeout reports that a [Timeout]'s own deadline ended the call. Errors
// that match it also match context.DeadlineExceeded.
var ErrTimeout = errors.New("timeout: deadline exceeded")

// Config configures a [Timeout]. The zero Config is invalid: a timeout with
// no duration has no meaning. A Config is a plain value that New copies.
type Config struct {
	// Duration is how long each call may run. It must be > 0; zero is an
	// error.
	Duration time.Duration
}

// Timeout bounds every call it guards by Config.Duration. Create one with
// [New]; the zero value is not usable. A Timeout is immutable and safe for
// concurrent use.
type Timeout struct {
	d     time.Duration
	cause *deadlineError // built once so that a timeout does not allocate
}

// New validates cfg and returns a Timeout.
func New(cfg Config) (*Timeout, error) {
	if cfg.Duration <= 0 {
		return nil, fmt.Errorf("timeout: Duration must be > 0, got %v", cfg.Duration)
	}
	return &Timeout{d: cfg.Duration, cause: &deadlineError{d: cfg.Duration}}, nil
}

// Duration returns the configured Config.Duration.
func (t *Timeout) Duration() time.Duration { return t.d }

// Policy returns a resilience.Policy that runs each call under t. See [Do]
// for the results.
func Policy[T any](t *Timeout) resilience.Policy[T] {
	return func(next resilience.Func[T]) resilience.Func[T] {
		return func(ctx context.Context) (T, error) {
			return run(ctx, t, next)
		}
	}
}

// Do calls fn with a context that ends after d (or earlier if ctx ends), and
// waits for fn to return. It is the one-off form of [Policy]; d must be > 0.
//
// The result is fn's, except when fn fails after this deadline ended its
// context: then the error matches [ErrTimeout] and context.DeadlineExceeded
// and, unless fn merely returned ctx's error, wraps fn's error as well so
// that errors.Is still finds it. A value fn returns with a nil error is
// returned as is even if the deadline has passed: the work is done, and
// discarding it would only invite a retry of something that succeeded. When
// the caller's ctx ends first, fn's error (normally ctx's own) is returned
// untouched and does not match ErrTimeout.
func Do[T any](ctx context.Context, d time.Duration, fn resilience.Func[T]) (T, error) {
	t, err := New(Config{Duration: d})
	if err != nil {
		var zero T
		return zero, err
	}
	return run(ctx, t, fn)
}

func run[T any](ctx context.Context, t *Timeout, fn resilience.Func[T]) (T, error) {
	// If ctx's deadline is earlier, WithTimeoutCause returns a plain child of
	// ctx, so its cause is ctx's: our cause shows up only if our own timer
	// fired.
	cctx, cancel := context.WithTimeoutCause(ctx, t.d, t.cause)
	defer cancel()
	v, err := fn(cctx)
	if err == nil || context.Cause(cctx) != error(t.cause) { //nolint:errorlint // identity: was it this policy's own deadline?
		return v, err
	}
	var zero T
	if err == context.DeadlineExceeded || err == error(t.cause) { //nolint:errorlint // fn returned ctx's own error unwrapped
		return zero, t.cause
	}
	return zero, fmt.Errorf("%w: %w", t.cause, err)
}

// deadlineError is the cause a Timeout sets on the contexts it creates.
type deadlineError struct{ d time.Duration }

func (e *deadlineError) Error() string { return fmt.Sprintf("timeout: deadline of %v exceeded", e.d) }

// Is makes the error match ErrTimeout, and context.DeadlineExceeded so that
// code which only knows the context package treats it as the deadline it is.
func (e *deadlineError) Is(target error) bool {
	return target == ErrTimeout || target == context.DeadlineExceeded
}

// Timeout reports true, like context.DeadlineExceeded, for code that checks
// for a net.Error-style Timeout method.
func (e *deadlineError) Timeout() bool { return true }
