package bulkhead_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/bulkhead"
)

func ExampleBulkhead_Acquire() {
	b, err := bulkhead.New(bulkhead.Config{MaxConcurrent: 1})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	p, err := b.Acquire(ctx)
	fmt.Println("first:", err)

	// No queue: a second caller is turned away at once.
	_, err = b.Acquire(ctx)
	fmt.Println("second:", err, errors.Is(err, bulkhead.ErrFull))

	p.Release()
	m := b.Metrics()
	fmt.Println("in flight:", m.InFlight, "rejected:", m.Rejected)
	// Output:
	// first: <nil>
	// second: bulkhead: full true
	// in flight: 0 rejected: 1
}

func ExamplePolicy() {
	b, err := bulkhead.New(bulkhead.Config{MaxConcurrent: 8, MaxQueue: 16})
	if err != nil {
		fmt.Println(err)
		return
	}
	call := resilience.Chain(bulkhead.Policy[string](b))(
		func(context.Context) (string, error) { return "pong", nil })
	fmt.Println(call(context.Background()))
	// Output: pong <nil>
}

func ExampleNew_invalid() {
	_, err := bulkhead.New(bulkhead.Config{MaxConcurrent: 4, MaxWait: time.Second})
	fmt.Println(err)
	// Output: bulkhead: MaxWait needs MaxQueue > 0, got MaxWait 1s with MaxQueue 0
}
