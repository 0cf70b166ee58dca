package hedge_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/rampart-ha/rampart/resilience/hedge"
)

func ExampleDo() {
	h, err := hedge.New(hedge.Config{Delay: time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	var attempts atomic.Int32
	v, err := hedge.Do(context.Background(), h, func(ctx context.Context) (string, error) {
		if attempts.Add(1) == 1 {
			// Stuck until another attempt wins and cancels it.
			<-ctx.Done()
			return "", ctx.Err()
		}
		return "from the hedge", nil
	})
	fmt.Println(v, err)
	m := h.Metrics()
	fmt.Printf("calls %d, hedges %d\n", m.Calls, m.Hedges)
	// Output:
	// from the hedge <nil>
	// calls 1, hedges 1
}

func ExampleDoWith() {
	h, err := hedge.New(hedge.Config{Delay: time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	discarded := make(chan string, 1)
	proceed := make(chan struct{})
	var attempts atomic.Int32
	v, err := hedge.DoWith(context.Background(), h, func(ctx context.Context) (string, error) {
		if attempts.Add(1) == 1 {
			// Deaf to cancellation: it succeeds after the hedge has
			// won, and what it holds must be released.
			<-proceed
			return "slow result", nil
		}
		return "fast result", nil
	}, hedge.Results[string]{
		Discard: func(s string) { discarded <- s },
	})
	fmt.Println(v, err)
	close(proceed)
	fmt.Println("discarded:", <-discarded)
	// Output:
	// fast result <nil>
	// discarded: slow result
}

func ExampleNew_invalid() {
	_, err := hedge.New(hedge.Config{Quantile: 1.5})
	fmt.Println(err)
	// Output:
	// hedge: invalid config: Quantile must be in [0, 1], got 1.5
}
