package window_test

import (
	"fmt"
	"time"

	"github.com/rampart-ha/rampart/resilience/internal/window"
)

func ExampleCount() {
	w, err := window.NewCount(4, 1)
	if err != nil {
		panic(err)
	}
	for _, o := range []window.Outcome{window.Failure, window.Success, window.Failure | window.Slow, window.Success, window.Success} {
		w.Record(o)
	}
	// The first failure has been evicted by the fifth record.
	t := w.Totals()
	fmt.Println(t.Calls, t.Failures, t.Slow, t.FailureRate())
	// Output: 4 1 1 0.25
}

func ExampleTime() {
	w, err := window.NewTime(10*time.Second, 10, 0)
	if err != nil {
		panic(err)
	}
	w.Record(0, window.Failure)
	w.Record(9*time.Second, window.Success)
	fmt.Println(w.Totals(9 * time.Second))
	fmt.Println(w.Totals(10 * time.Second)) // the failure's bucket has left the window
	// Output:
	// {2 1 0}
	// {1 0 0}
}
