package timeout_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/timeout"
)

func ExamplePolicy() {
	t, err := timeout.New(timeout.Config{Duration: 10 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	slow := func(ctx context.Context) (string, error) {
		<-ctx.Done() // a well-behaved call gives up when ctx ends
		return "", ctx.Err()
	}
	call := resilience.Chain(timeout.Policy[string](t))(slow)
	_, err = call(context.Background())
	fmt.Println(err)
	fmt.Println(errors.Is(err, timeout.ErrTimeout), errors.Is(err, context.DeadlineExceeded))
	// Output:
	// timeout: deadline of 10ms exceeded
	// true true
}

func ExampleDo() {
	// The caller's own cancellation is not reported as a timeout.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := timeout.Do(ctx, time.Second, func(ctx context.Context) (int, error) {
		return 0, ctx.Err()
	})
	fmt.Println(err, errors.Is(err, timeout.ErrTimeout))
	// Output: context canceled false
}
