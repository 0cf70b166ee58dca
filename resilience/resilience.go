package resilience

import (
	"context"
	"errors"
)

// ErrRejected is wrapped by every error a policy returns when it refuses a
// call without running it: an open breaker, a full bulkhead, a rate limit,
// an adaptive concurrency limit. errors.Is(err, ErrRejected) tells load
// shedding apart from a failure of the call itself. The retry policy does
// not retry a rejection by default: retrying into an overload adds load,
// and an open breaker stays open for longer than a backoff.
var ErrRejected = errors.New("rejected")

// Func is a call that a [Policy] guards. It should honour ctx: policies
// cancel ctx to abandon an attempt (a timeout, a losing hedge).
//
// The zero value (nil) is not callable. A Func is called once per attempt,
// and a hedging policy runs attempts of the same call at once, so a Func
// that may be hedged must be safe for concurrent use.
type Func[T any] func(ctx context.Context) (T, error)

// Policy decorates next with one resilience behaviour and returns the
// decorated call. A Policy is applied once, when a call is wrapped, and the
// Func it returns is then called many times, possibly concurrently; it must
// therefore keep per-call state on the stack, not in the closure.
//
// The zero value (nil) is not a valid Policy; [Chain] skips nil policies so
// that optional ones can be left out without a branch.
type Policy[T any] func(next Func[T]) Func[T]

// Chain composes policies so that Chain(a, b, c)(fn) is a(b(c(fn))): a is
// the outermost. See the package documentation for the recommended order.
// Chain with no (non-nil) policy returns fn unchanged.
func Chain[T any](policies ...Policy[T]) Policy[T] {
	ps := make([]Policy[T], 0, len(policies))
	for _, p := range policies {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return func(fn Func[T]) Func[T] {
		for i := len(ps) - 1; i >= 0; i-- {
			fn = ps[i](fn)
		}
		return fn
	}
}

// Do calls fn under the policies in order (see [Chain]). It wraps fn anew on
// every call, which allocates one closure per policy; on a hot path wrap
// once with Chain and keep the returned Func.
func Do[T any](ctx context.Context, fn Func[T], policies ...Policy[T]) (T, error) {
	return Chain(policies...)(fn)(ctx)
}

// NewRejection returns an error whose text is msg and which matches
// [ErrRejected] under errors.Is. Policies use it for their sentinels.
func NewRejection(msg string) error { return &rejection{msg: msg} }

type rejection struct{ msg string }

func (e *rejection) Error() string { return e.msg }
func (e *rejection) Unwrap() error { return ErrRejected }
