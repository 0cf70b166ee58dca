package fallback

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"

	"github.com/rampart-ha/rampart/resilience"
)

// ErrForced is the error a Config.Func receives for a call that the switch
// ([Fallback.Force]) answered without calling the guarded function. A Func
// can use it to tell manual degradation from a real failure.
var ErrForced = errors.New("fallback: forced")

// Config configures a [Fallback]. Set Value or Func, not both. The zero
// Config is valid: it answers every handled failure with T's zero value and
// a nil error (an empty result instead of an error page). A Config is a
// plain value that New copies; its functions must be safe for concurrent
// use.
type Config[T any] struct {
	// Value is what a fallback call returns, with a nil error, when Func is
	// nil. Its zero value is a valid fallback: T's zero value.
	Value T
	// Func computes the fallback from the caller's ctx and the error that
	// triggered it (ErrForced when forced). Its result, error included, is
	// the call's result. nil means serve Value. Func runs on the caller's
	// goroutine and must be safe for concurrent use.
	Func func(ctx context.Context, err error) (T, error)
	// Handles reports whether a failure should be answered by the fallback;
	// errors it rejects are returned as they are. nil means every error
	// except cancellation: errors.Is(err, context.Canceled), or any error
	// once the caller's own ctx is canceled. Like Func, it must be safe for
	// concurrent use.
	Handles func(error) bool
}

// Fallback serves a substitute result for failed calls. Create one with
// [New]; the zero value is not usable. A Fallback is safe for concurrent use,
// including Force during calls.
type Fallback[T any] struct {
	value   T
	fn      func(ctx context.Context, err error) (T, error)
	handles func(error) bool // nil: the default, which needs ctx as well

	forced atomic.Bool
	served atomic.Uint64
}

// New validates cfg and returns a Fallback, not forced.
func New[T any](cfg Config[T]) (*Fallback[T], error) {
	// T need not be comparable, so reflect is the only way to see that Value
	// was set; New runs once, so its cost does not matter.
	if cfg.Func != nil && !reflect.ValueOf(&cfg.Value).Elem().IsZero() {
		return nil, fmt.Errorf("fallback: set Value or Func, not both; got Value %v and a Func", cfg.Value)
	}
	return &Fallback[T]{value: cfg.Value, fn: cfg.Func, handles: cfg.Handles}, nil
}

// Force turns manual degradation on or off. While on, every call returns the
// fallback at once and the guarded function is not called; calls already
// running finish normally.
func (f *Fallback[T]) Force(on bool) { f.forced.Store(on) }

// Forced reports whether manual degradation is on.
func (f *Fallback[T]) Forced() bool { return f.forced.Load() }

// Served returns how many calls the fallback has answered, forced or not,
// including those where Func itself failed.
func (f *Fallback[T]) Served() uint64 { return f.served.Load() }

// Do calls fn unless the Fallback is forced, and answers a handled failure
// with the fallback. A success, or an error that Handles rejects, is
// returned as fn returned it.
func (f *Fallback[T]) Do(ctx context.Context, fn resilience.Func[T]) (T, error) {
	if f.forced.Load() {
		return f.serve(ctx, ErrForced)
	}
	v, err := fn(ctx)
	if err == nil || !f.handled(ctx, err) {
		return v, err
	}
	return f.serve(ctx, err)
}

func (f *Fallback[T]) handled(ctx context.Context, err error) bool {
	if f.handles != nil {
		return f.handles(err)
	}
	return !errors.Is(err, context.Canceled) && !errors.Is(ctx.Err(), context.Canceled)
}

func (f *Fallback[T]) serve(ctx context.Context, err error) (T, error) {
	f.served.Add(1)
	if f.fn != nil {
		return f.fn(ctx, err)
	}
	return f.value, nil
}

// Policy returns a resilience.Policy that runs each call through f.Do.
//
// It is a function rather than a method so that every policy package reads
// the same (bulkhead.Policy[T](b), fallback.Policy(f)); since f carries T,
// the type argument is inferred here.
func Policy[T any](f *Fallback[T]) resilience.Policy[T] {
	return func(next resilience.Func[T]) resilience.Func[T] {
		return func(ctx context.Context) (T, error) {
			return f.Do(ctx, next)
		}
	}
}
