package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/breaker"
)

func Example() {
	b, err := breaker.New(breaker.Config{
		MinimumCalls:         4,
		FailureRateThreshold: 0.5,
		OpenDuration:         30 * time.Second,
		OnStateChange: func(from, to breaker.State) {
			fmt.Println("breaker:", from, "->", to)
		},
	})
	if err != nil {
		panic(err)
	}
	upstreamDown := errors.New("connection refused")
	for i := range 5 {
		p, err := b.Allow()
		if err != nil {
			fmt.Println("call", i, "rejected:", errors.Is(err, breaker.ErrOpen))
			continue
		}
		p.Done(upstreamDown) // the call failed
	}
	// Output:
	// breaker: closed -> open
	// call 4 rejected: true
}

func ExamplePolicy() {
	b, err := breaker.New(breaker.Config{})
	if err != nil {
		panic(err)
	}
	b.ForceOpen() // manual degradation: stop calling the dependency
	call := resilience.Chain(breaker.Policy[string](b))(func(context.Context) (string, error) {
		return "fresh", nil
	})
	_, err = call(context.Background())
	fmt.Println(err, errors.Is(err, breaker.ErrOpen))
	b.Reset()
	fmt.Println(call(context.Background()))
	// Output:
	// breaker: circuit open (forced open) true
	// fresh <nil>
}

func ExampleBreaker_Metrics() {
	b, err := breaker.New(breaker.Config{WindowSize: 10})
	if err != nil {
		panic(err)
	}
	for _, callErr := range []error{nil, nil, errors.New("503"), context.Canceled} {
		p, _ := b.Allow()
		p.Done(callErr)
	}
	m := b.Metrics()
	fmt.Println(m.State, m.Calls, m.Failures, m.FailureRate)
	// Output: closed 3 1 0.3333333333333333
}
