package adaptive_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/adaptive"
)

func Example() {
	l, err := adaptive.New(adaptive.Config{InitialLimit: 2})
	if err != nil {
		panic(err)
	}
	a, _ := l.Acquire()
	b, _ := l.Acquire()
	_, err = l.Acquire()
	fmt.Println("third call:", errors.Is(err, adaptive.ErrLimited), "in flight:", l.InFlight())

	a.Record() // completed: its latency is a sample
	b.Drop()   // failed fast: slot freed, no sample
	m := l.Metrics()
	fmt.Println("in flight:", m.InFlight, "recorded:", m.Recorded, "dropped:", m.Dropped)
	// Output:
	// third call: true in flight: 2
	// in flight: 0 recorded: 1 dropped: 1
}

func ExamplePolicy() {
	l, err := adaptive.New(adaptive.Config{})
	if err != nil {
		panic(err)
	}
	call := resilience.Chain(adaptive.Policy[string](l))(func(context.Context) (string, error) {
		return "ok", nil
	})
	v, err := call(context.Background())
	fmt.Println(v, err, l.Metrics().Recorded)
	// Output: ok <nil> 1
}
