// Package timeout bounds how long one call may take.
//
// A [Timeout] gives each call a context that ends after [Config].Duration.
// When that deadline ends the call, the error satisfies both
// errors.Is(err, timeout.ErrTimeout) and errors.Is(err, context.DeadlineExceeded);
// when the caller's own ctx ends first, the caller's error comes back
// untouched, so a gateway can tell "upstream too slow" (504) from "client
// gone" (499).
//
//	t, err := timeout.New(timeout.Config{Duration: 2 * time.Second})
//	if err != nil {
//		return err
//	}
//	call := resilience.Chain(breaker.Policy[*http.Response](b), timeout.Policy[*http.Response](t))(fetch)
//	resp, err := call(ctx)
//	if errors.Is(err, timeout.ErrTimeout) {
//		// this attempt took longer than 2s
//	}
//
// # Calls that ignore ctx
//
// A Timeout runs fn on the caller's goroutine and waits for it to return,
// even past the deadline. It cannot do better without leaking: Go cannot
// stop a goroutine, so returning at the deadline would leave fn running in
// the background with nobody to bound it, and under sustained overload (when
// timeouts fire most) those orphans pile up and hold the very resources the
// timeout was meant to free. Waiting also means no goroutine or channel per
// call, and fn's result is never raced. fn must therefore honour ctx; all
// of net/http, database/sql and gRPC do.
package timeout
