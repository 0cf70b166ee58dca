package fallback_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/fallback"
)

func ExamplePolicy() {
	f, err := fallback.New(fallback.Config[string]{Value: "cached greeting"})
	if err != nil {
		fmt.Println(err)
		return
	}
	greet := func(context.Context) (string, error) { return "", errors.New("greeter down") }
	call := resilience.Chain(fallback.Policy(f))(greet)
	fmt.Println(call(context.Background()))
	fmt.Println("served:", f.Served())
	// Output:
	// cached greeting <nil>
	// served: 1
}

func ExampleFallback_Force() {
	f, err := fallback.New(fallback.Config[string]{
		Func: func(_ context.Context, err error) (string, error) {
			return "degraded (" + err.Error() + ")", nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	live := func(context.Context) (string, error) { return "live", nil }
	f.Force(true) // e.g. from the admin API during an incident
	fmt.Println(f.Do(context.Background(), live))
	f.Force(false)
	fmt.Println(f.Do(context.Background(), live))
	// Output:
	// degraded (fallback: forced) <nil>
	// live <nil>
}

func ExampleConfig_handles() {
	errNotFound := errors.New("not found")
	f, _ := fallback.New(fallback.Config[int]{
		Value:   0,
		Handles: func(err error) bool { return !errors.Is(err, errNotFound) },
	})
	_, err := f.Do(context.Background(), func(context.Context) (int, error) { return 0, errNotFound })
	fmt.Println(err)
	// Output: not found
}
