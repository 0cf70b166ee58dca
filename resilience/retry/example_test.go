package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rampart-ha/rampart/resilience"
	"github.com/rampart-ha/rampart/resilience/retry"
)

var errUnavailable = errors.New("503 service unavailable")

func ExampleDo() {
	r, err := retry.New(retry.Config{
		MaxAttempts: 3,
		// Microseconds keep the example fast; see DefaultBackoff for a
		// request path.
		Backoff: retry.Backoff{Base: time.Microsecond, Max: time.Microsecond},
		OnRetry: func(attempt int, err error, _ time.Duration) {
			fmt.Printf("attempt %d failed: %v\n", attempt, err)
		},
	})
	if err != nil {
		panic(err)
	}
	calls := 0
	v, err := retry.Do(context.Background(), r, func(context.Context) (string, error) {
		if calls++; calls < 3 {
			return "", errUnavailable
		}
		return "hello", nil
	})
	fmt.Println(v, err)
	// Output:
	// attempt 1 failed: 503 service unavailable
	// attempt 2 failed: 503 service unavailable
	// hello <nil>
}

func ExampleDo_exhausted() {
	r, err := retry.New(retry.Config{Backoff: retry.Backoff{Base: time.Microsecond, Max: time.Microsecond}})
	if err != nil {
		panic(err)
	}
	_, err = retry.Do(context.Background(), r, func(context.Context) (int, error) {
		return 0, errUnavailable
	})
	var ex *retry.ExhaustedError
	if errors.As(err, &ex) {
		fmt.Println(ex.Attempts, ex.Reason, errors.Is(err, errUnavailable))
	}
	// Output:
	// 3 max attempts reached true
}

func ExamplePermanent() {
	r, err := retry.New(retry.Config{})
	if err != nil {
		panic(err)
	}
	errBadRequest := errors.New("400 bad request")
	calls := 0
	_, err = retry.Do(context.Background(), r, func(context.Context) (int, error) {
		calls++
		return 0, retry.Permanent(errBadRequest)
	})
	fmt.Println(calls, err, errors.Is(err, errBadRequest), errors.Is(err, retry.ErrExhausted))
	// Output:
	// 1 400 bad request true false
}

func ExamplePolicy() {
	r, err := retry.New(retry.Config{Backoff: retry.Backoff{Base: time.Microsecond, Max: time.Microsecond}})
	if err != nil {
		panic(err)
	}
	calls := 0
	fetch := resilience.Chain(retry.Policy[int](r))(func(context.Context) (int, error) {
		if calls++; calls == 1 {
			return 0, errUnavailable
		}
		return 42, nil
	})
	fmt.Println(fetch(context.Background()))
	// Output:
	// 42 <nil>
}

func ExampleBudget() {
	// Retries may add 20% of the requests of the last 10s, plus a floor of
	// one retry per 10s.
	budget, err := retry.NewBudget(retry.BudgetConfig{Ratio: 0.2, MinPerSecond: 0.1, TTL: 10 * time.Second})
	if err != nil {
		panic(err)
	}
	for range 10 {
		budget.Deposit()
	}
	var allowed []bool
	for range 4 {
		allowed = append(allowed, budget.Withdraw())
	}
	fmt.Println(allowed) // 0.2·10 + 1
	fmt.Printf("%+v\n", budget.Stats())
	// Output:
	// [true true true false]
	// {Deposits:10 Withdrawals:3 Refusals:1 Available:0}
}

func ExampleParseRetryAfter() {
	now := time.Date(2015, 10, 21, 7, 27, 0, 0, time.UTC)
	fmt.Println(retry.ParseRetryAfter("120", now))
	fmt.Println(retry.ParseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now))
	fmt.Println(retry.ParseRetryAfter("soon", now))
	// Output:
	// 2m0s true
	// 1m0s true
	// 0s false
}
