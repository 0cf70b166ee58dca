// Package fallback answers a failed call with a substitute result, and lets an operator degrade a dependency by hand.
//
// A [Fallback] serves its [Config].Value (or the result of Config.Func) when
// the guarded call fails with an error that Config.Handles accepts. Its
// switch, [Fallback.Force], makes every call return the fallback at once
// without calling the dependency at all: manual degradation during an
// incident, flipped from an admin endpoint.
//
//	f, err := fallback.New(fallback.Config[[]Item]{
//		Func: func(ctx context.Context, err error) ([]Item, error) {
//			return cache.Items(ctx) // stale but useful
//		},
//	})
//	if err != nil {
//		return err
//	}
//	call := resilience.Chain(fallback.Policy(f), retry.Policy[[]Item](r), breaker.Policy[[]Item](b))(fetchItems)
//	items, err := call(ctx)
//
//	f.Force(true) // from the admin API: stop calling the recommender
//
// By default a Fallback handles every error except cancellation: a caller
// that has gone away wants no answer, and serving one would hide the 499
// that the gateway reports for it.
package fallback
