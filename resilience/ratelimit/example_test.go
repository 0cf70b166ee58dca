package ratelimit_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/ratelimit"
)

func Example() {
	// One token a second, up to three at once.
	lim, err := ratelimit.New(ratelimit.Config{Rate: 1, Burst: 3})
	if err != nil {
		panic(err)
	}
	for range 4 {
		fmt.Println(lim.Allow())
	}
	// The fourth call was rejected; Try also says when to come back.
	ok, retryAfter := lim.Try()
	fmt.Println(ok, retryAfter.Round(100*time.Millisecond))
	// Output:
	// true
	// true
	// true
	// false
	// false 1s
}

func ExampleKeyed() {
	// Ten requests a second per client, bursts of two, at most 10000
	// clients tracked however many arrive.
	lim, err := ratelimit.NewKeyed(ratelimit.KeyedConfig{
		Config:  ratelimit.Config{Rate: 10, Burst: 2},
		MaxKeys: 10000,
	})
	if err != nil {
		panic(err)
	}
	for _, client := range []string{"192.0.2.1", "192.0.2.1", "192.0.2.1", "198.51.100.7"} {
		if ok, retryAfter := lim.Try(client); !ok {
			fmt.Printf("%s: 429, Retry-After %v\n", client, retryAfter.Round(10*time.Millisecond))
			continue
		}
		fmt.Printf("%s: 200\n", client)
	}
	// Output:
	// 192.0.2.1: 200
	// 192.0.2.1: 200
	// 192.0.2.1: 429, Retry-After 100ms
	// 198.51.100.7: 200
}

func ExamplePolicy() {
	lim, err := ratelimit.New(ratelimit.Config{Rate: 2, Burst: 1})
	if err != nil {
		panic(err)
	}
	call := resilience.Chain(ratelimit.Policy[string](lim))(func(context.Context) (string, error) {
		return "hello", nil
	})
	for range 2 {
		v, err := call(context.Background())
		var limited *ratelimit.LimitedError
		if errors.As(err, &limited) {
			d, _ := limited.RetryAfter()
			fmt.Println("limited, retry after", d.Round(100*time.Millisecond), errors.Is(err, ratelimit.ErrLimited))
			continue
		}
		fmt.Println(v)
	}
	// Output:
	// hello
	// limited, retry after 500ms true
}
