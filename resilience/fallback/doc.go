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
//
// # Degradation modes
//
// [Modes] holds the gateway-wide [Mode]: [Normal]; [Degraded], where routes
// marked non-critical answer with their fallback at once; or [Emergency],
// where only critical routes are proxied. The request path reads it with
// [Modes.Mode], one atomic load. An operator pins a mode with [Modes.Set]
// and hands it back with [Modes.Release]; in between, automatic control
// follows a pressure signal in [0, 1] that the owner computes and passes to
// [Modes.Observe], with hysteresis in level and in time so that the mode
// does not flap: it rises once the pressure has stayed at or above a
// threshold for [ModesConfig].EnterAfter, and falls one level at a time,
// only after the pressure has stayed below the lower exit threshold for
// RecoverAfter. Every switch reaches ModesConfig.OnChange with a reason in
// words, for the gateway's log and metrics. Modes starts no goroutines.
//
//	modes, err := fallback.NewModes(fallback.ModesConfig{
//		DegradedAt:  0.5, // left below 0.4 (Hysteresis 0.1)
//		EmergencyAt: 0.8, // left below 0.7
//		EnterAfter:  5 * time.Second,
//		OnChange: func(from, to fallback.Mode, reason string) {
//			slog.Warn("degradation mode", "from", from, "to", to, "reason", reason)
//		},
//	})
//	...
//	modes.Observe(max(unhealthyShare, errorRate)) // every second, by the owner
//	if modes.Mode() >= fallback.Degraded && !route.Critical { ... }
package fallback
